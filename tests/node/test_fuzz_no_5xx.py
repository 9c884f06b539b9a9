"""No input makes the node answer 5xx (issue 17, "Every bad input is a 4xx"): hypothesis
draws raw bodies, paths and query strings against the in-process app (one validator,
aiohttp's test client) and every answer must be below 500 with a JSON error body when
it is an error. The example count is printed (run with -s to see it)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import msgpack
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings, strategies as st

from node.api import build_app
from node.runtime import Runtime
from tests.node.conftest import LocalCluster

EXAMPLES = 1500
ROUTES = [("POST", "/v1/tx"), ("POST", "/v1/txs"), ("GET", "/v1/tx/{}"),
          ("GET", "/v1/blocks/{}"), ("GET", "/v1/status"), ("GET", "/v1/evidence"),
          ("GET", "/v1/proof/tx/{}"), ("GET", "/v1/state/{}"), ("GET", "/v1/state/{}/{}"),
          ("GET", "/v1/events"), ("GET", "/openapi.json"), ("GET", "/metrics"),
          ("POST", "/p2p/messages"), ("POST", "/p2p/txs"), ("GET", "/p2p/blocks"),
          ("POST", "/admin/faults"), ("DELETE", "/admin/faults/{}"), ("GET", "/{}")]
NASTY_TEXT = ["", "0", "-1", "²", "١", "9" * 25, "9223372036854775808", "latest", "\ud800",
              "%ED%A0%80", "%00", "..", "a" * 300, "00" * 32, "１２", "1e3", " 1", "0x10"]
QUERY_KEYS = ["wait", "timeout_ms", "from", "to", "from_height", "last_event_id", "height"]

segment = st.one_of(st.sampled_from(NASTY_TEXT), st.text(max_size=20))
json_value = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=4), max_leaves=20)
msgpack_value = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats() | st.binary(
        max_size=40) | st.text(max_size=10) | st.builds(msgpack.ExtType, st.integers(0, 127),
                                                        st.binary(max_size=8)),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                 max_size=4), max_leaves=20)
body = st.one_of(
    st.binary(max_size=200),
    json_value.map(lambda v: json.dumps(v).encode()),
    json_value.map(lambda v: json.dumps({"txs": [v, v]}).encode()),
    msgpack_value.map(lambda v: msgpack.packb(v, use_bin_type=True)),
    st.lists(msgpack_value, max_size=5).map(lambda v: msgpack.packb(v, use_bin_type=True)),
    st.integers(1, 5000).map(lambda d: b"[" * d + b"]" * d),
    st.just(b'{"txs": ["\\ud800"]}'), st.just(b'"\\udfff"'))
content_type = st.sampled_from(["application/json", "application/msgpack", "text/plain",
                                "application/json; charset=x-bogus",
                                "application/json; charset=utf-16", "", "multipart/form-data"])


@st.composite
def requests(draw: st.DrawFn) -> dict:
    method, route = draw(st.sampled_from(ROUTES))
    path = route.format(*(draw(segment) for _ in range(route.count("{}"))))
    query = draw(st.lists(st.tuples(st.sampled_from(QUERY_KEYS), segment), max_size=3))
    if draw(st.integers(0, 9)) == 0:  # now and then the wrong method (405 and its Allow)
        method = draw(st.sampled_from(["GET", "POST", "DELETE", "PUT", "PATCH"]))
    return {"method": method,
            "path": path, "query": query, "body": draw(body),
            "content_type": draw(content_type), "admin": draw(st.booleans())}


def test_no_request_ever_gets_a_5xx(tmp_path: Path) -> None:
    loop = asyncio.new_event_loop()
    cluster = LocalCluster(tmp_path, 1, {}, {})
    runtime = Runtime(cluster.config(0))
    loop.run_until_complete(runtime.start())
    server = TestServer(build_app(runtime), host="127.0.0.1", skip_url_asserts=True)
    client = TestClient(server, loop=loop)  # paths like "//x" are sent as they are
    loop.run_until_complete(client.start_server())
    seen = {"examples": 0, "statuses": {}}

    async def send(req: dict) -> tuple[int, bytes]:
        headers = {"Content-Type": req["content_type"]} if req["content_type"] else {}
        if req["admin"]:
            headers["Authorization"] = f"Bearer {runtime.cfg.admin_token}"
        try:
            async with asyncio.timeout(10):
                resp = await client.request(req["method"], req["path"], params=req["query"],
                                            data=req["body"], headers=headers)
                try:
                    return resp.status, await resp.content.read(2000)
                finally:
                    resp.close()  # an event stream ends here, as a client going away
        except (ValueError, TimeoutError) as exc:  # the client refused to build the URL,
            return -1, repr(exc).encode()  # or a stream (SSE) stayed open: not a 5xx

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(requests())
    def check(req: dict) -> None:
        status, text = loop.run_until_complete(send(req))
        seen["examples"] += 1
        seen["statuses"][status] = seen["statuses"].get(status, 0) + 1
        assert status < 500, (req, status, text)
        if status >= 400 and status != 404 or (status == 404 and text.startswith(b"{")):
            assert json.loads(text)["error"]["code"], (req, text)

    try:
        check()
    finally:
        print(f"\nfuzz examples={seen['examples']} statuses={sorted(seen['statuses'].items())}")
        loop.run_until_complete(client.close())
        loop.run_until_complete(runtime.stop())
        loop.close()
    assert seen["examples"] >= EXAMPLES // 2
