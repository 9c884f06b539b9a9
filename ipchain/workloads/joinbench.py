"""Benchmark: a new node joins a large chain by state sync; time, bytes, and agreement.

    python -m ipchain.workloads.joinbench --data-dir DIR [--txs 1000000] [--out FILE]
    python -m ipchain.workloads.joinbench --data-dir DIR --restore-only

If DIR holds no cluster, one is created and its chain built first (bigchain.py: all
nodes but the last get the chain and its snapshot; the last node is new and empty).
Then the built nodes start, commit under a light load (a transfer every
`load_interval_ms`, so the chain moves while the new node joins), and the new node
starts. Measured, from the moment its process is started:

- answering_s: until its API answers (it starts serving once the restore is done);
- join_s: until it answers with a restored snapshot and stands at the others' height,
  state root and view, out of view change, with a block hash equal to theirs at a
  height all share (what "joined" means: it votes and executes like the others);
- restore_ms, bytes_fetched, chunks per peer, refused chunks: the node's own report
  of its state sync (/v1/status "state_sync");
- the node's CPU seconds over the join.

Prints one JSON object and writes it to --out. The cluster is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from ipchain.cluster.manager import Cluster
from ipchain.cluster.procs import find_free_base_port
from ipchain.sdk import client
from ipchain.workloads import bigchain

READY_DEADLINE_S = 600.0
"""Nodes holding a million-entry state need a while to load it on a busy machine."""
JOIN_DEADLINE_S = 600.0


def process_cpu_s(pid: int | None) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, TypeError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Load:
    """A committed transfer every `interval_ms` through the built nodes, round-robin."""

    def __init__(self, cluster: Cluster, nodes: list[int], interval_ms: int) -> None:
        self.cluster, self.nodes, self.interval_ms = cluster, nodes, interval_ms
        self.committed = 0
        self.stop = asyncio.Event()

    async def run(self, session: Any) -> None:
        org = self.cluster.org_ids()[-1]
        key = self.cluster.client_key(org)
        i = 0
        while not self.stop.is_set():
            url = self.cluster.urls[self.nodes[i % len(self.nodes)]]
            i += 1
            tx = client.sign(key, self.cluster.chain_id,
                             self.cluster.nonces.reserve(client.sender_hex(key)),
                             "token.transfer", {"to": self.cluster.org_ids()[0], "amount": 1})
            try:
                answer = await client.submit(session, url, tx, wait=True, timeout_ms=20_000)
                self.committed += answer.get("status") == "committed"
            except client.ApiError:
                pass
            await asyncio.sleep(self.interval_ms / 1000)


async def joined(session: Any, cluster: Cluster, new: int, built: list[int]) -> dict | None:
    """The new node's status once it stands with the others (see the module doc)."""
    mine = await client.get_status(session, cluster.urls[new])
    if mine.get("state_sync") is None or mine["in_view_change"]:
        return None
    others = [await client.get_status(session, cluster.urls[i]) for i in built]
    if any(o["view"] != mine["view"] or o["in_view_change"] for o in others):
        return None
    same = [o for o in others if o["height"] == mine["height"]]
    if not same or any(o["state_root"] != mine["state_root"] for o in same):
        return None
    height = min([mine["height"]] + [o["height"] for o in others])
    hashes = {(await client.get_block(session, cluster.urls[i], height) or {}).get("hash")
              for i in [new, *built]}
    return mine if len(hashes) == 1 and None not in hashes else None


async def measure(cluster: Cluster, new: int, built: list[int], interval_ms: int) -> dict:
    async with client.open_session(total_timeout_s=60.0) as session:
        async def built_up() -> bool:
            for i in built:
                await client.get_status(session, cluster.urls[i])
            return True
        started = time.monotonic()
        await client.until(built_up, "the built nodes to answer", READY_DEADLINE_S)
        load = Load(cluster, built, interval_ms)
        load_task = asyncio.create_task(load.run(session))
        async def committing() -> bool:
            return load.committed >= 3
        await client.until(committing, "the built nodes to commit", READY_DEADLINE_S)
        ready_s = time.monotonic() - started
        base = (await client.get_status(session, cluster.urls[built[0]]))["height"]
        t0 = time.monotonic()
        cluster.start([new])
        pid = cluster.pid(new)
        await client.until(lambda: client.get_status(session, cluster.urls[new]),
                           "the new node to answer", JOIN_DEADLINE_S)
        answered_s = time.monotonic() - t0
        status = await client.until(lambda: joined(session, cluster, new, built),
                                    "the new node to join", JOIN_DEADLINE_S)
        join_s = time.monotonic() - t0
        cpu_s = process_cpu_s(pid)
        load.stop.set()
        await load_task
        others = [await client.get_status(session, cluster.urls[i]) for i in built]
    sync = status["state_sync"]
    return {"join_s": round(join_s, 2), "answering_s": round(answered_s, 2),
            "restore_ms": sync["ms"],
            "bytes_fetched": sync["bytes_fetched"], "snapshot_height": sync["height"],
            "state_entries": sync["state_entries"], "state_chunks": sync["state_chunks"],
            "history_chunks": sync["history_chunks"], "chunks_by_peer": sync["chunks_by_peer"],
            "rejected_by_peer": sync["rejected_by_peer"],
            "blocks_replayed_after_snapshot": status["height"] - sync["height"],
            "height_when_started": base, "height": status["height"],
            "view": status["view"], "views_of_others": [o["view"] for o in others],
            "state_root": status["state_root"],
            "roots_equal": all(o["state_root"] == status["state_root"] for o in others
                               if o["height"] == status["height"]),
            "new_node_cpu_s": cpu_s, "cluster_ready_s": round(ready_s, 1),
            "loadavg": os.getloadavg(), "load_committed": load.committed}


