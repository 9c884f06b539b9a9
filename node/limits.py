"""Limits on what any one client can make the node do: connections, peer bodies, block reads.

- `ConnectionGuard` wraps aiohttp's protocol factory (aiohttp has no connection cap
  and no header-read timeout). A connection must finish a request's headers within
  `header_timeout_s` of opening and may then idle `idle_timeout_s` between requests.
  At the cap, the oldest connection that has never completed a request (a slowloris
  socket, by construction) is cut to make room, so a peer that connects always gets in;
  only when every connection is a working one is the newcomer refused. The cap sits
  below the process's fd limit, so accept() never fails for lack of descriptors.
- `peer_guard_middleware`: /p2p bodies over `ANON_PEER_BODY_BYTES` only from a signed
  validator request (node/peer_auth.py), checked before the body is read.
- `TokenBucket`s rate-limit GET /p2p/blocks (validators get a larger share).
- `throttle_accept_errors` logs accept failures once per interval, with a count.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
import collections
import errno
import logging
import resource
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from node.http_input import InputError, peek_array_count, read_body
from node.peer_auth import H_MAC, H_SIG, PeerAuthError, body_matches, verify_envelope

log = logging.getLogger("ipchain.limits")

MAX_CONNECTIONS = 512
FD_RESERVE = 128
"""Descriptors kept free for SQLite, outbound peer connections and log files."""
HEADER_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 30.0
SWEEP_INTERVAL_S = 1.0
ANON_PEER_BODY_BYTES = 64 * 1024
"""What a /p2p request from anyone may carry: one consensus message or a few txs."""
MAX_PEER_ITEMS = 4096
"""Items in one /p2p/messages or /p2p/txs body (a sending peer packs at most 2,000)."""
MAX_CLIENT_BATCH_TXS = 1000
"""Transactions in one POST /v1/txs: sized like a block (max_batch_txs)."""
MAX_SSE_STREAMS = 64
LOG_EVERY_S = 10.0
PEER_INDEX = web.AppKey("peer_index", int)
"""Set on a request whose peer envelope verified: the sending validator's index."""


@dataclass
class _Conn:
    transport: asyncio.Transport
    opened: float
    idle_since: float
    busy: int = 0
    served: int = 0


class _Tracked(asyncio.Protocol):
    """Passes everything to aiohttp's handler; tells the guard when it opens and closes."""

    def __init__(self, guard: ConnectionGuard, make: Callable[[], asyncio.Protocol]) -> None:
        self.guard, self.make = guard, make
        self.inner: Any = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        if self.guard.admit(transport):
            self.inner = self.make()
            self.inner.connection_made(transport)
        else:
            transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.forget(self.transport)
        if self.inner is not None:
            self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.inner is not None else None

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()


class _WindowMax:
    """The largest value seen in each of the last `window_s` seconds, and ever."""

    def __init__(self, window_s: int = 10) -> None:
        self.ever = 0.0
        self.per_second: collections.deque[tuple[int, float]] = collections.deque(maxlen=window_s)

    def record(self, value: float) -> None:
        self.ever = max(self.ever, value)
        second = int(time.monotonic())
        if self.per_second and self.per_second[-1][0] == second:
            self.per_second[-1] = (second, max(self.per_second[-1][1], value))
        else:
            self.per_second.append((second, value))

    @property
    def recent(self) -> float:
        cutoff = int(time.monotonic()) - (self.per_second.maxlen or 10)
        return max((v for second, v in self.per_second if second > cutoff), default=0.0)


class LoopLagProbe:
    """How long the event loop was kept from running a 50 ms timer.

    Two figures, because on a loaded machine they differ: `lag` is the wall-clock
    overshoot (what a peer waiting on us sees), `busy` the CPU time the loop's own
    thread spent during that overshoot (what our code cost; a stall the OS caused by
    not scheduling the process shows in `lag` only). Each keeps its worst value ever
    and in each of the last ten seconds, so a scrape that waited on a block still
    reports it.

    50 ms, not 10: each tick wakes an idle loop (about 50 µs of CPU on a busy machine),
    and 100 wake-ups a second were 1.7 % of an idle node's CPU. A stall of 50 ms or
    more always spans a deadline; a shorter one shows only its part past the deadline."""

    def __init__(self, tick_s: float = 0.05) -> None:
        self.tick_s = tick_s
        self.lag, self.busy = _WindowMax(), _WindowMax()

    async def run(self) -> None:
        while True:
            start, cpu = time.perf_counter(), time.thread_time()
            await asyncio.sleep(self.tick_s)
            lag_ms = max(0.0, (time.perf_counter() - start - self.tick_s) * 1000)
            self.lag.record(lag_ms)
            self.busy.record(min(lag_ms, (time.thread_time() - cpu) * 1000))


