"""Contract state: a sorted key/value map with an all-or-nothing journal.

Values are stored as canonical bytes and decoded on read, so a handler can never
mutate stored state behind the journal's back by editing a dict it was handed.
The state root is a Merkle root over the sorted (key, value) leaves, so one record
can be proven against a root that a quorum signed.
"""

from __future__ import annotations

import bisect
import hashlib
from typing import Any, Iterator

import msgspec

from contracts.codec import encode, pack
from contracts.merkle import LEAF_HASHER, leaf_node
from contracts.merkle_levels import MerkleLevels

_DELETED = object()
_INT_MIN, _INT_END = -(2**63), 2**64
"""The codec's integer range (contracts/codec.py): an int in it packs as it is."""
_LENGTH_PREFIXES = [size.to_bytes(4, "big") for size in range(256)]
"""A leaf's 4-byte key length, made once for the usual key sizes."""
_unpack = msgspec.msgpack.Decoder().decode
"""msgspec decodes our canonical bytes to the same lists, dicts, ints, strs and bytes as
msgpack-python's `unpackb(raw=False)`, at half the cost (every read of every tx)."""


def leaf_hash(key: str, value: bytes) -> bytes:
    """Leaf = H(0x00 || len(key) || key || value): length-prefixed so no two pairs collide."""
    key_bytes = key.encode()
    return hashlib.sha256(b"\x00" + len(key_bytes).to_bytes(4, "big") + key_bytes + value).digest()


def leaf_hashes(pairs: list[tuple[str, bytes]]) -> list[bytes]:
    """`leaf_hash` of each pair, in one loop: a snapshot restore checks a million."""
    sha256 = hashlib.sha256
    return [sha256(b"\x00" + len(key_bytes := key.encode()).to_bytes(4, "big") + key_bytes
                   + value).digest() for key, value in pairs]


