"""Typed ops at the API: a misspelt argument is refused at admission (400
BadArguments naming the field) and costs no block; the catalogue and the account read."""

from __future__ import annotations

import json

import pytest

from contracts.catalogue import describe_ops
from contracts.tx import sign_tx

MISSPELT = [
    ("token.transfer", {"to": "org-b", "amonut": 5}, "amonut"),
    ("patent.deposit", {"office": "CN", "aplication_no": "2024001", "doc_hash": "ab" * 32,
                        "meta": {"title": "t", "kind": "invention",
                                 "filing_date": "2024-01-02"}}, "aplication_no"),
    ("licence.offer", {"licencee": "org-b", "patents": ["CN:1"], "kind": "non_exclusive",
                       "start_date": "2024-01-01", "end_date": "2030-01-01"}, "licencee"),
    ("pool.create", {"name": "p", "admin_fee_bp": 100, "bpr_ratio": [1, 1]}, "admin_fee_bp"),
    ("royalty.report", {"licence": "0123456789abcdef", "period": "2024-Q1", "net_sale": 1,
                        "units": 1}, "net_sale"),
    ("member.propose", {"action": "mint", "params": {"too": "org-a", "amount": 1}}, "too"),
]


async def call(cluster, method: str, path: str, node: int = 0, **kwargs) -> tuple[int, dict]:
    async with cluster.session.request(method, cluster.url(node) + path, **kwargs) as resp:
        text = await resp.text()
        return resp.status, (json.loads(text) if text else {})


async def test_a_misspelt_argument_is_refused_at_admission_and_costs_no_block(local_cluster):
    cluster = await local_cluster(4)
    warm = cluster.transfers(1)
    await cluster.submit(warm)
    await cluster.wait_committed(warm)
    heights = [cluster.node(i).height for i in range(4)]
    for op, args, field in MISSPELT:
        tx = sign_tx(cluster.keys["org-a"], cluster.genesis["chain_id"], 100, op, args)
        status, body = await call(cluster, "POST", "/v1/tx", json=tx.to_json())
        print(f"{op}: {status} {body['error']['code']}: {body['error']['message']}")
        assert (status, body["error"]["code"]) == (400, "BadArguments"), op
        assert field in body["error"]["message"], op
        assert all(tx.id != t for t in map(bytes.hex, cluster.node(0).runtime.mempool)), op
    assert [cluster.node(i).height for i in range(4)] == heights
    assert all(not cluster.node(i).runtime.mempool for i in range(4))


async def test_the_catalogue_is_served_from_the_schemas(local_cluster):
    cluster = await local_cluster(4)
    status, body = await call(cluster, "GET", "/v1/ops")
    assert status == 200 and body == json.loads(json.dumps(describe_ops()))
    assert len(body["ops"]) == 44  # 34 before the exchange's market.* and loan.* ops
    status, one = await call(cluster, "GET", "/v1/ops/token.transfer")
    assert status == 200 and one["args"] == {"$ref": "#/components/schemas/TransferArgs"}
    assert body["schemas"]["TransferArgs"]["required"] == ["to", "amount"]
    status, missing = await call(cluster, "GET", "/v1/ops/token.print_money")
    assert (status, missing["error"]["code"]) == (404, "NotFound")


async def test_the_account_read_gives_the_next_nonce(local_cluster):
    cluster = await local_cluster(4)
    key = bytes(cluster.keys["org-a"].verify_key).hex()
    status, before = await call(cluster, "GET", f"/v1/accounts/{key}")
    assert status == 200 and (before["org"], before["next_nonce"]) == ("org-a", 0)
    txs = cluster.transfers(3)
    await cluster.submit(txs)
    await cluster.wait_committed(txs)
    senders = sum(1 for tx in txs if tx.sender_hex == key)
    status, after = await call(cluster, "GET", f"/v1/accounts/{key}")
    assert after["next_nonce"] == senders and after["read_height"] >= 1
    status, bad = await call(cluster, "GET", "/v1/accounts/nothex")
    assert (status, bad["error"]["code"]) == (400, "BadArguments")
