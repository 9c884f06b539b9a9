"""The checkers, fed hand-made histories: each must pass a good one and catch its bad one.

A checker that cannot fail is a defect, so every checker in `CHECKERS` has at least one
planted violation below (test_every_checker_is_shown_failing enforces it).
"""

from __future__ import annotations

import copy
from typing import Callable

import pytest

from ipchain.sim import checkers
from ipchain.sim.checkers import History, ReplicaRecord, check_all
from ipchain.sim.workload import Ack

D1, D2, D3 = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
R1, R2, R3 = b"\x11" * 32, b"\x12" * 32, b"\x13" * 32


def good_history() -> History:
    """Three honest replicas at height 3 (one crashed one behind), one tx acknowledged."""
    def replica(index: int, height: int = 3, up: bool = True) -> ReplicaRecord:
        digests = {1: D1, 2: D2, 3: D3}
        roots = {1: R1, 2: R2, 3: R3}
        receipts = [("aa" * 32, 1, True, "ok"), ("bb" * 32, 2, False, "InsufficientFunds"),
                    ("aa" * 32, 3, False, "DuplicateTransaction")]
        return ReplicaRecord(index, honest=True, up=up,
                             digests={h: d for h, d in digests.items() if h <= height},
                             roots={h: r for h, r in roots.items() if h <= height},
                             receipts=[r for r in receipts if r[1] <= height],
                             supply_bpc=300, balances_bpc={"a": 100, "b": 200})
    return History(
        replicas=[replica(0), replica(1), replica(2), replica(3, height=1, up=False)],
        submitted={"aa" * 32, "bb" * 32}, acked={"aa" * 32: Ack(0, 1, True, "ok", 10),
                                               "bb" * 32: Ack(1, 2, False, "InsufficientFunds", 20)},
        liveness_txs=("bb" * 32,), heal_ms=0, end_ms=100, liveness_bound_ms=1_000)


def plant(change: Callable[[History], None]) -> History:
    history = copy.deepcopy(good_history())
    change(history)
    return history


def _set(obj, **values):
    for name, value in values.items():
        setattr(obj, name, value)


PLANTED: list[tuple[str, Callable[[History], None], str]] = [
    ("two honest replicas deliver different digests at seq 2",
     lambda h: h.replicas[1].digests.update({2: D3}),
     "agreement"),
    ("a replica delivers seq 3 without seq 2",
     lambda h: h.replicas[2].digests.pop(2),
     "agreement"),
    ("a replica re-delivered a different block",
     lambda h: h.replicas[0].anomalies.append("replica 0 delivered seq 2 twice"),
     "agreement"),
    ("a delivered block's commits are for another view",
     lambda h: h.replicas[0].bad_certificates.append("replica 0 delivered seq 2 with commits of view 0"),
     "certificates"),
    ("state roots differ at a shared height",
     lambda h: h.replicas[2].roots.update({3: R1}),
     "state_roots"),
    ("an acknowledged tx is missing from a replica that passed its height",
     lambda h: h.replicas[1].receipts.pop(0),
     "exactly_once"),
    ("a tx is executed twice",
     lambda h: h.replicas[0].receipts.append(("aa" * 32, 3, True, "ok")),
     "exactly_once"),
    ("the client was told another height",
     lambda h: h.acked.update({"aa" * 32: Ack(0, 2, True, "ok", 10)}),
     "exactly_once"),
    ("the client was told ok, the chain says rejected",
     lambda h: h.acked.update({"bb" * 32: Ack(1, 2, True, "ok", 20)}),
     "exactly_once"),
    ("the client was told one refusal, the chain holds another",
     lambda h: h.acked.update({"bb" * 32: Ack(1, 2, False, "NonceUsed", 20)}),
     "exactly_once"),
    ("a tx no client sent is in the chain",
     lambda h: h.replicas[2].receipts.append(("cc" * 32, 3, True, "ok")),
     "no_fabrication"),
    ("balances do not add up to the supply",
     lambda h: h.replicas[0].balances_bpc.update({"a": 101}),
     "conservation"),
    ("a balance is negative",
     lambda h: h.replicas[1].balances_bpc.update({"a": -1, "b": 301}),
     "conservation"),
    ("a request after healing never commits",
     lambda h: h.acked.pop("bb" * 32),
     "liveness"),
    ("a request after healing commits too late",
     lambda h: h.acked.update({"bb" * 32: Ack(1, 2, False, "InsufficientFunds", 5_000)}),
     "liveness"),
    ("a request from the faulty phase is never acknowledged",
     lambda h: h.submitted.add("dd" * 32),
     "liveness"),
    ("an honest replica that is up stays behind",
     lambda h: _set(h.replicas[3], up=True),
     "liveness"),
]


def test_good_history_passes_every_checker() -> None:
    assert check_all(good_history()) == []


@pytest.mark.parametrize("story,change,checker", PLANTED, ids=[p[0] for p in PLANTED])
def test_planted_violation_is_caught_by_its_checker(story: str, change, checker: str) -> None:
    found = check_all(plant(change), seed=7)
    assert found, f"nothing caught: {story}"
    assert {v.checker for v in found} == {checker}
    assert all(v.seed == 7 and v.detail for v in found)


def test_every_checker_is_shown_failing() -> None:
    shown = {checker for _, _, checker in PLANTED}
    assert shown == {check.__name__.removeprefix("check_") for check in checkers.CHECKERS}


def test_byzantine_replicas_are_not_judged() -> None:
    history = plant(lambda h: (h.replicas[1].digests.update({2: D3}), _set(h.replicas[1], honest=False)))
    assert check_all(history) == []


def test_up_to_f_honest_replicas_may_lag_only_when_some_replica_lies() -> None:
    lagging = plant(lambda h: _set(h.replicas[3], up=True))
    assert [v.checker for v in check_all(lagging)] == ["liveness"]
    lagging.max_lagging = 1
    assert check_all(lagging) == []


def test_reports_are_capped_with_a_count_of_the_rest() -> None:
    def diverge(h: History) -> None:
        h.replicas[1].digests.update({1: D3, 2: D1, 3: D2})
        h.replicas[2].digests.update({1: D3, 2: D1, 3: D2})
    found = checkers.check_agreement(plant(diverge))
    assert len(found) == checkers.MAX_DETAILS_PER_CHECKER + 1
    assert found[-1].detail.startswith("... and 1 more")
