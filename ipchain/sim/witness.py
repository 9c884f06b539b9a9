"""What the simulator observes of one host, without a copy of the engine's logic.

`ChainRecord` is the executed chain the checkers read (fed by the engine's observer).
`Witness` is an oracle over the engine's effects on the bus and the store, stated in
PBFT's terms rather than the engine's code: an honest replica's vote is durable in its
WAL before it leaves; it never signs two different votes for one (kind, view, seq);
and its WAL always holds every vote it sent above its stable checkpoint (else a crash
at that moment would restart it without a vote it may be asked to stand by). Findings
go to the host's `anomalies`, which the agreement checker reports.
"""

from __future__ import annotations

from typing import Any

import msgpack

from consensus import events as ev
from consensus import messages as wire
from consensus.messages import Commit, NewView, PrePrepare, Prepare
from contracts.runtime import Receipt
from node.chain import DUPLICATE
from node.engine import Storage

WAL_KINDS = frozenset({"PP", "P", "C", "VC", "NV"})
"""What a replica persists before sending (consensus.events.Persist)."""


class WitnessedStorage:
    """The host's store as the engine sees it, plus what the oracle needs: every WAL
    record ever written (pruning does not forget it), to ask whether a vote was durable
    before it was sent. Any `node.engine.Storage` (in-memory, or SQLite in a test)."""

    def __init__(self, storage: Storage) -> None:
        self.inner = storage
        self.durable: set[bytes] = set()
        """The signatures of every record written. A signature, not the bytes: a
        PRE-PREPARE's signature leaves its transactions out, and one re-proposed in a
        NEW-VIEW (headers only) is sent again with them — the same vote."""
        self.pruned = False
        """Set by each WAL prune, cleared by the witness once it has checked the WAL."""
        self.saved_changes: dict[str, bytes | None] = {}
        """The state changes of the last block stored: what a replica of the same seed
        with the same inputs replays instead of executing (ipchain/sim/execshare.py)."""

    def append_wal(self, records: list[tuple[int, int, str, bytes]]) -> None:
        self.inner.append_wal(records)
        self.durable.update(record_signature(r[3]) for r in records)

    def save_block(self, height: int, block_hash: bytes, header: bytes, result_root: bytes,
                   preprepare: bytes, certificate: bytes, receipts: Any,
                   state_changes: dict[str, bytes | None]) -> None:
        self.inner.save_block(height, block_hash, header, result_root, preprepare,
                              certificate, receipts, state_changes)
        self.saved_changes = state_changes

    def prune_wal(self, settled: Any) -> None:
        self.inner.prune_wal(settled)
        self.pruned = True

    def __getattr__(self, name: str) -> Any:
        """The inner store's; a method is kept on the instance after its first use, so
        later calls do not pay for the failed lookup that leads here (about 3 µs each)."""
        value = getattr(self.inner, name)
        if callable(value):
            self.__dict__[name] = value
        return value


SIGNED_HEAD = 0x93
"""A message as `wire.encode` writes it: [sender, sig, body], a msgpack array of 3."""
SIG_HEAD = b"\xc4\x40"
"""msgpack bin 8 of 64 bytes: the signature, right after a sender below 128 (fixint)."""


def record_signature(record: bytes) -> bytes:
    """The signature of an encoded message, read where the encoding puts it; only the
    signature is needed here (what restores from a record decodes it in full), and a
    PRE-PREPARE record carries its whole batch. Anything else is decoded."""
    if record[0] == SIGNED_HEAD and record[1] < 0x80 and record[2:4] == SIG_HEAD:
        return record[4:68]
    return msgpack.unpackb(record)[1]


class ChainRecord:
    """What the checkers read of one host's executed chain, fed by the engine's
    observer; kept across crashes, as the store it mirrors is."""

    def __init__(self, genesis_root: bytes) -> None:
        self.blocks: list[ev.Deliver | None] = [None]
        self.roots: list[bytes] = [genesis_root]
        """roots[h]: the state root after executing block h (roots[0]: genesis)."""
        self.receipts: list[list[Receipt]] = [[]]
        self.tx_index: dict[str, tuple[int, bool, str]] = {}
        """tx id (hex) -> (height, ok, code) of its one effective execution."""
        self.state: Any = None
        """The executor's state (the latest incarnation's: what the store holds)."""

    @property
    def height(self) -> int:
        return len(self.blocks) - 1

    def record(self, block: ev.Deliver, root: bytes, receipts: list[Receipt]) -> None:
        height = block.seq
        for receipt in receipts:
            if receipt.code != DUPLICATE:
                self.tx_index[receipt.tx_id] = (height, receipt.ok, receipt.code)
        self.blocks.append(block)
        self.roots.append(root)
        self.receipts.append(receipts)


