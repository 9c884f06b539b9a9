"""The securitization waterfall as pure arithmetic: plain data in, a payment plan out.

Nothing here reads state, moves tokens or knows about holders' keys, so every rule of
the waterfall (order of payment, interest arrears, pro-rata versus sequential
principal, the latched trigger, the reserve, write-downs and write-backs) is checked
directly by property tests, and the contract (securitization.py) only carries the plan
out. A plan is an ordered list of steps; each step has an amount *due* and pays
min(due, cash left). That single rule is what makes "nothing junior is paid while a
more senior amount due is unpaid" and "total paid <= cash" hold by construction: a step
left short has used the last unit of cash.

Tranches are given most senior first as dicts {"name", "balance", "coupon_bps",
"interest_unpaid"}; the last one is the equity tranche, which takes the residual.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from contracts.split import split_by_weights

FULL_BPS = 10_000


@dataclass(frozen=True)
class Step:
    """One line of the waterfall, in payment order."""

    kind: str
    """"fees", "interest", "principal", "reserve" or "residual"."""
    tranche: str | None
    """The tranche paid; None for fees, reserve and a pro-rata principal group."""
    due: int
    """What this step is owed this period (arrears included); residual: the cash left."""
    paid: int
    parts: dict[str, int] = field(default_factory=dict)
    """Paid per tranche (one entry, or several for pro-rata principal); sums to `paid`.
    Empty for fees and the reserve, which pay no tranche."""

    @property
    def unpaid(self) -> int:
        return self.due - self.paid

    def to_value(self) -> dict[str, Any]:
        return {"kind": self.kind, "tranche": self.tranche, "due": self.due,
                "paid": self.paid, "unpaid": self.unpaid, "parts": dict(self.parts)}


@dataclass(frozen=True)
class WaterfallPlan:
    cash: int
    """Collections of the period plus the reserve carried in: everything available."""
    steps: tuple[Step, ...]
    fees_unpaid: int
    """Fees left owed, carried to the next period."""
    interest_due: dict[str, int]
    interest_paid: dict[str, int]
    interest_unpaid: dict[str, int]
    """Arrears carried to the next period (unpaid interest accrues, without compounding)."""
    principal_paid: dict[str, int]
    residual: int
    """Paid to the equity (last) tranche."""
    reserve: int
    """Cash kept in the deal account as the reserve for the next period."""

    @property
    def total_paid(self) -> int:
        """Cash that leaves the deal account (the reserve stays)."""
        return sum(step.paid for step in self.steps if step.kind != "reserve")

    def to_value(self) -> dict[str, Any]:
        return {"cash": self.cash, "steps": [step.to_value() for step in self.steps],
                "fees_unpaid": self.fees_unpaid, "interest_due": dict(self.interest_due),
                "interest_paid": dict(self.interest_paid),
                "interest_unpaid": dict(self.interest_unpaid),
                "principal_paid": dict(self.principal_paid), "residual": self.residual,
                "reserve": self.reserve, "total_paid": self.total_paid}


def compute_interest_due(balance: int, coupon_bps: int, arrears: int) -> int:
    """This period's coupon on the opening balance, rounded down, plus arrears."""
    return balance * coupon_bps // FULL_BPS + arrears


def compute_ratio_bps(numerator: int, denominator: int) -> int | None:
    """numerator / denominator in basis points, rounded down; None when nothing is owed."""
    return None if denominator == 0 else numerator * FULL_BPS // denominator


def compute_tests(performing_value: int, collections: int, tranches: Sequence[dict[str, Any]],
                  oc_min_bps: dict[str, int], coverage_min_bps: int | None) -> dict[str, Any]:
    """The period's overcollateralization and coverage tests, from opening balances.

    OC of a tranche = performing asset value / outstanding principal of that tranche and
    every tranche above it. Coverage = collections / interest due this period (arrears
    included). A ratio with nothing owed (None) passes: no one can be under-covered.
    """
    oc: dict[str, dict[str, Any]] = {}
    cumulative = 0
    for tranche in tranches:
        cumulative += tranche["balance"]
        if tranche["name"] in oc_min_bps:
            value = compute_ratio_bps(performing_value, cumulative)
            minimum = oc_min_bps[tranche["name"]]
            oc[tranche["name"]] = {"value_bps": value, "min_bps": minimum,
                                   "pass": value is None or value >= minimum}
    interest = sum(compute_interest_due(t["balance"], t["coupon_bps"], t["interest_unpaid"])
                   for t in tranches)
    coverage_value = compute_ratio_bps(collections, interest)
    coverage = {"value_bps": coverage_value, "min_bps": coverage_min_bps,
                "pass": (coverage_min_bps is None or coverage_value is None
                         or coverage_value >= coverage_min_bps)}
    all_pass = coverage["pass"] and all(entry["pass"] for entry in oc.values())
    return {"oc": oc, "coverage": coverage, "all_pass": all_pass}


