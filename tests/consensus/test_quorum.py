"""Quorum arithmetic against dumb reference implementations that enumerate replica sets.

The references do not know any formula: they search for the smallest quorum whose any
two instances share an honest replica, the smallest vote count that must include an
honest replica, and whether some way the unheard replicas could still vote reaches
the threshold. (Reference: Castro & Liskov §4 and §4.2: quorums of 2f+1 out of 3f+1
intersect in at least f+1 replicas, hence in one honest replica.)
"""

from __future__ import annotations

from itertools import combinations, product

import pytest

from consensus.quorum import Outcome, max_faulty, quorum, tally, weak_quorum

SMALL_N = range(1, 10)


def reference_max_faulty(n: int) -> int:
    """The most faulty replicas n can tolerate: n must exceed 3f."""
    return max(f for f in range(n) if n >= 3 * f + 1)


def reference_quorum(n: int) -> int:
    """Smallest q such that every two q-sets share f+1 replicas (so an honest one)."""
    f, everyone = reference_max_faulty(n), range(n)
    for q in range(1, n + 1):
        sets = [set(c) for c in combinations(everyone, q)]
        if all(len(a & b) >= f + 1 for a in sets for b in sets):
            return q
    raise AssertionError("unreachable: q = n always intersects")


def reference_weak_quorum(n: int) -> int:
    """Smallest w such that every w-set holds a replica outside every f-set of liars."""
    f, everyone = reference_max_faulty(n), range(n)
    for w in range(1, n + 1):
        if all(set(voters) - set(liars)
               for liars in combinations(everyone, f) for voters in combinations(everyone, w)):
            return w
    raise AssertionError("unreachable")


def reference_tally(yes: int, no: int, n: int, needed: int) -> Outcome:
    """Try every way the replicas not yet heard could vote."""
    finals = [yes + sum(rest) for rest in product((0, 1), repeat=n - yes - no)]
    if all(total >= needed for total in finals) and yes >= needed:
        return Outcome.WON
    if not any(total >= needed for total in finals):
        return Outcome.LOST
    return Outcome.PENDING


@pytest.mark.parametrize("n", SMALL_N)
def test_max_faulty_matches_reference(n):
    assert max_faulty(n) == reference_max_faulty(n)


@pytest.mark.parametrize("n", SMALL_N)
def test_quorum_is_the_smallest_set_any_two_of_which_share_an_honest_replica(n):
    assert quorum(n) == reference_quorum(n)


@pytest.mark.parametrize("n", SMALL_N)
def test_weak_quorum_is_the_smallest_set_that_holds_an_honest_replica(n):
    assert weak_quorum(n) == reference_weak_quorum(n)


@pytest.mark.parametrize("n", range(1, 101))
def test_quorum_is_safe_and_live_for_any_cluster_size(n):
    """Two quorums overlap in f+1 (safety); the n-f honest replicas alone form one
    (liveness); one vote fewer would lose the overlap (no bigger than needed)."""
    f, q = max_faulty(n), quorum(n)
    assert 2 * q - n >= f + 1
    assert q <= n - f
    assert 2 * (q - 1) - n < f + 1


@pytest.mark.parametrize("n, f, q, weak", [
    (1, 0, 1, 1), (4, 1, 3, 2), (7, 2, 5, 3), (10, 3, 7, 4), (31, 10, 21, 11), (100, 33, 67, 34),
])
def test_quorum_table_for_n_equal_3f_plus_1(n, f, q, weak):
    """The paper's numbers: N = 3f+1 replicas, quorum 2f+1, weak quorum f+1."""
    assert (max_faulty(n), quorum(n), weak_quorum(n)) == (f, q, weak)


def test_a_cluster_needs_a_replica():
    with pytest.raises(ValueError):
        max_faulty(0)


@pytest.mark.parametrize("n", range(1, 8))
def test_tally_matches_reference(n):
    """Every (yes, no, needed) a cluster of n can be in."""
    cases = [(yes, no, needed) for needed in range(1, n + 1)
             for yes in range(n + 1) for no in range(n + 1 - yes)]
    wrong = [(yes, no, needed, tally(yes, no, n, needed))
             for yes, no, needed in cases
             if tally(yes, no, n, needed) != reference_tally(yes, no, n, needed)]
    assert wrong == []


@pytest.mark.parametrize("yes, no, n, needed, outcome", [
    (3, 0, 4, 3, Outcome.WON),
    (2, 1, 4, 3, Outcome.PENDING),
    (2, 2, 4, 3, Outcome.LOST),
    (1, 2, 4, 3, Outcome.LOST),
    (0, 0, 4, 3, Outcome.PENDING),
    (4, 0, 4, 3, Outcome.WON),
    (4, 3, 7, 5, Outcome.LOST),
    (5, 2, 7, 5, Outcome.WON),
])
def test_tally_examples(yes, no, n, needed, outcome):
    """The three answers, spelled out for 4 and 7 replicas."""
    assert tally(yes, no, n, needed) is outcome
