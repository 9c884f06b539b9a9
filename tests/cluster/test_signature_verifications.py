"""Each node verifies each transaction's signature exactly once (issue 10's counter).

N distinct transfers go to random nodes (relayed to the others, ordered by the primary),
then every one is submitted again to another node: after commit, each node's
ipchain_tx_signature_verifications_total grew by exactly N, never more.
"""

from __future__ import annotations

import asyncio
import random
import re
from typing import Any

import pytest

from ipchain.sdk import client
from ipchain.cluster.manager import Cluster

pytestmark = pytest.mark.cluster

TX_COUNT = 300
SEED = 10
METRIC = re.compile(r"^ipchain_tx_signature_verifications_total (\S+)$", re.M)


async def verifications(session: Any, url: str) -> int:
    async with session.get(f"{url}/metrics") as response:
        assert response.status == 200
        found = METRIC.search(await response.text())
    assert found, "ipchain_tx_signature_verifications_total is not exported"
    return int(float(found.group(1)))


def transfers(cluster: Cluster, rng: random.Random) -> list[Any]:
    senders = [f"client-{i:03d}" for i in range(4)]
    keys = {org: cluster.client_key(org) for org in senders}
    txs = []
    for _ in range(TX_COUNT):
        key = keys[rng.choice(senders)]
        nonce = cluster.nonces.reserve(client.sender_hex(key))
        txs.append(client.sign(key, cluster.chain_id, nonce, "token.transfer",
                               {"to": "cnipa", "amount": rng.randint(1, 100)}))
    return txs


async def check(cluster: Cluster) -> None:
    rng = random.Random(SEED)
    txs = transfers(cluster, rng)
    async with client.open_session() as session:
        before = [await verifications(session, url) for url in cluster.urls]
        for start in range(0, TX_COUNT, 25):
            answer = await client.submit_batch(session, rng.choice(cluster.urls),
                                               txs[start:start + 25])
            assert answer["rejected"] == []
        for tx in txs:
            await client.wait_for_tx(session, cluster.urls[0], tx.id)
        top = (await client.get_status(session, cluster.urls[0]))["height"]
        await client.wait_for_blocks(session, cluster.urls, top)
        for start in range(0, TX_COUNT, 50):  # duplicates: known ids, not verified again
            answer = await client.submit_batch(session, rng.choice(cluster.urls),
                                               txs[start:start + 50])
            assert answer["rejected"] == []
        after = [await verifications(session, url) for url in cluster.urls]
    grew = [a - b for a, b in zip(after, before)]
    assert grew == [TX_COUNT] * cluster.n, f"verifications per node {grew}, expected {TX_COUNT}"


def test_each_node_verifies_each_transaction_once(start_cluster) -> None:
    cluster, _ = start_cluster(n=4, clients=4)
    asyncio.run(check(cluster))
