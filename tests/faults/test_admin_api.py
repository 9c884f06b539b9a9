"""The admin API of a real node app (Runtime + build_app, served on loopback): closed
without the node's admin token, JSON errors, and install / inspect / clear working."""

from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from node.api import build_app
from node.config import load_config
from node.admin import FAULTS, _refusal, is_loopback
from node.runtime import Runtime
from ipchain.cluster.manager import Cluster


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[tuple[TestClient, Runtime]]:
    """node0 of a freshly written 4-node cluster, served in-process (not started as a
    validator: the admin API needs only the app and the runtime's hooks)."""
    cluster = Cluster.create(tmp_path / "data", 4, 40_000, 0)
    runtime = Runtime(load_config(cluster.config_path(0)))
    client = TestClient(TestServer(build_app(runtime), host="127.0.0.1"))
    await client.start_server()
    try:
        yield client, runtime
    finally:
        await client.close()
        runtime.storage.close()


def bearer(runtime: Runtime, token: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token if token is not None else runtime.cfg.admin_token}"}


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer wrong-token"}, {"Authorization": "Basic abc"},
    {"Authorization": "Bearer "}], ids=["none", "wrong", "basic", "empty"])
async def test_admin_refuses_requests_without_the_token(node, method: str,
                                                        headers: dict[str, str]) -> None:
    client, runtime = node
    resp = await client.request(method, "/admin/faults", headers=headers,
                                json={"rules": [{"action": "drop"}]})
    assert resp.status == 401
    body = await resp.json()
    assert body["error"]["code"] == "Unauthorized"
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert runtime.transport.outbound_filter is None  # nothing was installed


async def test_admin_installs_inspects_and_clears_with_the_token(node) -> None:
    client, runtime = node
    resp = await client.post("/admin/faults", headers=bearer(runtime), json={
        "seed": 7, "rules": [{"action": "drop", "probability": 0.2, "kinds": ["PP", "C"]},
                             {"action": "delay", "delay_ms": 50, "jitter_ms": 10,
                              "distribution": "uniform"}],
        "partition": [[0, 1, 2], [3]]})
    assert resp.status == 200
    installed = await resp.json()
    assert installed["installed"] == [1, 2]
    assert runtime.transport.outbound_filter is not None and runtime.inbound_filter is not None
    described = await (await client.get("/admin/faults", headers=bearer(runtime))).json()
    assert described["seed"] == 7 and described["partition"] == [[0, 1, 2], [3]]
    assert [r["action"] for r in described["rules"]] == ["drop", "delay"]
    resp = await client.delete("/admin/faults/1", headers=bearer(runtime))
    assert resp.status == 200 and [r["id"] for r in (await resp.json())["faults"]["rules"]] == [2]
    assert (await client.delete("/admin/faults/99", headers=bearer(runtime))).status == 404
    resp = await client.delete("/admin/faults", headers=bearer(runtime))
    assert resp.status == 200 and (await resp.json())["faults"]["active"] is False
    assert runtime.transport.outbound_filter is None and runtime.inbound_filter is None


async def test_admin_rejects_bad_specs_with_a_json_error(node) -> None:
    client, runtime = node
    resp = await client.post("/admin/faults", headers=bearer(runtime),
                             json={"rules": [{"action": "drop", "probability": 3}]})
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["code"] == "BadFaultSpec" and "rules[0].probability" in error["message"]
    resp = await client.post("/admin/faults", headers=bearer(runtime), data=b"{not json")
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "BadFaultSpec"


async def test_the_engine_hangs_off_the_node_app(node) -> None:
    client, runtime = node
    engine = client.server.app[FAULTS]
    assert engine.runtime is runtime and not engine.is_active


class Peer:
    """A mocked connection from `host`."""

    def __init__(self, host: str) -> None:
        self.host = host

    def get_extra_info(self, name: str, default=None):
        return (self.host, 5555) if name == "peername" else default

    def is_closing(self) -> bool:
        return False


def admin_request(host: str, token: str) -> object:
    return make_mocked_request("GET", "/admin/faults", transport=Peer(host),
                               headers={"Authorization": f"Bearer {token}"})


def test_admin_answers_loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("::ffff:127.0.0.1")
    assert not is_loopback("10.1.2.3") and not is_loopback(None)
    assert _refusal(admin_request("127.0.0.1", "t"), "t") is None
    refused = _refusal(admin_request("10.1.2.3", "t"), "t")
    assert refused is not None and refused.status == 403
    monkeypatch.setenv("IPCHAIN_ADMIN_ALLOW_REMOTE", "1")
    assert _refusal(admin_request("10.1.2.3", "t"), "t") is None
    assert _refusal(admin_request("10.1.2.3", "x"), "t").status == 401  # token still needed


def test_empty_admin_token_disables_admin() -> None:
    refused = _refusal(admin_request("127.0.0.1", ""), "")
    assert refused is not None and refused.status == 403
    assert b"AdminDisabled" in refused.body
