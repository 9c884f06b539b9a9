"""GET /v1/events: live server-sent events, resume by Last-Event-ID from storage, and
slow clients cut off without holding up consensus."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest

from node.events import SSE_HUB, format_id, parse_id
from tests.node.conftest import LocalCluster, until

class SseStream:
    """A minimal EventSource: reads (id, event, data) in order from one response."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.events: list[tuple[str, str, dict[str, Any]]] = []
        self.ended = False

    async def read_until(self, done, timeout_s: float = 15.0) -> None:
        await asyncio.wait_for(self._read(done), timeout_s)

    async def _read(self, done) -> None:
        fields: dict[str, str] = {}
        while not done(self):
            line = await self.response.content.readline()
            if not line:
                self.ended = True
                return
            text = line.decode().rstrip("\n")
            if text == "":
                if "data" in fields:
                    self.events.append((fields.get("id", ""), fields.get("event", "message"),
                                        json.loads(fields["data"])))
                fields = {}
            elif not text.startswith(":"):
                name, _, value = text.partition(": ")
                fields[name] = value

    @property
    def transfer_tx_ids(self) -> list[str]:
        return [d["tx_id"] for _, kind, d in self.events
                if kind == "event" and (d["contract"], d["name"]) == ("token", "transferred")]

    @property
    def last_id(self) -> str:
        return self.events[-1][0]


async def open_stream(cluster: LocalCluster, node: int, headers: dict[str, str] | None = None,
                      query: str = "") -> SseStream:
    assert cluster.session is not None
    response = await cluster.session.get(f"{cluster.url(node)}/v1/events{query}",
                                         headers=headers or {},
                                         timeout=aiohttp.ClientTimeout(total=None))
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    return SseStream(response)


def has_transfers(txs) -> Any:
    wanted = {tx.id for tx in txs}
    return lambda stream: wanted <= set(stream.transfer_tx_ids)


def assert_well_formed(events: list[tuple[str, str, dict[str, Any]]]) -> None:
    """Ids strictly increase, each id matches its payload, and every header but the last
    is followed by exactly its event_count events."""
    keys = [parse_id(i) for i, _, _ in events]
    assert keys == sorted(set(keys)), "ids must strictly increase"
    for (sse_id, kind, data), key in zip(events, keys):
        assert data["id"] == sse_id and data["type"] == kind
        if kind == "event":
            assert key == (data["height"], data["tx_index"], data["event_index"])
    headers = [d for _, kind, d in events if kind == "block"]
    for header in headers[:-1]:
        count = sum(1 for _, kind, d in events if kind == "event" and d["height"] == header["height"])
        assert count == header["event_count"], header


async def test_live_stream_delivers_headers_and_events_in_order(local_cluster) -> None:
    cluster = await local_cluster(4)
    stream = await open_stream(cluster, 1)
    txs = cluster.transfers(40)
    await cluster.submit(txs, node=0)
    await stream.read_until(has_transfers(txs))
    stream.response.close()
    assert_well_formed(stream.events)
    assert sorted(stream.transfer_tx_ids) == sorted(tx.id for tx in txs)
    heights = [d["height"] for _, kind, d in stream.events if kind == "block"]
    assert heights == list(range(heights[0], heights[-1] + 1))
    event = next(d for _, kind, d in stream.events if kind == "event")
    assert event["data"]["asset"] == "BPC" and event["data"]["amount"] == 1
    assert event["node"] == "node1" and event["chain"] == cluster.genesis["chain_id"]


