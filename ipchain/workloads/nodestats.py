"""What a bench run did to each node besides committing: view changes and memory.

A benchmark that reports throughput but not the view changes it caused hides the one
failure overload is known for (a primary too busy to propose looks dead). And a node
whose resident memory grows with the load it has seen will fail a long run that a
10-second bench never shows. `NodeWatch` samples each node during the run:

- views: `/v1/status` at the start and end (view, in_view_change, and the replica's
  `view_changes_started` counter), so `view_changes` is what the window started;
- rss_mb: VmRSS from /proc/PID/status every `every_s` seconds (local nodes only), and a
  least-squares slope in MB per minute over the run and over its second half (after
  warm-up), so "flat" is a number.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

StatusFetch = Callable[[int], Awaitable[dict[str, Any]]]


def proc_rss_mb(pid: int | None) -> float | None:
    """Resident set size of a live local process in MB (VmRSS of /proc/PID/status)."""
    if not pid:
        return None
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def slope_per_min(points: list[tuple[float, float]]) -> float | None:
    """Least-squares slope of (seconds, value) points, in value units per minute."""
    if len(points) < 2:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    return round(cov / var * 60, 2)


class NodeWatch:
    """View and RSS samples of each node over one bench window."""

    def __init__(self, pids: list[int | None], fetch_status: StatusFetch,
                 every_s: float = 5.0) -> None:
        self.pids = pids
        self.fetch_status = fetch_status
        self.every_s = every_s
        self.views: list[list[dict[str, Any] | None]] = []
        self.rss: list[list[tuple[float, float]]] = [[] for _ in pids]
        self.started = time.monotonic()

    async def view_sample(self) -> list[dict[str, Any] | None]:
        async def one(i: int) -> dict[str, Any] | None:
            try:
                status = await self.fetch_status(i)
            except Exception:  # an unreachable node: no figure, not a failed bench
                return None
            stats = status.get("consensus", {})
            return {"view": status.get("view"), "in_view_change": status.get("in_view_change"),
                    "started": stats.get("view_changes_started", 0),
                    "resent": stats.get("resent", 0),
                    "received": sum(v for k, v in stats.items() if k.startswith("received_"))}
        return list(await asyncio.gather(*(one(i) for i in range(len(self.pids)))))

    def rss_sample(self) -> None:
        at = time.monotonic() - self.started
        for i, pid in enumerate(self.pids):
            value = proc_rss_mb(pid)
            if value is not None:
                self.rss[i].append((round(at, 1), value))

    async def mark(self) -> None:
        self.views.append(await self.view_sample())
        self.rss_sample()

    async def sample_rss_forever(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            self.rss_sample()

    def summary(self) -> dict[str, Any]:
        first, last = self.views[0], self.views[-1]
        def delta(name: str) -> list[int | None]:
            return [None if a is None or b is None else b[name] - a[name]
                    for a, b in zip(first, last)]
        per_node = delta("started")
        known = [v for v in per_node if v is not None]
        return {
            "view_changes": max(known) if known else None,
            "view_changes_per_node": per_node,
            "consensus_msgs_received": delta("received"),
            "consensus_msgs_resent": delta("resent"),
            "views_end": [None if b is None else b["view"] for b in last],
            "in_view_change_end": [None if b is None else b["in_view_change"] for b in last],
            "rss_mb_start": [points[0][1] if points else None for points in self.rss],
            "rss_mb_end": [points[-1][1] if points else None for points in self.rss],
            "rss_mb_max": [max(v for _, v in points) if points else None for points in self.rss],
            "rss_mb_per_min": [slope_per_min(points) for points in self.rss],
            "rss_mb_per_min_second_half": [slope_per_min(points[len(points) // 2:])
                                           for points in self.rss],
        }
