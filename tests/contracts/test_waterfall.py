"""The pure waterfall, table-driven: inputs, and the plan or ratios they must produce.

Worked numbers use the reference deal: senior 500 000 at 200 bps, mezzanine 200 000 at
400 bps, equity 100 000 at 0 bps; one period's interest due is 10 000 + 8 000 + 0.
"""

from __future__ import annotations

from typing import Any

import pytest

from contracts.split import split_by_weights
from contracts.securitization.waterfall import (
    compute_interest_due, compute_principal_due, compute_ratio_bps, compute_tests,
    compute_trigger, compute_waterfall, compute_write_back, compute_write_down,
)


def tranches(senior: int = 500_000, mezz: int = 200_000, equity: int = 100_000,
             arrears: tuple[int, int, int] = (0, 0, 0)) -> list[dict[str, Any]]:
    return [{"name": "senior", "balance": senior, "coupon_bps": 200, "interest_unpaid": arrears[0]},
            {"name": "mezz", "balance": mezz, "coupon_bps": 400, "interest_unpaid": arrears[1]},
            {"name": "equity", "balance": equity, "coupon_bps": 0, "interest_unpaid": arrears[2]}]


def paid_by_step(plan: Any) -> list[tuple[str, str | None, int, int]]:
    return [(s.kind, s.tranche, s.due, s.paid) for s in plan.steps]


# -- the arithmetic section's reference vectors -------------------------------------------


@pytest.mark.parametrize("total, weights, expected", [
    (1_000_001, {"A": 3, "B": 3, "C": 1}, {"A": 428_572, "B": 428_572, "C": 142_857}),
    (100, {"A": 1, "B": 1, "C": 1}, {"A": 34, "B": 33, "C": 33}),
    (10, {"b": 1, "a": 1}, {"a": 5, "b": 5}),
    (7, {"x": 0, "y": 5}, {"x": 0, "y": 7}),
])
def test_split_reference_vectors(total: int, weights: dict[str, int],
                                 expected: dict[str, int]) -> None:
    assert split_by_weights(total, weights) == expected


# -- compute_waterfall ------------------------------------------------------------------------

CASES = [
    pytest.param(
        dict(cash=20_000, fees_due=1_000),
        [("fees", None, 1_000, 1_000), ("interest", "senior", 10_000, 10_000),
         ("interest", "mezz", 8_000, 8_000), ("interest", "equity", 0, 0),
         ("principal", "senior", 500_000, 1_000), ("principal", "mezz", 200_000, 0),
         ("principal", "equity", 100_000, 0), ("reserve", None, 0, 0),
         ("residual", "equity", 0, 0)],
        id="turbo-sequential-excess-cash-retires-senior"),
    pytest.param(
        dict(cash=15_000, fees_due=1_000),
        [("fees", None, 1_000, 1_000), ("interest", "senior", 10_000, 10_000),
         ("interest", "mezz", 8_000, 4_000), ("interest", "equity", 0, 0),
         ("principal", "senior", 500_000, 0), ("principal", "mezz", 200_000, 0),
         ("principal", "equity", 100_000, 0), ("reserve", None, 0, 0),
         ("residual", "equity", 0, 0)],
        id="short-cash-stops-inside-mezz-interest"),
    pytest.param(
        dict(cash=30_000, fees_due=500, principal_target=5_000, reserve_target=2_000),
        [("fees", None, 500, 500), ("interest", "senior", 10_000, 10_000),
         ("interest", "mezz", 8_000, 8_000), ("interest", "equity", 0, 0),
         ("principal", "senior", 5_000, 5_000), ("principal", "mezz", 0, 0),
         ("principal", "equity", 0, 0), ("reserve", None, 2_000, 2_000),
         ("residual", "equity", 4_500, 4_500)],
        id="scheduled-principal-then-reserve-then-residual"),
    pytest.param(
        dict(cash=30_000, fees_due=0, principal_target=8_000, pro_rata=True),
        [("fees", None, 0, 0), ("interest", "senior", 10_000, 10_000),
         ("interest", "mezz", 8_000, 8_000), ("interest", "equity", 0, 0),
         ("principal", None, 8_000, 8_000), ("reserve", None, 0, 0),
         ("residual", "equity", 4_000, 4_000)],
        id="pro-rata-principal-is-one-pari-passu-step"),
    pytest.param(
        dict(cash=0, fees_due=1_000),
        [("fees", None, 1_000, 0), ("interest", "senior", 10_000, 0),
         ("interest", "mezz", 8_000, 0), ("interest", "equity", 0, 0),
         ("principal", "senior", 500_000, 0), ("principal", "mezz", 200_000, 0),
         ("principal", "equity", 100_000, 0), ("reserve", None, 0, 0),
         ("residual", "equity", 0, 0)],
        id="no-cash-everything-unpaid"),
    pytest.param(
        dict(cash=520_000, fees_due=0, triggered=True, reserve_target=5_000),
        [("fees", None, 0, 0), ("interest", "senior", 10_000, 10_000),
         ("principal", "senior", 500_000, 500_000), ("interest", "mezz", 8_000, 8_000),
         ("principal", "mezz", 200_000, 2_000), ("interest", "equity", 0, 0),
         ("principal", "equity", 100_000, 0), ("residual", "equity", 0, 0)],
        id="triggered-senior-principal-before-junior-interest-no-reserve"),
    pytest.param(
        dict(cash=900_000, fees_due=0, principal_target=1_000, reserve_target=5_000),
        [("fees", None, 0, 0), ("interest", "senior", 10_000, 10_000),
         ("interest", "mezz", 8_000, 8_000), ("interest", "equity", 0, 0),
         ("principal", "senior", 1_000, 1_000), ("principal", "mezz", 0, 0),
         ("principal", "equity", 0, 0), ("reserve", None, 5_000, 5_000),
         ("residual", "equity", 876_000, 876_000)],
        id="reserve-capped-at-target"),
]


