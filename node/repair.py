"""Rebuilding a damaged state from the node's own certified blocks.

The start-up check (`node.engine.check_at_rest`) catches a state whose root no longer
matches its last header — a flipped bit in a stored value that SQLite's own checks
cannot see. The blocks themselves are usually intact, and each one's header hash was
signed by 2f+1 validators, so the state can be rebuilt by replaying them from genesis
with the real contracts: every replayed header must hash to the stored block hash (and
to the certified one, where a certificate is stored), so a replay that reproduces them
all has rebuilt exactly the state the quorum certified. If any block does not, the
damage is in the blocks too and the node keeps refusing (the operator moves the data
directory aside; the empty node then catches up from its peers).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from consensus import events as ev
from consensus import messages as wire
from contracts.genesis import init_state
from contracts.runtime import BlockContext
from contracts.tx import Transaction
from node.chain import (DUPLICATE, block_time_ms, genesis_header, iter_receipts,
                        read_certificate, seal_header)

log = logging.getLogger("ipchain.repair")


def replay_state(storage: Any, genesis: dict[str, Any]) -> str | None:
    """Rebuild the state table from the stored blocks; None when done, else why not."""
    state = init_state(genesis)
    head = genesis_header(state, genesis["genesis_time_ms"])
    applied: set[bytes] = set()
    for height in range(1, storage.last_height() + 1):
        row = storage.block(height)
        if row is None:
            return f"block {height} is missing"
        block_hash, _, _, preprepare, certificate = row
        try:
            block = ev.Deliver(wire.decode(preprepare), read_certificate(certificate))
        except (wire.WireError, ValueError) as exc:
            return f"block {height} is unreadable: {exc}"
        ids = [hashlib.sha256(raw).digest() for raw in block.txs]
        ctx = BlockContext(genesis["chain_id"], height, block_time_ms(head, block))
        receipts = list(iter_receipts(state, ctx, block.txs, ids, applied & set(ids),
                                      lambda _id: None, Transaction.signature_ok))
        applied.update(bytes.fromhex(r.tx_id) for r in receipts if r.code != DUPLICATE)
        head = seal_header(head, block, state, receipts)
        state.take_dirty()
        certified = storage.exec_cert(height)
        if head.hash != block_hash or (certified is not None and certified[0] != head.hash):
            return f"replaying block {height} does not reproduce its stored hash"
    storage.replace_state(state.raw_items())
    log.warning("event=state_rebuilt height=%d entries=%d", head.height, len(state))
    return None
