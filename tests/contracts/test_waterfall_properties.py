"""Invariants of the pure waterfall (contracts/securitization/waterfall.py) and of the holder-position
helpers (contracts/securitization/core.py), each property named after the invariant it states.

The same invariants are checked on whole op sequences in
test_securitization_properties.py.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.securitization.core import increase_balances, reduce_balances, split_to_holders
from contracts.split import split_by_weights
from contracts.securitization.waterfall import (
    WaterfallPlan, compute_waterfall, compute_write_back, compute_write_down,
)

AMOUNT = st.integers(min_value=0, max_value=10**9)
NAMES = ["senior", "mezz", "junior", "equity"]


@st.composite
def tranche_lists(draw: Any) -> list[dict[str, Any]]:
    count = draw(st.integers(min_value=1, max_value=4))
    return [{"name": NAMES[i] if i < count - 1 else "equity",
             "balance": draw(st.integers(min_value=0, max_value=10**7)),
             "coupon_bps": draw(st.integers(min_value=0, max_value=3_000)),
             "interest_unpaid": draw(st.integers(min_value=0, max_value=10**5))}
            for i in range(count)]


@st.composite
def waterfalls(draw: Any) -> tuple[list[dict[str, Any]], WaterfallPlan]:
    tranches = draw(tranche_lists())
    plan = compute_waterfall(
        draw(st.one_of(st.integers(min_value=0, max_value=10**5), AMOUNT)), tranches,
        fees_due=draw(st.integers(min_value=0, max_value=10**5)),
        principal_target=draw(st.one_of(st.none(), st.integers(min_value=1, max_value=10**7))),
        pro_rata=draw(st.booleans()), triggered=draw(st.booleans()),
        reserve_target=draw(st.integers(min_value=0, max_value=10**5)))
    return tranches, plan


PROPERTY = settings(max_examples=200, deadline=None)


@PROPERTY
@given(waterfalls())
def test_total_paid_never_exceeds_collections(case: Any) -> None:
    """Cash in = paid out + reserve kept, exactly; so what is paid never exceeds it."""
    _, plan = case
    assert plan.total_paid <= plan.cash
    assert plan.total_paid + plan.reserve == plan.cash
    assert plan.steps[0].paid + sum(plan.interest_paid.values()) + sum(
        plan.principal_paid.values()) + plan.residual == plan.total_paid


@PROPERTY
@given(waterfalls())
def test_nothing_junior_paid_while_senior_due_unpaid(case: Any) -> None:
    _, plan = case
    for j, junior in enumerate(plan.steps):
        if junior.paid:
            assert all(senior.unpaid == 0 for senior in plan.steps[:j]), (j, plan.steps)


@PROPERTY
@given(waterfalls())
def test_no_negative_balance(case: Any) -> None:
    """Nothing is negative and no tranche is repaid more than it owes."""
    tranches, plan = case
    for step in plan.steps:
        assert 0 <= step.paid <= step.due
    for tranche in tranches:
        name = tranche["name"]
        assert 0 <= plan.principal_paid[name] <= tranche["balance"]
        assert 0 <= plan.interest_unpaid[name] <= plan.interest_due[name]
    assert plan.fees_unpaid >= 0 and plan.reserve >= 0 and plan.residual >= 0


@PROPERTY
@given(waterfalls())
def test_every_split_sums_to_the_whole(case: Any) -> None:
    """Every step that pays tranches says how much each got, to the unit; fees and the
    reserve pay no tranche."""
    _, plan = case
    for step in plan.steps:
        if step.kind in ("fees", "reserve"):
            assert step.parts == {}
        else:
            assert sum(step.parts.values()) == step.paid
            assert all(part >= 0 for part in step.parts.values())


@PROPERTY
@given(AMOUNT, st.dictionaries(st.sampled_from("abcdefg"), st.integers(0, 10**6), min_size=1))
def test_every_split_sums_to_the_whole_by_largest_remainder(total: int,
                                                            weights: dict[str, int]) -> None:
    if not sum(weights.values()):
        weights = {**weights, "a": 1}
    parts = split_by_weights(total, weights)
    assert sum(parts.values()) == total
    weight_sum = sum(weights.values())
    for key, weight in weights.items():  # largest remainder: within one unit of exact
        assert total * weight // weight_sum <= parts[key] <= total * weight // weight_sum + 1


@PROPERTY
@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=4), st.integers(0, 5 * 10**6))
def test_write_downs_equal_losses(balances: list[int], raw_loss: int) -> None:
    named = [(f"t{i}", b) for i, b in enumerate(balances)]
    loss = raw_loss % (sum(balances) + 1)
    written = compute_write_down(named, loss)
    assert sum(written.values()) == loss
    for i, (name, balance) in enumerate(named):
        assert 0 <= written[name] <= balance
        if written[name]:  # a tranche absorbs loss only once everything junior is gone
            assert all(written[n] == b for n, b in named[i + 1:])
    back = compute_write_back(list(written.items()), raw_loss)
    assert sum(back.values()) == min(raw_loss, loss)
    for i, (name, _) in enumerate(named):
        assert back[name] <= written[name]
        if back[name]:  # write-backs go senior first
            assert all(back[n] == written[n] for n, _ in named[:i])


@st.composite
def position_histories(draw: Any) -> tuple[dict[str, Any], list[tuple[str, int]]]:
    """Positions whose balances are any fraction of their units: rounding, write-downs
    and transfers make them drift apart, and the helpers must cope with any drift."""
    orgs = draw(st.lists(st.sampled_from(["fund", "inv2", "inv3", "x"]), min_size=1,
                         unique=True))
    holders = {}
    for org in orgs:
        units = draw(st.integers(1, 10**6))
        holders[org] = {"units": units, "balance": draw(st.integers(0, units))}
    tranche = {"balance": sum(p["balance"] for p in holders.values()), "holders": holders}
    moves = draw(st.lists(st.tuples(st.sampled_from(["reduce", "increase", "pay"]),
                                    st.integers(0, 10**6)), max_size=12))
    return tranche, moves


@PROPERTY
@given(position_histories())
def test_holders_sum_to_tranche_balance(case: Any) -> None:
    """Principal payments, write-downs (reduce), write-backs (increase) and cash splits keep
    the holders' balances summing to the tranche balance, none negative."""
    tranche, moves = case
    units = sum(p["units"] for p in tranche["holders"].values())
    for kind, amount in moves:
        if kind == "reduce":
            parts = reduce_balances(tranche, amount % (tranche["balance"] + 1))
        elif kind == "increase":
            parts = increase_balances(tranche, amount)
        else:
            parts = split_to_holders(tranche, amount)
            assert sum(parts.values()) == amount
        assert sum(p["balance"] for p in tranche["holders"].values()) == tranche["balance"]
        assert all(p["balance"] >= 0 for p in tranche["holders"].values())
        assert all(part >= 0 for part in parts.values())
    assert sum(p["units"] for p in tranche["holders"].values()) == units
