"""Portable proofs, checkable offline with nothing but the genesis file.

Every proof ends in the same anchor: a block header and its execution certificate —
2f+1 validators' signatures over the header's hash (docs/protocol.md §6–7). The header
holds the tx root, the receipts root and the state root after the block, so a Merkle
path from a transaction, its receipt or one state entry to that header is a quorum's
word, not the answering node's. A transaction proof shows what became of a transaction
(committed, or rejected with its code); a state proof shows one key's value, or that
the key does not exist, at a certified height.
"""

from __future__ import annotations

import bisect
import hashlib
from typing import Any

import nacl.exceptions
import nacl.signing

from consensus import messages as wire
from consensus.messages import Commit, Executed, signing_bytes
from consensus.quorum import quorum
from contracts import codec
from contracts.merkle import EMPTY_ROOT, merkle_path, path_sides, verify_path
from contracts.state import State, leaf_hash
from node.chain import RECEIPT_LEAF_FIELDS, Header, read_certificate
from node.storage import Storage

VERSION = 2
HEADER_BYTES_FIELDS = ("prev_hash", "receipts_root", "state_root", "tx_root")
HEADER_INT_FIELDS = ("height", "proposal_timestamp_ms", "state_leaves", "timestamp_ms")


class ProofError(ValueError):
    """The proof does not hold; the message says which check failed."""


class NotCertified(Exception):
    """The block is committed here but its execution certificate has not arrived yet."""


# -- building ----------------------------------------------------------------------------
def anchor(storage: Storage, chain_id: str, height: int, header: Header) -> dict[str, Any]:
    """The header and its execution certificate: what every proof rests on."""
    cert = storage.exec_cert(height)
    if cert is None:
        raise NotCertified(f"block {height} has no execution certificate yet")
    block_hash, votes = cert
    return {"chain_id": chain_id, "version": VERSION,
            "header": {k: v.hex() if isinstance(v, bytes) else v
                       for k, v in header.to_value().items()},
            "block_hash": block_hash.hex(),
            "certificate": {"height": height, "block_hash": block_hash.hex(),
                            "signatures": [{"replica": v.sender, "sig": v.sig.hex()}
                                           for v in read_certificate(votes)]}}


def _path_json(path: list[tuple[str, bytes]]) -> list[list[str]]:
    return [[side, sibling.hex()] for side, sibling in path]


def leaf_of_receipt(value: dict[str, Any]) -> bytes:
    return codec.encode({key: value[key] for key in RECEIPT_LEAF_FIELDS})


def build_tx_proof(storage: Storage, chain_id: str, tx_id: bytes) -> dict[str, Any] | None:
    """None when this node has no such transaction; NotCertified while it waits."""
    found = storage.tx(tx_id)
    if found is None:
        return None
    height, index, _ = found
    _, header_bytes, _, preprepare, _ = storage.block(height)
    header = Header.decode(header_bytes)
    proof = anchor(storage, chain_id, height, header)
    txs = wire.decode(preprepare).body.txs
    ids = [hashlib.sha256(raw).digest() for raw in txs]
    receipts = [codec.decode(r) for r in storage.receipts_at(height)]
    position = next(i for i, r in enumerate(receipts) if r["index"] == index)
    leaves = [leaf_of_receipt(r) for r in receipts]
    return {**proof, "kind": "tx", "tx": txs[index].hex(), "tx_id": tx_id.hex(), "index": index,
            "tx_path": _path_json(merkle_path(ids, index)),
            "receipt": codec.decode(leaves[position]),
            "receipt_path": _path_json(merkle_path(leaves, position))}


