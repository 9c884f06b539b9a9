"""HTTP gossip between validators.

One ClientSession per node. Each peer has a bounded outbound queue drained by its own
task, which coalesces everything pending into one POST (consensus messages and relayed
transactions alike), retries with capped exponential backoff, and never blocks the
replica: when a queue is full the oldest message is dropped and counted — PBFT
tolerates loss, and catch-up refetches what a slow peer missed.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import ssl
import time
from typing import Awaitable, Callable

import aiohttp
import msgpack

from node.config import Peer
from node.peer_stream import KINDS, StreamSender

RequestSigner = Callable[[str, str, bytes], dict[str, str]]
"""(method, path?query, body) -> headers of a signed peer envelope (node/peer_auth.py)."""

log = logging.getLogger("ipchain.transport")
MAX_QUEUE_ITEMS = 20_000
MAX_POST_ITEMS = 2_000
MAX_POST_BYTES = 16 * 1024 * 1024
"""Below the peers' body limit (node.config PEER_BODY_BYTES); one larger message goes alone."""
BACKOFF_MS = (20, 2_000)
TLS_LOG_INTERVAL_S = 30.0
HANDSHAKE_RESET = ConnectionResetError(
    "the peer reset the TLS handshake: it does not accept this node's certificate "
    "(issued by another cluster's CA, expired, or not yet valid)")
"""What a refused client certificate looks like from the dialling side: asyncio's TLS
server drops the connection mid-handshake without an alert, and logs nothing itself."""


