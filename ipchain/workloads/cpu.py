"""What a node's work costs, independent of how busy the machine is.

Wall-clock rates on a shared 2-core machine swing by 2x from one week to the next;
CPU time spent per committed transaction does not. `NodeCpu` reads each node's process
CPU time (user + system): from /proc/PID/stat when the node runs on this machine, else
from its /metrics `process_cpu_seconds_total`.

`verify_cpu_us` is the other side of `limit_ratio = verify_us / cpu_us_per_tx`: the
CPU time of the very check a node makes (`Transaction.signature_ok` on the bench's own
transactions, a different one each time), on this thread's CPU clock over thousands
of rounds.
A wall-clock median of single calls swung 60-105 µs from run to run on a busy machine
(every preemption lands in some sample, and timer reads cost a few µs each); CPU time
over blocks of rounds, median of the blocks, is what the node's CPU time is compared
with. Taken right before and right after the load: the machine's speed (frequency,
neighbours sharing caches) drifts, and the mean of the two brackets the window.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from pathlib import Path
from typing import Any, Awaitable, Callable


TICKS_PER_S = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_cpu_s(pid: int) -> float | None:
    """utime + stime of a live process, in seconds (fields 14 and 15 of /proc/PID/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the name may hold spaces: skip past it
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_S


def metrics_cpu_s(text: str) -> float | None:
    for line in text.splitlines():
        if line.startswith("process_cpu_seconds_total "):
            return float(line.split()[1])
    return None


class NodeCpu:
    """CPU seconds per node at two moments; the difference is what the window cost."""

    def __init__(self, pids: list[int | None],
                 fetch_metrics: Callable[[int], Awaitable[str]]) -> None:
        self.pids = pids
        self.fetch_metrics = fetch_metrics
        self.marks: list[list[float | None]] = []

    async def sample(self) -> list[float | None]:
        values: list[float | None] = []
        for i, pid in enumerate(self.pids):
            value = proc_cpu_s(pid) if pid else None
            if value is None:
                try:
                    value = metrics_cpu_s(await self.fetch_metrics(i))
                except Exception:  # an unreachable node: no figure, not a failed bench
                    value = None
            values.append(value)
        return values

    async def mark(self) -> None:
        self.marks.append(await self.sample())

    def cpu_us_per_tx(self, committed: int) -> list[float | None]:
        first, last = self.marks[0], self.marks[-1]
        return [round((b - a) * 1e6 / committed, 1) if a is not None and b is not None
                and committed else None for a, b in zip(first, last)]


def verify_cpu_us(txs: list[Any], rounds: int = 1000, blocks: int = 5) -> float:
    """CPU µs of one `signature_ok()` (the node's own call) on one of `txs`, taken in
    turn as a node meets them (other senders, other bytes): median over `blocks` blocks
    of `rounds` checks each, on this thread's CPU clock."""
    if not txs or not all(tx.signature_ok() for tx in txs):
        raise ValueError("a sample transaction's signature does not verify")
    order = [txs[i % len(txs)] for i in range(rounds)]
    per_block = []
    for _ in range(blocks):
        started = time.thread_time_ns()
        for tx in order:
            tx.signature_ok()
        per_block.append((time.thread_time_ns() - started) / rounds)
    return round(statistics.median(per_block) / 1000, 1)


class VerifyDuring:
    """`verify_cpu_us` sampled in a thread while the load runs, under the very contention
    the nodes see (the ends of the window can differ by a third on a shared machine).
    Each sample is `rounds` checks every `every_s` (about 2 % of one core); PyNaCl
    releases the GIL in its C call, and the thread's own CPU clock times only it."""

    def __init__(self, txs: list[Any], every_s: float = 2.0, rounds: int = 500) -> None:
        self.txs, self.every_s, self.rounds = txs, every_s, rounds
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="verify-during", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self.samples.append(verify_cpu_us(self.txs, self.rounds, blocks=1))

    def __enter__(self) -> VerifyDuring:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self, cpu_us_per_tx_mean: float | None) -> dict[str, Any]:
        during = round(statistics.median(self.samples), 1) if self.samples else None
        return {"verify_us_during": during, "verify_during_samples": len(self.samples),
                "limit_ratio_during": round(during / cpu_us_per_tx_mean, 3)
                if during and cpu_us_per_tx_mean else None}


def summarize_cpu(per_node: list[float | None], verify_before: float,
                  verify_after: float | None = None) -> dict[str, Any]:
    """The per-node figures and the ratio; `verify_us` is the mean of the verification
    cost measured before and after the load (either alone if only one was taken)."""
    taken = [verify_before] if verify_after is None else [verify_before, verify_after]
    verify = round(sum(taken) / len(taken), 1)
    known = [v for v in per_node if v is not None]
    mean = round(sum(known) / len(known), 1) if known else None
    return {"cpu_us_per_tx": per_node, "cpu_us_per_tx_mean": mean, "verify_us": verify,
            "verify_us_before": verify_before, "verify_us_after": verify_after,
            "verify_clock": "thread_cpu",
            "limit_ratio": round(verify / mean, 3) if mean else None}
