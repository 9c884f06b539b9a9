"""A node catching up thousands of blocks still answers /v1/status promptly.

Three nodes of a 4-node cluster build a long chain of one-transaction blocks (batch
size 1, batch delay 1 ms) while node3 is down; node3's database is then deleted and it
restarts from nothing, catching up by state transfer while the test polls its
/v1/status every 50 ms and records each answer's latency. The figures are printed and
written as JSON (`IPCHAIN_CATCHUP_JSON`, default catchup_latency.json in the test's tmp
dir). The chain length is `IPCHAIN_CATCHUP_BLOCKS` (default 2,000 to keep CI short; the
issue's 10,000-block figure comes from `python -m ipchain.workloads.catchup`).

What a status request waits for is the machine (is the process scheduled at all?) and
the node (how long its event loop runs other work before the handler). Wall-clock
latency measures both, and on a shared 2-core machine the first alone reaches 100 ms
(the control node, not catching up, shows it). So the 100 ms claim is checked on the
part that is the node's: the CPU time its loop thread spent while its own 10 ms probe
timer was overdue (node/limits.py `LoopLagProbe` "busy"), read from /metrics every 5 s
through the whole catch-up — a handler ready during such a stall waits for all of it.
It must stay under LOOP_CPU_BOUND_MS, half the budget (catch-up work runs in turns of
3 ms: node/offload.py `Turns`; before them single callbacks took 80-120 ms of CPU).
The latency figures are checked too, against bounds the machine's load cannot break
alone: no poll unanswered, the median within max(100 ms, twice the control node's),
the worst under 2 s (before the yields a catching-up node went dark for ~5 s).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import time
from pathlib import Path
from typing import Any

import pytest

from ipchain.cluster.manager import Cluster, start_and_wait
from ipchain.cluster.procs import find_free_base_port, pids_under
from ipchain.sdk import client
from ipchain.workloads import catchup
from ipchain.workloads.catchup import StallWatch, height_of, submit_admitted

pytestmark = pytest.mark.cluster

BLOCKS = int(os.environ.get("IPCHAIN_CATCHUP_BLOCKS", "2000"))
WORST_BOUND_MS = 2000.0
LOOP_CPU_BOUND_MS = 50.0
MEDIAN_BOUND_MS = 100.0
SENDERS = 8
CHUNK_TXS = 250


def transfers(cluster: Cluster, count: int) -> list[client.Transaction]:
    return catchup.transfers(cluster, count, SENDERS)


async def build_chain(session: Any, cluster: Cluster, blocks: int) -> float:
    """Submit `blocks` one-transaction blocks' worth of transfers; wait until committed."""
    started = time.monotonic()
    base = await height_of(session, cluster.urls[0])
    txs = transfers(cluster, blocks)
    deadline = time.monotonic() + 30 + blocks / 20
    for i in range(0, len(txs), CHUNK_TXS):
        await submit_admitted(session, cluster.urls[0], txs[i:i + CHUNK_TXS], deadline)
        while await height_of(session, cluster.urls[0]) < base + i:
            await asyncio.sleep(0.2)  # one chunk queued at most: the mempool sheds beyond
    while await height_of(session, cluster.urls[1]) < base + blocks:
        assert time.monotonic() < deadline, "the chain was not built in time"
        await asyncio.sleep(0.5)
    return time.monotonic() - started


async def trickle(session: Any, cluster: Cluster, stop: asyncio.Event) -> None:
    """A transfer every 200 ms, so the cluster keeps talking and node3 sees it is behind."""
    while not stop.is_set():
        await client.submit_batch(session, cluster.urls[1], transfers(cluster, 1))
        await asyncio.sleep(0.2)


def summary(latencies_ms: list[float]) -> dict[str, float]:
    ordered = sorted(latencies_ms)
    return {"worst_ms": round(ordered[-1], 1),
            "p99_ms": round(ordered[max(0, int(0.99 * len(ordered)) - 1)], 1),
            "p50_ms": round(statistics.median(ordered), 1),
            "over_100ms": sum(1 for x in ordered if x > 100)}