def state_entry_proof(state: State, key: str) -> dict[str, Any]:
    """The leaf (or its two neighbours) of `key` in the current state: call it with the
    executor's lock held, so the state and the header it is checked against agree."""
    keys, leaves = state.sorted_leaves()

    def leaf(index: int) -> dict[str, Any]:
        return {"key": keys[index], "value": state.get_raw(keys[index]).hex(), "index": index,
                "path": _path_json(merkle_path(leaves, index))}

    index = bisect.bisect_left(keys, key)
    if index < len(keys) and keys[index] == key:
        return {"kind": "state", "key": key, "present": True, "leaf": leaf(index)}
    return {"kind": "state", "key": key, "present": False,
            "left": leaf(index - 1) if index > 0 else None,
            "right": leaf(index) if index < len(keys) else None}


# -- verifying ---------------------------------------------------------------------------
def verify_proof(proof: dict[str, Any], genesis: dict[str, Any]) -> dict[str, Any]:
    """Raise ProofError unless the proof holds; return what it establishes."""
    if not isinstance(proof, dict):
        raise ProofError("a proof is a JSON object")
    _check(proof.get("version") == VERSION, f"unsupported proof version {proof.get('version')!r}"
           f" (this verifier reads version {VERSION})")
    _check(proof.get("chain_id") == genesis["chain_id"], "proof is for another chain")
    try:
        header = _header(proof["header"])
        signers = _check_anchor(proof, header, genesis)
        if proof.get("kind") == "tx":
            facts = _check_tx(proof, header)
        elif proof.get("kind") == "state":
            facts = _check_state(proof, header)
        else:
            raise ProofError(f"unknown proof kind {proof.get('kind')!r}")
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        if isinstance(exc, ProofError):
            raise
        raise ProofError(f"proof is malformed: {exc!r}") from exc
    return {**facts, "height": header.height, "timestamp_ms": header.timestamp_ms,
            "signers": sorted(signers), "validators": len(genesis["validators"])}


def _header(value: dict[str, Any]) -> Header:
    _check(isinstance(value, dict) and set(value) == {*HEADER_BYTES_FIELDS, *HEADER_INT_FIELDS},
           "header fields are not exactly the protocol's")
    fields: dict[str, Any] = {}
    for name in HEADER_BYTES_FIELDS:
        fields[name] = _hex(value[name], 32, f"header.{name}")
    for name in HEADER_INT_FIELDS:
        _check(type(value[name]) is int and 0 <= value[name] < 2**63, f"header.{name} is not an integer")
        fields[name] = value[name]
    return Header(**fields)


def _hex(text: Any, size: int | None, what: str) -> bytes:
    _check(isinstance(text, str) and text == text.lower(), f"{what} is not lowercase hex")
    raw = bytes.fromhex(text)
    _check(size is None or len(raw) == size, f"{what} is not {size} bytes")
    return raw


def _check_anchor(proof: dict[str, Any], header: Header, genesis: dict[str, Any]) -> set[int]:
    block_hash = _hex(proof["block_hash"], 32, "block_hash")
    _check(header.hash == block_hash, "header does not hash to block_hash")
    cert = proof["certificate"]
    _check(cert["height"] == header.height, "certificate is for another height")
    _check(_hex(cert["block_hash"], 32, "certificate.block_hash") == block_hash,
           "certificate is for another block")
    keys = {v["index"]: nacl.signing.VerifyKey(bytes.fromhex(v["public_key"]))
            for v in genesis["validators"]}
    message = signing_bytes(Executed(header.height, block_hash), genesis["chain_id"])
    signers: set[int] = set()
    for item in cert["signatures"]:
        replica = item["replica"]
        _check(type(replica) is int and replica in keys, f"signature from {replica!r}, "
               "which is not a genesis validator")
        _check(replica not in signers, f"validator {replica} signed twice")
        try:
            keys[replica].verify(message, _hex(item["sig"], 64, "signature"))
        except nacl.exceptions.BadSignatureError:
            raise ProofError(f"validator {replica}'s signature does not verify") from None
        signers.add(replica)
    needed = quorum(len(genesis["validators"]))
    _check(len(signers) >= needed, f"{len(signers)} validator signatures; {needed} needed")
    return signers


