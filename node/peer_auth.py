"""Signed peer requests: a validator proves who sent a /p2p request before its body is read.

Consensus messages are signed one by one, but the request carrying them was not, so
anyone could make a node read (and decode) a 128 MiB body. Now each peer request
carries a header envelope signed with the sender's validator key over

    domain ‖ msgpack([chain_id, sender index, method, path?query, timestamp_ms,
                      content length, sha256(body)])

The receiver checks the signature, the sender (a genesis validator) and the clock
skew from the headers alone — before it reads the body — and checks the body's hash
once it has it. A replayed envelope can only re-deliver the exact body a validator
sent within the skew window, which PBFT already treats as a duplicate. Mutual TLS can
replace this later without changing the limits that depend on it.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Callable

import msgpack
import nacl.exceptions
import nacl.signing

PEER_REQUEST_DOMAIN = b"ipchain/peer-request/v1"
MAX_SKEW_MS = 60_000
H_PEER, H_TIME, H_HASH, H_SIG = ("X-Ipchain-Peer", "X-Ipchain-Timestamp-Ms",
                                 "X-Ipchain-Body-Sha256", "X-Ipchain-Signature")


class PeerAuthError(ValueError):
    """The envelope is missing, malformed, stale, from a non-validator or mis-signed."""


def _signing_bytes(chain_id: str, index: int, method: str, path_qs: str, timestamp_ms: int,
                   length: int, body_hash: bytes) -> bytes:
    return PEER_REQUEST_DOMAIN + msgpack.packb(
        [chain_id, index, method, path_qs, timestamp_ms, length, body_hash], use_bin_type=True)


def sign_request(key: nacl.signing.SigningKey, chain_id: str, index: int, method: str,
                 path_qs: str, body: bytes, now_ms: int | None = None) -> dict[str, str]:
    """The headers that authenticate one request (path_qs as the server will see it)."""
    stamp = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    body_hash = hashlib.sha256(body).digest()
    sig = key.sign(_signing_bytes(chain_id, index, method, path_qs, stamp, len(body),
                                  body_hash)).signature
    return {H_PEER: str(index), H_TIME: str(stamp), H_HASH: body_hash.hex(), H_SIG: sig.hex()}


def _ascii_int(text: str | None, name: str) -> int:
    if text is None or not text.isascii() or not text.isdigit() or len(text) > 18:
        raise PeerAuthError(f"{name} header missing or not a number")
    return int(text)


def verify_envelope(headers: dict[str, str] | object, chain_id: str, validator_keys: list[bytes],
                    method: str, path_qs: str, length: int, now_ms: int | None = None
                    ) -> tuple[int, bytes]:
    """Check the envelope from the headers alone; return (sender index, declared body hash)."""
    get = headers.get  # type: ignore[attr-defined]
    index = _ascii_int(get(H_PEER), H_PEER)
    stamp = _ascii_int(get(H_TIME), H_TIME)
    if index >= len(validator_keys):
        raise PeerAuthError(f"replica {index} is not a validator of this chain")
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    if abs(now - stamp) > MAX_SKEW_MS:
        raise PeerAuthError(f"request timestamp is {abs(now - stamp)} ms from this node's clock")
    try:
        body_hash = bytes.fromhex(get(H_HASH) or "")
        sig = bytes.fromhex(get(H_SIG) or "")
    except ValueError as exc:
        raise PeerAuthError("body hash or signature is not hex") from exc
    if len(body_hash) != 32 or len(sig) != 64:
        raise PeerAuthError("body hash is 32 bytes and signature 64, in hex")
    message = _signing_bytes(chain_id, index, method, path_qs, stamp, length, body_hash)
    try:
        nacl.signing.VerifyKey(validator_keys[index]).verify(message, sig)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError) as exc:
        raise PeerAuthError("signature does not verify for that replica") from exc
    return index, body_hash


def body_matches(body: bytes, declared_hash: bytes) -> bool:
    return hashlib.sha256(body).digest() == declared_hash


def peer_request_signer(cfg: Any) -> Callable[[str, str, bytes], dict[str, str]]:
    """The transport's signer for this node (a NodeConfig: key, chain id, index)."""
    return lambda method, path_qs, body: sign_request(cfg.signing_key, cfg.chain_id, cfg.index,
                                                      method, path_qs, body)
