"""The committed-id Bloom filter: never a false "no"; rarely a false "maybe"."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from node.api import build_app
from node.runtime import Runtime
from node.seen_ids import CommittedIds
from tests.node.conftest import LocalCluster, until


def ids(prefix: bytes, count: int) -> list[bytes]:
    return [hashlib.sha256(prefix + i.to_bytes(4, "big")).digest() for i in range(count)]


def test_every_added_id_might_be_held_and_strangers_rarely_are() -> None:
    committed = ids(b"in", 50_000)
    seen = CommittedIds(committed[:40_000])
    for tx_id in committed[40_000:]:
        seen.add(tx_id)
    assert all(seen.might_hold(tx_id) for tx_id in committed)
    strangers = ids(b"out", 20_000)
    false_maybe = sum(seen.might_hold(tx_id) for tx_id in strangers)
    assert false_maybe < 20  # ~1e-5 expected at 50,000 ids in 2^24 bits


def test_screening_a_list_answers_as_asking_each_id() -> None:
    """`maybe_among` (admission screens a slice at once) keeps exactly the ids
    `might_hold` answers True for, in order: on a sparse filter, on one so full that
    most strangers pass (every position probed), and on one still loading."""
    strangers = ids(b"out", 3000)
    for count in (0, 2000, 1_500_000):
        seen = CommittedIds(ids(b"in", count))
        mixed = [x for pair in zip(ids(b"in", 1000), strangers) for x in pair]
        assert seen.maybe_among(mixed) == [x for x in mixed if seen.might_hold(x)]
    assert 0 < len(seen.maybe_among(strangers)) < len(strangers)  # the full one, both ways
    loading = CommittedIds(complete=False)
    assert loading.maybe_among(strangers) == strangers


def test_an_empty_filter_rules_everything_out() -> None:
    assert not any(CommittedIds().might_hold(tx_id) for tx_id in ids(b"x", 1000))


async def test_a_committed_transaction_sent_again_is_known_across_a_restart(tmp_path: Path) -> None:
    """The filter is filled from every executed block and, at start, from the store: a
    resubmitted committed tx is answered from the chain and never queued again."""
    cluster = LocalCluster(tmp_path, 1, {}, {})
    tx = cluster.transfers(1)[0]
    tx_id = bytes.fromhex(tx.id)
    for round_ in range(2):  # before and after a restart on the same data dir
        runtime = Runtime(cluster.config(0))
        await runtime.start()
        client = TestClient(TestServer(build_app(runtime), host="127.0.0.1"))
        await client.start_server()
        try:
            if round_ == 0:
                resp = await client.post("/v1/tx?wait=commit", json=tx.to_json())
                assert resp.status == 200 and (await resp.json())["status"] == "committed"
            await until(lambda: runtime.committed_ids.complete, 10.0, "the earlier ids loaded")
            assert runtime.committed_ids.might_hold(tx_id)
            resp = await client.post("/v1/tx", json=tx.to_json())
            assert resp.status == 200 and (await resp.json())["status"] == "committed"
            await asyncio.sleep(0)
            assert tx_id not in runtime.mempool
            assert runtime.executor.height == 1
        finally:
            await client.close()
            await runtime.stop()


def test_a_filter_still_loading_answers_maybe_and_takes_in_the_earlier_ids() -> None:
    """While the chain's earlier ids load in a thread, new blocks' ids go straight into the
    live filter; merging keeps both and only then may the filter answer "no"."""
    earlier, newer, strangers = ids(b"e", 500), ids(b"n", 500), ids(b"s", 500)
    live = CommittedIds(complete=False)
    for tx_id in newer:
        live.add(tx_id)
    assert all(live.might_hold(tx_id) for tx_id in strangers)  # nothing ruled out yet
    live.take_in(CommittedIds(earlier))
    assert live.complete and all(live.might_hold(tx_id) for tx_id in earlier + newer)
    assert sum(live.might_hold(tx_id) for tx_id in strangers) < 5