@pytest.mark.parametrize("kwargs, expected", CASES)
def test_waterfall_table(kwargs: dict[str, Any], expected: list[tuple]) -> None:
    plan = compute_waterfall(tranches=tranches(), **kwargs)
    assert paid_by_step(plan) == expected
    assert plan.total_paid + plan.reserve == plan.cash


def test_pro_rata_group_splits_by_outstanding_balance() -> None:
    plan = compute_waterfall(30_000, tranches(), fees_due=0, principal_target=8_000,
                             pro_rata=True)
    assert plan.principal_paid == {"senior": 5_000, "mezz": 2_000, "equity": 1_000}


def test_pro_rata_shortfall_splits_what_was_paid_by_what_was_due() -> None:
    plan = compute_waterfall(18_000 + 800, tranches(), fees_due=0, principal_target=8_000,
                             pro_rata=True)
    assert plan.principal_paid == {"senior": 500, "mezz": 200, "equity": 100}
    assert plan.residual == 0


def test_unpaid_interest_accrues_into_next_period_due() -> None:
    first = compute_waterfall(15_000, tranches(), fees_due=1_000)
    assert first.interest_unpaid == {"senior": 0, "mezz": 4_000, "equity": 0}
    second = compute_waterfall(0, tranches(arrears=(0, 4_000, 0)), fees_due=0)
    assert second.interest_due["mezz"] == 12_000


def test_triggered_retired_senior_lets_mezz_interest_flow() -> None:
    plan = compute_waterfall(10_000, tranches(senior=0), fees_due=0, triggered=True)
    assert plan.interest_paid == {"senior": 0, "mezz": 8_000, "equity": 0}
    assert plan.principal_paid["mezz"] == 2_000


def test_reserve_is_released_once_all_principal_is_retired() -> None:
    plan = compute_waterfall(50_000, tranches(senior=0, mezz=0, equity=10_000), fees_due=0,
                             reserve_target=20_000)
    assert plan.principal_paid["equity"] == 10_000
    assert plan.reserve == 0
    assert plan.residual == 40_000


def test_fee_arrears_are_paid_before_any_interest() -> None:
    plan = compute_waterfall(2_500, tranches(), fees_due=3_000)
    assert plan.fees_unpaid == 500
    assert plan.interest_paid["senior"] == 0


def test_single_tranche_is_both_senior_and_equity() -> None:
    only = [{"name": "a", "balance": 1_000, "coupon_bps": 1_000, "interest_unpaid": 0}]
    plan = compute_waterfall(1_600, only, fees_due=0)
    assert (plan.interest_paid, plan.principal_paid, plan.residual) == ({"a": 100},
                                                                       {"a": 1_000}, 500)


def test_waterfall_refuses_negative_cash_and_no_tranches() -> None:
    with pytest.raises(ValueError):
        compute_waterfall(-1, tranches(), fees_due=0)
    with pytest.raises(ValueError):
        compute_waterfall(1, [], fees_due=0)


# -- principal schedule, interest, ratios --------------------------------------------------------


@pytest.mark.parametrize("balances, target, pro_rata, expected", [
    ({"s": 500, "m": 200, "e": 100}, None, False, {"s": 500, "m": 200, "e": 100}),
    ({"s": 500, "m": 200, "e": 100}, 600, False, {"s": 500, "m": 100, "e": 0}),
    ({"s": 500, "m": 200, "e": 100}, 5_000, False, {"s": 500, "m": 200, "e": 100}),
    ({"s": 500, "m": 200, "e": 100}, 80, True, {"s": 50, "m": 20, "e": 10}),
    ({"s": 1, "m": 1, "e": 1}, 2, True, {"e": 1, "m": 1, "s": 0}),
    ({"s": 0, "m": 0, "e": 0}, 10, True, {"s": 0, "m": 0, "e": 0}),
])
def test_principal_due_table(balances: dict[str, int], target: int | None, pro_rata: bool,
                             expected: dict[str, int]) -> None:
    assert compute_principal_due(balances, ["s", "m", "e"], target, pro_rata) == expected


