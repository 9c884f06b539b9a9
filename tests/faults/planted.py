"""Planted histories for the checker tests: a clean run of four honest nodes that every
check accepts, which each test then spoils in one way."""

from __future__ import annotations

import hashlib

from ipchain.faultrun.checks import Block, History, Liveness, NodeFinal, Submission

SUPPLY = 1_000


def h(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def make_chain(tx_lists: list[list[str]], salt: str = "") -> list[Block]:
    """A well-linked chain whose roots depend on its content (and `salt`, to fork it)."""
    blocks, prev = [], "0" * 64
    for height, txs in enumerate(tx_lists, start=1):
        root = h("root", height, tuple(txs), salt)
        header_root = blocks[-1].result_root if blocks else h("genesis")
        block_hash = h("block", height, prev, tuple(txs), salt)
        blocks.append(Block(height, block_hash, prev, header_root, root, 0, 1_000 + height,
                            tuple(txs), digest=h("digest", height, tuple(txs), salt)))
        prev = block_hash
    return blocks


def clean_history() -> History:
    txs = [["probe"], ["a", "b"], ["c"], ["d", "e"]]
    subs = {}
    for height, ids in enumerate(txs, start=1):
        for tx in ids:
            if tx != "probe":
                subs[tx] = Submission(tx, "load", "client-000", len(subs), float(height),
                                      "acknowledged", height)
    subs["x"] = Submission("x", "load", "client-001", 0, 5.0, "unknown", final_status="absent")
    subs["y"] = Submission("y", "load", "client-001", 1, 5.0, "rejected", code="BadSignature")
    chain = make_chain(txs)
    finals = {i: NodeFinal(i, True, True, 4, 0, chain[-1].result_root, SUPPLY,
                           {"org-a": 600, "org-b": 400}) for i in range(4)}
    return History(nodes=4, honest=[0, 1, 2, 3], chains={i: list(chain) for i in range(4)},
                   submissions=subs, probe_ids={"probe"}, genesis_supply_bpc=SUPPLY,
                   finals=finals, liveness=Liveness(15.0, 10.0, 10.5, True, 0.2))
