"""A peer link's queues: a relayed batch is queued in one step (`PeerLink.put_all`) and
a queue that fits one POST is flushed whole, with exactly what the per-item way
(`put` per transaction, `_flush` item by item) queued, dropped, counted and posted."""

from __future__ import annotations

import collections
import random

import pytest

from node import transport
from node.config import Peer
from node.transport import PeerLink


def _link() -> PeerLink:
    return PeerLink(Peer("node1", 1, "http://127.0.0.1:1"), None, collections.Counter())


@pytest.mark.parametrize("seed", range(20))
def test_put_all_queues_and_drops_as_put_per_item(monkeypatch, seed) -> None:
    monkeypatch.setattr(transport, "MAX_QUEUE_ITEMS", 16)
    rng = random.Random(seed)
    bulk, each = _link(), _link()
    for round_ in range(12):
        items = [f"{seed}-{round_}-{k}".encode() for k in range(rng.choice((0, 1, 5, 15, 16, 40)))]
        bulk.put_all(bulk.txs, items)
        for item in items:
            each.put(each.txs, item)
        assert list(bulk.txs) == list(each.txs)
        assert bulk.counters == each.counters
        if rng.random() < 0.3:  # the sender drained some in between
            for _ in range(rng.randrange(len(bulk.txs) + 1)):
                bulk.txs.popleft()
                each.txs.popleft()
    assert bulk.txs_wakeup.is_set() and not bulk.wakeup.is_set()
    assert each.counters["dropped_queue_full:node1"] > 0  # the overflow case was exercised


@pytest.mark.parametrize("sizes", [[10] * 5, [10] * 2_000, [10] * 2_001, [6_000_000] * 3,
                                   [20_000_000, 10], [10, 20_000_000, 10], []])
async def test_flush_posts_the_batches_the_per_item_loop_did(monkeypatch, sizes) -> None:
    posted: list[list[bytes]] = []

    async def post(self, batch: list[bytes], path: str) -> None:
        posted.append(batch)
    monkeypatch.setattr(PeerLink, "_post", post)
    link = _link()
    items = [bytes([k % 256]) * size for k, size in enumerate(sizes)]
    link.txs.extend(items)
    while link.txs:
        await link._flush(link.txs, "/p2p/txs")
    expected, batch, size = [], [], 0  # the per-item rule: a batch stops at either cap
    for item in items:
        if batch and (len(batch) >= transport.MAX_POST_ITEMS
                      or size + len(item) > transport.MAX_POST_BYTES):
            expected.append(batch)
            batch, size = [], 0
        batch.append(item)
        size += len(item)
    expected += [batch] if batch else []
    assert [[len(i) for i in b] for b in posted] == [[len(i) for i in b] for b in expected]
    assert [i for b in posted for i in b] == items
