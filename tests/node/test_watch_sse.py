"""`ipchain watch` over server-sent events (its default): records as they commit, each
once, and on to the next node when the one it reads goes away."""

from __future__ import annotations

import asyncio
import io
import json

from scripts import watch
from tests.node.conftest import until


def lines(out: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


async def test_watch_reads_the_event_stream_and_fails_over(local_cluster) -> None:
    cluster = await local_cluster(4)
    out, ready = io.StringIO(), asyncio.Event()
    watcher = asyncio.create_task(watch.watch_sse(
        [cluster.url(i) for i in range(4)], timeout_s=60, as_json=True, out=out,
        ready=ready, connect_timeout_s=5))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        first = cluster.transfers(1)
        await cluster.submit(first)
        await until(lambda: any(r["type"] == "event" for r in lines(out)), 15,
                    "the first transfer's event on the stream")
        await cluster.stop_node(0)  # the node the watcher reads
        second = cluster.transfers(1)
        await cluster.submit(second, node=1)
        await until(lambda: sum(r["type"] == "event" for r in lines(out)) == 2, 20,
                    "the second transfer's event, read from another node")
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    records = lines(out)
    events = [r for r in records if r["type"] == "event"]
    assert [e["tx_id"] for e in events] == [first[0].id, second[0].id]
    assert events[0]["node"] == "node0" and events[1]["node"] != "node0"
    assert len({r["id"] for r in records}) == len(records), "each record once"
    heights = [r["height"] for r in records if r["type"] == "block"]
    assert heights == sorted(heights) and {e["height"] for e in events} <= set(heights)


async def test_watch_stops_after_count_records(local_cluster) -> None:
    cluster = await local_cluster(4)
    out, ready = io.StringIO(), asyncio.Event()
    watcher = asyncio.create_task(watch.watch_sse([cluster.url(2)], count=2, timeout_s=30,
                                                  as_json=False, out=out, ready=ready))
    await asyncio.wait_for(ready.wait(), 10)
    await cluster.submit(cluster.transfers(1))
    assert await asyncio.wait_for(watcher, 30) == 0
    shown = out.getvalue().splitlines()
    assert len(shown) == 2 and " block " in shown[0] and " event " in shown[1]
    assert "token/transferred" in shown[1] and "node=node2" in shown[1]
