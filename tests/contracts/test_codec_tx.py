"""Canonical bytes, signed transactions and Merkle proofs: the invariants they promise.

Each property test is named after the invariant it checks: the canonical codec gives
one byte form per value (whatever the key order) and refuses floats at any depth; a
transaction signature covers every byte of its signed part, only under its own domain;
a transaction keeps its id across the msgpack and JSON forms; a Merkle path verifies for
every leaf and for nothing else, and no two batches share a root.
"""

from __future__ import annotations

import hashlib
import json

import msgpack
import nacl.exceptions
import nacl.signing
import pytest
from hypothesis import assume, given, settings, strategies as st

from consensus.crypto import Ed25519Keyring
from consensus.messages import Commit, Signed, signing_bytes as consensus_signing_bytes
from contracts.codec import MAX_DEPTH, CodecError, decode, encode
from contracts.errors import BadTransaction
from contracts.merkle import EMPTY_ROOT, merkle_path, merkle_root, verify_path
from contracts.tx import MAX_TX_BYTES, TX_DOMAIN, Transaction, from_bytes, from_json, sign_tx

CHAIN = "ipchain-test"
KEY = nacl.signing.SigningKey(hashlib.sha256(b"ipchain-test/codec").digest())
OTHER_KEY = nacl.signing.SigningKey(hashlib.sha256(b"ipchain-test/other").digest())

# -- strategies -------------------------------------------------------------------------------
int64 = st.integers(-2**63, 2**64 - 1)
scalars = st.one_of(st.none(), st.booleans(), int64, st.text(max_size=8), st.binary(max_size=8))
plain = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=4), inner, max_size=4)),
    max_leaves=16)
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**53, 2**53),
                         st.text(max_size=8))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=8)
json_args = st.dictionaries(st.text(max_size=6), json_values, max_size=4)
ops = st.sampled_from(["token.transfer", "patent.deposit", "licence.grant"])
nonces = st.integers(0, 2**63 - 1)


def typed(value):
    """`value` with every scalar tagged by its type: True and 1 must not compare equal."""
    if isinstance(value, list):
        return ("list", [typed(v) for v in value])
    if isinstance(value, dict):
        return ("dict", {k: typed(v) for k, v in value.items()})
    return (type(value).__name__, value)


def shuffled(value, rnd):
    """The same value with every map's insertion order shuffled, at every depth."""
    if isinstance(value, list):
        return [shuffled(v, rnd) for v in value]
    if isinstance(value, dict):
        keys = list(value)
        rnd.shuffle(keys)
        return {k: shuffled(value[k], rnd) for k in keys}
    return value


# -- canonical codec ------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(plain)
def test_canonical_round_trip_keeps_plain_data_and_its_types(value):
    assert typed(decode(encode(value))) == typed(value)
    assert encode(decode(encode(value))) == encode(value)


@settings(max_examples=150, deadline=None)
@given(plain, st.randoms(use_true_random=False))
def test_key_order_never_changes_the_bytes(value, rnd):
    reordered = shuffled(value, rnd)
    assert encode(reordered) == encode(value)
    # A peer's unsorted msgpack decodes to the same value and re-encodes canonically.
    assert encode(decode(msgpack.packb(reordered, use_bin_type=True))) == encode(value)


@settings(max_examples=150, deadline=None)
@given(st.floats(), st.lists(st.tuples(st.sampled_from(["list", "dict"]), scalars,
                                      st.text(max_size=3), st.integers(0, 2)), max_size=8))
def test_a_float_is_rejected_at_any_depth(number, wrappers):
    value = number
    for kind, sibling, key, position in wrappers:
        if kind == "list":
            items = [sibling, sibling]
            items.insert(position, value)
            value = items
        else:
            value = {key: value, key + "~": sibling}
    with pytest.raises(CodecError):
        encode(value)
    with pytest.raises(CodecError):
        decode(msgpack.packb(value, use_bin_type=True))


def test_tuples_encode_as_lists():
    assert encode((1, "a")) == encode([1, "a"])


def test_bool_and_int_have_different_bytes():
    assert encode(True) != encode(1)
    assert encode({"a": False}) != encode({"a": 0})


