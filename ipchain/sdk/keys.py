"""A member's signing key: from a key file (64 hex chars, the 32-byte Ed25519 seed) or
from a seed, and the one place the SDK signs transactions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nacl.signing

from contracts.tx import Transaction, sign_tx
from ipchain.sdk import client as http


class Signer:
    def __init__(self, key: nacl.signing.SigningKey) -> None:
        self.key = key

    @classmethod
    def from_file(cls, path: str | Path) -> "Signer":
        return cls(http.load_key(path))

    @classmethod
    def from_seed(cls, seed: bytes | str) -> "Signer":
        raw = bytes.fromhex(seed) if isinstance(seed, str) else seed
        if len(raw) != 32:
            raise ValueError("an Ed25519 seed is 32 bytes (64 hex characters)")
        return cls(nacl.signing.SigningKey(raw))

    @property
    def sender_hex(self) -> str:
        return bytes(self.key.verify_key).hex()

    def sign(self, chain_id: str, nonce: int, op: str, args: dict[str, Any]) -> Transaction:
        return sign_tx(self.key, chain_id, nonce, op, args)
