"""Certified execution on real node processes.

1. A node started with a planted execution fault (its contract execution differs from
   everyone else's) is outvoted by the other three's execution certificate: it stops,
   says why in /v1/status, /metrics and its log, refuses to serve state, and the other
   three go on committing.
2. A node whose stored state was damaged while it was down (one balance changed in
   SQLite: its integrity check still says ok) notices at start and rebuilds its state
   from its own certified blocks, then rejoins; if its blocks are damaged too, it moves
   its database aside (kept, for forensics) and refetches every block from its peers,
   each checked against its certificates, then agrees with them.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import msgpack
import pytest
import waiting

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
    return await waiting.until(predicate, what, deadline_s)


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


def damage_a_balance(cluster: Cluster, node: int) -> None:
    """One balance off by one: SQLite's own checks cannot see this."""
    db = sqlite3.connect(cluster.node_dir(node) / "db.sqlite")
    key, raw = db.execute("SELECT key, value FROM state WHERE key LIKE 'bal/BPC/%' "
                          "ORDER BY key LIMIT 1").fetchone()
    with db:
        db.execute("UPDATE state SET value = ? WHERE key = ?",
                   (msgpack.packb(msgpack.unpackb(raw) + 1), key))
    assert db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    db.close()


def damage_a_stored_block(cluster: Cluster, node: int) -> None:
    """One transaction's bytes changed inside a stored pre-prepare."""
    db = sqlite3.connect(cluster.node_dir(node) / "db.sqlite")
    height, raw = db.execute("SELECT height, preprepare FROM blocks WHERE length(preprepare) > 300 "
                             "ORDER BY height DESC LIMIT 1").fetchone()
    sender, sig, body = msgpack.unpackb(raw)
    tx = bytearray(body[5][0])
    tx[-70] ^= 1
    body[5][0] = bytes(tx)
    with db:
        db.execute("UPDATE blocks SET preprepare = ? WHERE height = ?",
                   (msgpack.packb([sender, sig, body], use_bin_type=True), height))
    db.close()


def run_then_stop_node(cluster: Cluster, node: int) -> None:
    cluster.start()

    async def load() -> None:
        async with client.open_session() as session:
            await cluster.wait_ready_async(session, DEADLINE_S, probe=False)
            await transfers(session, cluster, cluster.urls[0], 3)
            await until(lambda: _certified(session, cluster, node), "the node certified its blocks")
    asyncio.run(load())
    cluster.kill(node)


async def rejoins_and_agrees(session: Any, cluster: Cluster, node: int, what: str) -> None:
    """The restarted node answers, new traffic commits, and every node ends at one height
    and state root with `node` no longer diverged."""
    # up and listening first: a replica that missed every message since its restart
    # has nothing to tell it that it is behind until the next checkpoint
    await until(lambda: client.get_status(session, cluster.urls[node]), f"node{node} answering")
    await transfers(session, cluster, cluster.urls[(node + 1) % cluster.n], 3)

    async def caught_up() -> bool:
        states = [await client.get_status(session, url) for url in cluster.urls]
        return (len({(s["height"], s["state_root"]) for s in states}) == 1
                and states[node]["diverged"] is None)
    await until(caught_up, what)


def test_a_damaged_state_is_rebuilt_from_the_nodes_certified_blocks(cluster):
    run_then_stop_node(cluster, 2)
    damage_a_balance(cluster, 2)
    cluster.start([2])

    async def check() -> None:
        async with client.open_session() as session:
            await rejoins_and_agrees(session, cluster, 2, "node2 rebuilt, rejoined and agreeing")
    asyncio.run(check())
    log = cluster.log_path(2).read_text()
    assert "event=state_damaged" in log and "event=state_rebuilt" in log


def test_a_node_whose_blocks_cannot_rebuild_its_state_moves_them_aside_and_resyncs(cluster):
    run_then_stop_node(cluster, 2)
    damage_a_balance(cluster, 2)
    damage_a_stored_block(cluster, 2)
    cluster.start([2])

    async def check() -> None:
        async with client.open_session() as session:
            await rejoins_and_agrees(session, cluster, 2,
                                     "node2 refetched every block from its peers and agrees")
            balance = await client.get_state(session, cluster.urls[2], "balances",
                                             cluster.org_ids()[0])
            assert balance == await client.get_state(session, cluster.urls[0], "balances",
                                                     cluster.org_ids()[0])
    asyncio.run(check())
    log = cluster.log_path(2).read_text()
    assert "event=state_rebuild_failed" in log and "event=resync_from_peers" in log
    kept = list(cluster.node_dir(2).glob("db.sqlite.damaged-*"))
    assert kept, "the damaged database is kept for forensics, not deleted"


async def _certified(session: Any, cluster: Cluster, node: int) -> bool:
    status = await client.get_status(session, cluster.urls[node])
    return status["certified_height"] == status["height"] > 0
