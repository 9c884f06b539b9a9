"""Acceptance: 500 signed transfers through 4 real nodes commit exactly once, and every
node holds the same chain and the same state.

Transactions go to random nodes (seeded), some as single POST /v1/tx (JSON or
msgpack), most in POST /v1/txs batches, several requests in flight at once.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from typing import Any

import pytest

from ipchain.sdk import client
from ipchain.cluster.manager import Cluster

pytestmark = pytest.mark.cluster

TX_COUNT = 500
SEED = 20240607
SENDERS = 8
COMMIT_DEADLINE_S = 90.0


def make_transfers(cluster: Cluster, rng: random.Random) -> tuple[list[Any], dict[str, int]]:
    """TX_COUNT transfers between client and alliance orgs, and each org's BPC delta."""
    senders = [f"client-{i:03d}" for i in range(SENDERS)]
    targets = senders + ["north-university", "acme-electronics", "cnipa", "ip-regulator"]
    keys = {org: cluster.client_key(org) for org in senders}
    delta: Counter[str] = Counter()
    txs = []
    for _ in range(TX_COUNT):
        source = rng.choice(senders)
        target = rng.choice([t for t in targets if t != source])
        amount = rng.randint(1, 10_000)
        key = keys[source]
        nonce = cluster.nonces.reserve(client.sender_hex(key))
        txs.append(client.sign(key, cluster.chain_id, nonce, "token.transfer",
                               {"to": target, "amount": amount}))
        delta[source] -= amount
        delta[target] += amount
    return txs, dict(delta)


def chunk(txs: list[Any], rng: random.Random) -> list[list[Any]]:
    """Singles and batches of 2..40, in submission order."""
    chunks, i = [], 0
    while i < len(txs):
        size = 1 if rng.random() < 0.3 else rng.randint(2, 40)
        chunks.append(txs[i:i + size])
        i += size
    return chunks


async def send_all(session: Any, urls: list[str], chunks: list[list[Any]],
                   rng: random.Random) -> list[str]:
    slots = asyncio.Semaphore(6)
    plan = [(c, rng.choice(urls), rng.random() < 0.5) for c in chunks]

    async def send(txs: list[Any], url: str, as_msgpack: bool) -> list[str]:
        async with slots:
            if len(txs) == 1:
                answer = await client.submit(session, url, txs[0], as_msgpack=as_msgpack)
                assert answer["status"] == "pending" and answer["id"] == txs[0].id
                return [answer["id"]]
            answer = await client.submit_batch(session, url, txs)
            assert answer["rejected"] == []
            assert answer["accepted"] == [tx.id for tx in txs]
            return answer["accepted"]

    results = await asyncio.gather(*(send(*item) for item in plan))
    return [tx_id for ids in results for tx_id in ids]


async def wait_all_committed(session: Any, url: str, ids: set[str]) -> int:
    """Follow `url`'s chain until every id is in a block; return that height."""
    seen: set[str] = set()
    height = 0
    deadline = time.monotonic() + COMMIT_DEADLINE_S
    while not ids <= seen:
        assert time.monotonic() < deadline, f"{len(ids - seen)} txs not committed in time"
        latest = await client.get_block(session, url, "latest")
        for h in range(height + 1, latest["height"] + 1):
            seen.update((await client.get_block(session, url, h))["tx_ids"])
        if latest["height"] == height:
            await asyncio.sleep(0.05)
        height = latest["height"]
    return height


async def wait_same_height(session: Any, urls: list[str], height: int) -> None:
    deadline = time.monotonic() + 30.0
    while True:
        heights = [(await client.get_status(session, url))["height"] for url in urls]
        if min(heights) >= height:
            return
        assert time.monotonic() < deadline, f"heights {heights} never reached {height}"
        await asyncio.sleep(0.05)


async def get_chain(session: Any, url: str, height: int) -> list[dict[str, Any]]:
    return [await client.get_block(session, url, h) for h in range(1, height + 1)]


async def check_run(cluster: Cluster, probe_id: str) -> None:
    rng = random.Random(SEED)
    genesis_bpc = {org["id"]: org["bpc"] for org in cluster.genesis["organisations"]}
    txs, delta = make_transfers(cluster, rng)
    source, target = cluster.probe_parties()  # `up`'s probe moved 1 unit before the test
    delta[source] = delta.get(source, 0) - 1
    delta[target] = delta.get(target, 0) + 1
    async with client.open_session() as session:
        submitted = await send_all(session, cluster.urls, chunk(txs, rng), rng)
        assert sorted(submitted) == sorted(tx.id for tx in txs)
        ids = set(submitted)
        assert len(ids) == TX_COUNT
        height = await wait_all_committed(session, cluster.urls[0], ids)
        await wait_same_height(session, cluster.urls, height)

        chains = [await get_chain(session, url, height) for url in cluster.urls]
        for h in range(height):
            blocks = [chain[h] for chain in chains]
            assert len({(b["hash"], b["state_root"], tuple(b["tx_ids"])) for b in blocks}) == 1, \
                f"nodes disagree at height {h + 1}"
        in_chain = Counter(tx_id for block in chains[0] for tx_id in block["tx_ids"])
        assert all(in_chain[tx_id] == 1 for tx_id in ids), "a tx is missing or repeated"
        assert set(in_chain) <= ids | {probe_id}, "the chain holds a tx nobody submitted"
        block_of = {tx_id: block["height"] for block in chains[0] for tx_id in block["tx_ids"]}

        for tx in txs:
            url = cluster.urls[rng.randrange(cluster.n)]
            answer = await client.get_tx(session, url, tx.id)
            assert answer["status"] == "committed", answer
            assert answer["receipt"]["height"] == block_of[tx.id]

        supply = await client.get_state(session, cluster.urls[1], "supply")
        assert supply["bpc"] == sum(genesis_bpc.values())
        balances = {org: (await client.get_state(session, cluster.urls[2], "balances", org))["bpc"]
                    for org in genesis_bpc}
        assert sum(balances.values()) == supply["bpc"]
        assert balances == {org: bpc + delta.get(org, 0) for org, bpc in genesis_bpc.items()}


def test_500_transfers_commit_exactly_once_and_all_nodes_agree(start_cluster) -> None:
    cluster, probe = start_cluster(n=4, clients=SENDERS)
    asyncio.run(check_run(cluster, probe["id"]))