class State:
    def __init__(self, items: dict[str, bytes] | None = None) -> None:
        self._data: dict[str, bytes] = dict(items or {})
        self._sorted_keys: list[str] = sorted(self._data)
        self._leaves: dict[str, bytes] = {k: leaf_hash(k, v) for k, v in self._data.items()}
        self._leaf_nodes: dict[str, bytes] = {k: leaf_node(h) for k, h in self._leaves.items()}
        """Each leaf as it enters the Merkle tree, kept so a root rehashes only what changed."""
        self._unhashed: set[str] = set()
        """Keys written since their leaves were last hashed: hashed when a root or the
        leaves are next asked for, once however often a block wrote them."""
        self._journal: dict[str, Any] | None = None
        self._views: dict[Any, dict[str, tuple[bytes | None, Any]]] = {}
        """`view`'s results by view and key, each with the raw bytes it was read from."""
        self._dirty: set[str] = set()
        self._changed: set[str] = set()
        """Keys `_set` updated in place since `_unhashed`, `_tree_stale` and `_dirty` last
        took them (`_take_changed`, before any of the three is read): one set add per
        write where three cost three (a few writes per transaction on every replica)."""
        self._root: bytes | None = None
        self._init_tree()

    def _init_tree(self) -> None:
        self._tree: MerkleLevels | None = None
        """The tree's levels as of the last root; None until a root is first asked for."""
        self._tree_stale: set[str] = set()
        """Keys written since the tree was last brought up to date."""
        self._tree_shift_key: str | None = None
        """The least key inserted or deleted since then: positions from it on shifted."""

    @classmethod
    def from_verified(cls, pairs: list[tuple[str, bytes]], leaves: list[bytes],
                      root: bytes, tree: MerkleLevels | None = None) -> "State":
        """A state whose sorted entries, leaf hashes and root the caller has already
        checked against a certified root (a snapshot restore, node/snapshot_sync.py):
        rebuilding them costs seconds per million entries. `tree`, when given, is the
        Merkle levels the check built (MerkleLevels.from_subtrees); used if its root is
        `root`, so neither the restore nor the first block hashes the tree again."""
        state = cls()
        state._data = dict(pairs)
        state._sorted_keys = [key for key, _ in pairs]
        state._leaves = dict(zip(state._sorted_keys, leaves))
        if tree is not None and len(tree) == len(pairs) and tree.root() == root:
            state._leaf_nodes = dict(zip(state._sorted_keys, tree.levels[0]))
            state._tree = tree
        else:
            state._leaf_nodes = {key: leaf_node(leaf) for key, leaf in state._leaves.items()}
        state._root = root
        return state

    # -- reads ---------------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        raw = self._data.get(key)
        # Only `put` writes here, always through the canonical encoder, so the bytes need
        # no re-validation on the way out (this read is on every transaction's path).
        return default if raw is None else _unpack(raw)

    def view(self, key: str, derive: Any) -> Any:
        """`derive(self.get(key))`, computed once per stored value: kept with the very
        bytes object it was read from and computed again once the key holds other bytes
        (a write stores new bytes; a rollback puts the old object back, whose result is
        still right). `derive` must be pure and return an immutable value, which callers
        share: the runtime reads each sender's roles and each target organisation this
        way on every transaction, where decoding the organisation's record cost most."""
        raw = self._data.get(key)
        cache = self._views.get(derive)
        if cache is None:
            cache = self._views[derive] = {}
        else:
            hit = cache.get(key)
            if hit is not None and hit[0] is raw:
                return hit[1]
        value = derive(None if raw is None else _unpack(raw))
        cache[key] = (raw, value)
        return value

    def get_raw(self, key: str) -> bytes | None:
        return self._data.get(key)

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def keys(self, prefix: str = "") -> Iterator[str]:
        """Keys starting with `prefix`, in sorted order."""
        start = bisect.bisect_left(self._sorted_keys, prefix)
        for key in self._sorted_keys[start:]:
            if not key.startswith(prefix):
                return
            yield key

    def items(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        for key in list(self.keys(prefix)):
            yield key, self.get(key)

    def __len__(self) -> int:
        return len(self._data)

    # -- writes (journaled) ---------------------------------------------------
    def put(self, key: str, value: Any) -> None:
        # `encode`'s first case (a balance, a counter) without its call
        self._set(key, pack(value) if type(value) is int and _INT_MIN <= value < _INT_END
                  else encode(value))

    def delete(self, key: str) -> None:
        if key in self._data:
            self._set(key, None)

    def replay(self, changes: dict[str, bytes | None], root: bytes) -> None:
        """Apply the write set (`take_dirty`'s) of a block another State executed from
        this one's root, and take its root after the block as ours: the simulator's
        replicas of one seed execute a block once (ipchain/sim/execshare.py). A key
        absent here and after the block (written and rolled back there) is left alone,
        as `delete` leaves one; the leaves and the tree are hashed when a root is next
        computed, not now."""
        data, write = self._data, self._set
        for key, raw in changes.items():
            if raw is not None or key in data:
                write(key, raw)
        self._root = root

    def _set(self, key: str, raw: bytes | None) -> None:
        """Journal, then write. An update of a key that exists is written here, without
        `_write`'s call and its insert/delete cases: most writes are a balance or a nonce
        record already in the state (several per transaction on every replica), and they
        move no key, so no tree position shifts."""
        journal, data = self._journal, self._data
        old = data.get(key, _DELETED)
        if journal is not None and key not in journal:
            journal[key] = old
        if raw is None or old is _DELETED:
            self._write(key, raw)
            return
        data[key] = raw
        self._changed.add(key)
        self._root = None

    put_encoded = _set
    """`put` of a value whose canonical bytes the caller already holds (built from types
    it checked itself, so `encode`'s walk would only repeat the check): `_set` itself,
    without a call of its own (bytes only; None is not a value)."""

    def _take_changed(self) -> None:
        changed = self._changed
        if changed:
            self._unhashed |= changed
            self._tree_stale |= changed
            self._dirty |= changed
            self._changed = set()

    def _write(self, key: str, raw: bytes | None) -> None:
        self._take_changed()  # (a delete must leave `_unhashed`: it is read first)
        existed = key in self._data
        if raw is None:
            if existed:
                del self._data[key]
                self._leaves.pop(key, None)
                self._leaf_nodes.pop(key, None)
                self._unhashed.discard(key)
                index = bisect.bisect_left(self._sorted_keys, key)
                del self._sorted_keys[index]
        else:
            self._data[key] = raw
            self._unhashed.add(key)
            if not existed:
                bisect.insort(self._sorted_keys, key)
        if existed != (raw is not None):
            shift = self._tree_shift_key
            self._tree_shift_key = key if shift is None or key < shift else shift
        self._tree_stale.add(key)
        self._dirty.add(key)
        self._root = None

    # -- transactions -----------------------------------------------------------
    def begin(self) -> None:
        if self._journal is not None:
            raise RuntimeError("state transaction already open")
        self._journal = {}

    def commit(self) -> None:
        self._journal = None

    def rollback(self) -> None:
        journal, self._journal = self._journal, None
        for key, old in (journal or {}).items():
            self._write(key, None if old is _DELETED else old)

    # -- roots and persistence --------------------------------------------------
    def root(self) -> bytes:
        if self._root is None:
            self._hash_leaves()
            self._root = self._update_tree()
        return self._root

    def _update_tree(self) -> bytes:
        """Bring the cached levels up to date: re-hash the paths of updated values, and
        every level from the least inserted/deleted key's position rightward."""
        self._take_changed()
        nodes, keys = self._leaf_nodes, self._sorted_keys
        shift_key, stale = self._tree_shift_key, self._tree_stale
        self._tree_shift_key, self._tree_stale = None, set()
        if self._tree is None:
            self._tree = MerkleLevels([nodes[k] for k in keys])
            return self._tree.root()
        if shift_key is None:  # no key inserted or deleted: every stale key is in place
            position = bisect.bisect_left
            return self._tree.update({position(keys, key): nodes[key] for key in stale},
                                     None, [])
        shift = bisect.bisect_left(keys, shift_key)
        changed = {}
        for key in stale:
            if key in nodes and key < shift_key:
                changed[bisect.bisect_left(keys, key)] = nodes[key]
        return self._tree.update(changed, shift, [nodes[k] for k in keys[shift:]])

    def sorted_leaves(self) -> tuple[list[str], list[bytes]]:
        """Keys in root order and their leaf hashes: what a state proof's paths are cut from."""
        self._hash_leaves()
        return list(self._sorted_keys), [self._leaves[k] for k in self._sorted_keys]

    def _hash_leaves(self) -> None:
        """`leaf_hash` then `leaf_node` of each written key, inlined (once per write)."""
        self._take_changed()
        data, leaves, nodes = self._data, self._leaves, self._leaf_nodes
        leaf_hasher = LEAF_HASHER.copy
        lengths = _LENGTH_PREFIXES
        for key in self._unhashed:
            key_bytes = key.encode()
            size = len(key_bytes)
            hasher = leaf_hasher()  # 0x00 already fed, in both hashes
            hasher.update(b"".join((lengths[size] if size < 256 else size.to_bytes(4, "big"),
                                    key_bytes, data[key])))
            leaves[key] = leaf = hasher.digest()
            hasher = leaf_hasher()
            hasher.update(leaf)
            nodes[key] = hasher.digest()
        self._unhashed.clear()

    def take_dirty(self) -> dict[str, bytes | None]:
        """Keys changed since the last call, with their new raw value (None = deleted).

        The node persists exactly these after each block instead of the whole state.
        """
        self._take_changed()
        dirty, self._dirty = self._dirty, set()
        value = self._data.get
        return {key: value(key) for key in sorted(dirty)}

    def raw_items(self) -> dict[str, bytes]:
        return dict(self._data)

    def copy(self) -> "State":
        """An independent State with the same entries (and the same keys dirty), whose
        leaves and Merkle levels are copied rather than hashed again: a template built
        once and started from many times (the genesis, by every replica of a
        simulation). Not within a state transaction."""
        if self._journal is not None:
            raise RuntimeError("cannot copy a state inside a transaction")
        self._take_changed()
        twin = State()
        twin._data = dict(self._data)
        twin._sorted_keys = list(self._sorted_keys)
        twin._leaves = dict(self._leaves)
        twin._leaf_nodes = dict(self._leaf_nodes)
        twin._unhashed = set(self._unhashed)
        twin._dirty = set(self._dirty)
        twin._tree = self._tree.copy() if self._tree is not None else None
        twin._tree_stale = set(self._tree_stale)
        twin._tree_shift_key = self._tree_shift_key
        twin._root = self._root
        return twin
