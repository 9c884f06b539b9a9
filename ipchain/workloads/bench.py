"""`ipchain bench`: offered load against a fresh temporary cluster, one JSON result.

Method (what the numbers mean):
- Every transaction is signed and every batch msgpack-packed BEFORE the clock starts,
  so the client's own CPU is not part of the measurement. Transfers come from many
  client organisations, each with consecutive nonces, so no two collide.
- Batches go to the nodes round-robin (POST /v1/txs) on a fixed schedule (offered
  rate), with at most `max_inflight` batches outstanding. If the cluster falls behind,
  the schedule slips: `sent_tps` then shows what was really offered.
- Commit times are observed by following node0's chain (GET /v1/blocks/{next height}
  ?wait_ms=500, a long poll the node answers when that block is stored): no
  per-transaction round trip. Latency is from the moment the batch was sent to the
  moment its block was first seen (one request's time after node0 stored it; before
  long polls, a 10 ms polling interval came on top).
- committed_tps = committed / (last commit seen - start).
- Warm-up: `warmup_batches` batches go first and are committed on every node before
  anything is measured (connections opened, caches and code paths warm); they are not
  in any figure.
- cpu_us_per_tx: each node's process CPU (user + system) over the window from just
  before the first measured batch to the moment every node holds the last block
  (drain included, for every node alike), divided by the transactions committed in
  it. verify_us is the CPU time of the node's own signature check of one of the
  bench's transactions (ipchain/workloads/cpu.py), measured before and after the load
  (verify_us_before/_after; verify_us is their mean), and limit_ratio = verify_us /
  mean cpu_us_per_tx (1.0: a node that only verifies). verify_us_during is the same
  check sampled every 2 s during the load (limit_ratio_during uses it). These are what
  the code costs whatever else the machine does; loadavg says how busy it was.
- With --data-dir of a running cluster the bench loads it as it is (keys from there),
  and leaves it running.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from contracts.tx import from_bytes as tx_from_bytes
from ipchain.sdk import client
from ipchain.cluster import layout
from ipchain.cluster.manager import Cluster
from ipchain.cluster.procs import find_free_base_port
from ipchain.render import Progress
from ipchain.workloads.cpu import NodeCpu, VerifyDuring, summarize_cpu, verify_cpu_us
from ipchain.workloads.nodestats import NodeWatch

FOLLOW_POLL_S = 0.01
FOLLOW_WAIT_MS = 500
"""The follower's long poll (GET /v1/blocks/{h}?wait_ms=): the node answers when the
block is stored, so no polling interval is added to the latency measured."""
WALL_MINUS_MONOTONIC_S = time.time() - time.monotonic()
"""Block headers carry wall-clock milliseconds; the bench times with the monotonic clock."""


@dataclass(frozen=True)
class BenchConfig:
    nodes: int = 4
    duration_s: float = 10.0
    rate_tps: int = 500
    batch_size: int = 50
    max_inflight: int = 8
    clients: int = 32
    drain_s: float = 30.0
    seed: int = 1
    base_port: int | None = None
    keep: bool = False
    data_dir: Path | None = None
    """Load this running cluster instead of a fresh temporary one."""
    progress_s: float = 2.0
    warmup_batches: int = 10
    """Sent and committed before the measured window opens (see the module docstring)."""


@dataclass
class Batch:
    ids: list[str]
    body: bytes


@dataclass
class Tally:
    submitted_at: dict[str, float] = field(default_factory=dict)
    committed_at: dict[str, float] = field(default_factory=dict)
    proposed_at: dict[str, float] = field(default_factory=dict)
    """When the primary proposed the tx's block (its header's proposal timestamp, on the
    monotonic clock): splits latency into waiting to be proposed and agreeing on it."""
    rejected: int = 0
    shed: int = 0
    """Transactions of batches the node refused with 503 MempoolFull (over capacity)."""
    errors: int = 0
    blocks: int = 0
    block_txs: int = 0
    last_commit: float = 0.0
    final_height: int = 0

    def restart(self) -> None:
        """Forget the warm-up (in place: the follower holds this object)."""
        for seen in (self.submitted_at, self.committed_at, self.proposed_at):
            seen.clear()
        self.rejected = self.shed = self.errors = self.blocks = self.block_txs = 0
        self.last_commit = 0.0


def presign(cluster: Cluster, total: int, clients: int, batch_size: int,
            rng: random.Random) -> list[Batch]:
    """`total` transfers from the bench clients, in batches ready to send."""
    orgs = [layout.client_org_id(i) for i in range(clients)]
    keys = [cluster.client_key(org) for org in orgs]
    counts = [total // clients + (1 if i < total % clients else 0) for i in range(clients)]
    nonces = [cluster.nonces.reserve(client.sender_hex(key), max(1, count))
              for key, count in zip(keys, counts)]
    txs = []
    for i in range(total):
        c = i % clients
        to = orgs[(c + 1 + rng.randrange(max(1, clients - 1))) % clients]
        txs.append(client.sign(keys[c], cluster.chain_id, nonces[c], "token.transfer",
                               {"to": to, "amount": 1 + rng.randrange(100)}))
        nonces[c] += 1
    return [Batch([tx.id for tx in txs[k:k + batch_size]],
                  client.pack_batch(txs[k:k + batch_size]))
            for k in range(0, len(txs), batch_size)]


async def send_batch(session: Any, url: str, batch: Batch, tally: Tally,
                     slots: asyncio.Semaphore) -> None:
    try:
        sent = time.monotonic()
        for tx_id in batch.ids:
            tally.submitted_at[tx_id] = sent
        try:
            answer = await client.submit_batch(session, url, batch.body)
        except client.ApiError as exc:
            if exc.status == 503 and exc.code == "MempoolFull":
                tally.shed += len(batch.ids)  # load shedding: refused at the door, cheaply
            else:
                tally.errors += len(batch.ids)
            for tx_id in batch.ids:
                tally.submitted_at.pop(tx_id, None)
            return
        for refused in answer.get("rejected", []):
            tally.rejected += 1
            tally.submitted_at.pop(refused.get("id") or batch.ids[refused["index"]], None)
    finally:
        slots.release()


async def follow(session: Any, url: str, tally: Tally, stop: asyncio.Event) -> None:
    """Record when each submitted tx is first seen in a block of `url`'s chain.

    Asks for the next height only, each block once, and waits at the node for it (a long
    poll): polling "latest" every 10 ms made node0 decode its newest block (hundreds of
    transactions) 100 times a second, and even a 404 per 10 ms showed in node0's CPU."""
    latest = await client.get_block(session, url, "latest")
    height = latest["height"] if latest else 0
    while not stop.is_set():
        asked = time.monotonic()
        try:
            block = await client.get_block(session, url, height + 1, wait_ms=FOLLOW_WAIT_MS)
        except client.ApiError:
            block = None
        if block is None:  # a node without long polls answers at once: poll as before
            if time.monotonic() - asked < FOLLOW_WAIT_MS / 2000:
                await asyncio.sleep(FOLLOW_POLL_S)
            continue
        seen = time.monotonic()
        height += 1
        tally.blocks += 1
        tally.block_txs += len(block["tx_ids"])
        proposed = block["proposal_timestamp_ms"] / 1000 - WALL_MINUS_MONOTONIC_S
        for tx_id in block["tx_ids"]:
            if tx_id in tally.submitted_at and tx_id not in tally.committed_at:
                tally.committed_at[tx_id] = seen
                tally.proposed_at[tx_id] = proposed
                tally.last_commit = seen
        tally.final_height = height