async def timed_status(session: Any, url: str) -> tuple[float, int]:
    sent = time.perf_counter()
    height = await asyncio.wait_for(height_of(session, url), 5.0)
    return (time.perf_counter() - sent) * 1000, height


async def poll_status(session: Any, url: str, control_url: str, target: int,
                      deadline_s: float) -> dict[str, Any]:
    """Poll the catching-up node every 50 ms, and a node that is not catching up right
    after it: the control shows what the shared machine's load alone costs."""
    latencies_ms: list[float] = []
    control_ms: list[float] = []
    worst_at = (0.0, 0)
    unanswered = 0
    started = time.monotonic()
    height = 0
    while height < target:
        assert time.monotonic() - started < deadline_s, \
            f"catch-up stuck at height {height} of {target}"
        try:
            latency_ms, height = await timed_status(session, url)
            latencies_ms.append(latency_ms)
            worst_at = max(worst_at, (latency_ms, height))
        except (client.ApiError, asyncio.TimeoutError):
            if latencies_ms:  # before the first answer the node is still starting
                unanswered += 1
        if latencies_ms:
            control_ms.append((await timed_status(session, control_url))[0])
        await asyncio.sleep(0.05)
    return {"blocks": target, "polls": len(latencies_ms), "unanswered": unanswered,
            "catchup_s": round(time.monotonic() - started, 2), **summary(latencies_ms),
            "worst_at_height": worst_at[1], "control_node1": summary(control_ms)}


async def scenario(cluster: Cluster, out: Path) -> dict[str, Any]:
    async with client.open_session() as session:
        cluster.kill(3, signal.SIGKILL)
        build_s = await build_chain(session, cluster, BLOCKS)
        target = await height_of(session, cluster.urls[1])
        for path in cluster.node_dir(3).glob("db.sqlite*"):
            path.unlink()
        stop = asyncio.Event()
        talker = asyncio.create_task(trickle(session, cluster, stop))
        stalls = StallWatch(session, cluster.urls[3])
        watcher = asyncio.create_task(stalls.run())
        try:
            cluster.start([3])
            figures = await poll_status(session, cluster.urls[3], cluster.urls[1], target,
                                        60 + target / 20)
            await stalls.read()  # the last 10 s of the catch-up
        finally:
            stop.set()
            stalls.running = False
            await talker
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        figures["loop_stall_worst_ms"] = stalls.worst
        figures["loop_stall_reads"] = stalls.reads
        figures["build_s"] = round(build_s, 1)
        out.write_text(json.dumps(figures, indent=2) + "\n")
        return figures


def test_status_answers_promptly_while_a_node_catches_up(tmp_path: Path):
    cluster = Cluster.create(tmp_path / "c", 4, find_free_base_port(4), SENDERS,
                             consensus={"max_batch_txs": 1, "batch_delay_ms": 1,
                                        "request_timeout_ms": 600_000})
    out = Path(os.environ.get("IPCHAIN_CATCHUP_JSON", tmp_path / "catchup_latency.json"))
    try:
        start_and_wait(cluster, 60.0)
        figures = asyncio.run(scenario(cluster, out))
        print(f"\ncatch-up of {figures['blocks']} blocks: {json.dumps(figures)}")
        assert figures["unanswered"] == 0, figures
        assert figures["polls"] >= 10, figures
        assert figures["loop_stall_reads"] >= figures["catchup_s"] // 10, figures
        assert figures["loop_stall_worst_ms"]["busy"] < LOOP_CPU_BOUND_MS, figures
        assert figures["p50_ms"] <= max(MEDIAN_BOUND_MS,
                                        2 * figures["control_node1"]["p50_ms"]), figures
        assert figures["worst_ms"] < WORST_BOUND_MS, figures
    finally:
        cluster.stop(timeout_s=10.0)
        assert pids_under(cluster.data_dir) == []
