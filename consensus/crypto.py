"""Keyrings: who signs replica messages and how a replica checks the others.

The replica is generic over its keyring (as TigerBeetle's replica is over its
storage and network), so the simulator can swap Ed25519 for a fast keyed-hash scheme
when it runs thousands of schedules. The fast scheme is NOT a signature scheme (any
holder of the table can forge) and is labelled so wherever it is used.
"""

from __future__ import annotations

import hashlib
from typing import Protocol, Sequence

import nacl.exceptions
import nacl.signing


class Keyring(Protocol):
    index: int
    label: str

    def sign(self, data: bytes) -> bytes: ...

    def verify(self, signer: int, data: bytes, sig: bytes) -> bool: ...


class Ed25519Keyring:
    """Real signatures: this replica's signing key and every validator's public key."""

    label = "ed25519"

    def __init__(self, index: int, signing_key: nacl.signing.SigningKey,
                 public_keys: Sequence[bytes]) -> None:
        self.index = index
        self._signing_key = signing_key
        self._verify_keys = [nacl.signing.VerifyKey(bytes(k)) for k in public_keys]

    def sign(self, data: bytes) -> bytes:
        return self._signing_key.sign(data).signature

    def verify(self, signer: int, data: bytes, sig: bytes) -> bool:
        if not 0 <= signer < len(self._verify_keys) or len(sig) != 64:
            return False
        try:
            self._verify_keys[signer].verify(data, sig)
        except nacl.exceptions.BadSignatureError:
            return False
        return True


class FastKeyring:
    """Simulation-only authenticator: blake2b keyed by a per-replica secret.

    Cheap enough for 100-replica simulations; forgeable by anyone with the secrets,
    which in a simulation is only the (honest) harness.
    """

    label = "fast-insecure-sim"

    def __init__(self, index: int, secrets: Sequence[bytes]) -> None:
        self.index = index
        self._keyed = [hashlib.blake2b(key=secret, digest_size=64) for secret in secrets]
        """Each signer's hash state after its key block: a MAC copies it instead of
        hashing the key again (the same MAC as blake2b(data, key=secret))."""

    def sign(self, data: bytes) -> bytes:
        return self._mac(self.index, data)

    def verify(self, signer: int, data: bytes, sig: bytes) -> bool:
        return 0 <= signer < len(self._keyed) and sig == self._mac(signer, data)

    def _mac(self, signer: int, data: bytes) -> bytes:
        mac = self._keyed[signer].copy()
        mac.update(data)
        return mac.digest()


class RememberingKeyring:
    """A keyring that does not check the same signature twice.

    A replica sees one signed message many times: re-sent votes and pre-prepares while a
    slot stays open, the prepares and commits nested in VIEW-CHANGE and NEW-VIEW proofs,
    the commits of a fetched block's certificate. Whether `sig` is `signer`'s signature
    over `data` never changes, so the last `capacity` good answers are kept, keyed by
    all three: a different body or signature is checked afresh. Bad signatures are not
    kept (a flood of them must cost the sender, not our memory). Messages whose signed
    bytes exceed `max_data_bytes` (view changes carrying proofs) are checked each time.
    """

    def __init__(self, inner: Keyring, capacity: int = 4096, max_data_bytes: int = 1024) -> None:
        self.inner = inner
        self.index = inner.index
        self.label = inner.label
        self.capacity = capacity
        self.max_data_bytes = max_data_bytes
        self._good: dict[tuple[int, bytes, bytes], None] = {}
        self.hits = 0

    def sign(self, data: bytes) -> bytes:
        return self.inner.sign(data)

    def verify(self, signer: int, data: bytes, sig: bytes) -> bool:
        if (signer, sig, data) in self._good:
            self.hits += 1
            return True
        return self.remember(signer, data, sig)

    def remember(self, signer: int, data: bytes, sig: bytes) -> bool:
        """Check one signature with the inner keyring; keep it if valid and small."""
        if not self.inner.verify(signer, data, sig):
            return False
        if len(data) <= self.max_data_bytes:
            if len(self._good) >= self.capacity:
                del self._good[next(iter(self._good))]  # the oldest: insertion order
            self._good[(signer, sig, data)] = None
        return True