def _is_drained(tally: Tally) -> bool:
    return len(tally.committed_at) >= len(tally.submitted_at)


async def offer(session: Any, urls: list[str], batches: list[Batch], cfg: BenchConfig,
                tally: Tally, sends: list[asyncio.Task],
                duration_s: float | None = None) -> tuple[float, float]:
    """Send the batches on schedule until the duration is over; return (start, end)."""
    slots = asyncio.Semaphore(cfg.max_inflight)
    start = time.monotonic()
    end = start + (cfg.duration_s if duration_s is None else duration_s)
    for k, batch in enumerate(batches):
        due = start + k * cfg.batch_size / cfg.rate_tps
        if due >= end:
            break
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        await slots.acquire()
        if time.monotonic() >= end:
            slots.release()
            break
        sends.append(asyncio.create_task(
            send_batch(session, urls[k % len(urls)], batch, tally, slots)))
    return start, time.monotonic()


async def drive(urls: list[str], batches: list[Batch], cfg: BenchConfig,
                pids: list[int | None] | None = None, log: Any = None,
                bar: Progress | None = None) -> dict[str, Any]:
    tally = Tally()
    async with client.open_session(limit=cfg.max_inflight * 2 + 8) as session:
        async def metrics_text(i: int) -> str:
            async with session.get(f"{urls[i]}/metrics") as answer:
                return await answer.text()

        cpu = NodeCpu(pids or [None] * len(urls), metrics_text)
        watch = NodeWatch(pids or [None] * len(urls),
                          lambda i: client.get_status(session, urls[i]))
        stop = asyncio.Event()
        await watch.mark()
        follower = asyncio.create_task(follow(session, urls[0], tally, stop))
        reporter = asyncio.create_task(report_progress(tally, cfg, log, bar))
        sampler = asyncio.create_task(watch.sample_rss_forever())
        sends: list[asyncio.Task] = []
        try:
            warmup, batches = batches[:cfg.warmup_batches], batches[cfg.warmup_batches:]
            if warmup:
                await warm_up(session, urls, warmup, cfg, tally, follower)
            await cpu.mark()
            start, sent_end = await offer(session, urls, batches, cfg, tally, sends)
            await asyncio.gather(*sends)
            await drain(tally, follower, cfg.drain_s)
            stop.set()
            await follower
            agreement = await check_agreement(session, urls, tally.final_height)
            await cpu.mark()  # every node holds the last block: its work for it is done
            await watch.mark()
        finally:  # also on Ctrl-C: no task may outlive the session it uses
            for task in (follower, reporter, sampler, *sends):
                task.cancel()
            await asyncio.gather(follower, reporter, sampler, *sends, return_exceptions=True)
    result = summarize(cfg, tally, start, sent_end, agreement)
    result["cpu"] = cpu.cpu_us_per_tx(result["committed"])
    result.update(watch.summary())
    return result


