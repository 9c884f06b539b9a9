"""A consensus message is never silently dropped (issue 17 B1).

A peer that refuses a POST (4xx) refuses that body for good, so the sender splits a
refused batch until the one message the peer will not take stands alone: the others
still arrive, and the refused one is an alarm (log line and counter, which /metrics
exports). The WAL keeps only the latest VIEW-CHANGE/NEW-VIEW of this replica.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from pathlib import Path

import pytest

import msgpack
from aiohttp import web

from node.config import Peer
from node.storage import Storage
from node.transport import Transport

LIMIT_BYTES = 10_000


async def test_refused_batch_is_split_and_the_oversized_message_raises_an_alarm(caplog) -> None:
    received: list[bytes] = []

    async def messages(request: web.Request) -> web.Response:
        body = await request.read()
        if len(body) > LIMIT_BYTES:
            return web.json_response({"error": {"code": "too_large", "message": "x"}}, status=413)
        received.extend(msgpack.unpackb(body, raw=False))
        return web.json_response({"accepted": True})

    app = web.Application(client_max_size=64 * LIMIT_BYTES)
    app.router.add_post("/p2p/messages", messages)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    counters: collections.Counter = collections.Counter()
    transport = Transport((Peer("node1", 1, f"http://127.0.0.1:{port}"),), counters)
    await transport.start()
    try:
        small = [f"small-{i}".encode() * 100 for i in range(12)]
        huge = b"h" * (2 * LIMIT_BYTES)
        with caplog.at_level(logging.ERROR, logger="ipchain.transport"):
            for item in small[:6] + [huge] + small[6:]:
                transport.send(1, item)
            deadline = time.monotonic() + 10
            while (len(received) < len(small) or not counters["consensus_message_refused:413"]):
                assert time.monotonic() < deadline, (received, counters)
                await asyncio.sleep(0.02)
        assert sorted(received) == sorted(small)
        assert counters["consensus_message_refused:413"] == 1
        assert counters["dropped_refused_413:node1"] == 1
        assert any("event=consensus_message_refused alarm=1" in r.getMessage() for r in caplog.records)
    finally:
        await transport.stop()
        await runner.cleanup()


@pytest.mark.parametrize("store", ["sqlite", "memory"])
def test_wal_keeps_only_the_latest_view_change(tmp_path: Path, store: str) -> None:
    """The engine's rule, applied as it applies it after each write, on both stores."""
    from node.engine import superseded_view_changes
    from node.memory_storage import MemoryStorage

    storage = Storage(tmp_path / "node.db") if store == "sqlite" else MemoryStorage()

    def append(view: int, kind: str, msg: bytes) -> None:
        storage.append_wal([(view, 0 if kind in ("VC", "NV") else 1, kind, msg)])
        if kind in ("VC", "NV"):
            storage.prune_wal(superseded_view_changes(view))

    append(0, "PP", b"pp")
    append(0, "P", b"p")
    for view in (1, 2, 3, 4):
        append(view, "VC", f"vc{view}".encode())
    append(4, "NV", b"nv4")
    assert storage.wal() == [b"pp", b"p", b"vc4", b"nv4"]
    append(5, "VC", b"vc5")
    assert storage.wal() == [b"pp", b"p", b"vc5"]
