"""Quorum arithmetic for N = 3f + 1 replicas, kept in one pure place.

With N replicas PBFT tolerates f = floor((N - 1) / 3) faulty ones; 2f + 1 matching
votes form a quorum (any two quorums share an honest replica), and f + 1 votes are
enough to know that at least one honest replica said so.
"""

from __future__ import annotations

from enum import Enum


class Outcome(Enum):
    PENDING = "pending"
    WON = "won"
    LOST = "lost"


def max_faulty(n: int) -> int:
    if n < 1:
        raise ValueError("a cluster needs at least one replica")
    return (n - 1) // 3


def quorum(n: int) -> int:
    """Votes needed to prepare, commit, stabilise a checkpoint or start a new view.

    The smallest q with 2q - n >= f + 1, so any two quorums share an honest replica:
    2f + 1 when n = 3f + 1, but more when n is not (n = 5 or 6 needs 4, not 3).
    """
    return (n + max_faulty(n)) // 2 + 1


def weak_quorum(n: int) -> int:
    """Votes that must include at least one honest replica."""
    return max_faulty(n) + 1


def tally(yes: int, no: int, n: int, needed: int) -> Outcome:
    """Won once `needed` voted yes; lost once the replicas not yet heard cannot make it."""
    if yes >= needed:
        return Outcome.WON
    if yes + (n - yes - no) < needed:
        return Outcome.LOST
    return Outcome.PENDING