class _Cash:
    """The running cash of one waterfall: each step takes min(due, what is left)."""

    def __init__(self, amount: int) -> None:
        self.left = amount
        self.steps: list[Step] = []

    def pay(self, kind: str, tranche: str | None, due: int,
            weights: dict[str, int] | None = None) -> int:
        paid = min(due, self.left)
        self.left -= paid
        if weights is not None:
            parts = split_by_weights(paid, weights) if sum(weights.values()) else {}
        else:
            parts = {} if tranche is None else {tranche: paid}
        self.steps.append(Step(kind, tranche, due, paid, parts))
        return paid


def compute_principal_due(balances: dict[str, int], order: Sequence[str],
                          target: int | None, pro_rata: bool) -> dict[str, int]:
    """Principal scheduled this period per tranche (`target` None = all outstanding).

    Sequential: the target is allocated most senior first. Pro rata: in proportion to
    outstanding balances by largest remainder; no part exceeds its balance because the
    target never exceeds their sum.
    """
    outstanding = sum(balances.values())
    total = outstanding if target is None else min(target, outstanding)
    if pro_rata and outstanding:
        return split_by_weights(total, balances)
    due: dict[str, int] = {}
    for name in order:
        due[name] = min(balances[name], total)
        total -= due[name]
    return due


def compute_waterfall(cash: int, tranches: Sequence[dict[str, Any]], *, fees_due: int,
                      principal_target: int | None = None, pro_rata: bool = False,
                      triggered: bool = False, reserve_target: int = 0) -> WaterfallPlan:
    """The payment plan for one period.

    Normal order: fees, interest of each tranche (senior first), principal (sequential,
    or one pro-rata group when the caller allows it), reserve top-up, residual to equity.
    Triggered (latched) order: fees, then per tranche senior first its interest and its
    WHOLE outstanding principal, then the residual: all excess cash retires the senior
    principal first and junior interest waits until every class above it is retired.
    The reserve is swept into `cash` by the caller and not topped up once triggered.
    """
    if cash < 0 or fees_due < 0 or not tranches:
        raise ValueError("cash and fees must not be negative; a deal has tranches")
    names = [t["name"] for t in tranches]
    balances = {t["name"]: t["balance"] for t in tranches}
    interest_due = {t["name"]: compute_interest_due(t["balance"], t["coupon_bps"],
                                                    t["interest_unpaid"]) for t in tranches}
    run = _Cash(cash)
    fees_paid = run.pay("fees", None, fees_due)
    interest_paid: dict[str, int] = {}
    principal_paid = {name: 0 for name in names}
    if triggered:
        for name in names:
            interest_paid[name] = run.pay("interest", name, interest_due[name])
            principal_paid[name] = run.pay("principal", name, balances[name])
    else:
        for name in names:
            interest_paid[name] = run.pay("interest", name, interest_due[name])
        due = compute_principal_due(balances, names, principal_target, pro_rata)
        if pro_rata:
            run.pay("principal", None, sum(due.values()), weights=due)
            principal_paid.update(run.steps[-1].parts)
        else:
            for name in names:
                principal_paid[name] = run.pay("principal", name, due[name])
    still_owed = sum(balances.values()) - sum(principal_paid.values())
    reserve = 0 if triggered else run.pay("reserve", None, reserve_target if still_owed else 0)
    residual = run.pay("residual", names[-1], run.left)
    return WaterfallPlan(
        cash=cash, steps=tuple(run.steps), fees_unpaid=fees_due - fees_paid,
        interest_due=interest_due, interest_paid=interest_paid,
        interest_unpaid={n: interest_due[n] - interest_paid[n] for n in names},
        principal_paid=principal_paid, residual=residual, reserve=reserve)


def compute_trigger(trigger: dict[str, Any], all_pass: bool, period: int) -> dict[str, Any]:
    """Count consecutive breached periods; at `breach_periods` the trigger fires and
    latches: a later passing period resets the count but never un-fires it."""
    count = 0 if all_pass else trigger["breach_count"] + 1
    fires = not trigger["triggered"] and count >= trigger["breach_periods"]
    return {**trigger, "breach_count": count, "triggered": trigger["triggered"] or fires,
            "fired_period": period if fires else trigger["fired_period"]}


def compute_write_down(balances: Sequence[tuple[str, int]], loss: int) -> dict[str, int]:
    """A loss absorbed in reverse seniority (equity first), each tranche to zero at most.

    `balances` is most senior first. Raises ValueError if the loss exceeds them all: the
    caller refuses such a default, so total written down always equals total losses.
    """
    if loss < 0 or loss > sum(balance for _, balance in balances):
        raise ValueError("a loss must be between zero and the outstanding principal")
    written: dict[str, int] = {}
    for name, balance in reversed(balances):
        written[name] = min(balance, loss)
        loss -= written[name]
    return {name: written[name] for name, _ in balances}


def compute_write_back(written_down: Sequence[tuple[str, int]], amount: int) -> dict[str, int]:
    """A recovery reinstates written-down principal senior first, up to what was lost.

    `written_down` is (name, net amount still written down), most senior first.
    """
    if amount < 0:
        raise ValueError("a recovery must not be negative")
    back: dict[str, int] = {}
    for name, owed in written_down:
        back[name] = min(owed, amount)
        amount -= back[name]
    return back
