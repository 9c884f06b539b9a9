"""What a node's work costs, independent of how busy the machine is.

Wall-clock rates on a shared 2-core machine swing by 2x from one week to the next;
CPU time spent per committed transaction does not. `NodeCpu` reads each node's process
CPU time (user + system): from /proc/PID/stat when the node runs on this machine, else
from its /metrics `process_cpu_seconds_total`. `verify_us` times one Ed25519 verification
of a transaction like the bench's, in this process, right before the load, so that
`limit_ratio = verify_us / cpu_us_per_tx` compares two figures taken in the same minute.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import nacl.signing

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


def verify_us(key: nacl.signing.SigningKey, message: bytes, rounds: int = 2000) -> float:
    """Median of `rounds` single verifications of a signature over `message`, in µs."""
    signed = key.sign(message)
    verify_key = key.verify_key
    samples = []
    for _ in range(rounds):
        started = time.perf_counter_ns()
        verify_key.verify(signed)
        samples.append(time.perf_counter_ns() - started)
    return round(statistics.median(samples) / 1000, 1)


def summarize_cpu(per_node: list[float | None], verify: float) -> dict[str, Any]:
    known = [v for v in per_node if v is not None]
    mean = round(sum(known) / len(known), 1) if known else None
    return {"cpu_us_per_tx": per_node, "cpu_us_per_tx_mean": mean, "verify_us": verify,
            "limit_ratio": round(verify / mean, 3) if mean else None}
