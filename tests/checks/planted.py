"""Planted histories for the invariant tests: a clean run of four honest replicas that
every check accepts, which each test then spoils in one way. The same history stands
for both recorders: receipts present (as the simulator records them) or None (as the
fault runner does)."""

from __future__ import annotations

import hashlib

from ipchain.checks import Block, History, Liveness, Receipt, ReplicaRecord, Submission

SUPPLY = 1_000
TXS = [["probe"], ["a", "b"], ["c"], ["d", "e"]]


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


def receipts_of(tx_lists: list[list[str]]) -> list[Receipt]:
    """"b" fails (a refused transfer still takes its place in the block); the rest are ok."""
    return [Receipt(tx, height, tx != "b", "InsufficientFunds" if tx == "b" else "ok")
            for height, txs in enumerate(tx_lists, start=1) for tx in txs]


def clean_submissions() -> dict[str, Submission]:
    subs = {}
    for height, ids in enumerate(TXS, start=1):
        for tx in ids:
            if tx == "probe":
                continue
            kind = "liveness" if tx == "e" else "load"
            t = 10.1 if tx == "e" else float(height)
            subs[tx] = Submission(tx, kind, "client-000", len(subs), t,
                                  "rejected" if tx == "b" else "acknowledged", height,
                                  "InsufficientFunds" if tx == "b" else "ok", t + 0.4)
    subs["x"] = Submission("x", "load", "client-001", 0, 5.0, "unknown", final_status="absent")
    subs["y"] = Submission("y", "load", "client-001", 1, 5.0, "rejected", code="BadSignature")
    return subs


def clean_history(receipts: bool = True) -> History:
    chain = make_chain(TXS)
    replicas = [ReplicaRecord(i, blocks=list(chain),
                              receipts=receipts_of(TXS) if receipts else None,
                              height=4, state_root=chain[-1].result_root, view=0,
                              supply_bpc=SUPPLY, balances_bpc={"org-a": 600, "org-b": 400})
                for i in range(4)]
    return History(replicas=replicas, submissions=clean_submissions(),
                   liveness=Liveness(15.0, 10.0, converge_s=0.2), genesis_supply_bpc=SUPPLY,
                   probe_ids={"probe"})
