"""A proof verifier written from docs/protocol.md alone.

It imports only msgpack, PyNaCl, hashlib and json — never the project's packages — so
if it accepts the proofs real nodes serve and refuses tampered ones, the page is enough
to write a verifier in another language. Section numbers refer to docs/protocol.md.
"""

from __future__ import annotations

import hashlib
import json

import msgpack
import nacl.exceptions
import nacl.signing

HEADER_BYTES = ("prev_hash", "receipts_root", "state_root", "tx_root")
HEADER_INTS = ("height", "proposal_timestamp_ms", "state_leaves", "timestamp_ms")
RECEIPT_FIELDS = {"code", "events", "index", "status", "tx_id"}
EMPTY_ROOT = hashlib.sha256(b"").digest()


class Refused(Exception):
    """The proof does not establish what it claims."""


def H(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def canonical(value) -> bytes:
    """§1: msgpack, shortest forms, map keys in ascending UTF-8 byte order."""
    def sort(v):
        if isinstance(v, dict):
            return {k: sort(v[k]) for k in sorted(v, key=lambda k: k.encode())}
        if isinstance(v, list):
            return [sort(x) for x in v]
        return v
    return msgpack.packb(sort(value), use_bin_type=True)


def need(condition: bool, why: str) -> None:
    if not condition:
        raise Refused(why)


def unhex(text, size=None) -> bytes:
    need(isinstance(text, str) and text == text.lower(), "not lowercase hex")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise Refused("not hex") from None
    need(size is None or len(raw) == size, "wrong length")
    return raw


# -- §3 Merkle -----------------------------------------------------------------------------
def walk(leaf: bytes, path) -> bytes:
    node = H(b"\x00" + leaf)
    for side, sibling_hex in path:
        sibling = unhex(sibling_hex, 32)
        need(side in ("L", "R"), "bad side")
        node = H(b"\x01" + sibling + node) if side == "L" else H(b"\x01" + node + sibling)
    return node


def shape(index: int, count: int) -> list[str]:
    need(0 <= index < count, "index outside the tree")
    sides, i, w = [], index, count
    while w > 1:
        s = i ^ 1
        if s < w:
            sides.append("L" if s < i else "R")
        i, w = i // 2, (w + 1) // 2
    return sides


# -- §6, §7 header and certificate ----------------------------------------------------------
def header_bytes_and_hash(header: dict) -> tuple[dict, bytes]:
    need(isinstance(header, dict) and set(header) == set(HEADER_BYTES) | set(HEADER_INTS),
         "header fields")
    value = {}
    for name in HEADER_BYTES:
        value[name] = unhex(header[name], 32)
    for name in HEADER_INTS:
        need(type(header[name]) is int and header[name] >= 0, f"header {name}")
        value[name] = header[name]
    return value, H(b"ipchain/block/v2" + canonical(value))


def check_certificate(proof: dict, genesis: dict) -> tuple[dict, list[int]]:
    header, block_hash = header_bytes_and_hash(proof["header"])
    need(unhex(proof["block_hash"], 32) == block_hash, "block hash")
    cert = proof["certificate"]
    need(cert["height"] == header["height"], "certificate height")
    need(unhex(cert["block_hash"], 32) == block_hash, "certificate block hash")
    keys = {v["index"]: v["public_key"] for v in genesis["validators"]}
    message = (b"ipchain/consensus/v1" + genesis["chain_id"].encode() + b"\x00"
               + msgpack.packb(["EX", header["height"], block_hash], use_bin_type=True))
    seen: list[int] = []
    for item in cert["signatures"]:
        replica = item["replica"]
        need(type(replica) is int and replica in keys and replica not in seen, "signer")
        try:
            nacl.signing.VerifyKey(bytes.fromhex(keys[replica])).verify(
                message, unhex(item["sig"], 64))
        except nacl.exceptions.BadSignatureError:
            raise Refused("signature") from None
        seen.append(replica)
    n = len(genesis["validators"])
    f = (n - 1) // 3
    need(len(seen) >= (n + f) // 2 + 1, "quorum")
    return header, seen


# -- §8 tx proof, §9 state proof --------------------------------------------------------------
def check_tx(proof: dict, header: dict) -> dict:
    tx, tx_id = unhex(proof["tx"]), unhex(proof["tx_id"], 32)
    need(H(tx) == tx_id, "tx id")
    need(msgpack.unpackb(tx, raw=False)["chain"] == proof["chain_id"], "tx chain")
    need(walk(tx_id, proof["tx_path"]) == header["tx_root"], "tx path")
    receipt = proof["receipt"]
    need(set(receipt) == RECEIPT_FIELDS, "receipt fields")
    need(receipt["tx_id"] == tx_id.hex() and receipt["index"] == proof["index"], "receipt tx")
    need(walk(canonical(receipt), proof["receipt_path"]) == header["receipts_root"], "receipt path")
    return {"tx_id": tx_id.hex(), "status": receipt["status"], "code": receipt["code"]}


def check_leaf(leaf: dict, header: dict) -> bytes:
    key, value = leaf["key"].encode(), unhex(leaf["value"])
    need([side for side, _ in leaf["path"]] == shape(leaf["index"], header["state_leaves"]),
         "path shape")
    entry = H(b"\x00" + len(key).to_bytes(4, "big") + key + value)
    need(walk(entry, leaf["path"]) == header["state_root"], "state path")
    return value


def check_state(proof: dict, header: dict) -> dict:
    key = proof["key"]
    if proof["present"] is True:
        need(proof["leaf"]["key"] == key, "leaf key")
        value = check_leaf(proof["leaf"], header)
        return {"key": key, "present": True, "value": msgpack.unpackb(value, raw=False)}
    need(proof["present"] is False, "present flag")
    left, right, n = proof["left"], proof["right"], header["state_leaves"]
    if left is not None:
        check_leaf(left, header)
        need(left["key"].encode() < key.encode(), "left order")
    if right is not None:
        check_leaf(right, header)
        need(key.encode() < right["key"].encode(), "right order")
    if left is None and right is None:
        need(n == 0 and header["state_root"] == EMPTY_ROOT, "empty state")
    elif left is None:
        need(right["index"] == 0, "first leaf")
    elif right is None:
        need(left["index"] == n - 1, "last leaf")
    else:
        need(right["index"] == left["index"] + 1, "adjacent")
    return {"key": key, "present": False}


def verify(proof: dict, genesis: dict) -> dict:
    """What the proof establishes, or Refused."""
    try:
        need(proof["version"] == 2 and proof["chain_id"] == genesis["chain_id"], "chain")
        header, signers = check_certificate(proof, genesis)
        if proof["kind"] == "tx":
            facts = check_tx(proof, header)
        else:
            need(proof["kind"] == "state", "kind")
            facts = check_state(proof, header)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise Refused(f"malformed: {exc!r}") from exc
    return {**facts, "height": header["height"], "signers": signers}


if __name__ == "__main__":
    import sys
    with open(sys.argv[1]) as p, open(sys.argv[2]) as g:
        print(json.dumps(verify(json.load(p), json.load(g))))
