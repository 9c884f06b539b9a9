"""MQTT publishing against a real mosquitto on loopback: completeness and order, a
broker outage that consensus does not notice, and the publisher's queue rules."""

from __future__ import annotations

import asyncio
import io
import json
import tomllib
from typing import Any

import aiomqtt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from contracts.runtime import Event
from node.chain import Header
from node.events import EVENT_HUB, MQTT_PUBLISHER, Block, Record
from node.mqtt import BrokerAddress, MqttPublisher, parse_mqtt_url, topic_for
from scripts import cli, watch
from ipchain.cluster import broker
from ipchain.cluster.manager import Cluster
from ipchain.cluster.procs import find_free_base_port, is_port_free
from tests.node.conftest import CHAIN_ID, LocalCluster, Subscriber, subscribed, until

TOPIC = f"ipchain/{CHAIN_ID}/#"


def stored_records(cluster: LocalCluster, node: int, first: int, last: int) -> list[Record]:
    hub = cluster.node(node).app[EVENT_HUB]
    return [r for h in range(first, last + 1) for r in hub.replay(h)]


def metric_values(text: str) -> dict[str, float]:
    return {sample.name: sample.value for family in text_string_to_metric_families(text)
            for sample in family.samples if not sample.labels}


def transfer_ids(payloads: list[dict[str, Any]]) -> list[str]:
    return [p["tx_id"] for p in payloads
            if p["type"] == "event" and (p["contract"], p["name"]) == ("token", "transferred")]


async def test_subscriber_gets_every_header_and_event_of_200_transfers_in_order(
        mosquitto, local_cluster) -> None:
    async with subscribed(mosquitto.port, TOPIC) as sub:
        # small batches: the 200 transactions span many blocks
        cluster = await local_cluster(4, mqtt={0: mosquitto.url, 1: mosquitto.url},
                                      max_batch_txs=8)
        txs = cluster.transfers(200)
        for k, start in enumerate(range(0, len(txs), 25)):
            await cluster.submit(txs[start:start + 25], node=k % 4)
        await cluster.wait_committed(txs)
        top = cluster.node(0).height
        expected = {n: stored_records(cluster, n, 1, top) for n in (0, 1)}
        await until(lambda: all(len(sub.payloads(node=f"node{n}")) >= len(expected[n])
                                for n in (0, 1)), 15, "every record from node0 and node1")

    assert {p["node"] for _, p in sub.messages} == {"node0", "node1"}, "only configured nodes"
    for n in (0, 1):
        got = sub.payloads(node=f"node{n}")
        assert [p["id"] for p in got] == [r.id for r in expected[n]], "in order, none missing"
        assert got == [r.value for r in expected[n]], "payloads are the stored records"
        assert sorted(transfer_ids(got)) == sorted(tx.id for tx in txs)
        assert [p["height"] for p in got if p["type"] == "block"] == list(range(1, top + 1))
    for topic, payload in sub.messages:
        suffix = "blocks" if payload["type"] == "block" else "events/token/transferred"
        assert topic == f"ipchain/{CHAIN_ID}/{suffix}"
    receipt_of = {tx.id: cluster.node(0).runtime.storage.tx(bytes.fromhex(tx.id)) for tx in txs}
    for payload in sub.payloads("event", "node0"):
        height, index, _ = receipt_of[payload["tx_id"]]
        assert (payload["height"], payload["tx_index"], payload["event_index"]) == (height, index, 0)
    async def published() -> dict | bool:  # counted when the broker's QoS 1 ack comes back
        figures = metric_values(await cluster.get_text(0, "/metrics"))
        return figures["ipchain_mqtt_published_total"] >= len(expected[0]) and figures
    figures = await until(published, 10, "node0's published count to catch up")
    assert figures["ipchain_mqtt_published_total"] == len(expected[0])
    assert figures["ipchain_mqtt_dropped_total"] == 0
    assert "ipchain_mqtt_published_total" not in metric_values(await cluster.get_text(2, "/metrics"))