@dataclass
class ConnectionGuard:
    max_connections: int = MAX_CONNECTIONS
    header_timeout_s: float = HEADER_TIMEOUT_S
    idle_timeout_s: float = IDLE_TIMEOUT_S
    conns: dict[Any, _Conn] = field(default_factory=dict)
    fresh: collections.OrderedDict[Any, _Conn] = field(default_factory=collections.OrderedDict)
    """Connections that never started a request, oldest first: eviction is O(1), so a
    burst of attacker connects costs the loop no scan of the table."""
    counters: dict[str, int] = field(default_factory=lambda: {
        "refused": 0, "evicted": 0, "timed_out": 0})
    lag: LoopLagProbe = field(default_factory=LoopLagProbe)
    _tasks: list[asyncio.Task] = field(default_factory=list)
    _last_log: float = 0.0

    @classmethod
    def for_this_process(cls, wanted: int = MAX_CONNECTIONS) -> ConnectionGuard:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        room = wanted if soft == resource.RLIM_INFINITY else min(wanted, soft - FD_RESERVE)
        return cls(max_connections=max(16, room))

    def protocol_factory(self, make: Callable[[], asyncio.Protocol]) -> Callable[[], Any]:
        return lambda: _Tracked(self, make)

    def admit(self, transport: asyncio.Transport) -> bool:
        now = time.monotonic()
        if len(self.conns) >= self.max_connections and not self._evict_one():
            self.counters["refused"] += 1
            self._log_now_and_then("connection_refused")
            return False
        self.conns[transport] = self.fresh[transport] = _Conn(transport, now, now)
        return True

    def _evict_one(self) -> bool:
        """Cut the oldest connection that never started a request; False if none."""
        if not self.fresh:
            return False
        transport, victim = self.fresh.popitem(last=False)
        self.conns.pop(transport, None)
        victim.transport.abort()
        self.counters["evicted"] += 1
        self._log_now_and_then("connection_evicted")
        return True

    def forget(self, transport: Any) -> None:
        self.conns.pop(transport, None)
        self.fresh.pop(transport, None)

    def sweep(self) -> None:
        now = time.monotonic()
        for conn in list(self.conns.values()):
            if conn.busy:
                continue
            allowed = self.header_timeout_s if conn.served == 0 else self.idle_timeout_s
            if now - conn.idle_since > allowed:
                self.forget(conn.transport)
                conn.transport.abort()
                self.counters["timed_out"] += 1

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            self.sweep()

    def start(self) -> None:
        if self._tasks:  # one guard may serve several listeners (client and peer ports)
            return
        self._tasks = [asyncio.create_task(self._sweep_forever(), name="connection-sweep"),
                       asyncio.create_task(self.lag.run(), name="loop-lag-probe")]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("ipchain_http_connections", "Open client connections.",
                                value=len(self.conns))
        yield GaugeMetricFamily("ipchain_http_connection_limit", "Connection cap.",
                                value=self.max_connections)
        for name, value in sorted(self.counters.items()):
            yield CounterMetricFamily(f"ipchain_http_connections_{name}",
                                      f"Connections {name.replace('_', ' ')} by the guard.",
                                      value=value)
        for name, window, what in (("lag", self.lag.lag, "wall-clock"),
                                   ("busy", self.lag.busy, "CPU time of the loop's thread")):
            yield GaugeMetricFamily(f"ipchain_event_loop_{name}_max_ms",
                                    f"Worst event-loop stall since start, {what} (50 ms probe).",
                                    value=round(window.ever, 1))
            yield GaugeMetricFamily(f"ipchain_event_loop_{name}_recent_max_ms",
                                    f"Worst event-loop stall in the last 10 s, {what}.",
                                    value=round(window.recent, 1))

    def _log_now_and_then(self, event: str) -> None:
        now = time.monotonic()
        if now - self._last_log >= LOG_EVERY_S:
            self._last_log = now
            log.warning("event=%s open=%d limit=%d refused_total=%d evicted_total=%d",
                        event, len(self.conns), self.max_connections,
                        self.counters["refused"], self.counters["evicted"])

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Outermost: a connection with a request in progress is never swept."""
        conn = self.conns.get(request.transport)
        if conn is None:
            return await handler(request)
        conn.busy += 1
        self.fresh.pop(request.transport, None)
        try:
            return await handler(request)
        finally:
            conn.busy -= 1
            conn.served += 1
            conn.idle_since = time.monotonic()


CONNECTIONS = web.AppKey("connections", ConnectionGuard)


async def serve(runner: web.AppRunner, host: str, port: int, guard: ConnectionGuard,
                ssl: "ssl_module.SSLContext | None" = None) -> asyncio.AbstractServer:
    """Listen with aiohttp's handler behind the guard (instead of web.TCPSite)."""
    loop = asyncio.get_running_loop()
    server = runner.server
    assert server is not None, "runner.setup() first"
    guard.start()
    return await loop.create_server(guard.protocol_factory(server), host, port,
                                    reuse_address=True, backlog=128, ssl=ssl)


