"""Hostile input at the HTTP API (issue 17, B3/B5): every bad input found by the robustness
pass gets a 4xx with the JSON error body, none is half-applied, and a batch's work is
bounded before it is decoded. One in-process validator (n=1, it commits on its own),
served by aiohttp's test server."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import AsyncIterator

import msgpack
import nacl.signing
import pytest
from aiohttp.test_utils import TestClient, TestServer

from contracts.tx import sign_tx
from node.api import build_app
from node.limits import ANON_PEER_BODY_BYTES, MAX_CLIENT_BATCH_TXS, MAX_PEER_ITEMS
from node.peer_auth import sign_request
from node.runtime import Runtime
from tests.node.conftest import LocalCluster

MSGPACK = {"Content-Type": "application/msgpack"}


class Node:
    def __init__(self, cluster: LocalCluster, runtime: Runtime, client: TestClient) -> None:
        self.cluster, self.runtime, self.client = cluster, runtime, client

    def transfer(self):
        return self.cluster.transfers(1)[0]

    async def call(self, method: str, path: str, **kwargs) -> tuple[int, dict, dict]:
        resp = await self.client.request(method, path, **kwargs)
        text = (await resp.read()).decode(errors="replace")
        try:
            body = json.loads(text) if text else {}
        except ValueError:
            body = {"raw": text}
        return resp.status, body, dict(resp.headers)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    cluster = LocalCluster(tmp_path, 1, {}, {})
    runtime = Runtime(cluster.config(0))
    await runtime.start()
    client = TestClient(TestServer(build_app(runtime), host="127.0.0.1"))
    await client.start_server()
    try:
        yield Node(cluster, runtime, client)
    finally:
        await client.close()
        await runtime.stop()


def nested_json(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def admin(node: Node) -> dict[str, str]:
    return {"Authorization": f"Bearer {node.runtime.cfg.admin_token}"}


# (what, method, path, request kwargs, status, error code) — issue 17's B5 list, in order
def b5_cases(node: Node) -> list[tuple]:
    tx = node.transfer()
    surrogate = json.dumps(tx.to_json()).replace('"token.transfer"', '"\\ud800"').encode()
    bogus = {"Content-Type": "application/json; charset=x-bogus"}
    return [
        ("height 2^63", "GET", "/v1/blocks/9223372036854775808", {}, 400, "BadArguments"),
        ("height 10^20", "GET", "/v1/blocks/" + "9" * 20, {}, 400, "BadArguments"),
        ("height in superscript", "GET", "/v1/blocks/²", {}, 400, "BadArguments"),
        ("height in Arabic-Indic", "GET", "/v1/blocks/١", {}, 400, "BadArguments"),
        ("from in superscript", "GET", "/p2p/blocks?from=²", {}, 400, "BadArguments"),
        ("to past 2^63", "GET", "/p2p/blocks?from=1&to=9223372036854775808", {}, 400,
         "BadArguments"),
        ("JSON nested 100k deep, one tx", "POST", "/v1/tx", {"data": nested_json(100_000)},
         400, "MalformedJSON"),
        ("JSON nested 100k deep, batch", "POST", "/v1/txs", {"data": nested_json(100_000)},
         400, "MalformedJSON"),
        ("lone surrogate", "POST", "/v1/tx", {"data": surrogate}, 400, "BadTransaction"),
        ("charset=x-bogus", "POST", "/v1/tx", {"data": b"{}", "headers": bogus}, 415,
         "BadCharset"),
        ("undecodable bytes", "POST", "/v1/tx", {"data": b'{"a": "\xff"}'}, 400,
         "MalformedText"),
        ("admin rule id in superscript", "DELETE", "/admin/faults/²",
         {"headers": admin(node)}, 400, "BadArguments"),
        ("admin JSON nested 100k deep", "POST", "/admin/faults",
         {"data": nested_json(100_000), "headers": admin(node)}, 400, "BadFaultSpec"),
        ("admin charset=x-bogus", "POST", "/admin/faults",
         {"data": b"{}", "headers": {**admin(node), **bogus}}, 400, "BadFaultSpec"),
        ("SSE from_height in superscript", "GET", "/v1/events?from_height=²", {}, 400,
         "BadArguments"),
        ("SSE Last-Event-ID in Arabic-Indic", "GET", "/v1/events?last_event_id=١", {}, 400,
         "BadArguments"),
    ]


async def test_every_input_on_the_b5_list_gets_a_json_4xx(node: Node) -> None:
    for what, method, path, kwargs, status, code in b5_cases(node):
        got, body, _ = await node.call(method, path, **kwargs)
        assert (got, body.get("error", {}).get("code")) == (status, code), (what, body)
        assert body["error"]["message"], what
    got, body, _ = await node.call("GET", "/v1/blocks/0")
    assert got == 200 and body["height"] == 0  # ASCII digits still work


async def test_a_bad_timeout_refuses_the_tx_before_admitting_it(node: Node) -> None:
    tx = node.transfer()
    got, body, _ = await node.call("POST", "/v1/tx?wait=commit&timeout_ms=²", json=tx.to_json())
    assert (got, body["error"]["code"]) == (400, "BadArguments")
    assert bytes.fromhex(tx.id) not in node.runtime.mempool
    got, body, _ = await node.call("GET", f"/v1/tx/{tx.id}")
    assert body["status"] == "unknown"


async def test_floats_and_ext_types_in_a_msgpack_batch_are_that_items_refusal(node: Node) -> None:
    good = node.transfer()
    with_float = {**good.to_json(), "nonce": 1.5}
    items = [good.to_bytes(), with_float, msgpack.ExtType(5, b"x"), 2.5, {"k": [1.0]}]
    body = msgpack.packb(items, use_bin_type=True)
    got, answer, _ = await node.call("POST", "/v1/txs", data=body, headers=MSGPACK)
    assert got == 202, answer
    assert answer["accepted"] == [good.id]
    assert [(r["index"], r["error"]["code"]) for r in answer["rejected"]] == [
        (1, "BadTransaction"), (2, "BadTransaction"), (3, "BadTransaction"),
        (4, "BadTransaction")]


async def test_a_batch_over_the_cap_is_refused_from_its_header(node: Node) -> None:
    junk = msgpack.packb([0] * (MAX_CLIENT_BATCH_TXS + 1))
    got, body, _ = await node.call("POST", "/v1/txs", data=junk, headers=MSGPACK)
    assert (got, body["error"]["code"]) == (413, "TooManyItems")
    million = b"\xdd" + (1_000_000).to_bytes(4, "big") + b"\xc0" * 1_000_000
    got, body, _ = await node.call("POST", "/v1/txs", data=million, headers=MSGPACK)
    assert (got, body["error"]["code"]) == (413, "TooManyItems")
    many = json.dumps({"txs": [{}] * (MAX_CLIENT_BATCH_TXS + 1)}).encode()
    got, body, _ = await node.call("POST", "/v1/txs", data=many)
    assert (got, body["error"]["code"]) == (413, "TooManyItems")
    empties = json.dumps({"txs": [{"a": 0}] * 300_000}).encode()  # counted before parsing
    got, body, _ = await node.call("POST", "/v1/txs", data=empties)
    assert (got, body["error"]["code"]) == (413, "TooManyItems")


async def test_a_405_keeps_its_allow_header(node: Node) -> None:
    got, body, headers = await node.call("PUT", "/v1/tx", data=b"{}")
    assert (got, body["error"]["code"]) == (405, "MethodNotAllowed")
    assert "POST" in headers["Allow"]


async def test_non_canonical_msgpack_is_refused_and_canonical_is_found_by_its_hash(
        node: Node) -> None:
    tx = node.transfer()
    value = msgpack.unpackb(tx.to_bytes(), raw=False)
    reordered = msgpack.packb(dict(reversed(list(value.items()))), use_bin_type=True)
    assert reordered != tx.to_bytes()
    got, body, _ = await node.call("POST", "/v1/tx", data=reordered, headers=MSGPACK)
    assert (got, body["error"]["code"]) == (400, "NonCanonical")
    got, body, _ = await node.call("POST", "/v1/txs",
                                   data=msgpack.packb([reordered], use_bin_type=True),
                                   headers=MSGPACK)
    assert [r["error"]["code"] for r in body["rejected"]] == ["NonCanonical"]
    sent = tx.to_bytes()
    got, body, _ = await node.call("POST", "/v1/tx", data=sent, headers=MSGPACK)
    assert got == 202 and body["id"] == hashlib.sha256(sent).hexdigest()


async def test_a_sender_outside_every_organisation_is_refused_at_admission(node: Node) -> None:
    stranger = nacl.signing.SigningKey(b"\x07" * 32)
    tx = sign_tx(stranger, node.cluster.genesis["chain_id"], 0, "token.transfer",
                 {"to": "org-a", "amount": 1})
    got, body, _ = await node.call("POST", "/v1/tx", json=tx.to_json())
    assert (got, body["error"]["code"]) == (400, "UnknownAccount")
    assert bytes.fromhex(tx.id) not in node.runtime.mempool


async def test_large_peer_bodies_need_a_signed_validator_envelope(node: Node) -> None:
    body = msgpack.packb([b"\x00" * 1024] * 100, use_bin_type=True)
    assert len(body) > ANON_PEER_BODY_BYTES
    got, answer, _ = await node.call("POST", "/p2p/messages", data=body, headers=MSGPACK)
    assert (got, answer["error"]["code"]) == (401, "PeerAuthRequired")
    outsider = nacl.signing.SigningKey(b"\x09" * 32)
    chain = node.cluster.genesis["chain_id"]
    forged = sign_request(outsider, chain, 0, "POST", "/p2p/messages", body)
    got, answer, _ = await node.call("POST", "/p2p/messages", data=body,
                                     headers={**MSGPACK, **forged})
    assert (got, answer["error"]["code"]) == (401, "PeerAuthFailed")
    key = node.cluster.node_keys[0]
    swapped = sign_request(key, chain, 0, "POST", "/p2p/messages", body[:-1] + b"\x01")
    got, answer, _ = await node.call("POST", "/p2p/messages", data=body,
                                     headers={**MSGPACK, **swapped})
    assert (got, answer["error"]["code"]) == (401, "PeerAuthFailed")
    genuine = sign_request(key, chain, 0, "POST", "/p2p/messages", body)
    got, _, _ = await node.call("POST", "/p2p/messages", data=body, headers={**MSGPACK, **genuine})
    assert got == 202
    small = msgpack.packb([b"\x00" * 16], use_bin_type=True)  # anyone may send a small one
    got, _, _ = await node.call("POST", "/p2p/messages", data=small, headers=MSGPACK)
    assert got == 202


async def test_peer_bodies_are_capped_in_items(node: Node) -> None:
    key = node.cluster.node_keys[0]
    body = b"\xdd" + (16_000_000).to_bytes(4, "big") + b"\xc4\x00" * 16_000
    headers = {**MSGPACK, **sign_request(key, node.cluster.genesis["chain_id"], 0, "POST",
                                         "/p2p/messages", body)}
    got, answer, _ = await node.call("POST", "/p2p/messages", data=body, headers=headers)
    assert (got, answer["error"]["code"]) == (413, "TooManyItems")
    assert MAX_PEER_ITEMS < 16_000_000


async def test_block_reads_from_strangers_are_rate_limited(node: Node) -> None:
    statuses = [(await node.call("GET", "/p2p/blocks?from=1&to=1"))[0] for _ in range(30)]
    assert statuses[0] == 200 and 429 in statuses
    key = node.cluster.node_keys[0]
    path = "/p2p/blocks?from=1&to=1"
    signed = sign_request(key, node.cluster.genesis["chain_id"], 0, "GET", path, b"")
    got, _, _ = await node.call("GET", path, headers=signed)
    assert got == 200  # validators draw from their own bucket
