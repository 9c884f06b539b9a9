"""Peer traffic over one WebSocket per peer and kind, instead of one POST per batch.

Why: in aiohttp a POST costs about 290 µs of CPU on each side (request and response
objects, the middleware chain, headers, the 202 answer) against some 30 µs for a
WebSocket frame (a same-process microbenchmark measured 579 against 65 µs per
message, both sides together). At 16 nodes a node receives about 50 consensus messages
per block, nearly one POST each, and the profile put HTTP handling at a quarter of its
CPU (issue 10).

Authentication keeps what the POST envelope gave. The upgrade request carries the MAC
envelope of node/peer_auth.py (peer_guard_middleware checks it before the handshake);
each frame then carries a MAC with the same pair key over the stream's id (the
upgrade's own MAC), the frame's number and its body. Nobody else can inject or alter
a frame, and a replayed stream can only re-deliver, in order, the exact frames a
validator sent within the envelope's skew window, which PBFT and the relay's id
filter treat as duplicates. A link without a pair key keeps POSTing.

A frame is `MAC (32 bytes) ‖ body`, the body being exactly what the POST carried (a
msgpack array of byte strings). The receiver handles frames in order, as the POST
handlers would; a transaction frame is admitted (its signatures verified) before the
next one is read, so a busy peer pushes back on its sender through TCP as its slow
202 did. A frame written just before the peer died is lost, like a message dropped
after the POST retries: PBFT tolerates loss and re-sends.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from typing import Any, Awaitable, Callable

import aiohttp
from aiohttp import web

from node import http_input as inp
from node import limits
from node.config import PEER_BODY_BYTES
from node.peer_auth import H_MAC

log = logging.getLogger("ipchain.transport")

STREAM_PATH = "/p2p/stream/"
KINDS = {"/p2p/messages": "messages", "/p2p/txs": "txs"}
"""The POST path each stream replaces -> the stream's kind (its path's last part)."""
MAC_BYTES = 32
SEND_TIMEOUT_S = 10.0
"""As long as a POST may take (transport's ClientTimeout): a stopped peer stops a stream."""
REOPEN_AFTER_S = 2.0
"""After a stream failed to open or broke, POSTs carry the traffic this long."""

Take = Callable[[list[bytes]], Awaitable[None]]
TAKERS = web.AppKey("ipchain_peer_stream_takers", dict)
OPEN = web.AppKey("ipchain_peer_streams_open", set)
"""The streams peers hold open to this node; closed on shutdown, or a graceful stop
would wait on them (aiohttp waits for every running handler)."""
CLOSING = web.AppKey("ipchain_peer_streams_closing", list)
"""Non-empty once shutdown began: a stream opened then is refused (503)."""
CLOSE_WAIT_S = 0.5
"""How long a close waits for the other side's close frame."""


def frame_mac(pair_key: bytes, stream_id: bytes, number: int, body: bytes) -> bytes:
    return hashlib.blake2b(stream_id + number.to_bytes(8, "big") + body, key=pair_key,
                           digest_size=MAC_BYTES).digest()


# -- the sending side ------------------------------------------------------------------------
class StreamSender:
    """One peer's stream of one kind, opened on first use and again after a failure."""

    def __init__(self, session: aiohttp.ClientSession, url: str, kind: str,
                 signer: Callable[[str, str, bytes], dict[str, str]], pair_key: bytes,
                 counters: Any) -> None:
        self.session, self.url, self.path = session, url, STREAM_PATH + kind
        self.signer, self.pair_key, self.counters = signer, pair_key, counters
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.reader: asyncio.Task | None = None
        self.stream_id = b""
        self.number = 0
        self.closed_until = 0.0
        self.opening = asyncio.Lock()

    async def send(self, body: bytes) -> bool:
        """True once the frame is written; False: no stream now, POST it instead.

        Safe from several tasks at once: a frame's number is taken and the frame written
        (uncompressed frames are written before send_bytes first awaits) with no await
        between, so numbers reach the peer in order."""
        if self.ws is None or self.ws.closed:
            async with self.opening:
                if (self.ws is None or self.ws.closed) and not await self._open():
                    return False
        ws = self.ws
        if ws is None:
            return False
        number, self.number = self.number, self.number + 1
        try:
            async with asyncio.timeout(SEND_TIMEOUT_S):
                await ws.send_bytes(frame_mac(self.pair_key, self.stream_id, number, body) + body)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, RuntimeError):
            if self.ws is ws:
                await self.close()
                self.closed_until = time.monotonic() + REOPEN_AFTER_S
            return False
        return True

    async def _open(self) -> bool:
        if time.monotonic() < self.closed_until:
            return False
        await self.close()
        headers = self.signer("GET", self.path, b"")
        try:  # no permessage-deflate: signatures and keys do not compress, and deflating
            # a large frame moves it to a thread
            self.ws = await self.session.ws_connect(
                self.url + self.path, headers=headers, heartbeat=None, autoping=True,
                compress=0, max_msg_size=PEER_BODY_BYTES + MAC_BYTES)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError):
            self.closed_until = time.monotonic() + REOPEN_AFTER_S
            return False
        self.stream_id, self.number = bytes.fromhex(headers[H_MAC]), 0
        self.reader = asyncio.create_task(self._drain_replies(self.ws))
        self.counters["peer_streams_opened"] += 1
        return True

    async def _drain_replies(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """The peer sends nothing but pings and a close; reading them notices a dead or
        stopping peer, which is then given POSTs for a while rather than a new stream at
        once (a stopping node would wait on it)."""
        async for _ in ws:
            pass
        self.closed_until = time.monotonic() + REOPEN_AFTER_S

    async def close(self) -> None:
        ws, reader, self.ws, self.reader = self.ws, self.reader, None, None
        if reader is not None:
            reader.cancel()
        if ws is not None and not ws.closed:
            try:
                await asyncio.wait_for(ws.close(), CLOSE_WAIT_S)
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                pass


# -- the receiving side ----------------------------------------------------------------------
def add_peer_stream_routes(app: web.Application, takers: dict[str, Take],
                           counters: Any) -> None:
    """GET /p2p/stream/{kind}: frames handed to `takers[kind]` as the POST handler would."""
    app[TAKERS] = takers
    app[OPEN] = set()
    app[CLOSING] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        return await _serve(request, counters)
    app.router.add_get(STREAM_PATH + "{kind}", handler)
    app.on_shutdown.append(_close_all)


async def _close_all(app: web.Application) -> None:
    app[CLOSING].append(True)
    async def close(ws: web.WebSocketResponse) -> None:
        try:
            await asyncio.wait_for(ws.close(code=aiohttp.WSCloseCode.GOING_AWAY), CLOSE_WAIT_S)
        except (asyncio.TimeoutError, OSError, aiohttp.ClientError):
            pass
    await asyncio.gather(*(close(ws) for ws in list(app[OPEN])))


async def _serve(request: web.Request, counters: Any) -> web.StreamResponse:
    take = request.app[TAKERS].get(request.match_info["kind"])
    if take is None:
        raise inp.InputError(404, "NotFound", "peer streams are /p2p/stream/messages or /txs")
    sender = request.get(limits.PEER_SENDER)
    pair_key = None if sender is None else request.app[limits.PEER_REQUESTS].pair_keys.get(sender)
    if pair_key is None or H_MAC not in request.headers:
        raise inp.InputError(401, "PeerAuthRequired",
                             "a peer stream opens only with a validator's MAC envelope")
    if request.app[CLOSING]:
        raise inp.InputError(503, "ShuttingDown", "this node is stopping; POST instead")
    stream_id = bytes.fromhex(request.headers[H_MAC])
    ws = web.WebSocketResponse(max_msg_size=PEER_BODY_BYTES + MAC_BYTES, heartbeat=None,
                               compress=False)
    await ws.prepare(request)
    request.app[OPEN].add(ws)
    try:
        await _take_frames(ws, take, pair_key, stream_id, sender, counters)
    finally:
        request.app[OPEN].discard(ws)
    return ws


async def _take_frames(ws: web.WebSocketResponse, take: Take, pair_key: bytes,
                       stream_id: bytes, sender: int, counters: Any) -> None:
    number = 0
    async for msg in ws:
        data = msg.data
        if msg.type != aiohttp.WSMsgType.BINARY or not hmac.compare_digest(
                frame_mac(pair_key, stream_id, number, data[MAC_BYTES:]), data[:MAC_BYTES]):
            counters["peer_stream_frame_refused"] += 1
            log.error("event=peer_stream_frame_refused alarm=1 peer=%s frame=%d", sender, number)
            await ws.close(code=aiohttp.WSCloseCode.POLICY_VIOLATION, message=b"bad frame")
            break
        number += 1
        try:
            raws = await inp.byte_strings(data[MAC_BYTES:], limits.MAX_PEER_ITEMS,
                                          PEER_BODY_BYTES)
        except inp.InputError as exc:
            counters["peer_stream_frame_refused"] += 1
            log.error("event=peer_stream_frame_refused alarm=1 peer=%s reason=%s", sender,
                      exc.code)
            continue
        counters["peer_stream_frames_received"] += 1
        await take(raws)
