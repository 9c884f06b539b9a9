"""Catch-up benchmark on real node processes (issues 15 and 16): prints figures, writes JSON.

Does a node catching up a long chain stall anyone? On a fresh loopback cluster the
`--lagging` highest-numbered nodes are stopped (SIGSTOP: they keep their ports), the
others build a chain of `--blocks` one-transaction blocks; after the "before" window
the lagging nodes are killed, their databases deleted, and they restart as soon as
their ports are free. Under the same
closed-loop `token.transfer` load on the live nodes, the benchmark then measures
- **before**: the live nodes' commit rate for `--window-s` seconds;
- **during**: the same while the lagging nodes restart from nothing and catch up
  (until each is past the height the live nodes had when it started), and
  /v1/status latency of each catching-up node, polled every 50 ms beside a live
  control node (what the shared machine's load alone costs), and the catching-up
  node's worst event-loop stalls from its own probe, read every 5 s: wall-clock lag
  and the CPU its loop thread spent meanwhile (`loop_stall_worst_ms`: the part of a
  status request's wait that is the node's own, whatever the machine's load).
The live nodes are a quorum on their own (lagging ≤ f), so a stall in the live figures
is the catch-up's doing. Commit rate is blocks/s of a live node's height and
acknowledged transactions/s; the longest commit gap is the longest time that node's
height stood still (50 ms resolution). loadavg is read at each phase's start and end.

    python -m ipchain.workloads.catchup --nodes 4 --lagging 1 --blocks 10000 --json out.json
    python -m ipchain.workloads.catchup --nodes 7 --lagging 2 --blocks 10000 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from ipchain.cluster.manager import Cluster
from ipchain.cluster.procs import find_free_base_port
from ipchain.sdk import client
from ipchain.workloads.viewchange import Load

POLL_S = 0.05
STALL_POLL_S = 5.0
"""How often the catching-up node's loop-stall figures are read: its probe keeps the
worst of the last 10 s (node/limits.py `LoopLagProbe`), so nothing falls between."""
STATUS_TIMEOUT_S = 5.0
BUILD_CHUNK_TXS = 250
CONSENSUS = {"max_batch_txs": 1, "batch_delay_ms": 1, "request_timeout_ms": 600_000}
"""One transaction per block, so a long chain builds in minutes; no view change under
the machine's load spikes, so the figures measure catch-up, not the pacemaker."""


def loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def latency_summary(latencies_ms: list[float]) -> dict[str, Any]:
    if not latencies_ms:
        return {"polls": 0}
    ordered = sorted(latencies_ms)
    return {"polls": len(ordered), "p50_ms": round(statistics.median(ordered), 1),
            "p99_ms": round(ordered[max(0, int(0.99 * len(ordered)) - 1)], 1),
            "max_ms": round(ordered[-1], 1),
            "over_100ms": sum(1 for x in ordered if x > 100)}


@dataclass
class Poller:
    """Polls one node's /v1/status every POLL_S: (monotonic time, height, latency ms)."""

    session: Any
    url: str
    samples: list[tuple[float, int, float]] = field(default_factory=list)
    unanswered: list[float] = field(default_factory=list)
    running: bool = True

    async def run(self) -> None:
        while self.running:
            sent = time.perf_counter()
            try:
                status = await asyncio.wait_for(client.get_status(self.session, self.url),
                                                STATUS_TIMEOUT_S)
                self.samples.append((time.monotonic(), status["height"],
                                     (time.perf_counter() - sent) * 1000))
            except (client.ApiError, asyncio.TimeoutError):
                self.unanswered.append(time.monotonic())
            await asyncio.sleep(POLL_S)

    def height(self) -> int:
        return self.samples[-1][1] if self.samples else 0

    def latencies(self, start: float, end: float) -> list[float]:
        return [ms for t, _, ms in self.samples if start <= t <= end]

    def commit_figures(self, start: float, end: float) -> dict[str, Any]:
        """Blocks/s over [start, end], the longest time the height stood still, and the
        slowest one-second windows."""
        inside = [(t, h) for t, h, _ in self.samples if start <= t <= end]
        if len(inside) < 2:
            return {"samples": len(inside)}
        (t0, h0), (t1, h1) = inside[0], inside[-1]
        per_second = blocks_per_second(inside)
        return {"seconds": round(t1 - t0, 2), "blocks": h1 - h0,
                "blocks_per_s": round((h1 - h0) / (t1 - t0), 1),
                "longest_commit_gap_s": round(longest_gap_s(inside), 3),
                "slowest_second_blocks": min(per_second, default=None),
                "seconds_without_commit": sum(1 for b in per_second if b == 0)}