NOT_CANONICAL = {
    "float": 1.0,
    "float in a list": [1, 2.5],
    "float in a map": {"a": {"b": 0.1}},
    "int map key": {1: "a"},
    "bytes map key": {b"k": "a"},
    "int above 64 bits": 2**64,
    "int below -2**63": -2**63 - 1,
    "set": {1, 2},
    "bytearray": bytearray(b"x"),
    "object": object(),
    "nested too deep": [[]],
}


@pytest.mark.parametrize("name", list(NOT_CANONICAL))
def test_encode_refuses_what_is_not_plain_data(name):
    value = NOT_CANONICAL[name]
    if name == "nested too deep":
        for _ in range(MAX_DEPTH + 1):
            value = [value]
    with pytest.raises(CodecError):
        encode(value)


@pytest.mark.parametrize("raw", [
    msgpack.packb(1.5), msgpack.packb({"a": [1, 2.0]}), msgpack.packb({1: 2}),
    msgpack.packb(msgpack.ExtType(1, b"x")), b"\xc1", b"\x92\x01", b"\xa1\xff", b"\x01\x02",
])
def test_decode_refuses_non_canonical_types_and_malformed_bytes(raw):
    with pytest.raises(CodecError):
        decode(raw)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=100))
def test_decode_of_random_bytes_raises_only_codec_error(data):
    try:
        decode(data)
    except CodecError:
        pass


# -- transactions ---------------------------------------------------------------------------
def make_tx(nonce: int = 0, op: str = "token.transfer", args=None, chain: str = CHAIN,
            key: nacl.signing.SigningKey = KEY) -> Transaction:
    return sign_tx(key, chain, nonce, op, {"to": "acme", "amount": 5} if args is None else args)


def verify_tx_bytes(sender: bytes, data: bytes, sig: bytes) -> bool:
    try:
        nacl.signing.VerifyKey(sender).verify(data, sig)
    except nacl.exceptions.BadSignatureError:
        return False
    return True


@settings(max_examples=60, deadline=None)
@given(nonces, ops, json_args)
def test_tx_keeps_its_id_through_bytes_and_json(nonce, op, args):
    tx = make_tx(nonce, op, args)
    assert tx.signature_ok()
    via_bytes = from_bytes(tx.to_bytes())
    via_json = from_json(tx.to_json())
    via_text = from_json(json.loads(json.dumps(tx.to_json())))
    assert via_bytes.id == via_json.id == via_text.id == tx.id
    assert via_text == tx and via_text.signature_ok()


@settings(max_examples=60, deadline=None)
@given(nonces, json_args, st.data())
def test_tx_signature_fails_on_any_changed_byte_of_the_signed_part(nonce, args, data):
    tx = make_tx(nonce, args=args)
    signed_part = tx.signing_bytes()
    assert verify_tx_bytes(tx.sender, signed_part, tx.sig)
    index = data.draw(st.integers(0, len(signed_part) - 1), label="index")
    changed = bytearray(signed_part)
    changed[index] ^= data.draw(st.integers(1, 255), label="xor")
    assert not verify_tx_bytes(tx.sender, bytes(changed), tx.sig)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_tx_signature_fails_on_any_changed_field(data):
    tx = make_tx(7)
    field = data.draw(st.sampled_from(["chain", "nonce", "op", "args", "sender"]))
    new = {"chain": st.text(max_size=12), "nonce": nonces, "op": ops, "args": json_args,
           "sender": st.just(bytes(OTHER_KEY.verify_key))}[field]
    value = data.draw(new)
    assume(value != getattr(tx, field))
    changed = Transaction(**{**{f: getattr(tx, f) for f in
                                ("chain", "sender", "nonce", "op", "args", "sig")}, field: value})
    assert not changed.signature_ok()


@settings(max_examples=80, deadline=None)
@given(nonces, json_args, st.data())
def test_a_changed_wire_byte_is_refused_or_fails_the_signature_or_is_the_same_tx(nonce, args,
                                                                                 data):
    """Whatever one flipped byte does, it cannot yield a different validly signed tx."""
    raw = bytearray(make_tx(nonce, args=args).to_bytes())
    original = from_bytes(bytes(raw))
    index = data.draw(st.integers(0, len(raw) - 1), label="index")
    raw[index] ^= data.draw(st.integers(1, 255), label="xor")
    try:
        changed = from_bytes(bytes(raw))
    except BadTransaction:
        return
    assert not changed.signature_ok() or changed.id == original.id


