"""B6 (issue 17): a slowloris of 1,100 sockets against the primary of a real 4-node
cluster, every node run with a 1024-descriptor limit, leaves it serving its peers and
clients: transactions keep committing on it, a fresh client gets answers, no view
change happens, and its log does not fill with one line per refused accept."""

from __future__ import annotations

import asyncio
import resource
import shutil
import sys
import time

import pytest

from ipchain.cluster.manager import Cluster, start_and_wait
from ipchain.cluster.procs import find_free_base_port
from ipchain.sdk import client

pytestmark = pytest.mark.cluster
SOCKETS, FD_LIMIT, HOLD_S = 1100, 1024, 15.0


async def hold_slowloris(port: int, until: float) -> int:
    """Keep SOCKETS half-sent requests open, reconnecting any the node cuts; return how
    many connections were opened in all."""
    writers: list[asyncio.StreamWriter | None] = [None] * SOCKETS
    opened = 0

    async def connect(i: int) -> None:
        nonlocal opened
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return
        writer.write(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n")
        writers[i], opened = writer, opened + 1

    try:
        while time.monotonic() < until:
            await asyncio.gather(*(connect(i) for i, w in enumerate(writers)
                                   if w is None or w.is_closing()))
            for writer in writers:
                if writer is not None and not writer.is_closing():
                    writer.write(b"X-Slow: 1\r\n")
            await asyncio.sleep(1.0)
    finally:
        for writer in writers:
            if writer is not None:
                writer.transport.abort()
    return opened


async def commit_through_node1(cluster: Cluster, session, count: int) -> list[str]:
    key = cluster.client_key("client-000")
    ids = []
    for _ in range(count):
        tx = client.sign(key, cluster.chain_id, cluster.nonces.reserve(client.sender_hex(key)),
                         "token.transfer", {"to": "north-university", "amount": 1})
        answer = await client.submit(session, cluster.urls[1], tx, wait=True, timeout_ms=20_000)
        assert answer["status"] == "committed", answer
        ids.append(tx.id)
    return ids


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs util-linux prlimit to "
                    "start the nodes with a 1024-descriptor limit")
async def test_a_slowloris_of_1100_sockets_leaves_the_primary_serving(tmp_path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    node_cmd = ["prlimit", f"--nofile={FD_LIMIT}:{FD_LIMIT}", "--", sys.executable, "-m", "node"]
    cluster = Cluster.create(tmp_path / "c", 4, find_free_base_port(4), 1, node_cmd=node_cmd)
    await asyncio.to_thread(start_and_wait, cluster, 90.0)
    try:
        async with client.open_session(total_timeout_s=30.0) as session:
            port = int(cluster.urls[0].rsplit(":", 1)[1])
            attack = asyncio.create_task(hold_slowloris(port, time.monotonic() + HOLD_S))
            await asyncio.sleep(3.0)  # the sockets are in place
            ids = await commit_through_node1(cluster, session, 5)
            status = await client.get_status(session, cluster.urls[0])  # a fresh client
            opened = await attack
            for tx_id in ids:  # the primary itself executed them: its peers reached it
                assert (await client.get_tx(session, cluster.urls[0], tx_id))["status"] == \
                    "committed"
            views = [(await client.get_status(session, url))["view"] for url in cluster.urls]
        assert opened >= SOCKETS and status["view"] == 0
        assert views == [0, 0, 0, 0]
        assert cluster.log_path(0).stat().st_size < 64 * 1024
    finally:
        cluster.stop(timeout_s=15.0)
