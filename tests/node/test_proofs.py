"""Portable proofs from a live 4-node cluster: what nodes serve verifies offline against
the genesis alone — with `ipchain verify-proof` (node.proofs) and with a verifier
written from docs/protocol.md alone — and every tampering a forger could try is refused
by both. The tamper table is printed (pytest -s) and each case must be refused."""

from __future__ import annotations

import argparse
import copy
import json
import sqlite3
from typing import Any, Callable

import msgpack
import nacl.signing

from node.proofs import ProofError, verify_proof
from scripts.proof import cmd_verify_proof, proof_path
from tests.node import docs_verifier as docs
from tests.node.conftest import ORG_BPC, until

Proof = dict[str, Any]


async def fetch(cluster, path: str, node: int = 0) -> Proof:
    return json.loads(await cluster.get_text(node, path))


async def live_proofs(cluster) -> dict[str, Any]:
    """Genuine proofs of every kind, plus what tampering needs (predecessor time, a
    certificate of another height)."""
    first = cluster.transfers(6)
    await cluster.submit(first, node=1)
    await cluster.wait_committed(first)
    rejected = cluster.transfers(1, amount=ORG_BPC * 10)  # more than the sender holds
    second = cluster.transfers(4)
    await cluster.submit(rejected + second, node=2)
    await cluster.wait_committed(rejected + second)
    tx_ok = await fetch(cluster, f"/v1/proof/tx/{second[-1].id}", node=3)
    others = [await fetch(cluster, f"/v1/proof/tx/{tx.id}") for tx in first]
    other_height = next(p for p in others if p["header"]["height"] != tx_ok["header"]["height"])
    tx_bad = await fetch(cluster, f"/v1/proof/tx/{rejected[0].id}", node=1)
    present = await fetch(cluster, "/v1/proof/state/bal/BPC/org-b", node=2)
    absent = await fetch(cluster, "/v1/proof/state/bal/BPC/org-bb", node=0)
    block = await fetch(cluster, f"/v1/blocks/{tx_ok['header']['height'] - 1}")
    return {"tx_ok": tx_ok, "tx_rejected": tx_bad, "state_present": present,
            "state_absent": absent, "other_height": other_height,
            "prev_timestamp_ms": block["timestamp_ms"]}


# -- what a forger can recompute ---------------------------------------------------------
def rehash(proof: Proof) -> Proof:
    """Recompute the block hash from the (changed) header, as any forger can."""
    _, block_hash = docs.header_bytes_and_hash(proof["header"])
    proof["block_hash"] = proof["certificate"]["block_hash"] = block_hash.hex()
    return proof


