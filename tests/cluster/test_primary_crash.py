"""Acceptance (fault tolerance): kill -9 the primary of a 4-node cluster under load.

The survivors time out, elect node1 in view 1 and keep committing; the old primary
restarts from its WAL and database, rejoins and catches up; no acknowledged
transaction (one whose committed receipt a client received) is lost or repeated; all
four nodes end with the same blocks and state roots.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from typing import Any

import pytest

from ipchain.sdk import client
from ipchain.cluster.manager import Cluster

pytestmark = pytest.mark.cluster

SENDERS = 8
DEADLINE_S = 90.0


class Load:
    """Closed-loop clients: each signs a transfer, submits it with wait=commit to a live
    node, records the id once a committed receipt comes back, and goes again."""

    def __init__(self, cluster: Cluster, session: Any) -> None:
        self.cluster, self.session = cluster, session
        self.live = set(range(cluster.n))
        self.acked: list[str] = []
        self.running = True
        self.turn = 0

    async def client(self, org: str) -> None:
        key = self.cluster.client_key(org)
        while self.running:
            nonce = self.cluster.nonces.reserve(client.sender_hex(key))
            tx = client.sign(key, self.cluster.chain_id, nonce, "token.transfer",
                             {"to": "north-university", "amount": 1})
            self.turn += 1
            url = self.cluster.urls[sorted(self.live)[self.turn % len(self.live)]]
            try:
                answer = await client.submit(self.session, url, tx, wait=True, timeout_ms=20_000)
            except client.ApiError:
                await asyncio.sleep(0.05)  # node down or timed out: not acknowledged
                continue
            if answer["status"] == "committed":
                self.acked.append(tx.id)


async def wait_until(predicate, what: str, deadline_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + deadline_s
    while not await predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def statuses(session: Any, cluster: Cluster, nodes: list[int]) -> list[dict[str, Any]]:
    return [await client.get_status(session, cluster.urls[i]) for i in nodes]


async def scenario(cluster: Cluster) -> None:
    async with client.open_session() as session:
        load = Load(cluster, session)
        clients = [asyncio.create_task(load.client(f"client-{i:03d}")) for i in range(SENDERS)]
        await wait_until(lambda: _at_least(load.acked, 40), "load before the crash")

        cluster.kill(0, signal.SIGKILL)
        load.live.discard(0)
        acked_at_crash = len(load.acked)

        async def new_primary_commits() -> bool:
            views = await statuses(session, cluster, [1, 2, 3])
            return all(s["view"] >= 1 and s["primary"] != 0 for s in views) and \
                len(load.acked) >= acked_at_crash + 40
        await wait_until(new_primary_commits, "a new primary committing")

        cluster.start([0])
        load.live.add(0)
        acked_at_restart = len(load.acked)
        await wait_until(lambda: _at_least(load.acked, acked_at_restart + 40), "load after restart")
        load.running = False
        await asyncio.gather(*clients)

        async def converged() -> bool:
            try:
                heights = [s["height"] for s in await statuses(session, cluster, [0, 1, 2, 3])]
            except client.ApiError:  # the restarted node is still opening its port
                return False
            return len(set(heights)) == 1
        await wait_until(converged, "the old primary catching up")
        await check_chains(session, cluster, load.acked)


async def _at_least(items: list, count: int) -> bool:
    return len(items) >= count


async def check_chains(session: Any, cluster: Cluster, acked: list[str]) -> None:
    height = (await client.get_status(session, cluster.urls[1]))["height"]
    chains = [[await client.get_block(session, url, h) for h in range(1, height + 1)]
              for url in cluster.urls]
    for h in range(height):
        assert len({(c[h]["hash"], c[h]["result_root"]) for c in chains}) == 1, \
            f"nodes disagree at height {h + 1}"
    in_chain = Counter(tx_id for block in chains[0] for tx_id in block["tx_ids"])
    lost = [tx_id for tx_id in acked if in_chain[tx_id] != 1]
    assert lost == [], f"{len(lost)} acknowledged txs missing or repeated"
    roots = {s["state_root"] for s in await statuses(session, cluster, [0, 1, 2, 3])}
    assert len(roots) == 1


def test_kill_9_primary_under_load_new_primary_commits_and_old_one_catches_up(start_cluster):
    cluster, _ = start_cluster(n=4, clients=SENDERS)
    asyncio.run(scenario(cluster))
