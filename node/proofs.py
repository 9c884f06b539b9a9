"""Portable transaction proofs, checkable offline with nothing but the genesis file.

A proof carries the transaction bytes, its Merkle path to the block's tx root, the
block header, and the 2f+1 signed COMMITs of the block's batch digest. The digest binds
the tx root and the primary's timestamp, so a verifier that checks the path, recomputes
the digest and counts valid commit signatures from distinct genesis validators knows
the transaction was ordered at that height by a quorum — no node needs to be trusted.
"""

from __future__ import annotations

import hashlib
from typing import Any

import nacl.exceptions
import nacl.signing

from consensus import messages as wire
from consensus.messages import Commit, compute_digest, signing_bytes
from consensus.quorum import quorum
from contracts import codec
from contracts.merkle import merkle_path, verify_path
from node.chain import Header, read_certificate
from node.storage import Storage


class ProofError(ValueError):
    """The proof does not hold; the message says which check failed."""


def build_proof(storage: Storage, chain_id: str, tx_id: bytes) -> dict[str, Any] | None:
    found = storage.tx(tx_id)
    if found is None:
        return None
    height, index, receipt = found
    _, header_bytes, _, preprepare, certificate = storage.block(height)
    pp = wire.decode(preprepare).body
    ids = [hashlib.sha256(raw).digest() for raw in pp.txs]
    header = Header.decode(header_bytes)
    return {
        "chain_id": chain_id, "tx_id": tx_id.hex(), "tx": pp.txs[index].hex(),
        "height": height, "index": index,
        "merkle_path": [[side, sibling.hex()] for side, sibling in merkle_path(ids, index)],
        "header": {k: v.hex() if isinstance(v, bytes) else v for k, v in header.to_value().items()},
        "block_hash": header.hash.hex(),
        "commit": {"view": pp.view, "seq": pp.seq, "digest": pp.digest.hex(),
                   "signatures": [{"replica": v.sender, "sig": v.sig.hex()}
                                  for v in read_certificate(certificate)]},
        "receipt": codec.decode(receipt),
    }


def verify_proof(proof: dict[str, Any], genesis: dict[str, Any]) -> dict[str, Any]:
    """Raise ProofError unless the proof holds; return a short summary when it does."""
    try:
        tx = bytes.fromhex(proof["tx"])
        tx_id = bytes.fromhex(proof["tx_id"])
        header = Header(**{k: bytes.fromhex(v) if isinstance(v, str) else v
                           for k, v in proof["header"].items()})
        commit = proof["commit"]
        digest = bytes.fromhex(commit["digest"])
        path = [(side, bytes.fromhex(h)) for side, h in proof["merkle_path"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise ProofError(f"proof is malformed: {exc!r}") from exc
    _check(proof.get("chain_id") == genesis["chain_id"], "proof is for another chain")
    _check(hashlib.sha256(tx).digest() == tx_id, "tx bytes do not hash to tx_id")
    _check(verify_path(tx_id, path, header.tx_root), "Merkle path does not reach tx_root")
    _check(header.hash.hex() == proof.get("block_hash"), "header does not hash to block_hash")
    _check(commit["seq"] == header.height == proof.get("height"), "heights disagree")
    _check(compute_digest(header.proposal_timestamp_ms, header.tx_root) == digest,
           "batch digest does not bind this tx_root and timestamp")
    signers = _valid_signers(genesis, commit["view"], commit["seq"], digest, commit["signatures"])
    needed = quorum(len(genesis["validators"]))
    _check(len(signers) >= needed, f"{len(signers)} valid commit signatures; {needed} needed")
    return {"tx_id": tx_id.hex(), "height": header.height, "signers": sorted(signers)}


def _valid_signers(genesis: dict[str, Any], view: int, seq: int, digest: bytes,
                   signatures: list[dict[str, Any]]) -> set[int]:
    keys = {v["index"]: nacl.signing.VerifyKey(bytes.fromhex(v["public_key"]))
            for v in genesis["validators"]}
    message = signing_bytes(Commit(view, seq, digest), genesis["chain_id"])
    signers: set[int] = set()
    for item in signatures:
        key = keys.get(item.get("replica"))
        if key is None:
            continue
        try:
            key.verify(message, bytes.fromhex(item["sig"]))
        except (nacl.exceptions.BadSignatureError, ValueError, TypeError, KeyError):
            continue
        signers.add(item["replica"])
    return signers


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ProofError(message)
