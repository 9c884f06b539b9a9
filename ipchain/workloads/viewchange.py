"""View-change benchmark on real node processes (issues 16 and 17): prints figures, writes JSON.

Scenarios, each under closed-loop `token.transfer` load on a fresh loopback cluster:
- `kill`: kill -9 the given nodes (the primary; or the primary and the next one) and
  time from the kill to the first block committed in a later view;
- `stop`: SIGSTOP one backup for `--pause-s`, SIGCONT it, time until it is back in the
  quorum's view (same view, not in a view change, same height), then pause another
  backup and report the longest commit gap during that second pause;
- `--arg-bytes` pads every transfer with an unknown argument (issue 17 B1: 60 KB args),
  and the report adds each node's peak RSS and database size.

    python -m ipchain.workloads.viewchange --nodes 4 --kill 0 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ipchain.cluster.manager import Cluster
from ipchain.cluster.procs import find_free_base_port
from ipchain.sdk import client

POLL_S = 0.01


def large_deposit(org: str, serial: int, size_bytes: int) -> dict[str, Any]:
    """A real deposit of about `size_bytes`: its IPC, applicant and inventor lists filled
    to the schema's limits (64 items of up to 512 characters). Large transactions that
    every node admits and executes are what fill a batch; unknown arguments are refused."""
    item = 480
    count = max(1, min(64, size_bytes // (3 * item) + 1))
    names = [f"{org}-{serial}-{k}-".ljust(item, "x") for k in range(count)]
    return {"office": "CN", "application_no": f"VC{org[-3:]}.{serial}",
            "doc_hash": hashlib.sha256(f"{org}/{serial}".encode()).hexdigest(),
            "meta": {"title": f"view-change load {org} {serial}", "kind": "invention",
                     "filing_date": "2024-01-02", "ipc": names, "applicants": names,
                     "inventors": names, "owners": [[org, 10_000]]}}


class Load:
    def __init__(self, cluster: Cluster, session: Any, arg_bytes: int) -> None:
        self.cluster, self.session, self.arg_bytes = cluster, session, arg_bytes
        self.live = set(range(cluster.n))
        self.acked = 0
        self.running = True
        self.turn = 0

    async def client(self, org: str) -> None:
        key = self.cluster.client_key(org)
        sent = 0
        while self.running:
            nonce = self.cluster.nonces.reserve(client.sender_hex(key))
            op, args = (("patent.deposit", large_deposit(org, sent, self.arg_bytes))
                        if self.arg_bytes else
                        ("token.transfer", {"to": "north-university", "amount": 1}))
            sent += 1
            tx = client.sign(key, self.cluster.chain_id, nonce, op, args)
            self.turn += 1
            url = self.cluster.urls[sorted(self.live)[self.turn % len(self.live)]]
            try:
                answer = await client.submit(self.session, url, tx, wait=True, timeout_ms=30_000)
            except client.ApiError:
                await asyncio.sleep(0.05)
                continue
            if answer.get("status") == "committed":
                self.acked += 1


class Watch:
    """Polls one node's status: (monotonic time, view, in view change, height) samples."""

    def __init__(self, session: Any, url: str) -> None:
        self.session, self.url = session, url
        self.samples: list[tuple[float, int, bool, int]] = []
        self.running = True

    async def run(self) -> None:
        while self.running:
            try:
                s = await client.get_status(self.session, self.url)
                self.samples.append((time.monotonic(), s["view"], s["in_view_change"], s["height"]))
            except client.ApiError:
                pass
            await asyncio.sleep(POLL_S)

    def first_commit_in_later_view(self, since: float, old_view: int) -> float | None:
        before = [h for t, v, _, h in self.samples if t <= since]
        height = before[-1] if before else 0
        for t, v, vc, h in self.samples:
            if t > since and v > old_view and not vc and h > height:
                return t
            if t > since and v <= old_view:
                height = max(height, h)
        return None

    def max_gap_s(self, start: float, end: float) -> float:
        """Longest time without a height increase within [start, end]."""
        last, gap, height = start, 0.0, None
        for t, _, _, h in self.samples:
            if t < start or t > end:
                continue
            if height is not None and h > height:
                gap, last = max(gap, t - last), t
            height = h
        return round(max(gap, end - last), 3)


async def wait_for(predicate, deadline_s: float) -> bool:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(0.02)
    return False


def node_resources(cluster: Cluster) -> dict[str, Any]:
    out = {}
    for i in range(cluster.n):
        pid = cluster.pid(i)
        peak_kb = None
        if pid:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak_kb = int(line.split()[1])
            except OSError:
                pass
        db = sum(p.stat().st_size for p in cluster.node_dir(i).glob("**/db.sqlite*"))
        out[f"node{i}"] = {"peak_rss_mb": peak_kb and round(peak_kb / 1024, 1),
                           "db_mb": round(db / 2**20, 1)}
    return out


