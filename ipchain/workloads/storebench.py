"""Storage micro-benchmark: a node's SQLite CPU per committed block, same-run A/B.

Each block costs the node's store four things: the executor's duplicate check of the
block's ids (`known_tx_ids`), the block's transaction (`save_block`: header, tx index,
receipts, state changes), the execution certificate (`save_exec_cert`) and, every
`--checkpoint-every` blocks, a share of the WAL checkpoint that copies the log into the
database (node/offload.py runs it every 4 s, about twenty 500-tx blocks at saturation).
All four are timed here in CPU (time.process_time: the checkpoint runs in this thread
on its own connection), on real blocks: signed `token.transfer`s executed by the real
executor (node/chain.py), so the receipts, pre-prepare and state changes have the sizes
a bench node writes. The store first holds `--prefill` earlier transactions: random
32-byte ids make every insert land on its own B-tree page once the index outgrows a
block, which is what the tx index costs on a long-running node.

A/B: `--ref REV` also loads node/storage.py as it is at git revision REV (e.g. main)
and runs it on its own copy, blocks interleaved round by round with the working tree's,
so both see the same machine load. Figures: µs of CPU per block and per transaction,
and WAL frames (pages written) per block.

    python -m ipchain.workloads.storebench --prefill 200000 --blocks 40 --ref main \
        --out storebench.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from contracts.genesis import init_state
from ipchain.sim.workload import build_genesis, trusted_signatures
from ipchain.workloads.execbench import CHAIN_ID, deliver, make_blocks
from node.chain import Executor
from node.memory_storage import MemoryStorage
from node.seen_ids import CommittedIds

Block = list[Any]
"""The positional arguments of one `save_block` call."""


class RecordingStorage(MemoryStorage):
    """The simulator's store, keeping every `save_block` call to replay on SQLite."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[Block] = []

    def save_block(self, *args: Any) -> None:
        call = list(args)
        call[6] = list(call[6])
        self.calls.append(call)
        super().save_block(*call)


def real_blocks(blocks: int, per_block: int, clients: int, seed: int
                ) -> tuple[dict[str, Any], list[Block]]:
    genesis = build_genesis(CHAIN_ID, 4, clients)
    bursts = make_blocks(blocks, per_block, clients, seed)
    verified = trusted_signatures(bursts)
    storage = RecordingStorage()
    executor = Executor(storage, genesis)
    for seq, burst in enumerate(bursts, start=1):
        run = executor.begin(deliver(seq, tuple(c.raw for c in burst)), lambda _: None, verified)
        run.advance()
        executor.commit(run)
    return genesis, storage.calls


def load_storage_module(ref: str | None) -> ModuleType:
    """node/storage.py of the working tree (ref None) or of git revision `ref`."""
    if ref is None:
        import node.storage
        return node.storage
    source = subprocess.run(["git", "show", f"{ref}:node/storage.py"], check=True,
                            capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parents[2]).stdout
    name = f"storage_at_{ref.replace('/', '_')}"
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    exec(compile(source, f"{ref}:node/storage.py", "exec"), module.__dict__)
    sys.modules[name] = module
    return module