def test_tx_signature_is_not_valid_under_the_consensus_domain_and_vice_versa():
    """The same Ed25519 key signs transactions and could sign replica messages (an
    organisation may run a node): neither signature is valid as the other kind."""
    tx = make_tx(3)
    keyring = Ed25519Keyring(0, KEY, [bytes(KEY.verify_key)])
    body = Commit(1, 3, hashlib.sha256(tx.to_bytes()).digest())
    vote = Signed(body, 0, keyring.sign(consensus_signing_bytes(body, CHAIN)))
    assert keyring.verify(0, vote.signing_bytes(CHAIN), vote.sig)

    assert not keyring.verify(0, vote.signing_bytes(CHAIN), tx.sig)
    as_tx = Transaction(tx.chain, tx.sender, tx.nonce, tx.op, tx.args, vote.sig)
    assert not as_tx.signature_ok()
    # The same canonical tx body under the consensus domain is another message.
    consensus_framed = b"ipchain/consensus/v1" + CHAIN.encode() + b"\x00" + encode(tx.body())
    assert not verify_tx_bytes(tx.sender, consensus_framed, tx.sig)
    # Neither domain is a prefix of the other, so no signed message is both kinds.
    assert not vote.signing_bytes(CHAIN).startswith(TX_DOMAIN)
    assert not tx.signing_bytes().startswith(b"ipchain/consensus/v1")


def test_tx_signature_needs_its_domain_and_its_chain():
    tx = make_tx(4)
    assert not verify_tx_bytes(tx.sender, encode(tx.body()), tx.sig)
    assert tx.signing_bytes() == TX_DOMAIN + encode(tx.body())
    moved = Transaction("other-chain", tx.sender, tx.nonce, tx.op, tx.args, tx.sig)
    assert not moved.signature_ok()


BAD_TX_VALUES = {
    "not a map": [1, 2],
    "missing sig": {"args": {}, "chain": CHAIN, "nonce": 0, "op": "x", "sender": bytes(32)},
    "extra field": {"args": {}, "chain": CHAIN, "nonce": 0, "op": "x", "sender": bytes(32),
                    "sig": bytes(64), "fee": 1},
    "short sender": {"args": {}, "chain": CHAIN, "nonce": 0, "op": "x", "sender": bytes(31),
                     "sig": bytes(64)},
    "short sig": {"args": {}, "chain": CHAIN, "nonce": 0, "op": "x", "sender": bytes(32),
                  "sig": bytes(63)},
    "negative nonce": {"args": {}, "chain": CHAIN, "nonce": -1, "op": "x", "sender": bytes(32),
                       "sig": bytes(64)},
    "bool nonce": {"args": {}, "chain": CHAIN, "nonce": True, "op": "x", "sender": bytes(32),
                   "sig": bytes(64)},
    "args a list": {"args": [], "chain": CHAIN, "nonce": 0, "op": "x", "sender": bytes(32),
                    "sig": bytes(64)},
    "float in args": {"args": {"amount": 1.5}, "chain": CHAIN, "nonce": 0, "op": "x",
                      "sender": bytes(32), "sig": bytes(64)},
}


@pytest.mark.parametrize("name", list(BAD_TX_VALUES))
def test_from_bytes_refuses_malformed_transactions(name):
    with pytest.raises(BadTransaction):
        from_bytes(msgpack.packb(BAD_TX_VALUES[name], use_bin_type=True))


def test_from_bytes_refuses_oversized_transactions():
    with pytest.raises(BadTransaction):
        from_bytes(b"\x00" * (MAX_TX_BYTES + 1))
    with pytest.raises(BadTransaction):
        make_tx(args={"blob": "x" * MAX_TX_BYTES})


@pytest.mark.parametrize("change", [
    {"sender": "zz"}, {"sig": 5}, {"args": {"amount": 1.5}}, {"nonce": "1"},
])
def test_from_json_refuses_bad_fields(change):
    with pytest.raises(BadTransaction):
        from_json({**make_tx(1).to_json(), **change})


# -- Merkle proofs --------------------------------------------------------------------------
leaf_lists = st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=40, unique=True)