def valid_commit_signers(genesis: dict[str, Any], view: int, seq: int, digest: bytes,
                         signatures: list[dict[str, Any]]) -> set[int]:
    """Distinct genesis validators whose COMMIT(view, seq, digest) signature verifies.

    Not part of a proof any more (COMMITs certify order, not results); the fault
    runner uses it to check the ordering certificate a block is served with."""
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


def _check_tx(proof: dict[str, Any], header: Header) -> dict[str, Any]:
    tx, tx_id = _hex(proof["tx"], None, "tx"), _hex(proof["tx_id"], 32, "tx_id")
    _check(hashlib.sha256(tx).digest() == tx_id, "tx bytes do not hash to tx_id")
    _check(verify_path(tx_id, _path(proof["tx_path"]), header.tx_root),
           "tx Merkle path does not reach the header's tx_root")
    receipt = proof["receipt"]
    _check(isinstance(receipt, dict) and set(receipt) == set(RECEIPT_LEAF_FIELDS),
           "receipt fields are not exactly the protocol's")
    _check(receipt["tx_id"] == tx_id.hex() and receipt["index"] == proof["index"],
           "receipt is for another transaction")
    _check(receipt["status"] in ("committed", "rejected")
           and (receipt["status"] == "committed") == (receipt["code"] == "ok"),
           "receipt status and code disagree")
    _check(verify_path(leaf_of_receipt(receipt), _path(proof["receipt_path"]),
                       header.receipts_root),
           "receipt Merkle path does not reach the header's receipts_root")
    decoded = codec.decode(tx)
    _check(decoded["chain"] == proof["chain_id"], "transaction is for another chain")
    return {"kind": "tx", "tx_id": tx_id.hex(), "op": decoded.get("op"),
            "status": receipt["status"], "code": receipt["code"], "events": receipt["events"]}


def _check_state(proof: dict[str, Any], header: Header) -> dict[str, Any]:
    key, count, root = proof["key"], header.state_leaves, header.state_root
    _check(isinstance(key, str), "key is not a string")
    if proof["present"] is True:
        leaf = proof["leaf"]
        _check(leaf["key"] == key, "proven leaf is for another key")
        value = _check_leaf(leaf, count, root)
        return {"kind": "state", "key": key, "present": True, "value": codec.decode(value)}
    _check(proof["present"] is False, "present is neither true nor false")
    left, right = proof["left"], proof["right"]
    if left is not None:
        _check_leaf(left, count, root)
        _check(left["key"].encode() < key.encode(), "left neighbour is not before the key")
    if right is not None:
        _check_leaf(right, count, root)
        _check(key.encode() < right["key"].encode(), "right neighbour is not after the key")
    if left is None and right is None:
        _check(count == 0 and root == EMPTY_ROOT, "absence needs a neighbour in a non-empty state")
    elif left is None:
        _check(right["index"] == 0, "no left neighbour, yet the right one is not the first leaf")
    elif right is None:
        _check(left["index"] == count - 1, "no right neighbour, yet the left one is not the last")
    else:
        _check(right["index"] == left["index"] + 1, "the neighbours are not adjacent leaves")
    return {"kind": "state", "key": key, "present": False}


def _check_leaf(leaf: dict[str, Any], count: int, root: bytes) -> bytes:
    """Check one state leaf's path and position; return its value bytes."""
    index, key = leaf["index"], leaf["key"]
    _check(type(index) is int and 0 <= index < count and isinstance(key, str),
           "leaf index outside the state")
    value = _hex(leaf["value"], None, "value")
    path = _path(leaf["path"])
    _check([side for side, _ in path] == path_sides(index, count),
           "state path does not have the shape of its leaf's position")
    _check(verify_path(leaf_hash(key, value), path, root),
           f"state Merkle path for {key!r} does not reach the header's state_root")
    return value


def _path(value: list[Any]) -> list[tuple[str, bytes]]:
    path = []
    for side, sibling in value:
        _check(side in ("L", "R"), "path side is neither L nor R")
        path.append((side, _hex(sibling, 32, "path sibling")))
    return path


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ProofError(message)
