"""Replica messages on the wire and under signature.

Properties (hypothesis): every message kind survives encode/decode unchanged, nested
VIEW-CHANGE / NEW-VIEW included; whatever bytes or msgpack values a peer sends, decode
either returns a message or raises WireError, nothing else; an Ed25519 signature fails
on any changed byte of the signed part, for another kind with the same fields, for
another chain and for another signer.
"""

from __future__ import annotations

import dataclasses

import msgpack
import nacl.signing
import pytest
from hypothesis import assume, given, settings, strategies as st

from consensus.crypto import Ed25519Keyring, FastKeyring
from consensus.messages import (DOMAIN, Checkpoint, Commit, NewView, PreparedProof, PrePrepare,
                                Prepare, Signed, ViewChange, WireError, decode, encode,
                                signing_bytes)

CHAIN = "ipchain-test"
N = 4
SIGNING_KEYS = [nacl.signing.SigningKey(bytes([i + 7]) * 32) for i in range(N)]
PUBLIC_KEYS = [bytes(k.verify_key) for k in SIGNING_KEYS]
KEYRINGS = [Ed25519Keyring(i, SIGNING_KEYS[i], PUBLIC_KEYS) for i in range(N)]

# -- strategies ---------------------------------------------------------------------------
u63 = st.integers(0, 2**63 - 1)
small = st.integers(0, 2**20)
hash32 = st.binary(min_size=32, max_size=32)
sig64 = st.binary(min_size=64, max_size=64)
senders = st.integers(0, 2**63 - 1)

preprepares = st.builds(PrePrepare, u63, u63, hash32, u63,
                        st.lists(st.binary(max_size=40), max_size=4).map(tuple))
prepares = st.builds(Prepare, u63, u63, hash32)
commits = st.builds(Commit, u63, u63, hash32)
checkpoints = st.builds(Checkpoint, u63, hash32)


def signed(bodies: st.SearchStrategy) -> st.SearchStrategy:
    return st.builds(Signed, bodies, senders, sig64)


prepared_proofs = st.builds(PreparedProof, signed(preprepares),
                            st.lists(signed(prepares), max_size=3).map(tuple))
view_changes = st.builds(ViewChange, u63, u63, hash32,
                         st.lists(signed(checkpoints), max_size=3).map(tuple),
                         st.lists(prepared_proofs, max_size=3).map(tuple))
new_views = st.builds(NewView, u63, st.lists(signed(view_changes), max_size=3).map(tuple),
                      st.lists(signed(preprepares), max_size=3).map(tuple))
any_body = st.one_of(preprepares, prepares, commits, checkpoints, view_changes, new_views)
flat_body = st.one_of(preprepares, prepares, commits, checkpoints)

plain_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1), st.floats(),
              st.text(max_size=4), st.binary(max_size=70),
              st.sampled_from(["PP", "P", "C", "CP", "VC", "NV"])),
    lambda inner: st.one_of(st.lists(inner, max_size=6),
                            st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=20)


# -- the wire codec ---------------------------------------------------------------------------
@settings(max_examples=150, deadline=None)
@given(signed(any_body))
def test_every_message_kind_survives_the_wire_unchanged(msg):
    assert decode(encode(msg)) == msg


@settings(max_examples=150, deadline=None)
@given(signed(any_body))
def test_wire_and_signing_bytes_are_what_msgpack_python_writes(msg):
    """The encoder is msgspec's (faster); the bytes are the ones msgpack-python wrote before,
    so signatures, WALs and peers of older versions agree."""
    from consensus.messages import _body_value, _signed_value, signing_bytes
    assert encode(msg) == msgpack.packb(_signed_value(msg), use_bin_type=True)
    packed = msgpack.packb(_body_value(msg.body, signed_part_only=True), use_bin_type=True)
    assert signing_bytes(msg.body, CHAIN).endswith(b"\x00" + packed)


@pytest.mark.parametrize("kind", ["PP", "P", "C", "CP", "VC", "NV"])
def test_each_kind_round_trips_with_nested_proofs(kind):
    """One hand-built example per kind, so a kind the strategies stop reaching still fails."""
    example = {
        "PP": PrePrepare(1, 2, bytes(32), 3, (b"tx",)),
        "P": Prepare(1, 2, bytes(32)),
        "C": Commit(1, 2, bytes(32)),
        "CP": Checkpoint(64, bytes(32)),
    }
    pp = Signed(PrePrepare(1, 2, bytes(32), 3, (b"a", b"b")), 1, bytes(64))
    proof = PreparedProof(pp, (Signed(Prepare(1, 2, bytes(32)), 2, bytes(64)),))
    vc = ViewChange(2, 64, b"r" * 32, (Signed(Checkpoint(64, b"r" * 32), 3, bytes(64)),), (proof,))
    example["VC"] = vc
    example["NV"] = NewView(2, (Signed(vc, 0, bytes(64)),), (pp,))
    msg = Signed(example[kind], 0, b"s" * 64)
    assert decode(encode(msg)) == msg
    assert type(example[kind]).KIND == kind


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_wire_error(data):
    try:
        decode(data)
    except WireError:
        pass


