"""Portable proofs: what a node serves verifies offline against the genesis alone, and
any change to it — the tx, the path, the header, the signatures — is caught."""

from __future__ import annotations

import copy
import json

import pytest

from node.proofs import ProofError, verify_proof


async def fetch_proofs(cluster, txs, node: int) -> list[dict]:
    proofs = []
    for tx in txs:
        text = await cluster.get_text(node, f"/v1/proof/tx/{tx.id}")
        proofs.append(json.loads(text))
    return proofs


async def test_every_committed_tx_has_a_proof_that_verifies_offline_on_any_node(local_cluster):
    cluster = await local_cluster(4, max_batch_txs=7)
    txs = cluster.transfers(20)
    await cluster.submit(txs, node=1)
    await cluster.wait_committed(txs)
    for node in (0, 3):
        for tx, proof in zip(txs, await fetch_proofs(cluster, txs, node)):
            summary = verify_proof(proof, cluster.genesis)
            assert summary["tx_id"] == tx.id
            assert len(summary["signers"]) >= 3
            assert proof["receipt"]["status"] == "committed"


def _tamper(proof: dict, where: str) -> dict:
    bad = copy.deepcopy(proof)
    if where == "tx":
        bad["tx"] = bad["tx"][:-2] + ("00" if bad["tx"][-2:] != "00" else "01")
    elif where == "path":
        side, sibling = bad["merkle_path"][0]
        bad["merkle_path"][0] = [side, "00" * 32 if sibling != "00" * 32 else "11" * 32]
    elif where == "header":
        bad["header"]["timestamp_ms"] += 1
    elif where == "signature":
        sig = bad["commit"]["signatures"][0]["sig"]
        bad["commit"]["signatures"] = [dict(s) for s in bad["commit"]["signatures"]]
        bad["commit"]["signatures"][0]["sig"] = ("0" if sig[0] != "0" else "1") + sig[1:]
        bad["commit"]["signatures"] = bad["commit"]["signatures"][:3]
    elif where == "too-few":
        bad["commit"]["signatures"] = bad["commit"]["signatures"][:2]
    elif where == "duplicate-signer":
        first = bad["commit"]["signatures"][0]
        bad["commit"]["signatures"] = [first, first, first]
    elif where == "chain":
        bad["chain_id"] = "another-chain"
    return bad


@pytest.mark.parametrize("where", ["tx", "path", "header", "signature", "too-few",
                                   "duplicate-signer", "chain"])
async def test_a_tampered_proof_is_refused(local_cluster, where):
    cluster = await local_cluster(4, max_batch_txs=4)
    txs = cluster.transfers(6)
    await cluster.submit(txs, node=0)
    await cluster.wait_committed(txs)
    proofs = await fetch_proofs(cluster, txs, node=2)
    proof = max(proofs, key=lambda p: len(p["merkle_path"]))  # one in a block of several
    assert proof["merkle_path"]
    verify_proof(proof, cluster.genesis)  # the untouched proof holds
    with pytest.raises(ProofError):
        verify_proof(_tamper(proof, where), cluster.genesis)
