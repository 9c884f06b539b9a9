"""Binary Merkle tree over leaf hashes, with inclusion proofs that verify offline.

Leaves enter the tree as H(0x00 || leaf) and interior nodes are H(0x01 || left || right)
(RFC 6962), so no leaf can pose as an interior node: without that, a batch [t1, t2, t3]
and the batch [0x01 || H(t1) || H(t2), t3] would share a root. An odd node at the end
of a level is carried up unchanged (no duplication, so no CVE-2012-2459-style second
preimage). The empty tree's root is H(b"") so that "no leaves" is still a fixed 32 bytes.
"""

from __future__ import annotations

import hashlib

EMPTY_ROOT = hashlib.sha256(b"").digest()
LEAF_HASHER = hashlib.sha256(b"\x00")
NODE_HASHER = hashlib.sha256(b"\x01")
"""SHA-256 already fed the leaf / interior prefix: a `.copy()` fed the rest costs less
than a new hash of the concatenation (OpenSSL sets up every new hash from its name;
a copy skips that), a few percent of a block's execution, where every tx hashes ~10."""


def _leaf(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _fold(level: list[bytes]) -> bytes:
    """Pair nodes level by level; an odd last node is carried up unchanged. (`_node`
    inlined: a million-leaf history check folds a million nodes.)"""
    node = NODE_HASHER.copy
    while len(level) > 1:  # (update returns None: `or` then gives the digest)
        nxt = [(hasher := node()).update(left + right) or hasher.digest()
               for left, right in zip(level[0::2], level[1::2])]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def merkle_root(leaves: list[bytes]) -> bytes:
    return _fold(leaf_nodes(leaves)) if leaves else EMPTY_ROOT


def fold_subtree_roots(nodes: list[bytes]) -> bytes:
    """The root over consecutive subtree roots of 2^k leaves each (the last may be short).

    Level k of this tree is exactly those subtrees: a node's leaves start at a multiple
    of 2^k and a carried-up odd node keeps its range. So a snapshot's chunk roots fold
    to the state root (node/snapshot.py) with the same interior rule as every level."""
    if not nodes:
        raise ValueError("no subtree roots to fold")
    return _fold(list(nodes))


def merkle_path(leaves: list[bytes], index: int) -> list[tuple[str, bytes]]:
    """Sibling hashes from the leaf up: ("L", h) means h is the left sibling."""
    if not 0 <= index < len(leaves):
        raise IndexError("leaf index out of range")
    path: list[tuple[str, bytes]] = []
    level = [_leaf(leaf) for leaf in leaves]
    while len(level) > 1:
        sibling = index ^ 1
        if sibling < len(level):
            path.append(("L" if sibling < index else "R", level[sibling]))
        nxt = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level, index = nxt, index // 2
    return path


def verify_path(leaf: bytes, path: list[tuple[str, bytes]], root: bytes) -> bool:
    current = _leaf(leaf)
    for side, sibling in path:
        current = _node(sibling, current) if side == "L" else _node(current, sibling)
    return current == root


def path_sides(index: int, count: int) -> list[str]:
    """The sides a path for leaf `index` of `count` leaves must have (docs/protocol.md §3).

    Checking a path's sides against these binds the leaf to its position, which an
    absence proof needs ("these two leaves are neighbours"); the sides alone do not,
    because a carried-up odd node skips a level.
    """
    if not 0 <= index < count:
        raise IndexError("leaf index out of range")
    sides: list[str] = []
    width = count
    while width > 1:
        sibling = index ^ 1
        if sibling < width:
            sides.append("L" if sibling < index else "R")
        index, width = index // 2, (width + 1) // 2
    return sides


def leaf_node(leaf: bytes) -> bytes:
    """A leaf as it enters the tree, H(0x00 || leaf): a caller that keeps these between
    roots (contracts/state.py, whose leaves mostly do not change from block to block)
    hashes only the changed ones again and folds with `root_of_leaf_nodes`."""
    return _leaf(leaf)


def leaf_nodes(leaves: list[bytes]) -> list[bytes]:
    """`leaf_node` of each leaf, in one loop (a snapshot restore enters a million)."""
    leaf_hasher = LEAF_HASHER.copy
    return [(hasher := leaf_hasher()).update(leaf) or hasher.digest() for leaf in leaves]


def concatenated_leaf_nodes(leaves: bytes, width: int) -> list[bytes]:
    """`leaf_node` of each `width`-byte leaf of one concatenation (a block's tx ids as
    history stores them), without cutting them into objects first."""
    sha256 = hashlib.sha256
    return [sha256(b"\x00" + leaves[i:i + width]).digest() for i in range(0, len(leaves), width)]


def root_of_leaf_nodes(nodes: list[bytes]) -> bytes:
    """`merkle_root` of the leaves whose `leaf_node`s these are, in order."""
    return _fold(nodes) if nodes else EMPTY_ROOT