@pytest.mark.parametrize("balance, coupon_bps, arrears, expected", [
    (500_000, 200, 0, 10_000), (333, 333, 0, 11), (99, 100, 5, 5), (0, 9_999, 7, 7),
])
def test_interest_due_rounds_down_and_adds_arrears(balance: int, coupon_bps: int,
                                                   arrears: int, expected: int) -> None:
    assert compute_interest_due(balance, coupon_bps, arrears) == expected


@pytest.mark.parametrize("num, den, expected", [(1, 3, 3_333), (2, 1, 20_000), (5, 0, None)])
def test_ratio_bps(num: int, den: int, expected: int | None) -> None:
    assert compute_ratio_bps(num, den) == expected


# -- tests and trigger --------------------------------------------------------------------------

OC_MIN = {"senior": 15_000, "mezz": 11_000}


@pytest.mark.parametrize("performing, collections, oc_pass, coverage_pass, all_pass", [
    (1_000_000, 18_000, {"senior": True, "mezz": True}, True, True),
    (1_000_000, 17_999, {"senior": True, "mezz": True}, False, False),
    (700_000, 20_000, {"senior": False, "mezz": False}, True, False),
    (750_000, 20_000, {"senior": True, "mezz": False}, True, False),
    (0, 0, {"senior": False, "mezz": False}, False, False),
])
def test_tests_table(performing: int, collections: int, oc_pass: dict[str, bool],
                     coverage_pass: bool, all_pass: bool) -> None:
    result = compute_tests(performing, collections, tranches(), OC_MIN, 10_000)
    assert {k: v["pass"] for k, v in result["oc"].items()} == oc_pass
    assert result["coverage"]["pass"] is coverage_pass
    assert result["all_pass"] is all_pass


def test_oc_counts_the_tranche_and_everything_above_it() -> None:
    result = compute_tests(1_050_000, 18_000, tranches(), OC_MIN, None)
    assert result["oc"]["senior"]["value_bps"] == 21_000
    assert result["oc"]["mezz"]["value_bps"] == 15_000
    assert result["coverage"] == {"value_bps": 10_000, "min_bps": None, "pass": True}


def test_nothing_owed_passes_every_test() -> None:
    result = compute_tests(0, 0, tranches(0, 0, 0), OC_MIN, 10_000)
    assert result["all_pass"] and result["oc"]["senior"]["value_bps"] is None


def trigger(count: int = 0, triggered: bool = False, fired: int | None = None) -> dict[str, Any]:
    return {"breach_periods": 3, "breach_count": count, "triggered": triggered,
            "fired_period": fired}


@pytest.mark.parametrize("before, all_pass, period, after", [
    (trigger(), True, 1, trigger()),
    (trigger(), False, 1, trigger(1)),
    (trigger(1), False, 2, trigger(2)),
    (trigger(2), True, 3, trigger(0)),
    (trigger(2), False, 3, trigger(3, True, 3)),
    (trigger(3, True, 3), True, 4, trigger(0, True, 3)),
    (trigger(0, True, 3), False, 5, trigger(1, True, 3)),
])
def test_trigger_counts_consecutive_breaches_and_latches(before: dict[str, Any], all_pass: bool,
                                                         period: int,
                                                         after: dict[str, Any]) -> None:
    assert compute_trigger(before, all_pass, period) == after


# -- write-downs and write-backs ------------------------------------------------------------------

BALANCES = [("senior", 500), ("mezz", 200), ("equity", 100)]


@pytest.mark.parametrize("loss, expected", [
    (0, {"senior": 0, "mezz": 0, "equity": 0}),
    (60, {"senior": 0, "mezz": 0, "equity": 60}),
    (150, {"senior": 0, "mezz": 50, "equity": 100}),
    (800, {"senior": 500, "mezz": 200, "equity": 100}),
])
def test_write_down_reverse_seniority(loss: int, expected: dict[str, int]) -> None:
    assert compute_write_down(BALANCES, loss) == expected


def test_write_down_refuses_more_than_outstanding() -> None:
    with pytest.raises(ValueError):
        compute_write_down(BALANCES, 801)


@pytest.mark.parametrize("amount, expected", [
    (0, {"senior": 0, "mezz": 0, "equity": 0}),
    (30, {"senior": 30, "mezz": 0, "equity": 0}),
    (70, {"senior": 50, "mezz": 20, "equity": 0}),
    (10_000, {"senior": 50, "mezz": 200, "equity": 100}),
])
def test_write_back_senior_first(amount: int, expected: dict[str, int]) -> None:
    assert compute_write_back([("senior", 50), ("mezz", 200), ("equity", 100)],
                              amount) == expected
