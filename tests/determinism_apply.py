"""Apply serialised blocks to a fresh state; print the state root at every height.

Run by tests/test_determinism.py in fresh interpreters with different PYTHONHASHSEEDs:
`python tests/determinism_apply.py BLOCKS.json` prints one JSON object, {"hash_seed",
"roots": [genesis root, root after block 1, ...], "receipts": [[code, ...] per block]}.
The input is {"genesis": {...}, "blocks": [{"height", "timestamp_ms", "txs": [hex]}]}.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from contracts.genesis import init_state
from contracts.runtime import BlockContext, apply_block
from contracts.tx import from_bytes


def apply_blocks(document: dict[str, Any]) -> dict[str, Any]:
    genesis = document["genesis"]
    state = init_state(genesis)
    roots = [state.root().hex()]
    codes = []
    for block in document["blocks"]:
        ctx = BlockContext(genesis["chain_id"], block["height"], block["timestamp_ms"])
        txs = [from_bytes(bytes.fromhex(raw)) for raw in block["txs"]]
        codes.append([receipt.code for receipt in apply_block(state, ctx, txs)])
        roots.append(state.root().hex())
    return {"roots": roots, "receipts": codes}


def main(path: str) -> None:
    result = apply_blocks(json.loads(Path(path).read_text()))
    print(json.dumps({"hash_seed": os.environ.get("PYTHONHASHSEED"), **result}))


if __name__ == "__main__":
    main(sys.argv[1])