# -- peer bodies and block reads ----------------------------------------------------------------
@dataclass
class TokenBucket:
    rate_per_s: float
    burst: float
    tokens: float = -1.0
    stamp: float = 0.0

    def take(self, cost: float = 1.0) -> bool:
        now = time.monotonic()
        if self.tokens < 0:
            self.tokens, self.stamp = self.burst, now
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate_per_s)
        self.stamp = now
        if self.tokens < cost:
            return False
        self.tokens -= cost
        return True


@dataclass
class PeerRequests:
    """What peer_guard_middleware needs: who the validators are, and the block buckets."""
    chain_id: str
    validator_keys: list[bytes]
    blocks_for_peers: TokenBucket = field(default_factory=lambda: TokenBucket(50, 100))
    blocks_for_others: TokenBucket = field(default_factory=lambda: TokenBucket(5, 10))
    refused: int = 0
    pair_keys: dict[int, bytes] = field(default_factory=dict)
    """This node's MAC key with each peer (node/peer_auth.py pair_keys)."""


PEER_REQUESTS = web.AppKey("peer_requests", PeerRequests)
PEER_SENDER = web.RequestKey("ipchain_peer_sender", int)
"""The validator an authenticated /p2p request came from (node/peer_stream.py needs it)."""


def _authenticate(request: web.Request, peers: PeerRequests) -> tuple[int, bytes] | None:
    """(sender, declared body hash) for a signed request; None when it carries no envelope."""
    if H_SIG not in request.headers and H_MAC not in request.headers:
        return None
    try:
        return verify_envelope(request.headers, peers.chain_id, peers.validator_keys,
                               request.method, request.path_qs, request.content_length or 0,
                               pair_key=peers.pair_keys.get)
    except PeerAuthError as exc:
        peers.refused += 1
        raise InputError(401, "PeerAuthFailed", str(exc)) from None


@web.middleware
async def peer_guard_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    if not request.path.startswith("/p2p/"):
        return await handler(request)
    peers = request.app[PEER_REQUESTS]
    signed = _authenticate(request, peers)
    if signed is not None:
        request[PEER_SENDER] = signed[0]
    length = request.content_length or 0
    if signed is None and length > ANON_PEER_BODY_BYTES:
        raise InputError(401, "PeerAuthRequired", f"/p2p bodies over {ANON_PEER_BODY_BYTES} "
                                                  "bytes need a signed validator envelope")
    if signed is not None and request.body_exists:
        peek = peek_array_count(MAX_PEER_ITEMS) if request.method == "POST" else None
        if not body_matches(await read_body(request, peek), signed[1]):
            raise InputError(401, "PeerAuthFailed", "body does not match its signed hash")
    if request.path == "/p2p/blocks":
        bucket = peers.blocks_for_others if signed is None else peers.blocks_for_peers
        if not bucket.take():
            raise InputError(429, "RateLimited", "too many block requests; retry in a second")
    return await handler(request)


def throttle_accept_errors(loop: asyncio.AbstractEventLoop, every_s: float = LOG_EVERY_S) -> None:
    """Log 'accept() out of resources' once per interval with a count, not once per try."""
    state = {"count": 0, "last": 0.0}

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE,
                                                      errno.ENOBUFS, errno.ENOMEM):
            state["count"] += 1
            now = time.monotonic()
            if now - state["last"] >= every_s:
                log.error("event=accept_failed errno=%s count_since_last=%d",
                          errno.errorcode.get(exc.errno, exc.errno), state["count"])
                state["count"], state["last"] = 0, now
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