@settings(max_examples=150, deadline=None)
@given(st.tuples(senders, sig64, st.one_of(plain_values, st.lists(plain_values, max_size=6))))
def test_structured_junk_raises_only_wire_error(junk):
    """msgpack values shaped almost like a message (right envelope, junk body)."""
    try:
        decode(msgpack.packb(list(junk), use_bin_type=True))
    except WireError:
        pass


@settings(max_examples=100, deadline=None)
@given(plain_values)
def test_any_msgpack_value_raises_only_wire_error(value):
    try:
        decode(msgpack.packb(value, use_bin_type=True))
    except WireError:
        pass


@settings(max_examples=150, deadline=None)
@given(signed(any_body), st.data())
def test_a_truncated_or_extended_message_raises_wire_error(msg, data):
    raw = encode(msg)
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(WireError):
        decode(raw[:cut])
    with pytest.raises(WireError):
        decode(raw + data.draw(st.binary(min_size=1, max_size=4)))


GOOD_BODY = ["P", 1, 2, b"d" * 32]
MALFORMED = {
    "not an array": {"sender": 0},
    "two parts": [0, b"s" * 64],
    "negative sender": [-1, b"s" * 64, GOOD_BODY],
    "bool sender": [True, b"s" * 64, GOOD_BODY],
    "float sender": [0.0, b"s" * 64, GOOD_BODY],
    "sender too big": [2**63, b"s" * 64, GOOD_BODY],
    "short signature": [0, b"s" * 63, GOOD_BODY],
    "signature as text": [0, "s" * 64, GOOD_BODY],
    "unknown kind": [0, b"s" * 64, ["X", 1, 2, b"d" * 32]],
    "kind as a list": [0, b"s" * 64, [["P"], 1, 2, b"d" * 32]],
    "kind as a map": [0, b"s" * 64, [{"k": 1}, 1, 2, b"d" * 32]],
    "empty body": [0, b"s" * 64, []],
    "missing field": [0, b"s" * 64, ["P", 1, 2]],
    "extra field": [0, b"s" * 64, ["C", 1, 2, b"d" * 32, 4]],
    "short digest": [0, b"s" * 64, ["C", 1, 2, b"d" * 31]],
    "digest as text": [0, b"s" * 64, ["C", 1, 2, "d" * 32]],
    "float view": [0, b"s" * 64, ["C", 1.5, 2, b"d" * 32]],
    "tx as text": [0, b"s" * 64, ["PP", 1, 2, b"d" * 32, 3, ["tx"]]],
    "txs not a list": [0, b"s" * 64, ["PP", 1, 2, b"d" * 32, 3, b"tx"]],
    "proof of one part": [0, b"s" * 64, ["VC", 1, 0, b"r" * 32, [],
                                         [[[0, b"s" * 64, GOOD_BODY]]]]],
    "commit as checkpoint proof": [0, b"s" * 64, ["VC", 1, 0, b"r" * 32,
                                                  [[1, b"s" * 64, ["C", 1, 2, b"d" * 32]]], []]],
    "prepare as prepared pre-prepare": [0, b"s" * 64, ["VC", 1, 0, b"r" * 32, [], [
        [[1, b"s" * 64, GOOD_BODY], []]]]],
    "commit as prepared vote": [0, b"s" * 64, ["VC", 1, 0, b"r" * 32, [], [
        [[0, b"s" * 64, ["PP", 1, 2, b"d" * 32, 3, []]],
         [[1, b"s" * 64, ["C", 1, 2, b"d" * 32]]]]]]],
    "new view of prepares": [0, b"s" * 64, ["NV", 1, [[1, b"s" * 64, GOOD_BODY]], []]],
    "new view re-proposing a commit": [0, b"s" * 64, ["NV", 1, [], [[1, b"s" * 64,
                                                                    ["C", 1, 2, b"d" * 32]]]]],
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_decode_refuses_malformed_message(name):
    with pytest.raises(WireError):
        decode(msgpack.packb(MALFORMED[name], use_bin_type=True))


def test_decode_refuses_deeply_nested_new_views_with_wire_error():
    """A peer can nest NEW-VIEWs as deep as msgpack allows; that must be a WireError,
    not a RecursionError escaping into the transport."""
    value = [0, b"s" * 64, ["NV", 1, [], []]]
    for _ in range(300):
        value = [0, b"s" * 64, ["NV", 1, [value], []]]
    with pytest.raises(WireError):
        decode(msgpack.packb(value, use_bin_type=True))


def test_decode_refuses_msgpack_extension_and_non_utf8_text():
    with pytest.raises(WireError):
        decode(msgpack.packb(msgpack.ExtType(5, b"x")))
    with pytest.raises(WireError):
        decode(b"\x93\x00\xc4\x40" + b"s" * 64 + b"\x94\xa1\xff\x01\x02\xc4\x20" + b"d" * 32)


# -- signatures ---------------------------------------------------------------------------------
def sign(body, signer: int = 0, chain: str = CHAIN) -> Signed:
    return Signed(body, signer, KEYRINGS[signer].sign(signing_bytes(body, chain)))


def verifies(msg: Signed, chain: str = CHAIN, by: int = 1) -> bool:
    return KEYRINGS[by].verify(msg.sender, msg.signing_bytes(chain), msg.sig)


@settings(max_examples=60, deadline=None)
@given(any_body, st.data())
def test_ed25519_signature_fails_on_any_changed_byte_of_the_signed_part(body, data):
    msg = sign(body)
    signed_part = msg.signing_bytes(CHAIN)
    assert verifies(msg)
    index = data.draw(st.integers(0, len(signed_part) - 1), label="index")
    flip = data.draw(st.integers(1, 255), label="xor")
    changed = bytearray(signed_part)
    changed[index] ^= flip
    assert not KEYRINGS[1].verify(0, bytes(changed), msg.sig)


@settings(max_examples=30, deadline=None)
@given(flat_body, st.data())
def test_ed25519_signature_fails_on_any_changed_field(body, data):
    msg = sign(body)
    names = [f.name for f in dataclasses.fields(body) if f.name != "txs"]
    name = data.draw(st.sampled_from(names))
    old = getattr(body, name)
    new = data.draw(st.integers(0, 2**63 - 1) if isinstance(old, int)
                    else st.binary(min_size=32, max_size=32))
    assume(new != old)
    assert not verifies(Signed(dataclasses.replace(body, **{name: new}), 0, msg.sig))


@settings(max_examples=30, deadline=None)
@given(st.builds(Prepare, u63, u63, hash32))
def test_a_prepare_signature_does_not_verify_as_a_commit_with_the_same_fields(prepare):
    msg = sign(prepare)
    as_commit = Signed(Commit(prepare.view, prepare.seq, prepare.digest), 0, msg.sig)
    assert verifies(msg)
    assert not verifies(as_commit)


@settings(max_examples=30, deadline=None)
@given(flat_body, st.text(min_size=1, max_size=12))
def test_a_signature_does_not_verify_on_another_chain(body, other_chain):
    assume(other_chain != CHAIN)
    msg = sign(body)
    assert verifies(msg)
    assert not verifies(msg, chain=other_chain)


@settings(max_examples=20, deadline=None)
@given(flat_body)
def test_a_signature_does_not_verify_for_another_signer(body):
    msg = sign(body, signer=0)
    assert not verifies(Signed(body, 2, msg.sig))


def test_signed_part_is_domain_chain_and_body():
    """The layout the other kinds' domains must not collide with."""
    raw = signing_bytes(Commit(1, 2, bytes(32)), CHAIN)
    assert raw.startswith(DOMAIN + CHAIN.encode() + b"\x00")
    assert msgpack.unpackb(raw[len(DOMAIN) + len(CHAIN) + 1:]) == ["C", 1, 2, bytes(32)]


def test_preprepare_signature_covers_the_header_not_the_batch():
    """The digest binds the batch (checked by the replica); the signature binds the digest."""
    body = PrePrepare(0, 1, bytes(32), 5, (b"a",))
    msg = sign(body)
    assert verifies(Signed(dataclasses.replace(body, txs=(b"b",)), 0, msg.sig))
    assert not verifies(Signed(dataclasses.replace(body, digest=b"x" * 32), 0, msg.sig))


def test_ed25519_keyring_refuses_unknown_signers_and_bad_lengths():
    msg = sign(Commit(1, 2, bytes(32)))
    data = msg.signing_bytes(CHAIN)
    assert KEYRINGS[1].verify(0, data, msg.sig)
    assert not KEYRINGS[1].verify(N, data, msg.sig)
    assert not KEYRINGS[1].verify(-1, data, msg.sig)
    assert not KEYRINGS[1].verify(0, data, msg.sig[:63])
    assert not KEYRINGS[1].verify(0, data, msg.sig + b"\x00")


def test_fast_keyring_detects_changes_and_wrong_signers():
    secrets = [bytes([i]) * 32 for i in range(N)]
    keys = [FastKeyring(i, secrets) for i in range(N)]
    data = signing_bytes(Commit(1, 2, bytes(32)), CHAIN)
    sig = keys[0].sign(data)
    assert keys[3].verify(0, data, sig)
    assert not keys[3].verify(1, data, sig)
    assert not keys[3].verify(N, data, sig)
    assert not keys[3].verify(0, data + b"\x00", sig)
    assert keys[0].label != KEYRINGS[0].label