async def drain(tally: Tally, follower: asyncio.Task, drain_s: float) -> None:
    deadline = time.monotonic() + drain_s
    while not _is_drained(tally) and not follower.done() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


async def warm_up(session: Any, urls: list[str], batches: list[Batch], cfg: BenchConfig,
                  tally: Tally, follower: asyncio.Task) -> None:
    """Offer `batches` at the bench's rate, wait until every node holds them, forget them."""
    sends: list[asyncio.Task] = []
    await offer(session, urls, batches, cfg, tally, sends,
                duration_s=len(batches) * cfg.batch_size / cfg.rate_tps + 1.0)
    await asyncio.gather(*sends)
    await drain(tally, follower, cfg.drain_s)
    if tally.final_height:
        await client.wait_for_blocks(session, urls, tally.final_height, deadline_s=10.0)
    tally.restart()


async def report_progress(tally: Tally, cfg: BenchConfig, log: Any,
                          bar: Progress | None = None) -> None:
    """A long bench is not silent: a bar over the load's seconds (a rich bar on a
    terminal, a line now and then otherwise), or one `log` line every few seconds."""
    if log is None and bar is None:
        return
    started = time.monotonic()
    while True:
        await asyncio.sleep(0.5 if bar is not None else cfg.progress_s)
        elapsed = time.monotonic() - started
        note = (f"sent {len(tally.submitted_at):,} committed {len(tally.committed_at):,} "
                f"height {tally.final_height:,}")
        if bar is not None:
            bar.update(completed=min(elapsed, cfg.duration_s), note=note)
        else:
            log(f"bench: {elapsed:5.1f}s {note}")


async def check_agreement(session: Any, urls: list[str], height: int) -> bool | None:
    """Do all nodes hold the same block (hash and state root) at the followed height?"""
    if height == 0:
        return None
    blocks = await client.wait_for_blocks(session, urls, height, deadline_s=10.0)
    return all(blocks) and len({(b["hash"], b["state_root"]) for b in blocks}) == 1


