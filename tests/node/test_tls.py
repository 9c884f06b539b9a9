"""Bundles from `ipchain net init`, and mutual TLS on the peer link (loopback only)."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import logging
import stat
from pathlib import Path

import pytest
from aiohttp import web

from ipchain.cluster import bundle, tls
from node import tls as node_tls
from node.config import Peer, load_config
from node.transport import Transport

NOW = dt.datetime.now(dt.timezone.utc)


def test_parse_hosts_reads_counts_and_refuses_junk() -> None:
    assert bundle.parse_hosts("10.0.0.1:2, a.example.org,[::1]:3") == [
        ("10.0.0.1", 2), ("a.example.org", 1), ("::1", 3)]
    for bad in ("", "10.0.0.1:0", "host:x", "a b", "10.0.0.1:99"):
        with pytest.raises(bundle.BundleError):
            bundle.parse_hosts(bad)


def test_ports_per_host_count_up_and_never_collide() -> None:
    slots = bundle.plan_nodes(bundle.parse_hosts("h1:2,h2"))
    assert [(s.node_id, s.host, s.api_port, s.p2p_port) for s in slots] == [
        ("node0", "h1", 26600, 26656), ("node1", "h1", 26601, 26657),
        ("node2", "h2", 26600, 26656)]
    with pytest.raises(bundle.BundleError, match="overlap"):
        bundle.plan_nodes([("h", 3)], api_port=100, p2p_port=101)


def test_each_bundle_loads_on_its_own_with_relative_paths_and_private_secrets(
        tmp_path: Path) -> None:
    slots = bundle.plan_nodes(bundle.parse_hosts("10.0.0.1:2,10.0.0.2"))
    inventory = bundle.write_bundles(tmp_path / "net", slots)
    moved = tmp_path / "elsewhere"
    (tmp_path / "net" / "node2").rename(moved)  # a bundle carried to its host alone
    cfg = load_config(moved / "config.toml")
    assert cfg.index == 2 and cfg.data_dir == moved / "data"
    assert cfg.tls is not None and cfg.tls.cert_file == moved / "tls" / "node.pem"
    assert [p.url for p in cfg.peers] == ["https://10.0.0.1:26656", "https://10.0.0.1:26657"]
    assert cfg.admin_token == (moved / "admin.token").read_text().strip()
    for secret in ("node.key", "admin.token", "tls/node.key"):
        assert stat.S_IMODE((moved / secret).stat().st_mode) == 0o600, secret
    assert [n["api_url"] for n in inventory["nodes"]][2] == "http://10.0.0.2:26600"
    with pytest.raises(bundle.BundleError, match="not empty"):
        bundle.write_bundles(tmp_path / "net", slots)


def _files(tmp: Path, name: str, ca: tls.Pem, cert: tls.Pem) -> node_tls.TlsConfig:
    (tmp / f"{name}-ca.pem").write_bytes(ca.cert)
    (tmp / f"{name}.pem").write_bytes(cert.cert)
    (tmp / f"{name}.key").write_bytes(cert.key)
    return node_tls.TlsConfig(tmp / f"{name}-ca.pem", tmp / f"{name}.pem", tmp / f"{name}.key",
                              p2p_port=0)


async def _serve(server_tls: node_tls.TlsConfig, got: list[bytes]) -> tuple[web.AppRunner, int]:
    async def messages(request: web.Request) -> web.Response:
        got.append(await request.read())
        return web.json_response({"accepted": 1})

    app = web.Application()
    app.router.add_post("/p2p/messages", messages)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=node_tls.server_context(server_tls))
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


async def _send_once(client_tls: node_tls.TlsConfig, port: int, got: list[bytes],
                     counters: collections.Counter) -> None:
    transport = Transport((Peer("node0", 0, f"https://127.0.0.1:{port}"),), counters,
                          ssl_context=node_tls.client_context(client_tls))
    await transport.start()
    before = len(got)
    try:
        transport.send(0, b"hello")
        for _ in range(300):  # until delivered or refused (the link retries with backoff)
            if len(got) > before or counters["tls_refused:node0"]:
                break
            await asyncio.sleep(0.02)
    finally:
        await transport.stop()


@pytest.mark.parametrize("stranger", ["foreign", "expired"])
async def test_a_peer_with_a_foreign_or_expired_certificate_is_refused_with_a_log_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, stranger: str) -> None:
    ca = tls.new_ca("ipchain-local", NOW)
    server = _files(tmp_path, "server", ca, tls.issue_node_cert(ca, "ipchain-local", "node0",
                                                                  ["127.0.0.1"], NOW))
    own = _files(tmp_path, "own", ca, tls.issue_node_cert(ca, "ipchain-local", "node1",
                                                           ["127.0.0.1"], NOW))
    if stranger == "foreign":
        other = tls.new_ca("another-cluster", NOW)
        bad = tls.issue_node_cert(other, "another-cluster", "node1", ["127.0.0.1"], NOW)
    else:
        bad = tls.issue_node_cert(ca, "ipchain-local", "node1", ["127.0.0.1"],
                                  NOW - dt.timedelta(days=10), days=1)
    got: list[bytes] = []
    runner, port = await _serve(server, got)
    try:
        counters: collections.Counter = collections.Counter()
        await _send_once(own, port, got, counters)
        assert len(got) == 1 and counters["tls_refused:node0"] == 0
        with caplog.at_level(logging.WARNING, logger="ipchain.transport"):
            refused: collections.Counter = collections.Counter()
            # The stranger trusts our CA (it knows whom it dials) but holds a bad certificate.
            await _send_once(_files(tmp_path, "bad", ca, bad), port, got, refused)
        assert len(got) == 1, "the stranger's message must not arrive"
        assert refused["tls_refused:node0"] >= 1
        assert any("event=peer_tls_refused peer=node0" in r.getMessage() for r in caplog.records)
    finally:
        await runner.cleanup()