def longest_gap_s(samples: list[tuple[float, int]]) -> float:
    """The longest time between a height increase and the next (or the window's end)."""
    since, height = samples[0]
    gap = 0.0
    for t, h in samples:
        if h > height:
            gap, since, height = max(gap, t - since), t, h
    return max(gap, samples[-1][0] - since)


def blocks_per_second(samples: list[tuple[float, int]]) -> list[int]:
    """Blocks committed in each whole second of the window."""
    counts: list[int] = []
    edge, counted, height = samples[0][0] + 1.0, samples[0][1], samples[0][1]
    for t, h in samples:
        while t > edge:
            counts.append(height - counted)
            counted, edge = height, edge + 1.0
        height = h
    return counts


def transfers(cluster: Cluster, count: int, senders: int) -> list[client.Transaction]:
    keys = [cluster.client_key(f"client-{i:03d}") for i in range(senders)]
    txs = []
    for k in range(count):
        key = keys[k % senders]
        nonce = cluster.nonces.reserve(client.sender_hex(key))
        txs.append(client.sign(key, cluster.chain_id, nonce, "token.transfer",
                               {"to": "north-university", "amount": 1}))
    return txs


async def loop_stalls_ms(session: Any, url: str) -> dict[str, float]:
    """The node's worst event-loop stalls of the last 10 s from /metrics: `lag` the
    wall-clock overshoot of its 10 ms probe timer, `busy` the CPU time its loop thread
    spent in that overshoot (what its own code cost, whatever the machine's load)."""
    async with session.get(url + "/metrics") as resp:
        text = await resp.text()
    found = {}
    for line in text.splitlines():
        for name in ("lag", "busy"):
            if line.startswith(f"ipchain_event_loop_{name}_recent_max_ms "):
                found[name] = float(line.split()[1])
    return found


@dataclass
class StallWatch:
    """Reads a node's loop-stall figures every STALL_POLL_S; keeps the worst."""

    session: Any
    url: str
    worst: dict[str, float] = field(default_factory=lambda: {"lag": 0.0, "busy": 0.0})
    reads: int = 0
    running: bool = True

    async def run(self) -> None:
        while self.running:
            await self.read()
            await asyncio.sleep(STALL_POLL_S)

    async def read(self) -> None:
        try:
            figures = await asyncio.wait_for(loop_stalls_ms(self.session, self.url),
                                             STATUS_TIMEOUT_S)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError):
            return  # still starting (or the read timed out): the next read covers it
        if figures:
            self.reads += 1
            for name, value in figures.items():
                self.worst[name] = max(self.worst[name], value)


async def height_of(session: Any, url: str) -> int:
    return (await client.get_status(session, url))["height"]


