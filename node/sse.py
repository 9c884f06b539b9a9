"""GET /v1/events: the record stream as server-sent events, resumable by Last-Event-ID.

A client that sends Last-Event-ID (or ?last_event_id=, or ?from_height=) first gets
what it missed, rebuilt from storage block by block, and is then switched to the live
feed at a point where no block can fall between the two: the height check and the
subscription happen with no await in between, and the executor stores a block, moves
its height and calls the listeners with no await in between either.

Each live client has a bounded queue filled by the executor's listener. A client that
falls behind by more than that bound is disconnected at once (and counted) rather than
buffered without limit or waited for; it reconnects with its Last-Event-ID and catches
up from storage, which costs the node reads, not memory.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import sys
from typing import TYPE_CHECKING, Callable, Iterator

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

if TYPE_CHECKING:
    from node.events import Record

log = logging.getLogger("ipchain.sse")
Key = tuple[int, int, int]
MAX_QUEUE_RECORDS = 10_000
KEEPALIVE_S = 15.0
RETRY_MS = 1_000
REPLAY_CACHE_RECORDS = 20_000
MAX_STREAMS = 64
"""Open streams at once; more get 503 (300 idle subscribers once cost the node 200 MB)."""
WRITE_CHUNK_BYTES = 64 * 1024
"""Records are written in pieces this size, each waiting for the socket to drain, so a
client that does not read holds at most a chunk in our buffers, not its whole backlog."""
END_OF_BLOCK = sys.maxsize


class BadCursor(ValueError):
    """Last-Event-ID / from_height is not something this stream ever sent."""


class _RecentBlocks:
    """An LRU of replayed blocks bounded by their total record count, not block count:
    one 1,000-transaction block weighs as much as 1,000 small ones."""

    def __init__(self, replay: Callable[[int], list[Record]], max_records: int) -> None:
        self.build, self.max_records = replay, max_records
        self.blocks: collections.OrderedDict[int, list[Record]] = collections.OrderedDict()
        self.records = 0

    def __call__(self, height: int) -> list[Record]:
        if height in self.blocks:
            self.blocks.move_to_end(height)
            return self.blocks[height]
        records = self.build(height)
        self.blocks[height] = records
        self.records += len(records)
        while self.records > self.max_records and len(self.blocks) > 1:
            _, dropped = self.blocks.popitem(last=False)
            self.records -= len(dropped)
        return records


class SseClient:
    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.queue: collections.deque[Record] = collections.deque()
        self.wakeup = asyncio.Event()
        self.closed = False


class SseHub:
    def __init__(self, replay: Callable[[int], list[Record]], height: Callable[[], int], *,
                 max_queue_records: int = MAX_QUEUE_RECORDS, keepalive_s: float = KEEPALIVE_S,
                 max_streams: int = MAX_STREAMS) -> None:
        self.replay = _RecentBlocks(replay, REPLAY_CACHE_RECORDS)
        """Height -> that stored block's records (EventHub.replay), recent ones kept:
        a stored block never changes, and many streams resuming together would
        otherwise each rebuild (and re-encode) the same big block on the loop."""
        self.height = height
        """The last executed (and stored) height."""
        self.max_queue_records = max_queue_records
        self.keepalive_s = keepalive_s
        self.max_streams = max_streams
        self.refused_streams = 0
        self.clients: set[SseClient] = set()
        """Streams receiving live records."""
        self.streams: set[SseClient] = set()
        """Every open stream, including those still catching up from storage."""
        self.connections = 0
        self.slow_disconnects = 0
        self.replayed_records = 0

    # -- the executor side: never waits ------------------------------------------------
    @property
    def is_listening(self) -> bool:
        return bool(self.clients)

    def offer(self, records: list[Record]) -> None:
        for client in list(self.clients):
            backlog = len(client.queue) + len(records)
            if backlog > self.max_queue_records:
                self._evict(client, backlog)
                continue
            client.queue.extend(records)
            client.wakeup.set()

    def _evict(self, client: SseClient, backlog: int) -> None:
        """Cut a client that fell too far behind; it resumes from storage on reconnect."""
        self.clients.discard(client)
        self.slow_disconnects += 1
        client.closed = True
        client.wakeup.set()
        log.info("event=sse_slow_client_disconnected peer=%s backlog_records=%d limit=%d",
                 client.request.remote, backlog, self.max_queue_records)
        client.queue.clear()
        transport = client.request.transport
        if transport is not None:
            transport.abort()  # a write blocked on a full socket buffer ends now

    async def close_all(self, app: web.Application) -> None:
        """on_shutdown: end every stream so graceful shutdown does not wait on them."""
        self.clients.clear()
        for client in list(self.streams):
            client.closed = True
            client.wakeup.set()

    # -- the handler -----------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            after = parse_cursor(request)
        except BadCursor as exc:
            return web.json_response({"error": {"code": "BadArguments", "message": str(exc)}},
                                     status=400)
        if len(self.streams) >= self.max_streams:
            self.refused_streams += 1
            return web.json_response({"error": {"code": "TooManySubscribers", "message":
                                      f"{self.max_streams} streams open; retry later"}},
                                     status=503, headers={"Retry-After": "5"})
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no"})
        await response.prepare(request)
        client = SseClient(request)
        self.connections += 1
        self.streams.add(client)
        try:
            await response.write(f"retry: {RETRY_MS}\n\n".encode())
            if after is None:
                self.clients.add(client)  # live only, from the next block on
                after = (self.height(), END_OF_BLOCK, END_OF_BLOCK)
            else:
                after = await self._catch_up(response, client, after)
            await self._stream_live(response, client, after)
        except ConnectionError:
            pass  # the client went away (or was cut off): nothing to clean but the set
        finally:
            self.clients.discard(client)
            self.streams.discard(client)
        return response

    async def _catch_up(self, response: web.StreamResponse, client: SseClient,
                        after: Key) -> Key:
        """Send stored records after `after`, then subscribe; return the last key sent."""
        height = max(after[0], 1)
        while not client.closed:  # closed: the node is shutting down
            top = self.height()
            if height > top:
                self.clients.add(client)  # no await since `top` was read: nothing slips
                return after
            chunk = [r for r in self.replay(height) if r.key > after]
            if chunk:
                await _write_in_pieces(response, chunk)
                self.replayed_records += len(chunk)
                after = chunk[-1].key
            height += 1
            await asyncio.sleep(0)  # a long replay shares the loop with consensus
        return after

    async def _stream_live(self, response: web.StreamResponse, client: SseClient,
                           after: Key) -> None:
        while not client.closed:
            if not client.queue:
                client.wakeup.clear()
                try:
                    await asyncio.wait_for(client.wakeup.wait(), self.keepalive_s)
                except asyncio.TimeoutError:
                    await response.write(b": keepalive\n\n")  # also finds dead peers
                continue
            batch = [r for r in _drain(client.queue) if r.key > after]
            if batch:
                await _write_in_pieces(response, batch)
                after = batch[-1].key

    # -- metrics ---------------------------------------------------------------------------
    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("ipchain_sse_clients", "Connected event-stream clients.",
                                value=len(self.streams))
        yield CounterMetricFamily("ipchain_sse_connections", "Event-stream connections opened.",
                                  value=self.connections)
        yield CounterMetricFamily("ipchain_sse_slow_disconnects",
                                  "Event-stream clients cut off for falling behind.",
                                  value=self.slow_disconnects)
        yield CounterMetricFamily("ipchain_sse_refused_streams",
                                  "Event-stream requests refused at the stream cap.",
                                  value=self.refused_streams)
        yield CounterMetricFamily("ipchain_sse_replayed_records",
                                  "Records re-sent from storage to resuming clients.",
                                  value=self.replayed_records)


async def _write_in_pieces(response: web.StreamResponse, records: list[Record]) -> None:
    piece: list[bytes] = []
    size = 0
    for record in records:
        piece.append(record.sse_bytes)
        size += len(piece[-1])
        if size >= WRITE_CHUNK_BYTES:
            await response.write(b"".join(piece))
            await response.drain()
            await asyncio.sleep(0)  # building records' JSON is CPU: share the loop
            piece, size = [], 0
    if piece:
        await response.write(b"".join(piece))


def _drain(queue: collections.deque[Record]) -> list[Record]:
    items = list(queue)
    queue.clear()
    return items


def parse_cursor(request: web.Request) -> Key | None:
    """The key of the last record the client saw, or None for live-only.

    Last-Event-ID (header, or ?last_event_id= for clients that cannot set headers) is
    an id this stream sent; ?from_height=N starts with block N's header."""
    from node.events import parse_id  # here, not at the top: node.events imports this module

    text = request.headers.get("Last-Event-ID") or request.query.get("last_event_id")
    if text:
        try:
            return parse_id(text)
        except ValueError as exc:
            raise BadCursor(f"bad Last-Event-ID: {exc}") from exc
    start = request.query.get("from_height")
    if start is None:
        return None
    if not (start.isascii() and start.isdigit()) or len(start) > 18:
        raise BadCursor("from_height must be a non-negative integer in ASCII digits")
    return (int(start) - 1, END_OF_BLOCK, END_OF_BLOCK) if int(start) > 0 else (0, -1, -1)
