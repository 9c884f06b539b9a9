"""`contracts.tx.from_canonical_bytes`, admission's short way to decode a transaction,
accepts exactly the bytes the long way (`from_bytes` and `encoded == data`) accepts,
and gives the same transaction: same fields, bytes, id and signature verdict. Any
difference would let a relayed transaction pass one node and fail another."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import msgpack
import nacl.signing
import pytest
from hypothesis import given, settings, strategies as st

from contracts import codec
from contracts.tx import MAX_TX_BYTES, Transaction, from_bytes, from_canonical_bytes, sign_tx

KEY = nacl.signing.SigningKey(hashlib.sha256(b"ipchain-test/short-way").digest())
TX = sign_tx(KEY, "ipchain-test", 5, "token.transfer",
             {"to": "org-b", "amount": 57, "memo": {"b": [1, "x", b"z"], "a": None}})
RAW = TX.to_bytes()
VALUE = codec.decode(RAW)


def long_way(data: bytes) -> Transaction | None:
    try:
        tx = from_bytes(data)
    except Exception:
        return None
    return tx if tx.encoded == data else None


def assert_same_verdict(data: bytes) -> bool:
    expected, got = long_way(data), from_canonical_bytes(data)
    assert (expected is None) == (got is None), data
    if expected is not None:
        assert got == expected and got.encoded == expected.encoded == data
        assert got.id == expected.id and got.id_bytes == bytes.fromhex(expected.id)
        assert got.signature_ok() == expected.signature_ok()
        assert got.sender_hex == expected.sender.hex()
        assert codec.encode(got.args) == codec.encode(expected.args)  # True is not 1
    return expected is not None


def packed(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


REFUSED = {
    "float nonce": packed({**VALUE, "nonce": 1.0}),
    "float in args": packed({**VALUE, "args": {"to": 1.5}}),
    "bytes key in args": packed({**VALUE, "args": {b"to": 1}}),
    "args keys out of order": packed({**VALUE, "args": {"b": 1, "a": 2}}),
    "fields out of order": packed(dict(reversed(list(VALUE.items())))),
    "bool nonce": packed({**VALUE, "nonce": True}),
    "negative nonce": packed({**VALUE, "nonce": -1}),
    "short sender": packed({**VALUE, "sender": b"x" * 31}),
    "bytes chain": packed({**VALUE, "chain": b"c"}),
    "extra field": packed({**VALUE, "extra": 1}),
    "not a map": packed([1, 2]),
    "ext type": packed({**VALUE, "args": {"a": msgpack.ExtType(1, b"x")}}),
    "old str format": msgpack.packb({**VALUE, "args": {"a": "x"}}, use_bin_type=False),
    "trailing byte": RAW + b"\x00",
    "truncated": RAW[:-1],
    "empty": b"",
    "never used byte": b"\xc1",
    "long nonce form": RAW.replace(b"\xa5nonce\x05", b"\xa5nonce\xcc\x05", 1),
    "too deep": packed({**VALUE, "args": {"a": nested(codec.MAX_DEPTH + 1)}}),
    "too long": packed({**VALUE, "args": {"a": "x" * MAX_TX_BYTES}}),
}


def test_a_canonical_transaction_is_the_same_either_way() -> None:
    assert assert_same_verdict(RAW)
    assert from_canonical_bytes(RAW).signature_ok()
    assert assert_same_verdict(packed({**VALUE, "nonce": 2**64 - 1}))


def test_an_id_the_caller_already_hashed_is_taken_as_it_is() -> None:
    """The executor hands over the id it hashed for the block's batch: the transaction is
    the same, and the id is not hashed a second time."""
    tx_id = hashlib.sha256(RAW).digest()
    handed = from_canonical_bytes(RAW, tx_id)
    assert handed == from_canonical_bytes(RAW) and handed.id_bytes is tx_id
    assert from_canonical_bytes(RAW).id_bytes == tx_id


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_what_the_long_way_refuses_the_short_way_leaves_to_it(name: str) -> None:
    assert not assert_same_verdict(REFUSED[name])


@pytest.mark.parametrize("depth", range(codec.MAX_DEPTH - 4, codec.MAX_DEPTH + 3))
def test_nesting_at_the_depth_limit_gets_the_same_verdict(depth: int) -> None:
    assert_same_verdict(packed({**VALUE, "args": {"a": nested(depth)}}))
    assert_same_verdict(packed({**VALUE, "args": {"a": {"k": nested(depth)}}}))


def test_corrupted_bytes_get_the_same_verdict() -> None:
    rng = random.Random(7)
    accepted = 0
    for _ in range(3000):
        data = bytearray(RAW)
        for _ in range(rng.randrange(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        accepted += assert_same_verdict(bytes(data))
    assert 0 < accepted < 3000  # both verdicts were exercised


plain = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1), st.text(max_size=6),
              st.binary(max_size=6), st.floats(allow_nan=False)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.one_of(st.text(max_size=3), st.binary(max_size=2)),
                                            inner, max_size=3)),
    max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(args=st.dictionaries(st.text(max_size=4), plain, max_size=4), sort=st.booleans())
def test_any_args_get_the_same_verdict(args: dict[str, Any], sort: bool) -> None:
    value = {**VALUE, "args": args}
    assert_same_verdict(packed(value))
    try:
        assert_same_verdict(codec.encode(value) if sort else packed(codec.sorted_copy(value)))
    except codec.CodecError:
        pass  # floats or bytes keys: no canonical form to try


SAMPLES = [RAW, *(sign_tx(KEY, "ipchain-test", nonce, "token.transfer", args).to_bytes()
                  for nonce, args in enumerate([
                      {"to": "org-b", "amount": 57},
                      {"flag": True, "none": None, "n": -5, "big": 2**64 - 1},
                      {"blob": b"\x00\x01", "to": "x"},
                      {"list": [1, [2, {"k": "v"}]], "z": ""}]))]
EDITS = st.lists(st.tuples(st.sampled_from(["set", "insert", "delete"]),
                           st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4)


@settings(max_examples=600, deadline=None)
@given(sample=st.sampled_from(SAMPLES), edits=EDITS)
def test_edited_bytes_get_the_same_verdict(sample: bytes, edits: list[tuple[str, int, int]]
                                           ) -> None:
    """Bytes set, inserted or deleted anywhere in transactions whose args are scalars
    (the typed short way), bytes or nested (walked): both ways agree on every edit."""
    data = bytearray(sample)
    for kind, where, byte in edits:
        at = where % (len(data) + 1)
        if kind == "insert":
            data[at:at] = bytes([byte])
        elif data and kind == "delete":
            del data[min(at, len(data) - 1)]
        elif data:
            data[min(at, len(data) - 1)] = byte
    assert_same_verdict(bytes(data))


@pytest.mark.parametrize("index", range(len(SAMPLES)))
def test_every_sample_is_taken_the_short_way(index: int) -> None:
    assert assert_same_verdict(SAMPLES[index])

