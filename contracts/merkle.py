"""Binary Merkle tree over leaf hashes, with inclusion proofs that verify offline.

Interior nodes are H(0x01 || left || right); an odd node at the end of a level is
carried up unchanged (no duplication, so no CVE-2012-2459-style second preimage).
The empty tree's root is H(b"") so that "no leaves" is still a fixed 32 bytes.
"""

from __future__ import annotations

import hashlib

EMPTY_ROOT = hashlib.sha256(b"").digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle_root(leaves: list[bytes]) -> bytes:
    if not leaves:
        return EMPTY_ROOT
    level = list(leaves)
    while len(level) > 1:
        nxt = [_node(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def merkle_path(leaves: list[bytes], index: int) -> list[tuple[str, bytes]]:
    """Sibling hashes from the leaf up: ("L", h) means h is the left sibling."""
    if not 0 <= index < len(leaves):
        raise IndexError("leaf index out of range")
    path: list[tuple[str, bytes]] = []
    level = list(leaves)
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
    current = leaf
    for side, sibling in path:
        current = _node(sibling, current) if side == "L" else _node(current, sibling)
    return current == root
