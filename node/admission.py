"""Load shedding at the door: a mempool bounded by what the cluster commits.

Under overload a node that admits everything only builds a queue: every admitted
transaction costs a signature check on every node before anyone knows whether it can
be ordered soon, the queue's age becomes everyone's latency, and the primary, busy
verifying, looks dead to its backups. So client admission (POST /v1/tx, /v1/txs) is
refused with 503 + Retry-After, before the body is even read, while the mempool holds
more than about `QUEUE_BUDGET_S` seconds of what this node has recently executed
(never less than `FLOOR_TXS`, never more than the configured `max_mempool_txs`).
The refusal is cheap, so it can be given at any rate; the client retries later or
elsewhere (CometBFT's mempool and etcd's "too many requests" work the same way).

Relayed transactions (/p2p/txs) are not refused here: a peer already admitted them,
and a backup that dropped a transaction the primary orders would only fetch it again.
They count toward the bound, which therefore is cluster-wide.
"""

from __future__ import annotations

import collections
import json
import math
import time
from typing import Any

from aiohttp import web

QUEUE_BUDGET_S = 1.0
"""The mempool may hold about this many seconds of recently executed throughput."""
FLOOR_TXS = 500
"""Never bound below this (ten client batches of 50): a quiet node still takes a burst."""
RATE_WINDOW_S = 5.0
"""Executed throughput is measured over this sliding window."""
MAX_RETRY_AFTER_S = 5
"""A node that executed little in the last window (just started, or between bursts)
would otherwise divide by a rate near zero and tell clients to wait minutes."""
SHED_PATHS = frozenset({"/v1/tx", "/v1/txs"})
SHED_BODY = json.dumps({"error": {"code": "MempoolFull", "message": (
    "node is at capacity (%d transactions pending); retry in %d s or ask another node")}})
"""The refusal, encoded once: a saturated node answers most client POSTs with it (the
bench sheds two batches for each one it admits), and only the two numbers change."""


class AdmissionControl:
    """Executed-throughput estimate and the mempool bound derived from it."""

    def __init__(self, max_mempool_txs: int, clock: Any = time.monotonic) -> None:
        self.max_mempool_txs = max_mempool_txs
        self.clock = clock
        self.executed: collections.deque[tuple[float, int]] = collections.deque()

    def note_executed(self, txs: int) -> None:
        now = self.clock()
        self.executed.append((now, txs))
        while self.executed and self.executed[0][0] < now - RATE_WINDOW_S:
            self.executed.popleft()

    def executed_tps(self) -> float:
        now = self.clock()
        recent = sum(n for at, n in self.executed if at >= now - RATE_WINDOW_S)
        return recent / RATE_WINDOW_S

    def limit_txs(self) -> int:
        adaptive = int(self.executed_tps() * QUEUE_BUDGET_S)
        return max(min(FLOOR_TXS, self.max_mempool_txs), min(self.max_mempool_txs, adaptive))

    def retry_after_s(self, mempool_txs: int) -> int | None:
        """Seconds a refused client should wait, or None if it may come in now."""
        limit = self.limit_txs()
        if mempool_txs < limit:
            return None
        rate = max(self.executed_tps(), 1.0)
        return min(MAX_RETRY_AFTER_S, max(1, math.ceil((mempool_txs - limit // 2) / rate)))


def install(runtime: Any) -> Any:
    """Measure `runtime`'s executed blocks; return the middleware that sheds for it."""
    admission = AdmissionControl(runtime.cfg.max_mempool_txs)
    runtime.listeners.append(lambda header, receipts: admission.note_executed(len(receipts)))
    return shed_middleware(admission, runtime)


def shed_middleware(admission: AdmissionControl, runtime: Any) -> Any:
    """An aiohttp middleware refusing client submissions while the mempool is full;
    `runtime.counters["client_requests_shed"]` counts the refusals."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.method == "POST" and request.path in SHED_PATHS:
            held = len(runtime.mempool)
            wait_s = admission.retry_after_s(held)
            if wait_s is not None:
                runtime.counters["client_requests_shed"] += 1
                return web.Response(text=SHED_BODY % (held, wait_s), status=503,
                                    content_type="application/json",
                                    headers={"Retry-After": str(wait_s)})
        return await handler(request)
    return middleware
