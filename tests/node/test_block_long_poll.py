"""GET /v1/blocks/{height}?wait_ms=N: a follower's long poll (node/block_waits.py).

The request for a height not stored yet is answered when that block is stored (not
with a 404 at once), a height that never comes is a 404 once wait_ms has passed, bad
values are named 400s, and the SDK passes wait_ms through."""

from __future__ import annotations

import asyncio
import hashlib
import time

import pytest

from consensus import messages as wire
from ipchain.sdk import client
from ipchain.sdk.aio import AsyncClient
from node.api import BLOCK_WAITS
from node.block_waits import RECENT_BLOCKS


async def get(cluster, path: str) -> tuple[int, dict]:
    async with cluster.session.get(cluster.url(0) + path) as resp:
        return resp.status, await resp.json()


async def test_a_waiting_request_gets_the_block_when_it_is_stored(local_cluster):
    cluster = await local_cluster(4)
    next_height = cluster.node(0).height + 1
    waiting = asyncio.create_task(get(cluster, f"/v1/blocks/{next_height}?wait_ms=5000"))
    waits = cluster.node(0).app[BLOCK_WAITS]
    deadline = time.monotonic() + 10
    while waits.waiting == 0:  # the request is parked at the node before the tx goes in
        assert time.monotonic() < deadline, "the long poll never reached the node"
        await asyncio.sleep(0.01)
    assert not waiting.done()
    txs = cluster.transfers(3)
    await cluster.submit(txs, node=1)
    status, block = await asyncio.wait_for(waiting, 20)
    assert status == 200, block
    assert block["height"] == next_height
    assert set(block["tx_ids"]) <= {tx.id for tx in txs} and block["tx_ids"]
    assert waits.waiting == 0  # nothing left behind


async def test_a_height_that_does_not_come_is_a_404_after_the_wait(local_cluster):
    cluster = await local_cluster(1)
    far = cluster.node(0).height + 1000
    started = time.monotonic()
    status, body = await get(cluster, f"/v1/blocks/{far}?wait_ms=300")
    assert status == 404 and body["error"]["code"] == "NotFound"
    assert time.monotonic() - started >= 0.28  # it waited, rather than answering at once
    assert cluster.node(0).app[BLOCK_WAITS].waiting == 0
    status, body = await get(cluster, "/v1/blocks/0?wait_ms=5000")  # stored: at once
    assert status == 200 and body["height"] == 0


@pytest.mark.parametrize("query", ["wait_ms=abc", "wait_ms=-1", "wait_ms=5001",
                                   "wait_ms=1.5", "wait_ms=", "wait_ms=%D9%A1"])
async def test_bad_wait_values_are_named_400s(local_cluster, query):
    cluster = await local_cluster(1)
    status, body = await get(cluster, f"/v1/blocks/5?{query}")
    assert status == 400 and body["error"]["code"] == "BadArguments", body


async def test_wait_ms_needs_a_numeric_height(local_cluster):
    cluster = await local_cluster(1)
    status, body = await get(cluster, "/v1/blocks/latest?wait_ms=100")
    assert status == 400 and "numeric height" in body["error"]["message"]


async def test_the_sdk_long_polls(local_cluster):
    cluster = await local_cluster(1)
    next_height = cluster.node(0).height + 1
    assert await client.get_block(cluster.session, cluster.url(0), next_height + 50,
                                  wait_ms=50) is None
    waiting = asyncio.create_task(client.get_block(cluster.session, cluster.url(0),
                                                   next_height, wait_ms=5000))
    await cluster.submit(cluster.transfers(2))
    block = await asyncio.wait_for(waiting, 20)
    assert block is not None and block["height"] == next_height
    async with AsyncClient(cluster.url(0)) as sdk:
        assert (await sdk.block(next_height, wait_ms=10))["height"] == next_height
        with pytest.raises(client.ApiError) as refused:
            await sdk.block(next_height + 50, wait_ms=10)
        assert refused.value.status == 404


async def test_recent_and_older_blocks_list_the_same_ids_as_their_stored_txs(local_cluster):
    """A recent block's ids come from its receipts, an older one's are hashed from the
    stored transactions: both are exactly the block's transactions, in block order."""
    cluster = await local_cluster(1)
    node = cluster.node(0)
    for _ in range(RECENT_BLOCKS + 2):  # the first blocks fall out of the recent ones
        height = node.height
        await cluster.submit(cluster.transfers(2), node=0)
        deadline = time.monotonic() + 20
        while node.height == height:
            assert time.monotonic() < deadline, "no block stored"
            await asyncio.sleep(0.01)
    waits = node.app[BLOCK_WAITS]
    assert waits.tx_ids(1) is None and waits.tx_ids(node.height) is not None
    for height in range(1, node.height + 1):
        status, block = await get(cluster, f"/v1/blocks/{height}")
        raws = wire.decode(node.runtime.storage.block(height)[3]).body.txs
        assert status == 200 and block["tx_ids"] == [hashlib.sha256(r).hexdigest() for r in raws]
