"""The fault runner's certificate check (ipchain.faultrun.runner.certificate_problem):
a block fetched from a node must carry 2f+1 valid commits for exactly its batch, or the
`certificates` invariant fails."""

from __future__ import annotations

import nacl.signing

from consensus.messages import Commit, signing_bytes
from ipchain.faultrun.runner import certificate_problem

CHAIN = "cert-test"
KEYS = [nacl.signing.SigningKey(bytes([i + 1]) * 32) for i in range(4)]
GENESIS = {"chain_id": CHAIN, "validators": [{"index": i, "public_key": bytes(k.verify_key).hex()}
                                              for i, k in enumerate(KEYS)]}
DIGEST = bytes(range(32))


def block(signers: list[int], digest: bytes = DIGEST, seq: int = 5) -> dict:
    message = signing_bytes(Commit(1, seq, digest), CHAIN)
    commits = [{"replica": i, "sig": KEYS[i].sign(message).signature.hex()} for i in signers]
    return {"height": 5, "digest": DIGEST.hex(),
            "certificate": {"view": 1, "seq": seq, "digest": digest.hex(), "commits": commits}}


def test_a_quorum_of_valid_commits_certifies_the_block() -> None:
    assert certificate_problem(block([0, 1, 2]), GENESIS) == ""


def test_too_few_or_forged_commits_do_not() -> None:
    assert certificate_problem(block([0, 1]), GENESIS) == "2 valid commits, 3 needed"
    forged = block([0, 1, 2])
    forged["certificate"]["commits"][2]["sig"] = "00" * 64
    assert certificate_problem(forged, GENESIS) == "2 valid commits, 3 needed"
    repeated = block([0, 1, 1])
    assert certificate_problem(repeated, GENESIS) == "2 valid commits, 3 needed"


def test_commits_for_another_batch_or_height_do_not() -> None:
    assert "not this block" in certificate_problem(block([0, 1, 2], digest=bytes(32)), GENESIS)
    assert "not this block" in certificate_problem(block([0, 1, 2], seq=6), GENESIS)
    assert "not this block" in certificate_problem({"height": 5, "digest": DIGEST.hex(),
                                                    "certificate": None}, GENESIS)