def percentile_ms(sorted_s: list[float], pct: int) -> float | None:
    """Nearest-rank percentile of sorted durations in seconds, in ms (1 decimal)."""
    if not sorted_s:
        return None
    rank = max(1, -(-pct * len(sorted_s) // 100))
    return round(sorted_s[rank - 1] * 1000, 1)


def summarize(cfg: BenchConfig, tally: Tally, start: float, sent_end: float,
              agreement: bool | None) -> dict[str, Any]:
    latencies = sorted(tally.committed_at[i] - tally.submitted_at[i] for i in tally.committed_at)
    split = [i for i in tally.committed_at if i in tally.proposed_at]
    to_proposal = sorted(max(0.0, tally.proposed_at[i] - tally.submitted_at[i]) for i in split)
    after_proposal = sorted(max(0.0, tally.committed_at[i] - tally.proposed_at[i]) for i in split)
    committed = len(latencies)
    submitted = len(tally.submitted_at) + tally.rejected
    span = (tally.last_commit - start) if committed else 0.0
    return {
        "nodes": cfg.nodes, "duration_s": cfg.duration_s, "offered_tps": cfg.rate_tps,
        "sent_tps": round(submitted / max(sent_end - start, cfg.duration_s), 1),
        "committed_tps": round(committed / span, 1) if span > 0 else 0.0,
        "p50_ms": percentile_ms(latencies, 50), "p90_ms": percentile_ms(latencies, 90),
        "p99_ms": percentile_ms(latencies, 99), "max_ms": percentile_ms(latencies, 100),
        "to_proposal_p50_ms": percentile_ms(to_proposal, 50),
        "to_proposal_p99_ms": percentile_ms(to_proposal, 99),
        "after_proposal_p50_ms": percentile_ms(after_proposal, 50),
        "after_proposal_p99_ms": percentile_ms(after_proposal, 99),
        "submitted": submitted, "committed": committed, "rejected": tally.rejected,
        "shed": tally.shed,
        "errors": tally.errors, "uncommitted": len(tally.submitted_at) - committed,
        "blocks": tally.blocks, "final_height": tally.final_height,
        "txs_per_block": round(tally.block_txs / tally.blocks, 1) if tally.blocks else 0.0,
        "agreement": agreement, "batch_size": cfg.batch_size,
        "max_inflight": cfg.max_inflight, "clients": cfg.clients, "seed": cfg.seed,
    }


def load_cluster(cfg: BenchConfig, log: Any) -> Cluster:
    """An existing running cluster, checked to have the bench's client organisations."""
    cluster = Cluster.load(cfg.data_dir)
    missing = [org for org in (layout.client_org_id(i) for i in range(cfg.clients))
               if org not in cluster.org_ids()]
    if missing:
        raise ValueError(f"{cfg.data_dir} has no client organisation {missing[0]}; "
                         f"use --clients {sum(o.startswith('client-') for o in cluster.org_ids())}"
                         f" or `ipchain up --clients {cfg.clients}`")
    log(f"bench: loading the running {cluster.n}-node cluster in {cluster.data_dir}")
    return cluster


def measure(cluster: Cluster, cfg: BenchConfig, log: Any,
            bar: Progress | None = None) -> dict[str, Any]:
    total = max(1, int(cfg.rate_tps * cfg.duration_s)) + cfg.warmup_batches * cfg.batch_size
    signing = time.monotonic()
    batches = presign(cluster, total, cfg.clients, cfg.batch_size, random.Random(cfg.seed))
    log(f"bench: signed {total} txs in {time.monotonic() - signing:.1f}s; "
        f"offering {cfg.rate_tps} tx/s for {cfg.duration_s}s")
    sample = [tx_from_bytes(raw) for batch in batches[-20:]
              for raw in msgpack.unpackb(batch.body)]  # 1,000 txs, 32 senders
    verify_before = verify_cpu_us(sample)
    load_before = os.getloadavg()[0]
    with VerifyDuring(sample) as during:
        result = asyncio.run(drive(cluster.urls, batches, cfg,
                                   [cluster.pid(i) for i in range(cluster.n)], log, bar))
    result.update(summarize_cpu(result.pop("cpu"), verify_before, verify_cpu_us(sample)))
    result.update(during.summary(result["cpu_us_per_tx_mean"]))
    result["loadavg_1m"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return result


def run_bench(cfg: BenchConfig, log: Any = None) -> dict[str, Any]:
    """Create, load, measure, and always stop and remove the temporary cluster.

    Without `log`, the narrative and a progress bar go to stderr."""
    if log is None:
        with Progress("bench load", total=cfg.duration_s, unit="s") as bar:
            return _run_bench(cfg, bar.log, bar)
    return _run_bench(cfg, log, None)


def _run_bench(cfg: BenchConfig, log: Any, bar: Progress | None) -> dict[str, Any]:
    if cfg.data_dir is not None:
        return measure(load_cluster(cfg, log), cfg, log, bar)
    tmp = Path(tempfile.mkdtemp(prefix="ipchain-bench-"))
    cluster = None
    try:
        base_port = cfg.base_port or find_free_base_port(cfg.nodes)
        cluster = Cluster.create(tmp / "data", cfg.nodes, base_port, cfg.clients)
        log(f"bench: starting {cfg.nodes} nodes on ports {base_port}.. in {tmp}")
        cluster.start()
        cluster.wait_ready(60.0)
        return measure(cluster, cfg, log, bar)
    finally:
        if cluster is not None:
            cluster.stop()
        if cfg.keep:
            log(f"bench: kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(args: argparse.Namespace) -> int:
    cfg = BenchConfig(nodes=args.n, duration_s=args.duration, rate_tps=args.rate,
                      batch_size=args.batch_size, max_inflight=args.max_inflight,
                      clients=args.clients, drain_s=args.drain, seed=args.seed,
                      base_port=args.base_port, keep=args.keep, data_dir=args.data_dir,
                      warmup_batches=args.warmup_batches)
    previous = signal.signal(signal.SIGTERM, _terminate)  # SIGTERM cleans up like Ctrl-C
    try:
        result = run_bench(cfg)
    finally:
        signal.signal(signal.SIGTERM, previous)
    text = json.dumps(result)
    print(text, flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0
