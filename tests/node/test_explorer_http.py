"""The explorer's HTTP side: the page and its files are served (from the package), the
cluster map and genesis are public, and CORS headers go on reads only, for the
configured origins, never on /admin, /p2p or writes."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from node.config import ConfigError, _origins
from node.explorer import STATIC_DIR, add_explorer_routes

GENESIS = {"chain_id": "ipchain-test", "validators": [{"index": 0, "public_key": "00" * 32}]}


def fake_cfg(origins: tuple[str, ...]) -> SimpleNamespace:
    peers = [SimpleNamespace(id="node1", index=1, url="http://127.0.0.1:9001")]
    return SimpleNamespace(node_id="node0", index=0, host="127.0.0.1", port=9000, peers=peers,
                           chain_id="ipchain-test", genesis=GENESIS,
                           cors_allowed_origins=origins)


async def ok(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)  # headers leave here, before any handler could add more
    await response.write(b"data: {}\n\n")
    return response


async def client_for(origins: tuple[str, ...]) -> TestClient:
    app = web.Application()
    app.router.add_get("/v1/events", stream)
    for path in ("/v1/status", "/admin/faults", "/p2p/blocks"):
        app.router.add_get(path, ok)
    app.router.add_post("/v1/tx", ok)
    add_explorer_routes(app, fake_cfg(origins))
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def test_the_page_and_its_files_are_served() -> None:
    client = await client_for(("*",))
    try:
        page = await client.get("/")
        assert page.status == 200 and "/explorer/app.js" in await page.text()
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
        for name in ("app.js", "verify.js", "vendor/noble-ed25519/index.js",
                     "vendor/noble-hashes/sha2.js", "vendor/noble-ed25519/LICENSE"):
            assert (await client.get(f"/explorer/{name}")).status == 200, name
        assert (await client.get("/explorer/../explorer.py")).status in (403, 404)
        peers = await (await client.get("/v1/peers")).json()
        assert [n["url"] for n in peers["nodes"]] == ["http://127.0.0.1:9000",
                                                      "http://127.0.0.1:9001"]
        assert (await (await client.get("/v1/genesis")).json()) == GENESIS
    finally:
        await client.close()


async def test_every_module_the_page_imports_is_shipped() -> None:
    text = "".join(p.read_text() for p in STATIC_DIR.glob("*.js"))
    imported = {line.split('"')[1] for line in text.splitlines()
                if line.startswith("import ") and '"' in line}
    assert imported and all((STATIC_DIR / name).is_file() for name in imported), imported


@pytest.mark.parametrize("origins,origin,expected", [
    (("*",), "http://elsewhere.example", "*"),
    (("https://a.example",), "https://a.example", "https://a.example"),
    (("https://a.example",), "https://b.example", None),
    ((), "https://a.example", None),
    ((), "http://127.0.0.1:9001", "http://127.0.0.1:9001"),  # a node of the cluster itself
])
async def test_reads_carry_cors_for_allowed_origins(origins, origin, expected) -> None:
    client = await client_for(origins)
    try:
        for path in ("/v1/status", "/v1/peers", "/v1/events"):
            resp = await client.get(path, headers={"Origin": origin})
            assert resp.headers.get("Access-Control-Allow-Origin") == expected, path
        pre = await client.options("/v1/status", headers={
            "Origin": origin, "Access-Control-Request-Method": "GET"})
        assert pre.status == (204 if expected else 403)
        if expected:
            assert pre.headers["Access-Control-Allow-Methods"] == "GET, HEAD"
    finally:
        await client.close()


async def test_admin_peer_and_write_endpoints_never_carry_cors() -> None:
    client = await client_for(("*",))
    try:
        for method, path in (("GET", "/admin/faults"), ("GET", "/p2p/blocks"),
                             ("POST", "/v1/tx")):
            resp = await client.request(method, path, headers={"Origin": "https://x.example"})
            assert resp.status == 200 and "Access-Control-Allow-Origin" not in resp.headers
    finally:
        await client.close()


def test_config_refuses_a_bad_origin_list() -> None:
    assert _origins({}, "c.toml") == ("*",)
    assert _origins({"cors_allowed_origins": ["https://a.example/"]}, "c.toml") == (
        "https://a.example",)
    with pytest.raises(ConfigError, match="cors_allowed_origins"):
        _origins({"cors_allowed_origins": "*"}, "c.toml")
    assert Path(STATIC_DIR / "index.html").is_file()