class Variant:
    """One storage module on its own database, with its CPU tallies."""

    def __init__(self, label: str, module: ModuleType, path: Path,
                 checkpoint_every: int) -> None:
        self.label, self.checkpoint_every = label, checkpoint_every
        self.module = module
        self.store = module.Storage(path)
        self.store.db.execute("PRAGMA wal_autocheckpoint=0")  # as node/offload.py does
        self.checkpointer = sqlite3.connect(str(path), isolation_level=None)
        self.path = path
        self.cpu_s = {"known_tx_ids": 0.0, "save_block": 0.0, "save_exec_cert": 0.0,
                      "checkpoint": 0.0}
        self.frames = self.blocks = self.txs = 0
        self.rounds: list[float] = []
        """CPU seconds of each round (its blocks and their checkpoint): paired with the
        other variants' same round, which ran under the same machine load."""

    def prefill(self, genesis_state: dict[str, bytes], txs: int, receipt: bytes,
                per_block: int, seed: int) -> None:
        """Earlier blocks of random ids (untimed), then a checkpoint: the log starts empty."""
        self.store.init_state(genesis_state)
        rng = random.Random(seed)
        for height in range(1, txs // per_block + 1):
            rows = [(rng.randbytes(32), i, receipt) for i in range(per_block)]
            self.store.save_block(height, rng.randbytes(32), b"h", b"r", b"p", b"c", rows, {})
        self.checkpointer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        if hasattr(self.store, "screen_ids_with"):  # as node/runtime.py does at start
            earlier = self.store.db.execute(getattr(self.module, "ALL_TX_IDS", "SELECT id FROM txs"))
            self.store.screen_ids_with(CommittedIds(row[0] for row in earlier))

    def run(self, blocks: list[Block]) -> None:
        cpu = self.cpu_s
        before = sum(cpu.values())
        for call in blocks:
            ids = [tx_id for tx_id, _, _ in call[6]]
            start = time.process_time()
            self.store.known_tx_ids(ids)
            middle = time.process_time()
            self.store.save_block(*call)
            end = time.process_time()
            self.store.save_exec_cert(call[0], call[1], b"v" * 300)
            cpu["known_tx_ids"] += middle - start
            cpu["save_block"] += end - middle
            cpu["save_exec_cert"] += time.process_time() - end
            self.blocks += 1
            self.txs += len(ids)
        if self.blocks % self.checkpoint_every == 0:
            start = time.process_time()
            row = self.checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            cpu["checkpoint"] += time.process_time() - start
            self.frames += row[1]
        self.rounds.append(sum(cpu.values()) - before)

    def report(self) -> dict[str, Any]:
        total = sum(self.cpu_s.values())
        row: dict[str, Any] = {"variant": self.label, "blocks": self.blocks,
                               "us_per_block": round(total * 1e6 / self.blocks),
                               "us_per_tx": round(total * 1e6 / self.txs, 2)}
        for part, seconds in self.cpu_s.items():
            row[f"{part}_us_per_block"] = round(seconds * 1e6 / self.blocks)
        row["wal_frames_per_block"] = round(self.frames / self.blocks)
        row["db_mb"] = round(self.path.stat().st_size / 1e6, 1)
        return row

    def close(self) -> None:
        self.checkpointer.close()
        self.store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefill", type=int, default=200_000,
                        help="transactions already in the store before the timed blocks")
    parser.add_argument("--blocks", type=int, default=40)
    parser.add_argument("--txs-per-block", type=int, default=500)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--checkpoint-every", type=int, default=10,
                        help="blocks between WAL checkpoints (node: every 4 s, ~20 blocks), and per round")
    parser.add_argument("--ref", action="append", default=[],
                        help="also run node/storage.py at git revision REV, checkpointed every N "
                        "blocks if REV@N (N a multiple of --checkpoint-every; REV may be "
                        "worktree). Repeatable; the "
                        "last is the one the others are compared with, round by round)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="storebench.json")
    args = parser.parse_args(argv)
    genesis, calls = real_blocks(args.blocks, args.txs_per_block, args.clients, args.seed)
    first = args.prefill // args.txs_per_block + 1
    for offset, call in enumerate(calls):
        call[0] = first + offset
    genesis_state = init_state(genesis).raw_items()
    receipt = calls[0][6][0][2]
    with tempfile.TemporaryDirectory(prefix="storebench-") as tmp:
        variants = []
        for label in ["worktree", *args.ref]:
            ref, _, every = label.partition("@")
            variant = Variant(label, load_storage_module(None if ref == "worktree" else ref),
                              Path(tmp) / label.replace("/", "_") / "db.sqlite",
                              int(every or args.checkpoint_every))
            variant.prefill(genesis_state, args.prefill, receipt, args.txs_per_block, args.seed)
            variants.append(variant)
        step = args.checkpoint_every
        for start in range(0, len(calls), step):  # round by round: the same load for each
            for variant in variants:
                variant.run(calls[start:start + step])
        rows = [v.report() for v in variants]
        for row, variant in zip(rows, variants):
            ratios = sorted(mine / theirs for mine, theirs
                            in zip(variant.rounds, variants[-1].rounds))
            row[f"median_round_ratio_vs_{variants[-1].label}"] = round(
                ratios[len(ratios) // 2], 3)
        for variant in variants:
            variant.close()
    loadavg = Path("/proc/loadavg").read_text().split()[:3]
    for row in rows:
        print(" ".join(f"{k}={v}" for k, v in row.items()))
    print(f"loadavg={' '.join(loadavg)}")
    with open(args.out, "w") as out:
        json.dump({"prefill": args.prefill, "blocks": args.blocks,
                   "txs_per_block": args.txs_per_block, "clients": args.clients,
                   "checkpoint_every": args.checkpoint_every, "loadavg": loadavg,
                   "variants": rows}, out, indent=2)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
