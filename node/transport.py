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
from typing import Awaitable, Callable

import aiohttp
import msgpack

from node.config import Peer

RequestSigner = Callable[[str, str, bytes], dict[str, str]]
"""(method, path?query, body) -> headers of a signed peer envelope (node/peer_auth.py)."""

log = logging.getLogger("ipchain.transport")
MAX_QUEUE_ITEMS = 20_000
MAX_POST_ITEMS = 2_000
MAX_POST_BYTES = 16 * 1024 * 1024
"""Below the peers' body limit (node.config PEER_BODY_BYTES); one larger message goes alone."""
BACKOFF_MS = (20, 2_000)


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
        self.task: asyncio.Task | None = None

    def put(self, queue: collections.deque[bytes], item: bytes) -> None:
        if len(queue) >= MAX_QUEUE_ITEMS:
            queue.popleft()
            self.counters[f"dropped_queue_full:{self.peer.id}"] += 1
        queue.append(item)
        self.wakeup.set()

    async def run(self) -> None:
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            while self.messages or self.txs:
                await self._flush(self.messages, "/p2p/messages")
                await self._flush(self.txs, "/p2p/txs")

    async def _flush(self, queue: collections.deque[bytes], path: str) -> None:
        if not queue:
            return
        batch = [queue.popleft()]
        size = len(batch[0])
        while queue and len(batch) < MAX_POST_ITEMS and size + len(queue[0]) <= MAX_POST_BYTES:
            size += len(queue[0])
            batch.append(queue.popleft())
        body = msgpack.packb(batch, use_bin_type=True)
        delay_ms = BACKOFF_MS[0]
        for attempt in range(6):
            try:
                headers = {"Content-Type": "application/msgpack",
                           **(self.signer("POST", path, body) if self.signer else {})}
                async with self.session.post(self.peer.url + path, data=body,
                                             headers=headers) as resp:
                    await resp.read()
                    if resp.status < 400:
                        self.counters[f"sent:{self.peer.id}"] += len(batch)
                        return
                    if resp.status < 500:  # the peer refuses this body: retrying won't help
                        self.counters[f"dropped_refused_{resp.status}:{self.peer.id}"] += len(batch)
                        log.warning("event=peer_refused peer=%s status=%d bytes=%d",
                                    self.peer.id, resp.status, len(body))
                        return
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                pass
            self.counters[f"send_retry:{self.peer.id}"] += 1
            await asyncio.sleep(delay_ms / 1000 * (0.5 + random.random()))
            delay_ms = min(delay_ms * 2, BACKOFF_MS[1])
        self.counters[f"dropped_unreachable:{self.peer.id}"] += len(batch)


class Transport:
    def __init__(self, peers: tuple[Peer, ...], counters: collections.Counter,
                 signer: RequestSigner | None = None) -> None:
        self.peers = {p.index: p for p in peers}
        self.signer = signer
        """Signs each request so peers accept large bodies from us (None: unsigned)."""
        self.counters = counters
        self.session: aiohttp.ClientSession | None = None
        self.links: dict[int, PeerLink] = {}
        self.outbound_filter: Callable[[int, bytes], list[bytes]] | None = None
        """Fault-injection hook: rewrite/drop/duplicate what goes to one peer."""

    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=10, connect=2)
        self.session = aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(
            limit_per_host=4))
        for index, peer in self.peers.items():
            link = PeerLink(peer, self.session, self.counters, self.signer)
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
            for raw in raws:
                link.put(link.txs, raw)

    async def fetch_blocks(self, first: int, last: int,
                           on_block: Callable[[bytes, bytes], Awaitable[None]]) -> list[bytes]:
        """Ask peers in random order until one serves [first, last].

        Returns that peer's stable checkpoint votes (wire bytes), so a replica that
        catches up across many checkpoints can stabilise the last one it reaches."""
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
                return [m for m in proof if isinstance(m, bytes)]
        return []