async def submit_admitted(session: Any, url: str, txs: list[Any], deadline: float) -> None:
    """Submit a batch, waiting out a 503 MempoolFull (node/admission.py sheds a client
    whose batch would queue more than about a second of the cluster's throughput)."""
    while True:
        try:
            await client.submit_batch(session, url, txs)
            return
        except client.ApiError as exc:
            if exc.status != 503 or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def build_chain(session: Any, cluster: Cluster, url: str, blocks: int,
                      senders: int) -> float:
    """`blocks` one-transaction blocks through `url`, the mempool kept bounded; the
    seconds it took (a deadline, not a figure: the build is set-up)."""
    started = time.monotonic()
    base = await height_of(session, url)
    txs = transfers(cluster, blocks, senders)
    deadline = started + 60 + blocks / 10
    for i in range(0, len(txs), BUILD_CHUNK_TXS):
        await submit_admitted(session, url, txs[i:i + BUILD_CHUNK_TXS], deadline)
        while await height_of(session, url) < base + i:  # one chunk queued at most
            if time.monotonic() > deadline:
                raise TimeoutError(f"chain not built within {deadline - started:.0f} s")
            await asyncio.sleep(0.2)
    while await height_of(session, url) < base + blocks:
        if time.monotonic() > deadline:
            raise TimeoutError(f"chain not built within {deadline - started:.0f} s")
        await asyncio.sleep(0.2)
    return time.monotonic() - started


async def ports_released(cluster: Cluster, nodes: list[int], deadline_s: float = 120.0) -> None:
    """A killed node's port stays taken while its peers' connections to it close
    (FIN_WAIT): wait until it can be bound again."""
    deadline = time.monotonic() + deadline_s
    while cluster.busy_ports(nodes):
        if time.monotonic() > deadline:
            raise TimeoutError(f"ports {cluster.busy_ports(nodes)} still taken")
        await asyncio.sleep(0.2)


def wipe(cluster: Cluster, i: int) -> None:
    """Node i starts from nothing: every block comes by state transfer."""
    for path in cluster.node_dir(i).glob("db.sqlite*"):
        path.unlink()


@dataclass
class Setup:
    nodes: int = 4
    lagging: int = 1
    blocks: int = 10_000
    senders: int = 8
    window_s: float = 20.0
    warm_s: float = 3.0
    catchup_deadline_s: float = 0.0
    """0: 60 s + 50 ms per block."""


async def measure(cluster: Cluster, session: Any, setup: Setup) -> dict[str, Any]:
    lagging = list(range(setup.nodes - setup.lagging, setup.nodes))
    live = [i for i in range(setup.nodes) if i not in lagging]
    for i in lagging:  # stopped, not killed: a stopped node keeps its port for the restart
        cluster.kill(i, signal.SIGSTOP, wait_s=0)
    build_s = await build_chain(session, cluster, cluster.urls[live[0]], setup.blocks,
                                setup.senders)
    load = Load(cluster, session, 0)
    load.live = set(live)
    clients = [asyncio.create_task(load.client(f"client-{i:03d}")) for i in range(setup.senders)]
    watch = Poller(session, cluster.urls[live[-1]])
    pollers = {i: Poller(session, cluster.urls[i]) for i in lagging}
    stalls = {i: StallWatch(session, cluster.urls[i]) for i in lagging}
    tasks = [asyncio.create_task(watch.run())]
    try:
        await asyncio.sleep(setup.warm_s)  # the load's ramp-up, left out of the figures
        t_before, acked_before, load_before = time.monotonic(), load.acked, loadavg()
        await asyncio.sleep(setup.window_s)  # the "before" window itself
        t_before_end, acked_before_end, load_before_end = time.monotonic(), load.acked, loadavg()
        for i in lagging:
            cluster.kill(i, signal.SIGKILL)
            wipe(cluster, i)
        await ports_released(cluster, lagging)
        t_start, acked_start, load_start = time.monotonic(), load.acked, loadavg()
        target = watch.height()
        cluster.start(lagging)
        tasks += [asyncio.create_task(p.run()) for p in [*pollers.values(), *stalls.values()]]
        deadline_s = setup.catchup_deadline_s or 60 + setup.blocks / 20
        while not all(p.height() >= target for p in pollers.values()):
            if time.monotonic() - t_start > deadline_s:
                break
            await asyncio.sleep(POLL_S)
        t_end, acked_end, load_end = time.monotonic(), load.acked, loadavg()
        await asyncio.gather(*(watch.read() for watch in stalls.values()))  # the last 10 s
    finally:
        load.running = False
        for p in [watch, *pollers.values(), *stalls.values()]:
            p.running = False
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.wait(clients, timeout=35)
    caught_up = all(p.height() >= target for p in pollers.values())
    return {
        "nodes": setup.nodes, "live": live, "lagging": lagging, "built_blocks": setup.blocks,
        "build_s": round(build_s, 1), "catchup_target_height": target,
        "before": {**watch.commit_figures(t_before, t_before_end),
                   "acked_tx_per_s": round((acked_before_end - acked_before)
                                           / (t_before_end - t_before), 1),
                   "loadavg": [load_before, load_before_end]},
        "during": {**watch.commit_figures(t_start, t_end),
                   "acked_tx_per_s": round((acked_end - acked_start) / (t_end - t_start), 1),
                   "loadavg": [load_start, load_end], "caught_up": caught_up},
        "catching_up": {f"node{i}": {**catching_up_figures(p, t_start, target),
                                     "loop_stall_worst_ms": stalls[i].worst,
                                     "loop_stall_reads": stalls[i].reads}
                        for i, p in pollers.items()},
        "control_status_during": latency_summary(watch.latencies(t_start, t_end)),
    }


