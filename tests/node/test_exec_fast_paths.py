"""The executor's cheaper ways to the same bytes (issue 10): each is checked against
the general way it replaces, over random inputs, refusals included."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from contracts import codec
from contracts.call import Event
from contracts.merkle import _leaf, _node, leaf_nodes, merkle_root
from contracts.merkle_levels import MerkleLevels
from contracts.state import State
from node.chain import _events_bytes

ints = st.one_of(st.sampled_from([0, -1, 2**62, 2**63 - 1, -2**63, 2**64 - 1]),
                 st.integers(-2**63, 2**64 - 1))
scalars = st.one_of(st.none(), st.booleans(), ints, st.text(max_size=8), st.binary(max_size=8))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)),
    max_leaves=6)
event_lists = st.lists(st.builds(Event, st.text(max_size=6), st.text(max_size=6),
                                 st.dictionaries(st.text(max_size=5), values, max_size=5)),
                       min_size=1, max_size=3)


@settings(max_examples=200, deadline=None)
@given(event_lists)
def test_event_bytes_are_the_codecs(events):
    assert _events_bytes(tuple(events)) == codec.encode_events(events)


@pytest.mark.parametrize("data", [
    {"x": 1.5}, {"x": 2**64}, {"x": -2**63 - 1}, {"x": [{"y": 0.0}]}, {1: 2}, {"x": {1, 2}},
    {"x": True, "y": 2**70},
])
def test_event_bytes_refuse_what_the_codec_refuses(data):
    with pytest.raises(codec.CodecError):
        _events_bytes((Event("c", "n", {"ok": 1}), Event("c", "n", data)))
    with pytest.raises(codec.CodecError):
        _events_bytes((Event(1, "n", {}),))  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=40), max_size=40))
def test_merkle_root_hashes_as_the_plain_rule_does(leaves):
    """The prefixed-hasher copies give H(0x00 || leaf) and H(0x01 || left || right)."""
    assert leaf_nodes(leaves) == [_leaf(leaf) for leaf in leaves]
    level = [_leaf(leaf) for leaf in leaves]
    while len(level) > 1:
        level = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)] + (
            [level[-1]] if len(level) % 2 else [])
    assert merkle_root(leaves) == (level[0] if leaves else merkle_root([]))
    if leaves:
        assert MerkleLevels([_leaf(leaf) for leaf in leaves]).root() == level[0]


def _roles(record):
    return () if record is None else tuple(record["roles"])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["put", "delete", "read", "begin-rollback"]),
                          st.sampled_from(["org/a", "org/b"]),
                          st.lists(st.sampled_from(["member", "office"]), max_size=2)),
                max_size=30))
def test_a_view_is_what_reading_the_key_gives_after_any_writes(ops):
    """State.view answers from its cache only while the key holds the bytes it read."""
    state = State({"org/a": codec.encode({"roles": ["member"]})})
    for op, key, roles in ops:
        if op == "put":
            state.put(key, {"roles": roles})
        elif op == "delete":
            state.delete(key)
        elif op == "begin-rollback":
            state.begin()
            state.put(key, {"roles": roles + ["x"]})
            assert state.view(key, _roles) == tuple(roles + ["x"])
            state.rollback()
        assert state.view(key, _roles) == _roles(state.get(key))