def measure_restore(cluster: Cluster, source: int, work_dir: Path) -> dict[str, Any]:
    """The restore alone, in-process and without HTTP: node `source`'s latest snapshot
    through StateSync into a new store, then the executor and the start-up check. CPU
    seconds are what the restore costs whatever else the machine is doing."""
    import hashlib

    import msgpack

    from contracts.genesis import init_state
    from node.chain import Executor, genesis_header
    from node.engine import check_at_rest
    from node.snapshot_store import SnapshotStore
    from node.snapshot_sync import StateSync
    from node.storage import Storage

    store = SnapshotStore(cluster.node_dir(source), cluster.chain_id)
    height = store.latest()
    src = Storage(cluster.node_dir(source) / "db.sqlite")
    votes = msgpack.unpackb(src.exec_cert(height)[1])
    genesis = cluster.genesis  # its header alone: an Executor would load the source's state
    genesis_hash = genesis_header(init_state(genesis), genesis["genesis_time_ms"]).hash
    src.close()
    shutil.rmtree(work_dir, ignore_errors=True)
    work_dir.mkdir(parents=True)
    target = Storage(work_dir / "db.sqlite")
    peers = type("Peers", (), {"links": {0: None, 1: None, 2: None}, "signer": None})()
    sync = StateSync(peers, target, None, cluster.genesis, genesis_hash, 0)
    served = [0]

    async def serve(peer: int, path: str) -> bytes:
        await asyncio.sleep(0)
        if path == "/p2p/snapshots":
            digest = hashlib.sha256(store.manifest(height)).digest()
            body = msgpack.packb({"snapshots": [[height, digest]]})
        elif path.endswith("/manifest"):
            body = msgpack.packb({"manifest": store.manifest(height), "certificate": votes})
        elif "/state/" in path:
            body = store.state_chunk(height, int(path.rsplit("/", 1)[1]))
        else:
            first, last = (int(p.split("=")[1]) for p in path.split("?")[1].split("&"))
            body = store.history_chunk(first, last)
        served[0] += len(body)
        return body
    sync._get = serve
    wall, cpu = time.monotonic(), time.process_time()
    report = asyncio.run(sync.run())
    restore = (time.monotonic() - wall, time.process_time() - cpu)
    executor = Executor(target, cluster.genesis, sync.state)
    verdict = check_at_rest(target, executor, sqlite_check=False)  # as the node's Engine
    total = (time.monotonic() - wall, time.process_time() - cpu)
    target.close()
    store.close()
    return {"restore_wall_s": round(restore[0], 1), "restore_cpu_s": round(restore[1], 1),
            "with_startup_check_wall_s": round(total[0], 1),
            "with_startup_check_cpu_s": round(total[1], 1), "bytes": served[0],
            "at_rest_check": verdict, "state_root": executor.state.root().hex(),
            "state_entries": report["state_entries"], "loadavg": os.getloadavg()}


def wipe(node_dir: Path) -> None:
    for path in node_dir.glob("db.sqlite*"):
        path.unlink()
    shutil.rmtree(node_dir / "snapshots", ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ipchain.workloads.joinbench",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--txs", type=int, default=1_000_000)
    parser.add_argument("--block-txs", type=int, default=8_000)
    parser.add_argument("--load-interval-ms", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("bench-statesync.json"))
    parser.add_argument("--restore-only", action="store_true",
                        help="measure the restore alone, in-process (no cluster, no HTTP)")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {}
    if not Cluster.exists(args.data_dir):
        cluster = Cluster.create(args.data_dir, args.nodes, find_free_base_port(args.nodes), 4)
        result["chain"] = bigchain.build(cluster, args.txs, args.block_txs,
                                         list(range(args.nodes - 1)))
    cluster = Cluster.load(args.data_dir)
    chain_file = args.data_dir / "chain.json"
    if "chain" in result:
        chain_file.write_text(json.dumps(result["chain"], indent=2) + "\n")
    elif chain_file.exists():
        result["chain"] = json.loads(chain_file.read_text())
    new, built = cluster.n - 1, list(range(cluster.n - 1))
    if args.restore_only:
        result["restore"] = measure_restore(cluster, 0, args.data_dir / "restore-only")
        return _write(result, args.out)
    wipe(cluster.node_dir(new))  # new each run: a database left by a previous run goes
    cluster.set_node_options(snapshot_interval_blocks=1 << 20, retain_blocks=0)
    cluster.start(built)
    try:
        result["join"] = asyncio.run(measure(cluster, new, built, args.load_interval_ms))
    finally:
        cluster.stop(timeout_s=20.0)
    return _write(result, args.out)


def _write(result: dict[str, Any], out: Path) -> int:
    text = json.dumps(result, indent=2)
    print(text)
    out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
