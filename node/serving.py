"""GET /p2p/blocks: serving blocks to a catching-up peer without stalling this node.

A live node serves state transfer while it goes on ordering and executing. Everything
a range costs happens in a worker thread: the SQLite reads (from a connection of its
own: WAL mode lets it read while the engine writes on the loop) and packing the answer.
The loop only waits for the finished body. Each answer is bounded (`MAX_SERVE_BLOCKS`,
`MAX_SERVE_BYTES`; the fetcher asks again from where it stopped), and each peer has at
most one range in service at a time: a second request while its first is served gets
429 `Busy`, and its fetcher asks another peer. Two peers catching up 10,000 blocks
therefore cost a live node at most two worker-thread reads at once, never a loop stall.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from pathlib import Path
from typing import Any

import msgpack
from aiohttp import web

from contracts import codec
from node import http_input as inp
from node.peer_auth import H_PEER, H_SIG
from node.storage import Storage

log = logging.getLogger("ipchain.serving")
MSGPACK = "application/msgpack"
MAX_SERVE_BLOCKS = 256
MAX_SERVE_BYTES = 4 * 1024 * 1024
"""An answer stops after the block that crosses this: a few ms to pack and send, and a
peer that needs more asks again (node/fetching.py `BlockFetcher`)."""
READ_SLICE_BLOCKS = 16
ANONYMOUS = "anonymous"
"""Unsigned requests share one slot (and a small rate limit: node/limits.py)."""


class BlockServer:
    """Reads and packs block ranges in one worker thread, one range per peer at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="serve-blocks")
        self._reader: Storage | None = None
        """Opened and used in the worker thread only."""
        self._serving: set[str] = set()
        self.served_blocks = 0
        self.busy_refusals = 0

    async def answer(self, peer: str, first: int, last: int) -> bytes | None:
        """The packed answer for [first, last], or None if `peer` already has one in service."""
        if peer in self._serving:
            self.busy_refusals += 1
            return None
        self._serving.add(peer)
        try:
            loop = asyncio.get_running_loop()
            body, served = await loop.run_in_executor(self._pool, self._pack, first, last)
        finally:
            self._serving.discard(peer)
        self.served_blocks += served
        return body

    def _pack(self, first: int, last: int) -> tuple[bytes, int]:
        """In the worker thread: the blocks, the stable checkpoint proof and the range's
        execution certificates, as one msgpack map."""
        if self._reader is None:
            self._reader = Storage(self.path)
        rows = rows_within_bytes(self._reader, first, last)
        stable = self._reader.get_meta("stable_checkpoint")
        served = rows[-1][0] if rows else first - 1  # the byte cap may have cut the range
        execution = [vote for votes in self._reader.exec_certs(first, served)
                     for vote in codec.decode(votes)]
        body = msgpack.packb({"blocks": [[pp, cert] for _, pp, cert in rows],
                              "checkpoint": stable[1] if stable else [],
                              "execution": execution}, use_bin_type=True)
        return body, len(rows)

    def _close_reader(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._pool, self._close_reader)
        self._pool.shutdown(wait=False, cancel_futures=True)


def rows_within_bytes(storage: Storage, first: int, last: int) -> list[tuple]:
    """Stored blocks first..last, read a few at a time, stopping past MAX_SERVE_BYTES."""
    rows: list[tuple] = []
    size = 0
    for start in range(first, last + 1, READ_SLICE_BLOCKS):
        end = min(last, start + READ_SLICE_BLOCKS - 1)
        chunk = storage.blocks(start, end)
        for row in chunk:
            rows.append(row)
            size += len(row[1]) + len(row[2])
            if size > MAX_SERVE_BYTES:
                return rows
        if len(chunk) < end - start + 1:
            break
    return rows


BLOCK_SERVER = web.AppKey("block_server", BlockServer)


def requesting_peer(request: web.Request) -> str:
    """The validator index of a signed request (the peer guard verified it before the
    handler runs), else ANONYMOUS."""
    if H_SIG in request.headers:
        return f"validator-{request.headers.get(H_PEER, '')}"
    return ANONYMOUS


async def p2p_blocks(request: web.Request) -> web.Response:
    server = request.app[BLOCK_SERVER]
    first = inp.query_int(request, "from", 1, low=1)
    last = min(inp.query_int(request, "to", first, low=1), first + MAX_SERVE_BLOCKS - 1)
    body = await server.answer(requesting_peer(request), first, last)
    if body is None:
        return web.json_response(
            {"error": {"code": "Busy", "message": "a block range for this peer is already "
                                                  "being served; ask another peer or retry"}},
            status=429, headers={"Retry-After": "1"})
    return web.Response(body=body, content_type=MSGPACK)


def add_block_serving(app: web.Application, db_path: Path) -> None:
    """GET /p2p/blocks, its worker thread closed with the app."""

    app[BLOCK_SERVER] = BlockServer(db_path)  # its thread starts with the first request

    async def lifetime(app: web.Application) -> Any:
        yield
        await app[BLOCK_SERVER].close()

    app.cleanup_ctx.append(lifetime)
    app.router.add_get("/p2p/blocks", p2p_blocks)
