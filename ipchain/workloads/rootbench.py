"""State-root cost per block on a large state: the incremental levels vs a full refold.

A block of 8,000 transfers writes two balances each (value updates); a block of 8,000
deposits inserts three records each (the patent, its document index, its application
index), either clustered (serial application numbers: the bigchain workload) or spread
over the key space (the worst case: every level is recomputed right of the least
insert). "full" is what a root cost before the levels were cached: every interior node
again over the cached leaf nodes (contracts/merkle.root_of_leaf_nodes). CPU seconds.

    python -m ipchain.workloads.rootbench --entries 1000000 --out rootbench.json
"""

from __future__ import annotations

import argparse
import json
import random
import time
from typing import Any, Callable

from contracts.merkle import root_of_leaf_nodes
from contracts.state import State


def big_state(entries: int) -> State:
    state = State({f"acct/{i:09d}": b"\x01" for i in range(entries)})
    state.root()
    return state


def cpu(fn: Callable[[], Any]) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def full_root(state: State) -> bytes:
    state._hash_leaves()
    nodes = state._leaf_nodes
    return root_of_leaf_nodes([nodes[k] for k in state._sorted_keys])


def block(state: State, label: str, write: Callable[[State], None]) -> dict[str, Any]:
    write_s = cpu(lambda: write(state))
    got: dict[str, bytes] = {}
    incremental_s = cpu(lambda: got.setdefault("inc", state.root()))
    full_s = cpu(lambda: got.setdefault("full", full_root(state)))
    if got["inc"] != got["full"]:
        raise SystemExit(f"{label}: incremental root differs from the full root")
    return {"block": label, "writes_cpu_s": round(write_s, 4),
            "root_incremental_cpu_s": round(incremental_s, 4),
            "root_full_cpu_s": round(full_s, 4), "entries": len(state)}


def run(entries: int, txs: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    state = big_state(entries)
    accounts = [f"acct/{rng.randrange(entries):09d}" for _ in range(2 * txs)]
    serial = [0]

    def transfers(s: State) -> None:
        for key in accounts:
            s.put(key, rng.randrange(1 << 30))

    def deposits(s: State, spread: bool) -> None:
        for _ in range(txs):
            n = serial[0]
            serial[0] += 1
            where = f"{rng.randrange(entries):09d}" if spread else "zz"
            for kind in ("doc", "patent", "app"):
                s.put(f"acct/{where}/{kind}/{n:09d}", {"n": n})

    return [block(state, "8000 transfers (updates)", transfers),
            block(state, "8000 deposits, serial keys (clustered inserts)",
                  lambda s: deposits(s, False)),
            block(state, "8000 deposits, spread keys (worst-case inserts)",
                  lambda s: deposits(s, True))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--txs", type=int, default=8_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="rootbench.json")
    args = parser.parse_args(argv)
    start = time.process_time()
    rows = run(args.entries, args.txs, args.seed)
    for row in rows:
        print(" ".join(f"{k}={v}" for k, v in row.items()))
    result = {"entries": args.entries, "txs": args.txs, "blocks": rows,
              "total_cpu_s": round(time.process_time() - start, 2)}
    with open(args.out, "w") as out:
        json.dump(result, out, indent=2)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
