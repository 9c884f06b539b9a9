"""Execution micro-benchmark: CPU per transaction of executing committed blocks.

Runs a fixed, seeded workload of signed `token.transfer`s (about 5 % overdrafts, a
duplicate per block, as the simulator's clients send) through the one block executor
(`node.chain.Executor`: apply, seal the header, store) on an in-memory store, so what
it measures is execution alone: no consensus, no network, no Ed25519 (the signature
check is the trusted-id set the simulator's fast mode uses; verifying is issue 10's
unit, not part of the executor's cost).

Two passes over the same blocks on fresh executors: `admitted` hands the executor the
transactions as the node's admission left them in its mempool (decoded, id taken,
arguments checked; untimed) and `fetched` makes it decode every transaction's bytes
(a block fetched from a peer). Before each block, untimed, the batch's digest is
checked as the replica's consensus does (`BatchHashes.digest_batch`, whose tx ids and
root the executor then reuses, as in the node); `--no-digest-check` leaves that out,
so the executor hashes the batch itself. Both print µs per
transaction and a digest over every stored header, receipt and the final state, which
must not move when the executor is made faster: the bytes are the protocol.

    python -m ipchain.workloads.execbench --blocks 200 --txs-per-block 50 --out execbench.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import time
from typing import Any, Callable

from consensus import events as ev
from consensus import messages as wire
from contracts.runtime import check_args
from contracts.tx import Transaction
from ipchain.sim.workload import ClientTx, build_genesis, make_bursts, trusted_signatures
from node.chain import Executor
from node.memory_storage import MemoryStorage

CHAIN_ID = "execbench"
BLOCK_INTERVAL_MS = 200


def make_blocks(blocks: int, per_block: int, clients: int, seed: int
                ) -> list[list[ClientTx]]:
    return make_bursts(random.Random(seed), CHAIN_ID, clients, blocks, per_block)


def deliver(seq: int, raws: tuple[bytes, ...]) -> ev.Deliver:
    """A committed block as consensus hands it over (the executor reads seq, time, txs)."""
    timestamp_ms = 1_704_067_200_000 + seq * BLOCK_INTERVAL_MS
    return ev.Deliver(wire.Signed(wire.PrePrepare(0, seq, bytes(32), timestamp_ms, raws),
                                  0, bytes(64)), ())


def output_digest(storage: MemoryStorage) -> str:
    """SHA-256 over every stored block row (header bytes: each block's state root,
    receipts root and tx root), every stored receipt record and the final state."""
    digest = hashlib.sha256()
    for height, row in sorted(storage.blocks_by_height.items()):
        for part in (height.to_bytes(8, "big"), *row):
            digest.update(len(part).to_bytes(4, "big") + part)
    for tx_id, (height, index, record) in sorted(storage.txs.items()):
        digest.update(tx_id + height.to_bytes(8, "big") + index.to_bytes(4, "big") + record)
    for key, value in sorted(storage.state.items()):
        digest.update(key.encode() + b"\x00" + len(value).to_bytes(4, "big") + value)
    return digest.hexdigest()


def admit(blocks: list[list[ClientTx]]) -> None:
    """What the node's admission does to each transaction object before it is ordered
    (its id taken, its arguments checked); untimed, and part of `--mode setup` too."""
    for burst in blocks:
        for ctx in burst:
            _ = ctx.tx.id
            check_args(ctx.tx)


def run_pass(genesis: dict[str, Any], blocks: list[list[ClientTx]], admitted: bool,
             verified: Callable[[Transaction], bool], digest_check: bool = True
             ) -> dict[str, Any]:
    storage = MemoryStorage()
    executor = Executor(storage, genesis)
    cache = {ctx.id_bytes: ctx.tx for burst in blocks for ctx in burst} if admitted else {}
    known = cache.get
    delivers = [deliver(seq, tuple(c.raw for c in burst) + (burst[0].raw,))
                for seq, burst in enumerate(blocks, start=1)]
    apply_s = commit_s = 0.0
    txs = 0
    for block in delivers:
        if digest_check:  # consensus's check of the PRE-PREPARE, on this replica
            executor.batch_hashes.digest_batch(block.timestamp_ms, block.txs)
        start = time.process_time()
        run = executor.begin(block, known, verified)
        run.advance()
        middle = time.process_time()
        executor.commit(run)
        end = time.process_time()
        apply_s += middle - start
        commit_s += end - middle
        txs += len(block.txs)
    total_s = apply_s + commit_s
    return {"mode": "admitted" if admitted else "fetched", "digest_check": digest_check,
            "blocks": len(delivers), "txs": txs,
            "us_per_tx": round(total_s * 1e6 / txs, 1),
            "apply_us_per_tx": round(apply_s * 1e6 / txs, 1),
            "commit_us_per_tx": round(commit_s * 1e6 / txs, 1),
            "state_root": executor.state.root().hex(), "head": executor.head.hash.hex(),
            "output_digest": output_digest(storage)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=200)
    parser.add_argument("--txs-per-block", type=int, default=50)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1,
                        help="passes per mode; the fastest is kept")
    parser.add_argument("--mode", choices=("both", "admitted", "fetched", "setup"),
                        default="both", help="setup: build the workload only (subtract it "
                        "from a cachegrind count of another mode)")
    parser.add_argument("--no-digest-check", dest="digest_check", action="store_false",
                        help="do not hash each batch before its block as consensus does "
                        "(the executor then hashes it itself)")
    parser.add_argument("--out", default="execbench.json")
    args = parser.parse_args(argv)
    genesis = build_genesis(CHAIN_ID, 4, args.clients)
    blocks = make_blocks(args.blocks, args.txs_per_block, args.clients, args.seed)
    verified = trusted_signatures(blocks)
    admit(blocks)
    rows = []
    modes = {"both": (True, False), "admitted": (True,), "fetched": (False,), "setup": ()}
    for admitted in modes[args.mode]:
        passes = [run_pass(genesis, blocks, admitted, verified, args.digest_check)
                  for _ in range(args.repeat)]
        rows.append(min(passes, key=lambda row: row["us_per_tx"]))
    for row in rows:
        print(" ".join(f"{k}={v}" for k, v in row.items()))
    with open(args.out, "w") as out:
        json.dump({"blocks": args.blocks, "txs_per_block": args.txs_per_block,
                   "clients": args.clients, "seed": args.seed, "passes": rows}, out, indent=2)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