@settings(max_examples=60, deadline=None)
@given(leaf_lists)
def test_merkle_path_verifies_for_every_leaf(leaves):
    root = merkle_root(leaves)
    for index, leaf in enumerate(leaves):
        assert verify_path(leaf, merkle_path(leaves, index), root)


@settings(max_examples=60, deadline=None)
@given(leaf_lists, st.binary(min_size=32, max_size=32), st.data())
def test_merkle_path_fails_for_a_wrong_leaf_root_or_sibling(leaves, other, data):
    assume(other not in leaves)
    root = merkle_root(leaves)
    index = data.draw(st.integers(0, len(leaves) - 1))
    path = merkle_path(leaves, index)
    assert not verify_path(other, path, root)
    assert not verify_path(leaves[index], path, other)
    if path:
        at = data.draw(st.integers(0, len(path) - 1))
        side, sibling = path[at]
        assert not verify_path(leaves[index], path[:at] + [(side, other)] + path[at + 1:], root)
        flipped = "R" if side == "L" else "L"
        if sibling != leaves[index]:
            assert not verify_path(leaves[index], path[:at] + [(flipped, sibling)] + path[at + 1:],
                                   root)


@settings(max_examples=60, deadline=None)
@given(leaf_lists, st.data())
def test_merkle_root_depends_on_leaf_order(leaves, data):
    assume(len(leaves) >= 2)
    i, j = data.draw(st.lists(st.integers(0, len(leaves) - 1), min_size=2, max_size=2,
                              unique=True))
    swapped = list(leaves)
    swapped[i], swapped[j] = swapped[j], swapped[i]
    assert merkle_root(swapped) != merkle_root(leaves)


def test_merkle_path_of_a_missing_index_is_refused():
    with pytest.raises(IndexError):
        merkle_path([b"a" * 32], 1)
    assert merkle_root([]) == EMPTY_ROOT


@settings(max_examples=40, deadline=None)
@given(leaf_lists)
def test_duplicating_the_last_leaf_changes_the_root(leaves):
    """CVE-2012-2459: an odd level must not behave as if its last node were doubled."""
    assert merkle_root(leaves + [leaves[-1]]) != merkle_root(leaves)


def test_two_different_batches_never_share_a_tx_root():
    """A leaf must not be able to pose as an interior node. Otherwise a primary could send
    [t1, t2, t3] to some replicas and [0x01 || H(t1) || H(t2), t3] to others: one tx
    root, so one digest and one commit, but different transactions executed."""
    txs = [b"pay alice", b"pay bob", b"pay carol"]
    ids = [hashlib.sha256(t).digest() for t in txs]
    forged = b"\x01" + ids[0] + ids[1]
    other = [forged, txs[2]]
    assert merkle_root(ids) != merkle_root([hashlib.sha256(t).digest() for t in other])


@settings(max_examples=40, deadline=None)
@given(leaf_lists)
def test_an_interior_node_does_not_verify_as_a_leaf(leaves):
    assume(len(leaves) >= 2)
    interior = hashlib.sha256(b"\x01" + leaves[0] + leaves[1]).digest()
    path = merkle_path(leaves, 0)[1:]
    assert not verify_path(interior, path, merkle_root(leaves))


@settings(max_examples=200, deadline=None)
@given(nonce=st.integers(min_value=0, max_value=2**64 - 1),
       op=st.text(max_size=20), chain=st.text(max_size=20),
       args=st.dictionaries(st.text(max_size=8), st.one_of(
           st.integers(min_value=-(2**63), max_value=2**63 - 1), st.text(max_size=8),
           st.binary(max_size=70), st.lists(st.integers(min_value=0, max_value=9), max_size=3)),
           max_size=5))
def test_signing_bytes_cut_from_the_encoding_equal_the_encoded_body(nonce, op, chain, args):
    """The fast path (the canonical bytes less the sig entry) gives exactly the bytes of
    encoding the body, and a decoded copy verifies like the signed original."""
    from contracts.tx import TX_DOMAIN, from_bytes, sign_tx
    key = nacl.signing.SigningKey(b"\x07" * 32)
    tx = sign_tx(key, chain, nonce, op, args)
    assert tx.signing_bytes() == TX_DOMAIN + encode(tx.body())
    copy = from_bytes(tx.to_bytes())
    assert copy.signing_bytes() == TX_DOMAIN + encode(copy.body()) and copy.signature_ok()
