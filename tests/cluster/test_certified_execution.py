"""Certified execution on real node processes.

1. A node started with a planted execution fault (its contract execution differs from
   everyone else's) is outvoted by the other three's execution certificate: it stops,
   says why in /v1/status, /metrics and its log, refuses to serve state, and the other
   three go on committing.
2. A node whose stored state was damaged while it was down (one balance changed in
   SQLite: its integrity check still says ok) refuses at start, saying why; the others
   go on.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import msgpack
import pytest

from ipchain.cluster.manager import Cluster
from ipchain.cluster.procs import find_free_base_port, pids_under
from ipchain.sdk import client

pytestmark = pytest.mark.cluster
DEADLINE_S = 60.0


@pytest.fixture
def cluster(tmp_path: Path):
    made = Cluster.create(tmp_path / "c", 4, find_free_base_port(4), 4)
    yield made
    made.stop(timeout_s=10.0)
    assert pids_under(made.data_dir) == []


async def until(predicate, what: str, deadline_s: float = DEADLINE_S) -> Any:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            found = await predicate()
        except client.ApiError:
            found = None
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def transfers(session: Any, cluster: Cluster, url: str, count: int) -> None:
    """`count` committed transfers (wait=commit), from one client org."""
    org = cluster.org_ids()[-1]
    key = cluster.client_key(org)
    for _ in range(count):
        tx = client.sign(key, cluster.chain_id, cluster.nonces.reserve(client.sender_hex(key)),
                         "token.transfer", {"to": cluster.org_ids()[0], "amount": 1})
        answer = await client.submit(session, url, tx, wait=True, timeout_ms=20_000)
        assert answer["status"] == "committed", answer


async def heights(session: Any, cluster: Cluster, nodes: list[int]) -> list[int]:
    return [(await client.get_status(session, cluster.urls[i]))["height"] for i in nodes]


def test_a_node_with_a_planted_execution_fault_stops_and_the_others_commit_on(cluster, monkeypatch):
    cluster.start([0, 1, 2])
    monkeypatch.setenv("IPCHAIN_PLANTED_EXECUTION_FAULT", "1")
    cluster.start([3])
    monkeypatch.delenv("IPCHAIN_PLANTED_EXECUTION_FAULT")

    async def scenario() -> None:
        async with client.open_session() as session:
            await cluster.wait_ready_async(session, DEADLINE_S, probe=False)
            await transfers(session, cluster, cluster.urls[0], 3)

            async def diverged() -> Any:
                return (await client.get_status(session, cluster.urls[3])).get("diverged")
            seen = await until(diverged, "node3 reporting its divergence")
            assert seen["height"] >= 1 and seen["mine"] != seen["quorum"]
            assert seen["reason"] == "execution"
            stopped_at = (await client.get_status(session, cluster.urls[3]))["height"]

            before = max(await heights(session, cluster, [0, 1, 2]))
            await transfers(session, cluster, cluster.urls[1], 5)
            after = await heights(session, cluster, [0, 1, 2])
            assert min(after) > before, "the three honest nodes stopped committing"
            assert (await client.get_status(session, cluster.urls[3]))["height"] <= stopped_at + 1

            _, metrics = await client.request(session, "GET", cluster.urls[3] + "/metrics")
            assert "ipchain_diverged 1.0" in metrics
            with pytest.raises(client.ApiError) as refused:
                await client.get_state(session, cluster.urls[3], "balances", cluster.org_ids()[0])
            assert "Diverged" in str(refused.value)
            _, evidence = await client.request(session, "GET", cluster.urls[3] + "/v1/evidence")
            assert any(e["kind"] == "execution-diverged" for e in evidence["evidence"])
            # the honest nodes certified the block node3 disagreed on
            proof_ok = await client.get_status(session, cluster.urls[0])
            assert proof_ok["certified_height"] >= seen["height"]

    asyncio.run(scenario())
    assert "event=execution_diverged" in cluster.log_path(3).read_text()


def test_a_node_whose_stored_state_was_damaged_refuses_to_start_serving(cluster):
    cluster.start()

    async def load() -> None:
        async with client.open_session() as session:
            await cluster.wait_ready_async(session, DEADLINE_S, probe=False)
            await transfers(session, cluster, cluster.urls[0], 3)
            await until(lambda: _certified(session, cluster, 2), "node2 certified its blocks")
    asyncio.run(load())
    cluster.kill(2)
    db = sqlite3.connect(cluster.node_dir(2) / "db.sqlite")
    key, raw = db.execute("SELECT key, value FROM state WHERE key LIKE 'bal/BPC/%' "
                          "ORDER BY key LIMIT 1").fetchone()
    with db:  # one balance off by one: SQLite's own checks cannot see this
        db.execute("UPDATE state SET value = ? WHERE key = ?",
                    (msgpack.packb(msgpack.unpackb(raw) + 1), key))
    assert db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    db.close()
    cluster.start([2])

    async def check() -> None:
        async with client.open_session() as session:
            async def refused() -> Any:
                return (await client.get_status(session, cluster.urls[2])).get("diverged")
            seen = await until(refused, "node2 refusing its damaged state")
            assert "state at rest" in seen["reason"] and seen["mine"] != seen["quorum"]
            before = max(await heights(session, cluster, [0, 1, 3]))
            await transfers(session, cluster, cluster.urls[1], 3)
            assert min(await heights(session, cluster, [0, 1, 3])) > before
            assert (await client.get_status(session, cluster.urls[2]))["height"] <= before
    asyncio.run(check())
    assert "event=refusing_to_run" in cluster.log_path(2).read_text()


async def _certified(session: Any, cluster: Cluster, node: int) -> bool:
    status = await client.get_status(session, cluster.urls[node])
    return status["certified_height"] == status["height"] > 0
