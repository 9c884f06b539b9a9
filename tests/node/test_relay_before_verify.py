"""Admission relays client transactions before checking their signatures (node/runtime.py
`Runtime.admit`): the verdicts, and which of two failing checks names the refusal, stay
what they were, and a forged transaction that went out early is refused by every peer
and never ordered."""

from __future__ import annotations

import asyncio
import time

from contracts.tx import sign_tx


def flipped(tx) -> dict:
    value = tx.to_json()
    value["sig"] = ("00" if value["sig"][:2] != "00" else "01") + value["sig"][2:]
    return value


def signed(cluster, org: str, args: dict):
    nonce = cluster.nonces[org]
    cluster.nonces[org] += 1
    return sign_tx(cluster.keys[org], cluster.genesis["chain_id"], nonce, "token.transfer", args)


async def post_batch(cluster, items: list[dict], node: int = 1) -> dict:
    async with cluster.session.post(cluster.url(node) + "/v1/txs", json={"txs": items}) as resp:
        assert resp.status == 202, await resp.text()
        return await resp.json()


def refused(cluster, i: int, code: str) -> int:
    return cluster.node(i).runtime.counters[f"tx_refused:{code}"]


async def test_a_bad_signature_still_outranks_bad_arguments(local_cluster):
    cluster = await local_cluster(4)
    bad_args = signed(cluster, "org-a", {"to": "org-b", "amount": "lots"})
    answer = await post_batch(cluster, [flipped(bad_args), bad_args.to_json()])
    assert [(r["index"], r["error"]["code"]) for r in answer["rejected"]] == [
        (0, "BadSignature"), (1, "BadArguments")]
    assert answer["accepted"] == []


async def test_a_forged_transaction_relayed_early_is_refused_everywhere(local_cluster):
    cluster = await local_cluster(4)
    good = cluster.transfers(2)
    forged = flipped(signed(cluster, "org-c", {"to": "org-d", "amount": 5}))
    answer = await post_batch(cluster, [good[0].to_json(), forged, forged, good[1].to_json(),
                                        good[1].to_json()])
    assert answer["accepted"] == [good[0].id, good[1].id, good[1].id]  # a repeat: as is
    assert [(r["index"], r["error"]["code"]) for r in answer["rejected"]] == [
        (1, "BadSignature"), (2, "BadSignature")]
    await cluster.wait_committed(good)
    expected = [1, 2, 1, 1]  # node1 refused both copies; each peer got it relayed once
    deadline = time.monotonic() + 20
    while [refused(cluster, i, "BadSignature") for i in range(4)] != expected:
        assert time.monotonic() < deadline, [refused(cluster, i, "BadSignature") for i in range(4)]
        await asyncio.sleep(0.02)
    forged_id = next(r["id"] for r in answer["rejected"])
    for i in range(4):
        runtime = cluster.node(i).runtime
        assert runtime.storage.tx(bytes.fromhex(forged_id)) is None
        assert bytes.fromhex(forged_id) not in runtime.mempool


async def test_each_node_checks_each_admitted_signature_once(local_cluster):
    cluster = await local_cluster(4)
    before = [cluster.node(i).runtime.counters["tx_signature_verifications"] for i in range(4)]
    txs = cluster.transfers(6)
    await cluster.submit(txs, node=2)
    await cluster.wait_committed(txs)
    after = [cluster.node(i).runtime.counters["tx_signature_verifications"] for i in range(4)]
    assert [b - a for a, b in zip(before, after)] == [6, 6, 6, 6]
