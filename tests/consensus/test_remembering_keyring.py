"""RememberingKeyring: a signature is checked once, and nothing false is ever remembered."""

from __future__ import annotations

import nacl.signing

from consensus.crypto import Ed25519Keyring, RememberingKeyring


class CountingKeyring:
    """Ed25519 underneath, counting the checks that reach it."""

    def __init__(self, inner: Ed25519Keyring) -> None:
        self.inner, self.index, self.label, self.checks = inner, inner.index, inner.label, 0

    def sign(self, data: bytes) -> bytes:
        return self.inner.sign(data)

    def verify(self, signer: int, data: bytes, sig: bytes) -> bool:
        self.checks += 1
        return self.inner.verify(signer, data, sig)


def keyrings(capacity: int = 4) -> tuple[RememberingKeyring, CountingKeyring, Ed25519Keyring]:
    keys = [nacl.signing.SigningKey(bytes([i + 1]) * 32) for i in range(2)]
    publics = [bytes(k.verify_key) for k in keys]
    counting = CountingKeyring(Ed25519Keyring(0, keys[0], publics))
    return RememberingKeyring(counting, capacity=capacity), counting, Ed25519Keyring(1, keys[1], publics)


def test_a_good_signature_is_checked_once() -> None:
    remembering, counting, signer = keyrings()
    sig = signer.sign(b"prepare 7")
    assert all(remembering.verify(1, b"prepare 7", sig) for _ in range(5))
    assert counting.checks == 1 and remembering.hits == 4


def test_other_bytes_signer_or_signature_are_checked_afresh() -> None:
    remembering, counting, signer = keyrings()
    sig = signer.sign(b"prepare 7")
    assert remembering.verify(1, b"prepare 7", sig)
    assert not remembering.verify(1, b"prepare 8", sig)  # same signature, other body
    assert not remembering.verify(0, b"prepare 7", sig)  # claimed by another replica
    assert not remembering.verify(1, b"prepare 7", bytes(64))
    assert counting.checks == 4


def test_bad_signatures_are_never_remembered() -> None:
    remembering, counting, _ = keyrings()
    for _ in range(3):
        assert not remembering.verify(1, b"forged", bytes(64))
    assert counting.checks == 3 and remembering.hits == 0


def test_memory_is_bounded_oldest_first_and_large_messages_are_not_kept() -> None:
    remembering, counting, signer = keyrings(capacity=2)
    sigs = {m: signer.sign(m) for m in (b"a", b"b", b"c")}
    for message, sig in sigs.items():
        assert remembering.verify(1, message, sig)
    assert remembering.verify(1, b"c", sigs[b"c"]) and counting.checks == 3  # kept
    assert remembering.verify(1, b"a", sigs[b"a"]) and counting.checks == 4  # evicted
    big = b"v" * (remembering.max_data_bytes + 1)
    big_sig = signer.sign(big)
    assert remembering.verify(1, big, big_sig) and remembering.verify(1, big, big_sig)
    assert counting.checks == 6
