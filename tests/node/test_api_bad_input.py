"""Bad input at the HTTP API: every case gets a 4xx with {"error": {"code", "message"}},
nothing is half-applied, and the cluster keeps committing (issue: the 4-node cluster,
"Bad input")."""

from __future__ import annotations

import json

import msgpack
import pytest

from consensus.messages import Commit, Signed, encode as wire_encode
from contracts.tx import sign_tx


async def post(cluster, path: str, *, node: int = 0, **kwargs) -> tuple[int, dict]:
    async with cluster.session.post(cluster.url(node) + path, **kwargs) as resp:
        text = await resp.text()
        return resp.status, (json.loads(text) if text else {})


async def get(cluster, path: str, node: int = 0) -> tuple[int, dict]:
    async with cluster.session.get(cluster.url(node) + path) as resp:
        return resp.status, await resp.json()


def signed(cluster, op: str, args: dict, *, org: str = "org-a", chain: str | None = None,
           nonce: int | None = None):
    chain = cluster.genesis["chain_id"] if chain is None else chain
    if nonce is None:
        nonce = cluster.nonces[org]
        cluster.nonces[org] += 1
    return sign_tx(cluster.keys[org], chain, nonce, op, args)


def flipped_signature(tx) -> dict:
    value = tx.to_json()
    value["sig"] = ("00" if value["sig"][:2] != "00" else "01") + value["sig"][2:]
    return value


def cases(cluster) -> list[tuple[str, dict, int, str]]:
    """(what, request kwargs, status, error code) for POST /v1/tx."""
    good = signed(cluster, "token.transfer", {"to": "org-b", "amount": 1})
    wrong_type = {**good.to_json(), "nonce": "seven"}
    with_float = json.dumps(good.to_json()).replace('"amount": 1', '"amount": 1.5')
    return [
        ("malformed JSON", {"data": b"{not json"}, 400, "MalformedJSON"),
        ("JSON that is not a tx", {"json": [1, 2, 3]}, 400, "BadTransaction"),
        ("malformed msgpack", {"data": b"\xc1\xc1\xc1",
                               "headers": {"Content-Type": "application/msgpack"}},
         400, "BadTransaction"),
        ("wrong field type", {"json": wrong_type}, 400, "BadTransaction"),
        ("a float", {"data": with_float.encode()}, 400, "BadTransaction"),
        ("bad signature", {"json": flipped_signature(good)}, 400, "BadSignature"),
        ("wrong chain", {"json": signed(cluster, "token.transfer", {"to": "org-b", "amount": 1},
                                        chain="other-chain").to_json()}, 400, "WrongChain"),
        ("unknown op", {"json": signed(cluster, "token.print_money", {}).to_json()},
         400, "UnknownOp"),
        ("body over the limit", {"data": b"x" * (8 * 1024 * 1024 + 1)}, 413, "BodyTooLarge"),
    ]


async def test_each_bad_transaction_gets_a_named_4xx_and_the_cluster_keeps_committing(
        local_cluster):
    cluster = await local_cluster(4)
    supply_before = (await get(cluster, "/v1/state/supply"))[1]["bpc"]
    for what, kwargs, status, code in cases(cluster):
        got_status, body = await post(cluster, "/v1/tx", node=1, **kwargs)
        assert (got_status, body.get("error", {}).get("code")) == (status, code), what
        assert body["error"]["message"], what

    txs = cluster.transfers(12)
    await cluster.submit(txs, node=2)
    await cluster.wait_committed(txs)
    assert (await get(cluster, "/v1/state/supply"))[1]["bpc"] == supply_before
    roots = {(await get(cluster, "/v1/status", node=i))[1]["state_root"] for i in range(4)}
    assert len(roots) == 1


async def test_a_reused_nonce_is_refused_and_changes_nothing(local_cluster):
    cluster = await local_cluster(4)
    first = signed(cluster, "token.transfer", {"to": "org-b", "amount": 5}, nonce=0)
    status, body = await post(cluster, "/v1/tx?wait=commit", json=first.to_json())
    assert (status, body["status"]) == (200, "committed")
    root = (await get(cluster, "/v1/status"))[1]["state_root"]
    again = signed(cluster, "token.transfer", {"to": "org-c", "amount": 7}, nonce=0)
    status, body = await post(cluster, "/v1/tx", node=3, json=again.to_json())
    assert (status, body["error"]["code"]) == (400, "NonceUsed")
    assert (await get(cluster, "/v1/status"))[1]["state_root"] == root
    status, body = await post(cluster, "/v1/tx", json=first.to_json())  # same tx again
    assert (status, body["status"]) == (200, "committed")  # its receipt, not a second copy


async def test_a_batch_refuses_only_its_bad_items(local_cluster):
    cluster = await local_cluster(4)
    good = cluster.transfers(3)
    bad = flipped_signature(signed(cluster, "token.transfer", {"to": "org-d", "amount": 1}))
    body = {"txs": [good[0].to_json(), {"chain": 1}, bad, good[1].to_json(), good[2].to_json()]}
    status, answer = await post(cluster, "/v1/txs", json=body)
    assert status == 202
    assert answer["accepted"] == [tx.id for tx in good]
    assert [(r["index"], r["error"]["code"]) for r in answer["rejected"]] == [
        (1, "BadTransaction"), (2, "BadSignature")]
    await cluster.wait_committed(good)


@pytest.mark.parametrize("path, status, code", [
    ("/v1/tx/not-hex", 400, "BadId"),
    ("/v1/blocks/abc", 400, "BadArguments"),
    ("/v1/blocks/999999", 404, "NotFound"),
    ("/v1/state/no-such-query", 404, "NotFound"),
    ("/v1/state/balances/nobody", 404, "NotFound"),
    ("/v1/proof/tx/" + "00" * 32, 404, "NotFound"),
])
async def test_bad_reads_get_named_errors(local_cluster, path, status, code):
    cluster = await local_cluster(1)
    got_status, body = await get(cluster, path)
    assert (got_status, body["error"]["code"]) == (status, code)


async def test_forged_and_malformed_peer_messages_are_dropped_and_counted(local_cluster):
    cluster = await local_cluster(4)
    runtime = cluster.node(0).runtime
    forged = Signed(Commit(0, 1, b"\x01" * 32), 2, b"\x02" * 64)  # "from" replica 2
    unknown = Signed(Commit(0, 1, b"\x01" * 32), 9, b"\x02" * 64)  # no such replica
    body = msgpack.packb([wire_encode(forged), wire_encode(unknown), b"junk"],
                         use_bin_type=True)
    status, _ = await post(cluster, "/p2p/messages", data=body,
                           headers={"Content-Type": "application/msgpack"})
    assert status == 202
    status, answer = await post(cluster, "/p2p/messages", data=b"\xc1",
                                headers={"Content-Type": "application/msgpack"})
    assert (status, answer["error"]["code"]) == (400, "MalformedMsgpack")
    txs = cluster.transfers(8)
    await cluster.submit(txs, node=1)
    await cluster.wait_committed(txs)
    assert runtime.replica.stats["dropped_bad_signature"] >= 2
    assert runtime.counters["peer_message_malformed"] >= 1
