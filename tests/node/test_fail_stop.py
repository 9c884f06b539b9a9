"""The node's error policy (node.engine): a replica or executor exception is fail-stop.

The failed node stops voting and executing, says why in /v1/status and sets `fatal`
(the process then exits non-zero: node.__main__); the other three carry on.
"""

from __future__ import annotations

from consensus import events as ev
from tests.node.conftest import until


async def _status(cluster, i: int) -> dict:
    async with cluster.session.get(cluster.url(i) + "/v1/status") as resp:
        assert resp.status == 200
        return await resp.json()


async def test_a_replica_exception_stops_the_node_and_status_says_why(local_cluster) -> None:
    cluster = await local_cluster(4)
    runtime = cluster.node(1).runtime
    original = runtime.engine.replica.step

    def step(event, now_ms):
        if isinstance(event, ev.RequestsArrived):
            raise KeyError("planted replica bug")
        return original(event, now_ms)

    runtime.engine.replica.step = step
    assert (await _status(cluster, 1))["failure"] is None
    txs = cluster.transfers(8)
    await cluster.submit(txs, node=0)
    await until(runtime.fatal.is_set, 10, "node1 fail-stops")
    status = await _status(cluster, 1)
    assert "replica failed on RequestsArrived" in status["failure"]
    assert "planted replica bug" in status["failure"]
    await cluster.wait_committed(txs, nodes=[0, 2, 3])
    height = runtime.executor.height
    wal = runtime.storage.wal()
    more = cluster.transfers(4)
    await cluster.submit(more, node=0)
    await cluster.wait_committed(more, nodes=[0, 2, 3])
    assert runtime.executor.height == height and runtime.storage.wal() == wal, \
        "a fail-stopped node neither votes nor executes"


async def test_an_executor_exception_stops_the_node_and_status_says_why(local_cluster) -> None:
    cluster = await local_cluster(4)
    runtime = cluster.node(2).runtime

    def decoded(tx_id: bytes):
        raise ZeroDivisionError("planted executor bug")

    runtime.engine.decoded = decoded
    txs = cluster.transfers(8)
    await cluster.submit(txs, node=0)
    await until(runtime.fatal.is_set, 10, "node2 fail-stops")
    status = await _status(cluster, 2)
    assert status["failure"].startswith("executor failed at height 1:")
    assert "planted executor bug" in status["failure"] and status["height"] == 0
    await cluster.wait_committed(txs, nodes=[0, 1, 3])
