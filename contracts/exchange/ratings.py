"""Credit ratings: a pure function of the chain, per organisation.

Nothing is stored: the rating is recomputed from the records other contracts keep, at
the time of the last block, so every node gives the same answer at the same height and
nobody can write a rating. Three components, each 0-100 from the organisation's own
history:

- royalties: every reported royalty period of a licence it holds. Due
  `royalty_grace_days` after the quarter ends (licence agreements ask for payment within
  a set number of days after each quarter); paid by then counts in full, paid later
  counts `credit_late_points`, unpaid past the due day counts nothing. A period not yet
  due is not counted.
- loans: every exchange loan it borrowed. Repaid by maturity counts in full, repaid
  after maturity `credit_late_points`, enforced or overdue nothing; a loan still
  running within its term is not counted.
- securitization: every tranche of a closed deal it originated. A tranche with principal
  written down (net of write-backs) defaulted and counts nothing; the others count in full.

The settings are genesis's (contracts/genesis.py ContractConfig). The score is the
weighted mean (`credit_weights`) of the components that have any history, rounded
down; an organisation with no history at all gets `credit_no_history_score`.
Bands: A >= 80, B >= 60, C >= 40, D >= 20, else E.
"""

from __future__ import annotations

import datetime
from typing import Any

from contracts import errors
from contracts.exchange.common import MS_PER_DAY
from contracts.genesis import get_contract_config
from contracts.licensing.royalty import get_period_days, parse_period
from contracts.state import State

BANDS = ((80, "A"), (60, "B"), (40, "C"), (20, "D"), (0, "E"))
FULL_POINTS = 100
EPOCH = datetime.date(1970, 1, 1)


def compute_band(score: int) -> str:
    return next(band for floor, band in BANDS if score >= floor)


def compute_component(good: int, late: int, bad: int, late_points: int) -> dict[str, Any]:
    total = good + late + bad
    score = None if total == 0 else (FULL_POINTS * good + late_points * late) // total
    return {"good": good, "late": late, "bad": bad, "score": score}


def get_royalty_due_ms(period: str, grace_days: int) -> int:
    """Midnight UTC after the last day payment is on time."""
    _, last_day = get_period_days(*parse_period(period))
    return ((last_day - EPOCH).days + 1 + grace_days) * MS_PER_DAY


def count_royalties(state: State, org: str, now_ms: int, grace_days: int) -> tuple[int, ...]:
    good = late = bad = 0
    for key in state.keys(f"licidx/licensee/{org}/"):
        lid = key.rsplit("/", 1)[1]
        for _, report in state.items(f"royalty/{lid}/"):
            due_ms = get_royalty_due_ms(report["period"], grace_days)
            if report["paid"]:
                # Payments recorded before the paid time was kept count as on time.
                on_time = report.get("paid_timestamp_ms", 0) < due_ms
                good, late = (good + 1, late) if on_time else (good, late + 1)
            elif now_ms >= due_ms:
                bad += 1
    return good, late, bad


def count_loans(state: State, org: str, now_ms: int) -> tuple[int, ...]:
    good = late = bad = 0
    for _, loan in state.items("loan/"):
        if loan["state"] not in ("active", "repaid", "enforced") or all(
                borrower != org for borrower, _ in loan["borrowers"]):
            continue
        if loan["state"] == "repaid":
            good, late = (good + 1, late) if loan["on_time"] else (good, late + 1)
        elif loan["state"] == "enforced" or now_ms > loan["maturity_ms"]:
            bad += 1
    return good, late, bad


def count_tranches(state: State, org: str) -> tuple[int, ...]:
    good = bad = 0
    for _, deal in state.items("deal/"):
        if deal.get("originator") != org or deal.get("state") != "closed":
            continue
        for tranche in deal["tranches"]:
            if tranche["written_down"] - tranche["written_back"] > 0:
                bad += 1
            else:
                good += 1
    return good, 0, bad


def compute_credit(state: State, org: str, now_ms: int) -> dict[str, Any]:
    if state.get(f"org/{org}") is None:
        raise errors.NotFound(f"no organisation {org!r}")
    config = get_contract_config(state)
    late_points, weights = config["credit_late_points"], config["credit_weights"]
    counts = {"royalties": count_royalties(state, org, now_ms, config["royalty_grace_days"]),
              "loans": count_loans(state, org, now_ms),
              "securitization": count_tranches(state, org)}
    components = {name: {**compute_component(*counted, late_points),
                         "weight": weights.get(name, 0)}
                  for name, counted in sorted(counts.items())}
    rated = {name: c for name, c in components.items()
             if c["score"] is not None and c["weight"] > 0}
    if rated:
        score = (sum(c["score"] * c["weight"] for c in rated.values())
                 // sum(c["weight"] for c in rated.values()))
    else:
        score = config["credit_no_history_score"]
    return {"org": org, "score": score, "band": compute_band(score),
            "history": bool(rated), "components": components}


def query_credit(state: State, now_ms: int, org: str) -> dict[str, Any]:
    return compute_credit(state, org, now_ms)


QUERIES = {"credit": query_credit}