async def test_broker_outage_consensus_goes_on_publisher_reconnects_and_counts_drops(
        mosquitto, local_cluster) -> None:
    capacity = 40
    sub = Subscriber()
    persistent = {"identifier": "ipchain-test-watcher", "clean_session": False, "into": sub}
    async with subscribed(mosquitto.port, TOPIC, **persistent):
        cluster = await local_cluster(4, mqtt={0: f"{mosquitto.url}?queue={capacity}"},
                                      max_batch_txs=8)
        publisher: MqttPublisher = cluster.node(0).app[MQTT_PUBLISHER]
        before = cluster.transfers(20)
        await cluster.submit(before)
        await cluster.wait_committed(before)
        await until(lambda: len(transfer_ids(sub.payloads())) == 20 and not publisher.queue,
                    10, "the first 20 transfers to arrive")
        await asyncio.to_thread(mosquitto.stop)
    await until(lambda: not publisher.connected, 10, "the publisher to notice the outage")

    outage_start = cluster.node(0).height
    during = cluster.transfers(60)
    for k, start in enumerate(range(0, 60, 15)):
        await cluster.submit(during[start:start + 15], node=k % 4)
    await cluster.wait_committed(during)  # consensus does not wait for the broker
    outage_end = cluster.node(0).height
    missed = stored_records(cluster, 0, outage_start + 1, outage_end)
    assert outage_end > outage_start and len(missed) > capacity
    figures = metric_values(await cluster.get_text(0, "/metrics"))
    assert figures["ipchain_mqtt_connected"] == 0
    assert figures["ipchain_mqtt_queue_records"] == capacity
    assert figures["ipchain_mqtt_dropped_total"] == len(missed) - capacity

    await asyncio.to_thread(mosquitto.start)
    async with subscribed(mosquitto.port, TOPIC, **persistent):
        await until(lambda: publisher.connected and not publisher.queue, 15,
                    "the publisher to reconnect and flush its queue")
        after = cluster.transfers(10)
        await cluster.submit(after)
        await cluster.wait_committed(after)
        await until(lambda: {tx.id for tx in after} <= set(transfer_ids(sub.payloads())), 10,
                    "the transfers made after the outage")

    missed_ids = {r.id for r in missed}
    backlog = [p["id"] for p in sub.payloads() if p["id"] in missed_ids]
    assert backlog == [r.id for r in missed[-capacity:]], "the newest records survive, in order"
    figures = metric_values(await cluster.get_text(0, "/metrics"))
    assert figures["ipchain_mqtt_connections_total"] == 2
    assert figures["ipchain_mqtt_disconnects_total"] == 1
    assert figures["ipchain_mqtt_dropped_total"] == len(missed) - capacity
    assert figures["ipchain_mqtt_connected"] == 1


# -- the publisher's rules, without a broker ---------------------------------------------------
def record(height: int, contract: str = "", name: str = "", chain: str = CHAIN_ID) -> Record:
    """A header record, or (given contract and name) an event record, at `height`."""
    header = Header(height=height, prev_hash=bytes(32), tx_root=bytes(32),
                    state_root=bytes(32), timestamp_ms=1, proposal_timestamp_ms=1)
    block = Block(chain, "node0", header, bytes(32), bytes(32), 1, 1)
    return Record(block, 0, 0, "ab" * 32, Event(contract, name, {})) if contract else Record(block)


async def test_full_queue_drops_the_oldest_record_not_in_flight() -> None:
    publisher = MqttPublisher(BrokerAddress("127.0.0.1", 1, queue_records=4), CHAIN_ID, "node0")
    publisher.offer([record(1), record(2), record(3), record(4)])
    publisher.inflight = 2  # records 1 and 2 are being published
    publisher.offer([record(5), record(6)])
    assert [r.height for r in publisher.queue] == [1, 2, 5, 6]
    assert publisher.dropped == 2
    publisher.inflight = 4
    publisher.offer([record(7)])
    assert [r.height for r in publisher.queue] == [1, 2, 5, 6] and publisher.dropped == 3


async def test_a_broker_that_accepts_then_drops_at_once_still_gets_backoff() -> None:
    """A broker that kicks the client right after CONNACK (an ACL refusal, say) must not
    be redialled every 100 ms for ever: only a session that got records through (or
    lasted) resets the backoff."""
    publisher = MqttPublisher(BrokerAddress("127.0.0.1", 1), CHAIN_ID, "node0",
                              backoff_ms=(100, 800))

    class Accepting:
        async def __aenter__(self) -> "Accepting":
            return self

        async def __aexit__(self, *exc: object) -> None:
            return None

    async def kicked(client: object) -> None:
        raise aiomqtt.MqttError("disconnected by the broker")

    delays: list[int] = []

    async def pause(delay_ms: int) -> None:
        delays.append(delay_ms)
        if len(delays) == 5:
            raise asyncio.CancelledError

    publisher._client = Accepting  # type: ignore[method-assign]
    publisher._publish_until_disconnected = kicked  # type: ignore[method-assign]
    publisher._pause = pause  # type: ignore[method-assign]
    with pytest.raises(asyncio.CancelledError):
        await publisher._run()
    assert delays == [100, 200, 400, 800, 800]
    assert publisher.connections == publisher.disconnects == 5


async def test_a_record_that_cannot_be_encoded_is_dropped_not_published() -> None:
    publisher = MqttPublisher(BrokerAddress("127.0.0.1", 1), CHAIN_ID, "node0")
    unencodable = Record(record(2).block, 0, 0, "ab" * 32,
                         Event("token", "transferred", {"x": object()}))
    publisher.offer([record(1), unencodable, record(3)])
    topics: list[str] = []

    class Client:
        async def publish(self, topic: str, payload: bytes, qos: int) -> None:
            topics.append(topic)

    watcher = asyncio.create_task(asyncio.Event().wait())  # a connection that stays up
    try:
        await publisher._publish_window(Client(), watcher)  # type: ignore[arg-type]
    finally:
        watcher.cancel()
    assert len(topics) == 2 and not publisher.queue
    assert (publisher.published, publisher.dropped) == (2, 1)


