"""Load shedding (node/admission.py): the mempool bound follows executed throughput, and
a client submission over it is refused with 503 + Retry-After before its body is read."""

from __future__ import annotations

import collections
from types import SimpleNamespace

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from node.admission import (FLOOR_TXS, MAX_RETRY_AFTER_S, QUEUE_BUDGET_S, RATE_WINDOW_S,
                            AdmissionControl, install)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_bound_is_the_floor_until_blocks_are_executed_then_follows_throughput() -> None:
    clock = FakeClock()
    control = AdmissionControl(max_mempool_txs=50_000, clock=clock)
    assert control.limit_txs() == FLOOR_TXS
    for _ in range(50):  # 50 blocks of 400 txs over 5 s: 4,000 tx/s
        clock.now += RATE_WINDOW_S / 50
        control.note_executed(400)
    assert control.executed_tps() == 4000
    assert control.limit_txs() == int(4000 * QUEUE_BUDGET_S)
    assert control.retry_after_s(control.limit_txs() - 1) is None
    assert control.retry_after_s(control.limit_txs()) >= 1
    clock.now += 2 * RATE_WINDOW_S  # nothing executed lately: back to the floor
    assert control.limit_txs() == FLOOR_TXS
    assert control.retry_after_s(5 * FLOOR_TXS) == MAX_RETRY_AFTER_S  # not minutes


def test_bound_never_exceeds_the_configured_mempool_size() -> None:
    clock = FakeClock()
    control = AdmissionControl(max_mempool_txs=300, clock=clock)
    assert control.limit_txs() == 300
    control.note_executed(1_000_000)
    assert control.limit_txs() == 300
    assert control.retry_after_s(299) is None and control.retry_after_s(300) is not None


async def test_a_full_node_sheds_client_posts_but_not_peer_relays() -> None:
    runtime = SimpleNamespace(cfg=SimpleNamespace(max_mempool_txs=10), listeners=[],
                              mempool={}, counters=collections.Counter())
    reached: list[str] = []

    async def accept(request: web.Request) -> web.Response:
        reached.append(request.path)
        return web.json_response({"accepted": []}, status=202)

    app = web.Application(middlewares=[install(runtime)])
    for path in ("/v1/tx", "/v1/txs", "/p2p/txs"):
        app.router.add_post(path, accept)
    async with TestClient(TestServer(app)) as http:
        assert (await http.post("/v1/txs", data=b"x")).status == 202
        runtime.mempool = {bytes([i]): None for i in range(10)}
        for path in ("/v1/tx", "/v1/txs"):
            answer = await http.post(path, data=b"x")
            assert answer.status == 503
            assert int(answer.headers["Retry-After"]) >= 1
            error = (await answer.json())["error"]
            assert answer.content_type == "application/json" and error["code"] == "MempoolFull"
            assert "(10 transactions pending)" in error["message"]
            assert f"retry in {answer.headers['Retry-After']} s" in error["message"]
        assert (await http.post("/p2p/txs", data=b"x")).status == 202
    assert reached == ["/v1/txs", "/p2p/txs"]
    assert runtime.counters["client_requests_shed"] == 2
    assert len(runtime.listeners) == 1  # it measures executed blocks