async def test_reconnect_with_last_event_id_gets_what_it_missed(local_cluster) -> None:
    cluster = await local_cluster(4)
    first = await open_stream(cluster, 0, query="?from_height=1")
    batch_a = cluster.transfers(30)
    await cluster.submit(batch_a)
    await first.read_until(has_transfers(batch_a))
    first.response.close()
    last_seen = first.last_id

    batch_b = cluster.transfers(30)  # committed while the client is away
    await cluster.submit(batch_b, node=2)
    await cluster.wait_committed(batch_b, nodes=[0])

    resumed = await open_stream(cluster, 0, headers={"Last-Event-ID": last_seen})
    batch_c = cluster.transfers(10)  # and some more once it is back: live again
    await resumed.read_until(has_transfers(batch_b))
    await cluster.submit(batch_c)
    await resumed.read_until(has_transfers(batch_c))
    resumed.response.close()

    assert parse_id(resumed.events[0][0]) > parse_id(last_seen)
    assert not set(resumed.transfer_tx_ids) & {tx.id for tx in batch_a}, "no re-delivery"
    assert sorted(resumed.transfer_tx_ids) == sorted(tx.id for tx in batch_b + batch_c)
    combined = first.events + resumed.events
    assert_well_formed(combined)
    # nothing missing: the two sessions together equal one uninterrupted replay
    whole = await open_stream(cluster, 3, query="?from_height=1")
    await whole.read_until(lambda s: s.events and s.events[-1][0] == combined[-1][0])
    whole.response.close()
    assert [(i, k, {**d, "node": "-"}) for i, k, d in whole.events] == \
           [(i, k, {**d, "node": "-"}) for i, k, d in combined]
    assert int(cluster.node(0).app[SSE_HUB].replayed_records) > 0


async def test_resume_from_the_middle_of_a_block(local_cluster) -> None:
    cluster = await local_cluster(4)
    txs = cluster.transfers(12)
    await cluster.submit(txs)
    await cluster.wait_committed(txs)
    full = await open_stream(cluster, 0, query="?from_height=1")
    await full.read_until(has_transfers(txs))
    full.response.close()
    events = [e for e in full.events if e[1] == "event"]
    middle = events[len(events) // 2][0]
    resumed = await open_stream(cluster, 0, query=f"?last_event_id={middle}")
    await resumed.read_until(lambda s: s.events and s.events[-1][0] == full.last_id)
    resumed.response.close()
    cut = [e[0] for e in full.events].index(middle)
    assert resumed.events == full.events[cut + 1:]


@pytest.mark.parametrize("header", ["abc", "5:", "5:1", "-1", "5:1.x", "1:2.3.4"])
async def test_bad_last_event_id_is_refused(local_cluster, header: str) -> None:
    cluster = await local_cluster(1)
    async with cluster.session.get(cluster.url(0) + "/v1/events",
                                   headers={"Last-Event-ID": header}) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["code"] == "BadArguments"


def test_event_ids_round_trip() -> None:
    for key in [(7, -1, -1), (7, 0, 0), (12, 999, 3)]:
        assert parse_id(format_id(key)) == key
    assert format_id((7, -1, -1)) == "7" and format_id((7, 2, 1)) == "7:2.1"


async def test_slow_client_is_cut_off_and_consensus_goes_on(local_cluster) -> None:
    cluster = await local_cluster(4)
    hub = cluster.node(0).app[SSE_HUB]
    hub.max_queue_records = 5  # a block of 20 transfers is 21 records: over the bound
    slow = await open_stream(cluster, 0)
    await until(lambda: len(hub.clients) == 1, 5, "the client to subscribe")
    txs = cluster.transfers(20)
    await cluster.submit(txs, node=1)
    await cluster.wait_committed(txs)
    await until(lambda: hub.slow_disconnects == 1, 5, "the slow client to be cut off")
    try:
        await slow.read_until(lambda s: False)  # times out (and fails) if never cut off
        cut_off = slow.ended
    except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError):
        cut_off = True
    assert cut_off
    assert len(hub.clients) == 0
    more = cluster.transfers(8)
    await cluster.submit(more, node=0)
    await cluster.wait_committed(more)
    metrics = await cluster.get_text(0, "/metrics")
    assert "ipchain_sse_slow_disconnects_total 1.0" in metrics


async def test_open_stream_does_not_hold_up_shutdown(local_cluster) -> None:
    cluster = await local_cluster(1)
    stream = await open_stream(cluster, 0)
    hub = cluster.node(0).app[SSE_HUB]
    await until(lambda: len(hub.clients) == 1, 5, "the client to subscribe")
    started = time.monotonic()
    await cluster.stop_node(0)
    assert time.monotonic() - started < 1.5, "graceful stop waited on the open stream"
    await stream.read_until(lambda s: False)
    assert stream.ended