class PeerLink:
    """The outbound side of one peer: messages (wire bytes) and relayed transactions."""

    def __init__(self, peer: Peer, session: aiohttp.ClientSession,
                 counters: collections.Counter, signer: RequestSigner | None = None) -> None:
        self.peer = peer
        self.signer = signer
        self.session = session
        self.counters = counters
        self.messages: collections.deque[bytes] = collections.deque()
        self.txs: collections.deque[bytes] = collections.deque()
        self.wakeup = asyncio.Event()
        self.txs_wakeup = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.txs_task: asyncio.Task | None = None
        self.tls_logged_at = -TLS_LOG_INTERVAL_S
        self.reachable = True
        """False while the last delivery attempt failed; an idle link stays as it was."""
        self.streams: dict[str, StreamSender] = {}
        """Per POST path, the WebSocket that carries its traffic while it is open
        (node/peer_stream.py); empty for a peer without a pair key."""

    def put(self, queue: collections.deque[bytes], item: bytes) -> None:
        if len(queue) >= MAX_QUEUE_ITEMS:
            queue.popleft()
            self.counters[f"dropped_queue_full:{self.peer.id}"] += 1
        queue.append(item)
        (self.txs_wakeup if queue is self.txs else self.wakeup).set()

    def put_all(self, queue: collections.deque[bytes], items: list[bytes]) -> None:
        """`put` of each item in turn, in one step: a client batch is relayed to each
        peer with one call, not one per transaction (the same drops, counted alike)."""
        excess = len(queue) + len(items) - MAX_QUEUE_ITEMS
        if excess > 0:
            self.counters[f"dropped_queue_full:{self.peer.id}"] += excess
            for _ in range(min(excess, len(queue))):
                queue.popleft()
            items = items[-MAX_QUEUE_ITEMS:]
        queue.extend(items)
        (self.txs_wakeup if queue is self.txs else self.wakeup).set()

    async def run(self) -> None:
        """Consensus messages and relayed transactions drain on separate tasks: the peer
        answers a /p2p/txs POST only after verifying every signature in it (hundreds of
        ms under load), and a PREPARE or COMMIT queued behind that used to wait for it —
        latency at half load, and a primary that looked dead under overload."""
        self.txs_task = asyncio.create_task(
            self._drain(self.txs, self.txs_wakeup, "/p2p/txs"), name=f"peer-{self.peer.id}-txs")
        try:
            await self._drain(self.messages, self.wakeup, "/p2p/messages")
        finally:
            self.txs_task.cancel()
            await asyncio.gather(self.txs_task, return_exceptions=True)
            for stream in self.streams.values():
                await stream.close()

    async def _drain(self, queue: collections.deque[bytes], wakeup: asyncio.Event,
                     path: str) -> None:
        while True:
            await wakeup.wait()
            wakeup.clear()
            while queue:
                await self._flush(queue, path)

    async def _flush(self, queue: collections.deque[bytes], path: str) -> None:
        if not queue:
            return
        if len(queue) <= MAX_POST_ITEMS and sum(map(len, queue)) <= MAX_POST_BYTES:
            batch = list(queue)  # all of it fits one POST (the usual case): no loop per item
            queue.clear()
            await self._post(batch, path)
            return
        batch = [queue.popleft()]
        size = len(batch[0])
        while queue and len(batch) < MAX_POST_ITEMS and size + len(queue[0]) <= MAX_POST_BYTES:
            size += len(queue[0])
            batch.append(queue.popleft())
        await self._post(batch, path)

    async def _post(self, batch: list[bytes], path: str) -> None:
        """POST `batch`, retrying what may pass later. A refusal (4xx) is final for that
        body, so a refused batch is split until the one message the peer will not take
        stands alone — and that one is an alarm, never a silent loss (issue 17 B1)."""
        body = msgpack.packb(batch, use_bin_type=True)
        stream = self.streams.get(path)  # one oversized message goes by POST: a peer
        # refuses it there with a 4xx, and the split below makes that an alarm
        if stream is not None and len(body) <= MAX_POST_BYTES and await stream.send(body):
            self._note_reachable(True)
            self.counters[f"sent:{self.peer.id}"] += len(batch)
            return
        delay_ms = BACKOFF_MS[0]
        for attempt in range(6):
            try:
                headers = {"Content-Type": "application/msgpack",
                           **(self.signer("POST", path, body) if self.signer else {})}
                async with self.session.post(self.peer.url + path, data=body,
                                             headers=headers) as resp:
                    await resp.read()
                    self._note_reachable(True)
                    if resp.status < 400:
                        self.counters[f"sent:{self.peer.id}"] += len(batch)
                        return
                    if resp.status < 500:  # the peer refuses this body: retrying won't help
                        await self._refused(batch, path, resp.status, len(body))
                        return
            except (aiohttp.ClientSSLError, ssl.SSLError) as exc:
                self._tls_refused(exc)
            except aiohttp.ClientConnectorError as exc:
                if exc.ssl and isinstance(exc.os_error, ConnectionResetError):
                    self._tls_refused(HANDSHAKE_RESET)
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                pass
            self._note_reachable(False)
            self.counters[f"send_retry:{self.peer.id}"] += 1
            await asyncio.sleep(delay_ms / 1000 * (0.5 + random.random()))
            delay_ms = min(delay_ms * 2, BACKOFF_MS[1])
        self.counters[f"dropped_unreachable:{self.peer.id}"] += len(batch)

    async def _refused(self, batch: list[bytes], path: str, status: int, size: int) -> None:
        if len(batch) > 1:
            self.counters[f"refused_batch_split:{self.peer.id}"] += 1
            half = len(batch) // 2
            await self._post(batch[:half], path)
            await self._post(batch[half:], path)
            return
        self.counters[f"dropped_refused_{status}:{self.peer.id}"] += 1
        if path == "/p2p/messages":
            self.counters[f"consensus_message_refused:{status}"] += 1
            log.error("event=consensus_message_refused alarm=1 peer=%s status=%d bytes=%d",
                      self.peer.id, status, size)
        else:
            log.warning("event=peer_refused peer=%s status=%d bytes=%d", self.peer.id, status, size)

    def _note_reachable(self, reachable: bool) -> None:
        if reachable != self.reachable:
            self.reachable = reachable
            log.info("event=%s peer=%s url=%s", "peer_recovered" if reachable else
                     "peer_unreachable", self.peer.id, self.peer.url)

    def _tls_refused(self, exc: BaseException) -> None:
        """A handshake failed (expired, foreign or missing certificate on either side):
        say so plainly, once per TLS_LOG_INTERVAL_S, since retries would repeat it."""
        self.counters[f"tls_refused:{self.peer.id}"] += 1
        now = time.monotonic()
        if now - self.tls_logged_at >= TLS_LOG_INTERVAL_S:
            self.tls_logged_at = now
            cause = getattr(exc, "certificate_error", None) or exc
            reason = getattr(cause, "verify_message", None) or str(cause)
            log.warning('event=peer_tls_refused peer=%s url=%s reason="%s"', self.peer.id,
                        self.peer.url, str(reason).replace('"', "'"))