def flip(text: str, at: int = -1) -> str:
    """Change one byte of a hex string."""
    i = at % (len(text) // 2) * 2
    byte = bytes.fromhex(text[i:i + 2])[0] ^ 0x01
    return text[:i] + f"{byte:02x}" + text[i + 2:]


def set_header(field: str, change: Callable[[Any], Any]) -> Callable[[Proof, dict], Proof]:
    def tamper(proof: Proof, live: dict) -> Proof:
        proof["header"][field] = change(proof["header"][field])
        return rehash(proof)
    return tamper


def forge_receipt(change: Callable[[dict], None]) -> Callable[[Proof, dict], Proof]:
    def tamper(proof: Proof, live: dict) -> Proof:
        change(proof["receipt"])
        root = docs.walk(docs.canonical(proof["receipt"]), proof["receipt_path"])
        proof["header"]["receipts_root"] = root.hex()
        return rehash(proof)
    return tamper


def forge_state_value(proof: Proof, live: dict) -> Proof:
    leaf = proof["leaf"]
    leaf["value"] = msgpack.packb(msgpack.unpackb(bytes.fromhex(leaf["value"])) + 1_000_000).hex()
    key = leaf["key"].encode()
    entry = docs.H(b"\x00" + len(key).to_bytes(4, "big") + key + bytes.fromhex(leaf["value"]))
    proof["header"]["state_root"] = docs.walk(entry, leaf["path"]).hex()
    return rehash(proof)


def present_as_absent(proof: Proof, live: dict) -> Proof:
    """Claim a present key is absent, using the leaf itself as a 'neighbour' at a lied index."""
    leaf = proof.pop("leaf")
    proof["present"] = False
    proof["left"], proof["right"] = None, {**leaf, "index": 0}
    proof["key"] = leaf["key"][:-1]
    return proof


def sigs(proof: Proof) -> list[dict]:
    return proof["certificate"]["signatures"]


def stranger_signature(proof: Proof, live: dict) -> Proof:
    stranger = nacl.signing.SigningKey(b"\x07" * 32)
    message = (b"ipchain/consensus/v1" + proof["chain_id"].encode() + b"\x00"
               + msgpack.packb(["EX", proof["header"]["height"],
                                bytes.fromhex(proof["block_hash"])], use_bin_type=True))
    sigs(proof)[0] = {"replica": 99, "sig": stranger.sign(message).signature.hex()}
    return proof


def stranger_as_validator(proof: Proof, live: dict) -> Proof:
    stranger_signature(proof, live)
    sigs(proof)[0]["replica"] = next(i for i in range(4)
                                     if i not in {s["replica"] for s in sigs(proof)})
    return proof


def duplicated(proof: Proof, live: dict) -> Proof:
    proof["certificate"]["signatures"] = [sigs(proof)[0], sigs(proof)[0], *sigs(proof)[1:2]]
    return proof


def other_height_certificate(proof: Proof, live: dict) -> Proof:
    proof["certificate"] = copy.deepcopy(live["other_height"]["certificate"])
    return proof


def earlier_than_predecessor(proof: Proof, live: dict) -> Proof:
    proof["header"]["timestamp_ms"] = live["prev_timestamp_ms"] - 1
    return rehash(proof)


def drop_left(proof: Proof, live: dict) -> Proof:
    proof["left"] = None
    return proof


def key_outside_gap(proof: Proof, live: dict) -> Proof:
    proof["key"] = proof["right"]["key"] + "z"
    return proof


def field(path: tuple, change: Callable[[Any], Any]) -> Callable[[Proof, dict], Proof]:
    def tamper(proof: Proof, live: dict) -> Proof:
        target = proof
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = change(target[path[-1]])
        return proof
    return tamper


BYTES_HEADER = ("prev_hash", "tx_root", "receipts_root", "state_root")
INT_HEADER = ("height", "timestamp_ms", "proposal_timestamp_ms", "state_leaves")
ANCHOR_CASES: list[tuple[str, Callable]] = [
    *[(f"header.{f} one byte", field(("header", f), flip)) for f in BYTES_HEADER],
    *[(f"header.{f} +1", field(("header", f), lambda v: v + 1)) for f in INT_HEADER],
    *[(f"header.{f} forged, hashes recomputed", set_header(f, flip)) for f in BYTES_HEADER],
    *[(f"header.{f} forged, hashes recomputed", set_header(f, lambda v: v + 1))
      for f in INT_HEADER],
    ("timestamp 400 days earlier, recomputed", set_header("timestamp_ms", lambda v: v - 400 * 86_400_000)),
    ("timestamp before predecessor's, recomputed", earlier_than_predecessor),
    ("block_hash one byte", field(("block_hash",), flip)),
    ("certificate.block_hash one byte", field(("certificate", "block_hash"), flip)),
    ("a signature one byte", lambda p, live: (sigs(p)[0].update(sig=flip(sigs(p)[0]["sig"])), p)[1]),
    ("signatures duplicated", duplicated),
    ("2f signatures", lambda p, live: (p["certificate"].update(signatures=sigs(p)[:2]), p)[1]),
    ("non-validator signature", stranger_signature),
    ("non-validator signing as a validator", stranger_as_validator),
    ("certificate from another height", other_height_certificate),
    ("chain_id", field(("chain_id",), lambda v: v + "-other")),
]
TX_CASES = [
    ("tx one byte", field(("tx",), flip)),
    ("tx_id one byte", field(("tx_id",), flip)),
    ("tx_path sibling one byte", field(("tx_path", 0, 1), flip)),
    ("index", field(("index",), lambda v: v + 1)),
    ("receipt.status one word", field(("receipt", "status"), lambda v: "committed" if v != "committed" else "rejected")),
    ("receipt.code", field(("receipt", "code"), lambda v: "ok" if v != "ok" else "Refused")),
    ("receipt_path sibling one byte", field(("receipt_path", 0, 1), flip)),
    ("receipt status forged, roots recomputed",
     forge_receipt(lambda r: r.update(status="committed" if r["status"] != "committed" else "rejected",
                                      code="ok" if r["code"] != "ok" else "InsufficientFunds"))),
    ("receipt events forged, roots recomputed",
     forge_receipt(lambda r: r.update(events=[{"contract": "token", "name": "transfer",
                                               "data": {"amount": 10**9}}]))),
    ("receipt tx_id forged, roots recomputed", forge_receipt(lambda r: r.update(tx_id=flip(r["tx_id"])))),
]
PRESENT_CASES = [
    ("state value one byte", field(("leaf", "value"), flip)),
    ("state value forged, roots recomputed", forge_state_value),
    ("state key", lambda p, live: (p.update(key=p["key"] + "x"), p["leaf"].update(key=p["key"]), p)[2]),
    ("state leaf index", field(("leaf", "index"), lambda v: v + 1)),
    ("state path sibling one byte", field(("leaf", "path", 0, 1), flip)),
    ("present key claimed absent", present_as_absent),
]
ABSENT_CASES = [
    ("absence: left neighbour dropped", drop_left),
    ("absence: key outside the gap", key_outside_gap),
    ("absence: right index", field(("right", "index"), lambda v: v + 1)),
    ("absence: left value one byte", field(("left", "value"), flip)),
    ("absence: claimed present", lambda p, live: (p.update(present=True, leaf=p["left"]), p)[1]),
]


def verdicts(proof: Proof, genesis: dict) -> tuple[str, str]:
    """(verify-proof's verdict, the docs-only verifier's): 'accepted' or the reason refused."""
    try:
        verify_proof(copy.deepcopy(proof), genesis)
        ours = "accepted"
    except ProofError as exc:
        ours = f"refused: {exc}"
    try:
        docs.verify(copy.deepcopy(proof), genesis)
        theirs = "accepted"
    except docs.Refused as exc:
        theirs = f"refused: {exc}"
    return ours, theirs


async def test_genuine_proofs_hold_and_every_tampering_is_refused_by_both_verifiers(local_cluster):
    cluster = await local_cluster(4, max_batch_txs=3)
    live = await live_proofs(cluster)
    genesis = cluster.genesis
    table, wrong = [], []
    for name in ("tx_ok", "tx_rejected", "state_present", "state_absent"):
        ours, theirs = verdicts(live[name], genesis)
        table.append((f"genuine {name}", ours, theirs))
        if ours != "accepted" or theirs != "accepted":
            wrong.append(name)
    groups = {"tx_ok": ANCHOR_CASES + TX_CASES, "tx_rejected": TX_CASES,
              "state_present": ANCHOR_CASES + PRESENT_CASES, "state_absent": ABSENT_CASES}
    for base, cases in groups.items():
        for name, tamper in cases:
            bad = tamper(copy.deepcopy(live[base]), live)
            ours, theirs = verdicts(bad, genesis)
            table.append((f"{base}: {name}", ours, theirs))
            if ours == "accepted" or theirs == "accepted":
                wrong.append(f"{base}: {name}")
    print("\n".join(f"{case:60} | verify-proof {a[:48]:48} | docs-only {b[:40]}"
                    for case, a, b in table))
    assert not wrong, wrong
    assert len(table) > 70


async def test_what_the_proofs_establish(local_cluster):
    cluster = await local_cluster(4)
    live = await live_proofs(cluster)
    ok = verify_proof(live["tx_ok"], cluster.genesis)
    assert ok["status"] == "committed" and ok["code"] == "ok" and len(ok["signers"]) >= 3
    bad = verify_proof(live["tx_rejected"], cluster.genesis)
    assert bad["status"] == "rejected" and bad["code"] == "InsufficientFunds"
    assert docs.verify(live["tx_rejected"], cluster.genesis)["status"] == "rejected"
    held = verify_proof(live["state_present"], cluster.genesis)
    balance = cluster.node(0).runtime.executor.state.get("bal/BPC/org-b")
    assert held["present"] and held["key"] == "bal/BPC/org-b"
    assert held["value"] <= balance + 10 and held["value"] >= ORG_BPC - 10
    assert verify_proof(live["state_absent"], cluster.genesis)["present"] is False
    # a height this node no longer keeps is refused with a clear 404
    height = live["state_present"]["header"]["height"]
    async with cluster.session.get(cluster.url(0) + f"/v1/proof/state/bal/BPC/org-b?height={height + 1000}") as resp:
        assert resp.status == 404 and (await resp.json())["error"]["code"] == "StateNotKept"


async def test_verify_proof_command_says_what_holds_and_exits_non_zero_on_a_forgery(
        local_cluster, tmp_path, capsys):
    cluster = await local_cluster(4)
    live = await live_proofs(cluster)
    genesis = tmp_path / "genesis.json"
    genesis.write_text(json.dumps(cluster.genesis))

    def run(proof: Proof) -> tuple[int, str]:
        path = tmp_path / "proof.json"
        path.write_text(json.dumps(proof))
        code = cmd_verify_proof(argparse.Namespace(proof=path, genesis=genesis, data_dir=tmp_path))
        out = capsys.readouterr()
        return code, out.out + out.err

    code, said = run(live["tx_rejected"])
    assert code == 0 and "REJECTED with code InsufficientFunds" in said and "token.transfer" in said
    code, said = run(live["tx_ok"])
    assert code == 0 and "was committed at height" in said
    code, said = run(live["state_present"])
    assert code == 0 and "account org-b holds" in said and "BPC" in said
    code, said = run(live["state_absent"])
    assert code == 0 and "bal/BPC/org-bb does not exist" in said
    code, said = run(forge_receipt(lambda r: r.update(status="committed", code="ok"))(
        copy.deepcopy(live["tx_rejected"]), live))
    assert code == 1 and "proof invalid" in said
    assert proof_path(["tx", "ab"]) == "/v1/proof/tx/ab" == proof_path(["ab"])
    assert proof_path(["state", "patent", "CN:1/2"]) == "/v1/proof/state/patent/CN:1/2"


async def test_a_catching_up_node_certifies_the_blocks_it_fetched(local_cluster):
    cluster = await local_cluster(4, checkpoint_interval_blocks=4, log_window_blocks=8)
    await cluster.stop_node(3)
    txs = cluster.transfers(40)
    for i in range(0, 40, 4):
        await cluster.submit(txs[i:i + 4], node=0)
        await cluster.wait_committed(txs[i:i + 4], nodes=[0, 1, 2])
    node = await cluster.start_node(3)
    await cluster.wait_committed(txs, nodes=[3])
    top = node.runtime.executor.height
    await until(lambda: node.runtime.storage.exec_cert(top) is not None, 20,
                "the catching-up node certified its latest block")
    assert node.runtime.diverged is None
    assert node.runtime.storage.exec_cert(top)[0] == node.runtime.executor.head.hash


async def test_a_restarted_node_gets_certificates_for_its_last_blocks_without_new_traffic(
        local_cluster):
    cluster = await local_cluster(4)
    txs = cluster.transfers(6)
    await cluster.submit(txs, node=0)
    await cluster.wait_committed(txs)
    node3 = cluster.node(3)
    top = node3.runtime.executor.height
    await until(lambda: node3.runtime.storage.exec_cert(top) is not None, 20, "node3 certified")
    await cluster.stop_node(3)
    db = sqlite3.connect(cluster.root / "node3" / "db.sqlite")
    with db:  # as if it had died before the votes arrived
        db.execute("DELETE FROM exec_certs")
    db.close()
    node3 = await cluster.start_node(3)
    await until(lambda: node3.runtime.storage.exec_cert(top) is not None, 20,
                "node3's last block certified again after the restart")
    proof = await fetch(cluster, f"/v1/proof/tx/{txs[-1].id}", node=3)
    assert docs.verify(proof, cluster.genesis)["status"] == "committed"
