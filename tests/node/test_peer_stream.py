"""Peer traffic over WebSockets (node/peer_stream.py): a cluster's consensus messages and
relayed transactions travel in stream frames, a stream opens only with a validator's MAC
envelope, and a frame whose MAC is wrong closes the stream with an alarm and delivers
nothing."""

from __future__ import annotations

import asyncio

import aiohttp
import msgpack
import pytest

from node.peer_auth import mac_request, pair_keys
from node.peer_stream import STREAM_PATH, frame_mac
from tests.node.conftest import LocalCluster, until


def stream_headers(cluster: LocalCluster, sender: int, receiver: int, kind: str
                   ) -> tuple[dict[str, str], bytes]:
    key = pair_keys(cluster.node_keys[sender], sender,
                    [bytes(k.verify_key) for k in cluster.node_keys],
                    cluster.genesis["chain_id"])[receiver]
    return mac_request(key, cluster.genesis["chain_id"], sender, "GET", STREAM_PATH + kind,
                       b""), key


async def test_consensus_and_relayed_transactions_travel_in_stream_frames(local_cluster) -> None:
    cluster = await local_cluster(4)
    txs = cluster.transfers(40)
    await cluster.submit(txs[:20], node=1)
    await cluster.submit(txs[20:], node=2)
    await cluster.wait_committed(txs)
    for i in range(4):
        counters = cluster.node(i).runtime.counters
        assert counters["peer_streams_opened"] >= 3, (i, counters)
        assert counters["peer_stream_frames_received"] > 0, (i, counters)
        assert counters["peer_stream_frame_refused"] == 0, (i, counters)
    metrics = await cluster.get_text(0, "/metrics")
    assert 'ipchain_node_events_total{event="peer_stream_frames_received"}' in metrics


async def test_a_stream_without_a_mac_envelope_is_refused(local_cluster) -> None:
    cluster = await local_cluster(4)
    assert cluster.session is not None
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await cluster.session.ws_connect(cluster.url(0) + STREAM_PATH + "messages")
    assert refused.value.status == 401
    headers, _ = stream_headers(cluster, 1, 0, "nonsense")
    with pytest.raises(aiohttp.WSServerHandshakeError) as unknown:
        await cluster.session.ws_connect(cluster.url(0) + STREAM_PATH + "nonsense",
                                         headers=headers)
    assert unknown.value.status == 404


async def test_a_frame_with_a_wrong_mac_closes_the_stream_and_delivers_nothing(
        local_cluster) -> None:
    cluster = await local_cluster(4)
    assert cluster.session is not None
    counters = cluster.node(0).runtime.counters
    headers, key = stream_headers(cluster, 1, 0, "messages")
    stream_id = bytes.fromhex(headers["X-Ipchain-Mac"])
    body = msgpack.packb([b"not a consensus message"], use_bin_type=True)
    ws = await cluster.session.ws_connect(cluster.url(0) + STREAM_PATH + "messages",
                                          headers=headers)
    malformed = counters["peer_message_malformed"]
    await ws.send_bytes(frame_mac(key, stream_id, 0, body) + body)  # good: handed on
    await until(lambda: counters["peer_message_malformed"] == malformed + 1, 5.0,
                "the well-MACed frame reached the node")
    await ws.send_bytes(frame_mac(key, stream_id, 0, body) + body)  # replayed number
    closing = await ws.receive(timeout=5.0)
    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert ws.close_code == aiohttp.WSCloseCode.POLICY_VIOLATION
    assert counters["peer_stream_frame_refused"] == 1
    assert counters["peer_message_malformed"] == malformed + 1
    await ws.close()


async def test_a_stopping_node_closes_the_streams_its_peers_hold(local_cluster) -> None:
    """aiohttp's graceful stop waits for every running handler: a stream left open held
    a SIGTERMed node for its whole shutdown timeout (the fault runner's stop failed)."""
    cluster = await local_cluster(4)
    txs = cluster.transfers(8)
    await cluster.submit(txs, node=0)
    await cluster.wait_committed(txs)

    def streams_to_node1() -> list:
        return [link.streams[path] for i in (0, 2, 3)
                for link in [cluster.node(i).runtime.transport.links[1]]
                for path in link.streams]
    await until(lambda: any(s.ws is not None and not s.ws.closed for s in streams_to_node1()),
                5.0, "peers hold streams to node1")
    await cluster.node(1).app.shutdown()
    await until(lambda: all(s.ws is None or s.ws.closed for s in streams_to_node1()), 3.0,
                "every peer's stream to node1 closed by its shutdown")


async def test_frames_sent_from_several_tasks_at_once_all_arrive(local_cluster) -> None:
    """Two lanes of one link may share a stream: frame numbers must reach the peer in
    the order they were taken, or the peer refuses the stream."""
    cluster = await local_cluster(4)
    counters = cluster.node(0).runtime.counters
    stream = cluster.node(1).runtime.transport.links[0].streams["/p2p/messages"]
    body = msgpack.packb([b"not a consensus message"], use_bin_type=True)
    malformed = counters["peer_message_malformed"]

    async def lane() -> list[bool]:
        return [await stream.send(body) for _ in range(40)]
    sent = await asyncio.gather(lane(), lane(), lane())
    assert all(ok for results in sent for ok in results)
    await until(lambda: counters["peer_message_malformed"] >= malformed + 120, 5.0,
                "all 120 frames handed on")
    assert counters["peer_stream_frame_refused"] == 0