class Transport:
    def __init__(self, peers: tuple[Peer, ...], counters: collections.Counter,
                 signer: RequestSigner | None = None,
                 ssl_context: ssl.SSLContext | None = None,
                 link_signers: dict[int, RequestSigner] | None = None,
                 stream_keys: dict[int, bytes] | None = None) -> None:
        self.peers = {p.index: p for p in peers}
        self.signer = signer
        """Signs each request so peers accept large bodies from us (None: unsigned)."""
        self.link_signers = link_signers or {}
        """Per peer index, a cheaper envelope for the POSTs to that peer (a MAC with a
        key only the two share, node/peer_auth.py); `signer` for the others."""
        self.stream_keys = stream_keys or {}
        """Per peer index, the pair key whose MACs authenticate stream frames; a peer
        named here (with a link signer) gets its traffic over WebSockets."""
        self.counters = counters
        self.ssl_context = ssl_context
        """Mutual TLS to peers (node.tls.client_context), or None for plain HTTP."""
        self.session: aiohttp.ClientSession | None = None
        self.links: dict[int, PeerLink] = {}
        self.outbound_filter: Callable[[int, bytes], list[bytes]] | None = None
        """Fault-injection hook: rewrite/drop/duplicate what goes to one peer."""

    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=10, connect=2)
        self.session = aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(
            limit_per_host=4, ssl=self.ssl_context if self.ssl_context is not None else True))
        for index, peer in self.peers.items():
            link = PeerLink(peer, self.session, self.counters,
                            self.link_signers.get(index, self.signer))
            if index in self.stream_keys and index in self.link_signers:
                link.streams = {path: StreamSender(self.session, peer.url, kind,
                                                   self.link_signers[index],
                                                   self.stream_keys[index], self.counters)
                                for path, kind in KINDS.items()}
            link.task = asyncio.create_task(link.run(), name=f"peer-{peer.id}")
            self.links[index] = link

    async def stop(self) -> None:
        for link in self.links.values():
            if link.task:
                link.task.cancel()
        await asyncio.gather(*(l.task for l in self.links.values() if l.task),
                             return_exceptions=True)
        if self.session:
            await self.session.close()

    def reachable_peers(self) -> int:
        return sum(link.reachable for link in self.links.values())

    def send(self, to: int, data: bytes) -> None:
        link = self.links.get(to)
        if link is None:
            return
        items = self.outbound_filter(to, data) if self.outbound_filter else [data]
        for item in items:
            link.put(link.messages, item)

    def broadcast(self, data: bytes) -> None:
        for index in self.links:
            self.send(index, data)

    def relay_txs(self, raws: list[bytes]) -> None:
        for link in self.links.values():
            link.put_all(link.txs, raws)

    async def fetch_blocks(self, first: int, last: int,
                           on_block: Callable[[bytes, bytes], Awaitable[None]]) -> list[bytes]:
        """Ask peers in random order until one serves [first, last].

        Returns that peer's stable checkpoint votes (wire bytes), so a replica that
        catches up across many checkpoints can stabilise the last one it reaches, and the
        execution votes certifying the served blocks, so it checks its own results too."""
        order = list(self.links.values())
        random.shuffle(order)
        for link in order:
            path = f"/p2p/blocks?from={first}&to={last}"
            headers = self.signer("GET", path, b"") if self.signer else {}
            try:
                async with link.session.get(link.peer.url + path, headers=headers) as resp:
                    if resp.status != 200:
                        continue
                    answer = msgpack.unpackb(await resp.read(), raw=False)
                blocks, proof = answer["blocks"], answer["checkpoint"]
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError,
                    KeyError, TypeError):
                continue
            if blocks:
                for preprepare, certificate in blocks:
                    await on_block(preprepare, certificate)
                self.counters["fetched_blocks"] += len(blocks)
                votes = answer.get("execution", [])  # execution certificates of the range
                return [m for m in [*proof, *votes] if isinstance(m, bytes)]
        return []
