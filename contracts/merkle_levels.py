"""Every level of a `merkle_root` tree, kept between roots so a root rehashes only what moved.

The tree shape is exactly contracts/merkle.py's (leaf nodes in order, pairs hashed as
H(0x01 || left || right), an odd last node carried up unchanged), so the root bytes are
the same as a from-scratch `root_of_leaf_nodes`. Two kinds of change reach a level:
a value update at a known position re-hashes only its path up (O(k log n) for k
updates), while an insert or delete shifts every position right of it, so each level is
recomputed from the lowest shifted position rightward. The work right of a shift is
inherent to the shape (every pairing there changes), not to this cache.
"""

from __future__ import annotations

import hashlib

from contracts.merkle import EMPTY_ROOT, NODE_HASHER

_sha256 = hashlib.sha256
_node_hasher = NODE_HASHER.copy


def _parents(level: list[bytes], start: int) -> list[bytes]:
    """Level h+1 from position `start` on, computed from level h (inlined for speed:
    a million-leaf tree has a million interior nodes)."""
    left, right = level[2 * start::2], level[2 * start + 1::2]
    node = _node_hasher  # (update returns None: `or` then gives the digest)
    out = [(hasher := node()).update(a + b) or hasher.digest() for a, b in zip(left, right)]
    if len(level) % 2:
        out.append(level[-1])
    return out


class MerkleLevels:
    """levels[0] are the leaf nodes (`leaf_node`s) in order; the last level is the root."""

    def __init__(self, leaf_nodes: list[bytes]) -> None:
        self.levels: list[list[bytes]] = [list(leaf_nodes)]
        while len(self.levels[-1]) > 1:
            self.levels.append(_parents(self.levels[-1], 0))

    def root(self) -> bytes:
        top = self.levels[-1]
        return top[0] if top else EMPTY_ROOT

    def __len__(self) -> int:
        return len(self.levels[0])

    def copy(self) -> "MerkleLevels":
        """The same levels, in lists of its own (an update of either leaves the other)."""
        twin = MerkleLevels([])
        twin.levels = [list(level) for level in self.levels]
        return twin

    def update(self, changed: dict[int, bytes], shift_from: int | None,
               tail: list[bytes]) -> bytes:
        """Apply leaf changes and return the new root.

        `changed` maps positions below `shift_from` to their new leaf node. If
        `shift_from` is not None, every leaf from that position on is replaced by
        `tail` (the leaves after inserts/deletes there); otherwise `tail` is ignored.
        """
        level = self.levels[0]
        for index, node in changed.items():
            level[index] = node
        if shift_from is None:
            return self._update_in_place(changed)
        del level[shift_from:]
        level.extend(tail)
        points, start = set(changed), shift_from
        height = 0
        while len(self.levels[height]) > 1:
            level = self.levels[height]
            if height + 1 == len(self.levels):
                self.levels.append([])
            upper = self.levels[height + 1]
            if start is not None:
                start = min(start // 2, len(upper))
            points = {i // 2 for i in points if start is None or i // 2 < start}
            width = len(level)
            for index in points:  # a call per node would cost more than its hash
                left = 2 * index
                upper[index] = (_sha256(b"\x01" + level[left] + level[left + 1]).digest()
                                if left + 1 < width else level[left])
            if start is not None:
                del upper[start:]
                upper.extend(_parents(level, start))
            height += 1
        del self.levels[height + 1:]
        return self.root()

    def _update_in_place(self, changed: dict[int, bytes]) -> bytes:
        """`update` when no leaf was inserted or deleted (most blocks): every level keeps
        its width, so only the changed paths are hashed again, one tight loop a level
        (the general loop's per-level bookkeeping cost as much as the hashes it made)."""
        levels, node = self.levels, _node_hasher
        level, points, height = levels[0], changed.keys(), 0
        while len(level) > 1:
            height += 1
            upper, last = levels[height], len(level) - 1
            points = {index >> 1 for index in points}
            for index in points:
                left = index << 1
                if left < last:
                    hasher = node()
                    hasher.update(level[left] + level[left + 1])
                    upper[index] = hasher.digest()
                else:
                    upper[index] = level[left]
            level = upper
        return level[0] if level else EMPTY_ROOT

    @classmethod
    def from_subtrees(cls, subtrees: list[list[list[bytes]]]) -> "MerkleLevels":
        """The whole tree from the levels of consecutive subtrees of 2^k leaves each (the
        last may be short), e.g. a snapshot's verified state chunks: the chunk check
        already hashed every node below the chunk roots, so a restore re-hashes none.

        Level h <= k of the tree is the subtrees' level h side by side (a node's leaves
        start at a multiple of 2^h, and the last subtree ends where every level ends, so
        its carried-up odd nodes are the tree's); a short subtree stays at its root."""
        tree = cls([])
        if not subtrees:
            return tree
        top = len(subtrees[0]) - 1
        tree.levels = [[node for sub in subtrees for node in sub[min(height, len(sub) - 1)]]
                       for height in range(top + 1)]
        while len(tree.levels[-1]) > 1:
            tree.levels.append(_parents(tree.levels[-1], 0))
        return tree