@pytest.mark.parametrize("url, expected", [
    ("mqtt://127.0.0.1:1883", BrokerAddress("127.0.0.1", 1883)),
    ("mqtt://broker", BrokerAddress("broker", 1883)),
    ("mqtts://broker", BrokerAddress("broker", 8883, tls=True)),
    ("mqtt://u%40x:p%3Aw@h:1999/alliance?queue=5",
     BrokerAddress("h", 1999, username="u@x", password="p:w", topic_prefix="alliance",
                   queue_records=5)),
])
def test_parse_mqtt_url(url: str, expected: BrokerAddress) -> None:
    assert parse_mqtt_url(url) == expected


@pytest.mark.parametrize("url", ["http://h:1883", "mqtt://", "mqtt://h:99999",
                                 "mqtt://h?queue=0", "mqtt://h?queue=x", "mqtt://h?qos=2",
                                 "mqtt://h/a+b"])
def test_bad_mqtt_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError):
        parse_mqtt_url(url)


def test_topics_escape_wildcards_in_names() -> None:
    event = record(3, "pool", "a/b+c#", chain="chain/x")
    assert topic_for("ipchain", "chain/x", event) == "ipchain/chain_x/events/pool/a_b_c_"
    assert topic_for("ipchain", "local", record(3)) == "ipchain/local/blocks"


def test_watch_prints_each_record_once_unless_asked_for_every_copy() -> None:
    event = record(3, "token", "transferred")
    copy_from_node1 = json.dumps({**event.value, "node": "node1"}).encode()
    for every_copy, printed in ((False, 2), (True, 3)):
        out = io.StringIO()
        printer = watch.Printer(out, as_json=False, every_copy=every_copy)
        for payload in (event.payload, copy_from_node1, b"not json"):
            printer.show("ipchain/x/events/token/transferred", payload)
        lines = out.getvalue().splitlines()
        assert len(lines) == printed == printer.shown
        assert " event    3:0.0 token/transferred {} tx=abababababababab node=node0" in lines[0]
        assert lines[-1] == "ipchain/x/events/token/transferred not json"


# -- the CLI: `ipchain up --mqtt`, `ipchain watch`, `ipchain down` (real processes) ----------
@pytest.mark.cluster
async def test_up_with_embedded_broker_watch_and_down(tmp_path) -> None:
    pytest.importorskip("amqtt", reason="the embedded broker is amqtt (pip install amqtt)")
    data = tmp_path / "data"
    base = find_free_base_port(4)
    up = ["up", "--data-dir", str(data), "--base-port", str(base), "--clients", "0", "--mqtt"]
    down_code = None
    try:
        assert await asyncio.to_thread(cli.main, up) == 0
        urls = {tomllib.loads(p.read_text())["mqtt_url"] for p in data.glob("node*/config.toml")}
        assert len(urls) == 1 and broker.configured_url(data) in urls, "every node publishes"
        url = urls.pop()
        once, every, ready = io.StringIO(), io.StringIO(), [asyncio.Event(), asyncio.Event()]
        watchers = [asyncio.create_task(watch.watch(url, timeout_s=30, as_json=True, out=out,
                                                    every_copy=every_copy, ready=event))
                    for out, every_copy, event in ((once, False, ready[0]),
                                                   (every, True, ready[1]))]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ready)), 10)
        submit = ["submit", "token.transfer", "--data-dir", str(data), "--org", "cnipa",
                  "--args", json.dumps({"to": "north-university", "amount": 5}), "--wait"]
        assert await asyncio.to_thread(cli.main, submit) == 0

        def ours(out: io.StringIO) -> list[dict[str, Any]]:
            records = [json.loads(line) for line in out.getvalue().splitlines()]
            event = [r for r in records if r.get("data", {}).get("source") == "cnipa"]
            return event + [r for r in records if event and r["type"] == "block"
                            and r["height"] == event[0]["height"]]

        await until(lambda: len(ours(every)) == 8, 15, "all 4 nodes' copies of our records")
        for task in watchers:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        event, header = ours(once)  # shown once each although 4 nodes published them
        assert {r["node"] for r in ours(every)} == {"node0", "node1", "node2", "node3"}
        assert header["event_count"] == 1 and header["tx_count"] == 1
        assert (event["id"], event["contract"], event["name"]) == \
            (f"{header['height']}:0.0", "token", "transferred")
        assert event["data"] == {"amount": 5, "asset": "BPC", "source": "cnipa",
                                 "target": "north-university"}
    finally:
        if Cluster.exists(data):
            down_code = await asyncio.to_thread(cli.main, ["down", "--data-dir", str(data)])
        broker.stop_embedded(data)  # in case `up` failed after starting it
    assert down_code == 0
    port = int(url.rsplit(":", 1)[1])
    assert not broker.is_running(data) and is_port_free(port)
    assert broker.start_embedded(data) == url, "a restart brings the broker back on its port"
    assert broker.stop_embedded(data) and not broker.is_running(data)
