"""The state root kept incrementally (contracts/merkle_levels.py) must equal a from-scratch
`merkle_root` over the sorted leaves after any writes: proofs, snapshot chunks and the
browser verifier all depend on that exact tree shape."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.merkle import EMPTY_ROOT, leaf_node, merkle_root
from contracts.merkle_levels import MerkleLevels
from contracts.state import State, leaf_hash, leaf_hashes

KEYS = st.text(alphabet="abcdefgh", min_size=1, max_size=3)
OPS = st.lists(st.tuples(st.sampled_from(["put", "delete", "root", "begin", "commit",
                                           "rollback"]),
                         KEYS, st.integers(0, 5)), max_size=60)


def scratch_root(state: State) -> bytes:
    keys = sorted(state.raw_items())
    return merkle_root([leaf_hash(k, state.get_raw(k)) for k in keys])


def apply(state: State, op: str, key: str, value: int) -> None:
    if op == "put":
        state.put(key, value)
    elif op == "delete":
        state.delete(key)
    elif op == "root":
        assert state.root() == scratch_root(state)
    elif op == "begin" and state._journal is None:
        state.begin()
    elif op in ("commit", "rollback") and state._journal is not None:
        getattr(state, op)()


@settings(max_examples=300, deadline=None)
@given(start=st.dictionaries(KEYS, st.integers(0, 5), max_size=20), ops=OPS)
def test_the_cached_root_equals_a_from_scratch_root_after_any_writes(start, ops) -> None:
    state = written(start, ops)
    assert state.root() == scratch_root(state)


def written(start: dict[str, int], ops) -> State:
    """A state holding `start`, its root computed, then `ops` applied."""
    state = State()
    for key, value in start.items():
        state.put(key, value)
    state.root()
    for op, key, value in ops:
        apply(state, op, key, value)
    return state


@settings(max_examples=100, deadline=None)
@given(start=st.dictionaries(KEYS, st.integers(0, 5), max_size=20), ops=OPS)
def test_a_restored_state_keeps_the_root_exact_through_later_writes(start, ops) -> None:
    loaded = State()
    for key, value in start.items():
        loaded.put(key, value)
    keys, leaves = loaded.sorted_leaves()
    pairs = [(k, loaded.get_raw(k)) for k in keys]
    restored = State.from_verified(pairs, leaves, loaded.root())
    for op, key, value in ops:
        apply(restored, op, key, value)
    assert restored.root() == scratch_root(restored)


@settings(max_examples=200, deadline=None)
@given(before=st.lists(st.binary(max_size=4), max_size=40),
       edits=st.lists(st.tuples(st.integers(0, 40), st.binary(max_size=4)), max_size=8),
       cut=st.integers(0, 45), tail=st.lists(st.binary(max_size=4), max_size=40))
def test_levels_update_matches_merkle_root(before, edits, cut, tail) -> None:
    """Point updates below a shift position plus a replaced tail, at the level-cache API."""
    tree = MerkleLevels([leaf_node(b) for b in before])
    assert tree.root() == merkle_root(before)
    cut = min(cut, len(before))
    after = list(before)
    changed = {}
    for index, value in edits:
        if index < cut:
            after[index] = value
            changed[index] = leaf_node(value)
    after = after[:cut] + tail
    assert tree.update(changed, cut, [leaf_node(b) for b in tail]) == merkle_root(after)
    assert len(tree) == len(after)


def test_an_emptied_state_has_the_empty_root() -> None:
    state = State({"a": b"\x01", "b": b"\x02", "c": b"\x03"})
    state.root()
    for key in "abc":
        state.delete(key)
    assert state.root() == EMPTY_ROOT
    state.put("z", 1)
    assert state.root() == merkle_root([leaf_hash("z", state.get_raw("z"))])


@settings(max_examples=100, deadline=None)
@given(leaves=st.lists(st.binary(max_size=3), min_size=1, max_size=70),
       log2=st.integers(0, 4))
def test_a_tree_from_aligned_subtrees_is_the_tree_of_all_leaves(leaves, log2) -> None:
    """What a snapshot restore assembles from its verified chunks (the last one short)."""
    size = 1 << log2
    nodes = [leaf_node(b) for b in leaves]
    subtrees = [MerkleLevels(nodes[i:i + size]).levels for i in range(0, len(nodes), size)]
    whole = MerkleLevels.from_subtrees(subtrees)
    assert whole.levels == MerkleLevels(nodes).levels
    assert whole.root() == merkle_root(leaves)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=5), st.binary(max_size=8)), max_size=20))
def test_the_batched_leaf_hashes_a_restore_checks_with_are_the_single_ones(
        pairs: list[tuple[str, bytes]]) -> None:
    from contracts.merkle import concatenated_leaf_nodes, leaf_nodes

    hashes = leaf_hashes(pairs)
    assert hashes == [leaf_hash(k, v) for k, v in pairs]
    assert leaf_nodes(hashes) == [leaf_node(h) for h in hashes]
    assert concatenated_leaf_nodes(b"".join(hashes), 32) == leaf_nodes(hashes)


@settings(max_examples=100, deadline=None)
@given(start=st.dictionaries(KEYS, st.integers(0, 5), max_size=20), pending=OPS, ops=OPS)
def test_a_copy_has_the_same_entries_root_and_dirty_keys_and_goes_its_own_way(
        start, pending, ops) -> None:
    """State.copy takes the leaves and levels as they are (writes pending or not):
    the copy's roots stay exact, and writes to either leave the other alone."""
    original = written(start, pending)
    if original._journal is not None:
        original.commit()
    before = original.raw_items()
    twin = original.copy()
    assert twin.raw_items() == before and twin.root() == scratch_root(twin)
    assert twin.take_dirty() == original.copy().take_dirty()
    for op, key, value in ops:
        apply(twin, op, key, value)
    twin.put("zz-only-in-the-copy", 1)
    assert twin.root() == scratch_root(twin)
    assert original.raw_items() == before and original.root() == scratch_root(original)


@settings(max_examples=100, deadline=None)
@given(start=st.dictionaries(KEYS, st.integers(0, 5), max_size=20), blocks=st.lists(OPS, max_size=4))
def test_a_replayed_write_set_leaves_the_same_entries_and_root_as_executing_it(
        start, blocks) -> None:
    """State.replay (the simulator's replicas replaying one execution): after each block's
    write set, the replaying state holds what the executing one holds, its roots stay
    exact once it hashes them itself, and its own write set is the same."""
    executing, replaying = State(), State()
    for state in (executing, replaying):
        for key, value in start.items():
            state.put(key, value)
        state.take_dirty()
    for ops in blocks:
        for op, key, value in ops:
            apply(executing, op, key, value)
        if executing._journal is not None:
            executing.commit()
        changes, before = executing.take_dirty(), replaying.raw_items()
        replaying.replay(changes, executing.root())
        assert replaying.raw_items() == executing.raw_items()
        assert replaying.root() == executing.root()
        assert replaying.take_dirty() == {k: v for k, v in changes.items()
                                          if v is not None or k in before}
    replaying.put("zz-after", 1)
    assert replaying.root() == scratch_root(replaying)