async def scenario_kill(cluster: Cluster, session: Any, load: Load, kill: list[int],
                        warm_acks: int) -> dict[str, Any]:
    live = [i for i in range(cluster.n) if i not in kill]
    watch = Watch(session, cluster.urls[live[0]])
    task = asyncio.create_task(watch.run())
    await wait_for(lambda: _true(load.acked >= warm_acks), 120)
    status = await client.get_status(session, cluster.urls[live[0]])
    t_kill = time.monotonic()
    for i in kill:
        cluster.kill(i, signal.SIGKILL)
        load.live.discard(i)
    ok = await wait_for(lambda: _true(watch.first_commit_in_later_view(t_kill, status["view"])
                                      is not None), 120)
    watch.running = False
    await task
    t_next = watch.first_commit_in_later_view(t_kill, status["view"])
    return {"killed": kill, "view_before": status["view"], "recovered": ok,
            "kill_to_next_commit_s": round(t_next - t_kill, 3) if t_next else None,
            "view_after": watch.samples[-1][1] if watch.samples else None}


async def scenario_stop(cluster: Cluster, session: Any, load: Load, pause_s: float,
                        warm_acks: int) -> dict[str, Any]:
    first, second = cluster.n - 2, cluster.n - 1
    watch = Watch(session, cluster.urls[0])
    task = asyncio.create_task(watch.run())
    await wait_for(lambda: _true(load.acked >= warm_acks), 120)
    load.live.discard(first)
    cluster.kill(first, signal.SIGSTOP, wait_s=0)
    await asyncio.sleep(pause_s)  # the fault's duration, not a wait for correctness
    cluster.kill(first, signal.SIGCONT, wait_s=0)
    t_cont = time.monotonic()
    load.live.add(first)

    async def rejoined() -> bool:
        try:
            a = await client.get_status(session, cluster.urls[first])
            b = await client.get_status(session, cluster.urls[0])
        except client.ApiError:
            return False
        return a["view"] == b["view"] and not a["in_view_change"] and a["height"] >= b["height"] - 2
    ok = await wait_for(rejoined, 60)
    t_back = time.monotonic()
    paused = await client.get_status(session, cluster.urls[first])
    load.live.discard(second)
    cluster.kill(second, signal.SIGSTOP, wait_s=0)
    t2 = time.monotonic()
    await asyncio.sleep(pause_s)
    cluster.kill(second, signal.SIGCONT, wait_s=0)
    t2_end = time.monotonic()
    load.live.add(second)
    watch.running = False
    await task
    return {"paused": first, "pause_s": pause_s, "rejoined": ok,
            "cont_to_quorum_view_s": round(t_back - t_cont, 3),
            "view_after_first_pause": paused["view"],
            "second_pause_node": second,
            "max_commit_gap_during_second_pause_s": watch.max_gap_s(t2, t2_end)}


async def _true(value: bool) -> bool:
    return value


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    consensus = json.loads(args.consensus) if args.consensus else None
    cluster = Cluster.create(workdir / "cluster", args.nodes, find_free_base_port(args.nodes),
                             args.senders, consensus=consensus)
    try:
        cluster.start()
        async with client.open_session() as session:
            await cluster.wait_ready_async(session, 90.0)
            load = Load(cluster, session, args.arg_bytes)
            clients = [asyncio.create_task(load.client(f"client-{i:03d}"))
                       for i in range(args.senders)]
            if args.stop:
                result = await scenario_stop(cluster, session, load, args.pause_s, args.warm_acks)
            else:
                result = await scenario_kill(cluster, session, load, args.kill, args.warm_acks)
            result["resources"] = node_resources(cluster)
            load.running = False
            await asyncio.wait(clients, timeout=35)
            result["acked"] = load.acked
    finally:
        cluster.stop(timeout_s=10.0)
    return {"nodes": args.nodes, "arg_bytes": args.arg_bytes, "consensus": consensus, **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--kill", type=lambda s: [int(x) for x in s.split(",")], default=[0])
    parser.add_argument("--stop", action="store_true", help="SIGSTOP scenario instead of kill")
    parser.add_argument("--pause-s", type=float, default=10.0)
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--arg-bytes", type=int, default=0)
    parser.add_argument("--warm-acks", type=int, default=60)
    parser.add_argument("--consensus", default="", help='JSON overrides, e.g. {"checkpoint_interval_blocks": 16}')
    parser.add_argument("--json", default="", help="also write the result here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ipchain-vc-") as tmp:
        result = asyncio.run(run(args, Path(tmp)))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0 if result.get("recovered", result.get("rejoined")) else 1


if __name__ == "__main__":
    sys.exit(main())
