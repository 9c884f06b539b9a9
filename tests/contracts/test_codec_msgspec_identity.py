"""The canonical bytes did not move when the codec's writer and reader did.

`contracts.codec` packs with msgspec (sorted maps) and `contracts.state` reads with
msgspec, because they are faster; the protocol's bytes were defined by msgpack-python
(`packb(use_bin_type=True)` of a key-sorted copy). Every format boundary is drawn
here: int widths and signs, str/bin/array/map length classes, and non-ASCII keys, whose
order must be str's code-point order.
"""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings, strategies as st

from contracts.call import Event
from contracts.codec import CodecError, encode, encode_event_list, encode_events, pack
from contracts.state import State

EDGE_INTS = [0, 1, -1, 31, 32, 127, 128, 255, 256, -32, -33, -128, -129, -32768, -32769,
             65535, 65536, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1,
             -(2**31), -(2**31) - 1, -(2**63)]
ints = st.one_of(st.sampled_from(EDGE_INTS), st.integers(-2**63, 2**64 - 1))
sizes = st.sampled_from([0, 1, 15, 16, 31, 32, 255, 256])
texts = st.one_of(st.text(max_size=6), sizes.flatmap(lambda n: st.text(min_size=n, max_size=n)))
blobs = sizes.flatmap(lambda n: st.binary(min_size=n, max_size=n))
keys = st.text(alphabet="aAzZ_/é\u00ff\u0100\uffff\U0001f600", max_size=4)
scalars = st.one_of(st.none(), st.booleans(), ints, texts, blobs)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=18), st.lists(inner, max_size=3).map(tuple),
    st.dictionaries(keys, inner, max_size=18)), max_leaves=40)


def sorted_copy(value):
    if type(value) is dict:
        return {key: sorted_copy(item) for key, item in sorted(value.items())}
    if type(value) in (list, tuple):
        return [sorted_copy(item) for item in value]
    return value


def reference_bytes(value) -> bytes:
    return msgpack.packb(sorted_copy(value), use_bin_type=True)


@settings(max_examples=150, deadline=None)
@given(values)
def test_encode_writes_msgpack_pythons_bytes_of_the_sorted_value(value):
    assert encode(value) == reference_bytes(value)


@settings(max_examples=100, deadline=None)
@given(values)
def test_pack_of_a_sorted_value_writes_the_same_bytes(value):
    assert pack(sorted_copy(value)) == reference_bytes(value)


def test_the_large_length_classes_match():
    for n in (65535, 65536):
        as_map = {f"k{i:06d}": i for i in range(n)}
        assert encode(as_map) == reference_bytes(as_map)
        assert encode(list(range(n))) == reference_bytes(list(range(n)))
    assert encode("x" * 70000) == reference_bytes("x" * 70000)
    assert encode(b"x" * 70000) == reference_bytes(b"x" * 70000)


@settings(max_examples=100, deadline=None)
@given(values)
def test_state_reads_back_what_msgpack_python_would_decode(value):
    state = State()
    state.put("k", value)
    expected = msgpack.unpackb(reference_bytes(value), raw=False)
    got = state.get("k")
    assert got == expected
    assert type(got) is type(expected)


event_lists = st.lists(st.fixed_dictionaries({
    "contract": st.text(max_size=6), "name": st.text(max_size=6),
    "data": st.dictionaries(keys, values, max_size=5)}), max_size=3)


@settings(max_examples=100, deadline=None)
@given(event_lists)
def test_an_event_list_encodes_as_the_generic_encoder_does(events):
    assert encode_event_list(events) == encode(events) == reference_bytes(events)


@pytest.mark.parametrize("bad", [
    {"contract": "c", "name": "n", "data": {"x": 1.5}},
    {"contract": "c", "name": "n", "data": {"x": [{"y": 0.0}]}},
    {"contract": "c", "name": "n", "data": {1: 2}},
    {"contract": "c", "name": "n", "data": [1]},
    {"contract": 1, "name": "n", "data": {}},
    {"contract": "c", "name": b"n", "data": {}},
])
def test_an_event_list_refuses_what_encode_refuses(bad):
    with pytest.raises(CodecError):
        encode_event_list([bad])


@settings(max_examples=100, deadline=None)
@given(event_lists)
def test_events_encode_from_the_event_objects_as_their_maps_do(events):
    objects = [Event(e["contract"], e["name"], e["data"]) for e in events]
    assert encode_events(objects) == encode_event_list(events) == reference_bytes(events)


@pytest.mark.parametrize("bad", [
    {"contract": "c", "name": "n", "data": {"x": 1.5}},
    {"contract": "c", "name": "n", "data": {"x": [{"y": 0.0}]}},
    {"contract": "c", "name": "n", "data": {"x": 2**64}},
    {"contract": "c", "name": "n", "data": {1: 2}},
    {"contract": "c", "name": "n", "data": [1]},
    {"contract": 1, "name": "n", "data": {}},
    {"contract": "c", "name": b"n", "data": {}},
])
def test_events_refuse_what_encode_refuses(bad):
    with pytest.raises(CodecError):
        encode_events([Event(bad["contract"], bad["name"], bad["data"])])