class Witness:
    """The oracle over one honest host's engine: see the module docstring."""

    def __init__(self, index: int, storage: WitnessedStorage, anomalies: list[str]) -> None:
        self.index = index
        self.storage = storage
        self.anomalies = anomalies
        self.signed_votes: dict[tuple[str, int, int], bytes] = {}
        """(kind, view, seq) -> the encoded PRE-PREPARE / PREPARE / COMMIT this replica sent."""
        self.durable_in_new_views: set[bytes] = set()
        """Pre-prepares durable as part of a NEW-VIEW this replica persisted and sent."""
        self.reproposed: dict[tuple[int, int], bytes] = {}
        """(view, seq) -> digest of each pre-prepare in a NEW-VIEW this replica sent: it
        signed them too, so no other pre-prepare of its may differ from them (kept apart
        from `signed_votes`: they are durable inside the NEW-VIEW's record, not alone)."""

    def on_send(self, msg: wire.Signed, encoded: bytes) -> None:
        """The oracle: an honest replica's vote is durable before it leaves, and it never
        signs two different votes for one (kind, view, seq), across restarts."""
        body = msg.body
        if msg.sender != self.index or body.KIND not in WAL_KINDS:
            return
        if msg.sig not in self.storage.durable and msg.sig not in self.durable_in_new_views:
            self.anomalies.append(f"replica {self.index} sent {type(body).__name__} "
                                  f"view {wire.view_of(body)} seq {getattr(body, 'seq', '-')} "
                                  f"before it was durable in its WAL")
        elif isinstance(body, NewView):  # its pre-prepares are durable as part of it
            self.durable_in_new_views.update(pp.sig for pp in body.preprepares)
            for pp in body.preprepares:
                self.check_reproposed(pp.body)
        if isinstance(body, (PrePrepare, Prepare, Commit)) and \
                msg.sig not in self.durable_in_new_views:
            key = (body.KIND, body.view, body.seq)
            earlier = self.signed_votes.setdefault(key, encoded)
            if earlier != encoded and wire.decode(earlier).body.digest != body.digest:
                self.anomalies.append(f"replica {self.index} signed two {type(body).__name__}s "
                                      f"for view {body.view} seq {body.seq}")
            elif isinstance(body, PrePrepare) and \
                    self.reproposed.get((body.view, body.seq), body.digest) != body.digest:
                self.anomalies.append(f"replica {self.index} signed a PrePrepare for view "
                                      f"{body.view} seq {body.seq} unlike its NEW-VIEW's")

    def check_reproposed(self, pp: PrePrepare) -> None:
        """A NEW-VIEW's pre-prepare against what this replica signed before for its slot."""
        earlier = self.signed_votes.get(("PP", pp.view, pp.seq))
        digests = {self.reproposed.setdefault((pp.view, pp.seq), pp.digest),
                   wire.decode(earlier).body.digest if earlier is not None else pp.digest}
        if digests != {pp.digest}:
            self.anomalies.append(f"replica {self.index} signed a NEW-VIEW pre-prepare for "
                                  f"view {pp.view} seq {pp.seq} unlike its earlier one")

    def check_wal(self, after_restart: bool) -> None:
        """The oracle after each WAL prune and at each restart: the WAL holds every vote
        this replica sent above its stable checkpoint (PBFT's definition of an unsettled
        vote), else a restart now could sign a conflicting one. Every moment is a
        possible crash, so this needs no crash to catch a wrong prune."""
        if not (self.storage.pruned or after_restart):
            return
        self.storage.pruned = False
        stored = self.storage.get_meta("stable_checkpoint")
        stable_seq = stored[0] if stored else 0
        kept = set(self.storage.wal())
        lost = sorted(key for key, encoded in self.signed_votes.items()
                      if key[2] > stable_seq and encoded not in kept)
        for kind, view, seq in lost[:3]:
            self.anomalies.append(f"replica {self.index}'s WAL lost its unsettled {kind} for "
                                  f"view {view} seq {seq} (stable checkpoint {stable_seq}): "
                                  f"a restart would forget it")