def catching_up_figures(poller: Poller, t_start: float, target: int) -> dict[str, Any]:
    """Status latency while the node caught up, and polls it left unanswered once it
    had answered one (before that it is still starting)."""
    reached = next((t for t, h, _ in poller.samples if h >= target), None)
    first = poller.samples[0][0] if poller.samples else None
    end = reached or (poller.samples[-1][0] if poller.samples else t_start)
    return {"caught_up_s": round(reached - t_start, 1) if reached else None,
            "blocks_per_s": round(target / (reached - t_start), 1) if reached else None,
            "status": latency_summary(poller.latencies(t_start, end)),
            "unanswered": sum(1 for t in poller.unanswered if first is not None and t > first)}


async def run(setup: Setup, workdir: Path) -> dict[str, Any]:
    cluster = Cluster.create(workdir / "cluster", setup.nodes, find_free_base_port(setup.nodes),
                             setup.senders, consensus=CONSENSUS)
    try:
        cluster.start()
        async with client.open_session() as session:
            await cluster.wait_ready_async(session, 90.0)
            result = await measure(cluster, session, setup)
    finally:
        cluster.stop(timeout_s=10.0)
    return {"cpus": os.cpu_count(), **result}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--lagging", type=int, default=1,
                        help="nodes that catch up (at most f, so the others are a quorum)")
    parser.add_argument("--blocks", type=int, default=10_000, help="chain length to catch up")
    parser.add_argument("--senders", type=int, default=8, help="closed-loop clients")
    parser.add_argument("--window-s", type=float, default=20.0, help="the 'before' window")
    parser.add_argument("--deadline-s", type=float, default=0.0,
                        help="stop measuring a catch-up after this long (default 60 s + 50 ms "
                             "per block); the figures are reported either way")
    parser.add_argument("--json", default="", help="also write the result here")
    args = parser.parse_args(argv)
    if not 1 <= args.lagging <= (args.nodes - 1) // 3:
        parser.error(f"--lagging must be 1..f ({(args.nodes - 1) // 3} for {args.nodes} nodes)")
    setup = Setup(args.nodes, args.lagging, args.blocks, args.senders, args.window_s,
                  catchup_deadline_s=args.deadline_s)
    with tempfile.TemporaryDirectory(prefix="ipchain-catchup-") as tmp:
        result = asyncio.run(run(setup, Path(tmp)))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0 if result["during"]["caught_up"] else 1


if __name__ == "__main__":
    sys.exit(main())
