"""Pledge-backed loans: request, fund, repay, enforce.

The owners request a loan against their patent; a lender funds it, and in that one
transaction the principal moves lender -> borrowers (by their shares, largest
remainder) and a pledge to the lender is registered on the patent (Civil Code Art. 444),
so there is never money out without collateral in, or the reverse. The principal is
capped at `ltv_max_bps` of the patent's latest appraisal.

Interest is simple, actual/365, on the outstanding principal, and accrues per whole day
of block time: `accrual_ms` moves forward by the whole days charged only, so a part day
is never lost by repaying often, and floor rounding costs the lender at most one unit
per charge. Repayments pay the accrued interest first, then principal; the repayment
that clears both releases the pledge at once. After maturity the lender may enforce:
the patent passes to it whole and the loan closes with the unpaid debt recorded as the
shortfall. A sale on the exchange pays the loan off from the price (contracts/exchange/
sales.py calls `settle_by_sale`).

`term_days` may be 0: a loan due on demand, enforceable from the next block.

State: loan/<id> (the request, then the loan); loan_request/<pid> -> the id of the
patent's request still gathering signatures or awaiting a lender.
"""

from __future__ import annotations

from typing import Any

from contracts import errors
from contracts.exchange.common import (
    DAYS_PER_YEAR, FULL_SHARE_BPS, MS_PER_DAY, LoanNotDue, LoanNotFound, LoanToValueExceeded,
    NoAppraisal, NotBorrower, NotLender, NotOpen, NotOwner, PatentPledged, RepaymentExceedsDebt,
    RequestStale, add_owner_signature, get_appraisal, get_block_date, get_exchange_config,
    get_owners, get_patent, get_pledge, is_owner, record_id, require_active, set_owners,
    void_listing,
)
from contracts.exchange.schemas import LoanRef, LoanRequestArgs, RepayArgs
from contracts.call import Call, Op
from contracts.split import split_by_weights
from contracts.state import State
from contracts.token.ledger import balance_of, transfer_units

OPEN_STATES = frozenset({"requested", "active"})


def get_loan(state: State, loan_id: Any) -> dict[str, Any]:
    record = state.get(f"loan/{loan_id}") if isinstance(loan_id, str) else None
    if record is None:
        raise LoanNotFound(f"no loan {loan_id!r}")
    return record


def compute_interest(outstanding: int, rate_bps: int, days: int) -> int:
    """Simple interest, actual/365, rounded down: never negative."""
    return outstanding * rate_bps * max(days, 0) // (FULL_SHARE_BPS * DAYS_PER_YEAR)


def accrue(loan: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """The loan with interest charged for every whole day since `accrual_ms`."""
    if loan["state"] != "active":
        return loan
    days = (now_ms - loan["accrual_ms"]) // MS_PER_DAY
    if days <= 0:
        return loan
    interest = compute_interest(loan["outstanding"], loan["rate_bps"], days)
    return {**loan, "interest_due": loan["interest_due"] + interest,
            "accrual_ms": loan["accrual_ms"] + days * MS_PER_DAY}


def get_owed(loan: dict[str, Any], now_ms: int) -> int:
    """What clears the loan at `now_ms`: accrued interest plus outstanding principal."""
    current = accrue(loan, now_ms)
    return current["interest_due"] + current["outstanding"] if loan["state"] == "active" else 0


# -- request ------------------------------------------------------------------------------


def on_request(call: Call) -> None:
    """Every owner signs the same terms; the request is open to lenders from the last
    signature. Other terms from an owner replace a request nobody has funded yet."""
    args = call.args
    state, pid = call.state, args.patent
    patent = get_patent(state, pid)
    if not is_owner(state, pid, call.org):
        raise NotOwner(f"{call.org} does not own {pid}")
    terms = {"principal": args.principal, "rate_bps": args.rate_bps,
             "term_days": args.term_days}
    require_active(state, pid, call.ctx.timestamp_ms)
    if get_pledge(state, pid) is not None:
        raise PatentPledged(f"{pid} is already pledged")
    loan = get_pending_request(state, pid)
    if (loan is None or {k: loan[k] for k in terms} != terms
            or loan["borrowers"] != patent["owners"]):
        if loan is not None:
            state.put(f"loan/{loan['id']}", {**loan, "state": "replaced"})
        loan = {"id": record_id(call), "patent": pid, **terms, "borrowers": patent["owners"],
                "approvals": [], "state": "signing", "lender": None,
                "height": call.ctx.height, "timestamp_ms": call.ctx.timestamp_ms}
    if add_owner_signature(state, loan, call.org):
        loan["state"] = "requested"
    state.put(f"loan/{loan['id']}", loan)
    state.put(f"loan_request/{pid}", loan["id"])
    call.emit("loan", "requested" if loan["state"] == "requested" else "request_signed",
              loan=loan["id"], patent=pid, by=call.org, **terms)


def get_pending_request(state: State, pid: str) -> dict[str, Any] | None:
    loan_id = state.get(f"loan_request/{pid}")
    if loan_id is None:
        return None
    loan = get_loan(state, loan_id)
    return loan if loan["state"] in ("signing", "requested") else None


# -- fund ---------------------------------------------------------------------------------


def check_fundable(call: Call, loan: dict[str, Any]) -> None:
    state, pid = call.state, loan["patent"]
    if loan["state"] != "requested":
        raise NotOpen(f"loan {loan['id']} is {loan['state']}, not requested")
    if get_owners(state, pid) != loan["borrowers"]:
        raise RequestStale(f"the owners of {pid} changed since loan {loan['id']} was requested")
    if is_owner(state, pid, call.org):
        raise errors.BadArguments("an owner cannot lend against its own patent")
    require_active(state, pid, call.ctx.timestamp_ms)
    if get_pledge(state, pid) is not None:
        raise PatentPledged(f"{pid} is already pledged")
    appraisal = get_appraisal(state, pid)
    if appraisal is None:
        raise NoAppraisal(f"{pid} has no appraisal to size a loan against")
    ltv_max_bps = get_exchange_config(state)["ltv_max_bps"]
    if loan["principal"] * FULL_SHARE_BPS > ltv_max_bps * appraisal:
        raise LoanToValueExceeded(
            f"principal {loan['principal']} exceeds {ltv_max_bps} bps of the appraisal "
            f"{appraisal} (at most {ltv_max_bps * appraisal // FULL_SHARE_BPS})")
    have = balance_of(state, "BPC", call.org)
    if have < loan["principal"]:
        raise errors.InsufficientFunds(f"{call.org} holds {have} BPC, lends {loan['principal']}")


def on_fund(call: Call) -> None:
    """Principal out and pledge in, in one transaction."""
    state, now_ms = call.state, call.ctx.timestamp_ms
    loan = get_loan(state, call.args.loan)
    check_fundable(call, loan)
    pid = loan["patent"]
    parts = split_by_weights(loan["principal"], dict(loan["borrowers"]))
    for org, part in parts.items():
        transfer_units(state, "BPC", call.org, org, part)
    maturity_ms = now_ms + loan["term_days"] * MS_PER_DAY
    until = get_block_date(maturity_ms).isoformat()
    state.put(f"pledge/{pid}", {
        "pledgee": call.org, "amount": loan["principal"], "until": until,
        "pledgors": loan["borrowers"], "loan": loan["id"], "height": call.ctx.height,
        "timestamp_ms": now_ms})
    state.delete(f"loan_request/{pid}")
    state.put(f"loan/{loan['id']}", {
        **loan, "state": "active", "lender": call.org, "funded_ms": now_ms,
        "maturity_ms": maturity_ms, "maturity_date": until, "outstanding": loan["principal"],
        "interest_due": 0, "accrual_ms": now_ms, "interest_paid": 0, "principal_paid": 0,
        "closed_ms": None, "on_time": None, "shortfall": None, "closed_by": None})
    call.emit("loan", "funded", loan=loan["id"], patent=pid, lender=call.org,
              principal=loan["principal"], parts=parts, maturity_date=until)
    call.emit("registry", "pledged", patent=pid, pledgee=call.org, amount=loan["principal"],
              until=until, loan=loan["id"])


# -- repay --------------------------------------------------------------------------------


def apply_payment(loan: dict[str, Any], amount: int, now_ms: int) -> tuple[dict[str, Any], int,
                                                                             int]:
    """(loan after paying `amount`, interest part, principal part): interest first."""
    loan = accrue(loan, now_ms)
    owed = loan["interest_due"] + loan["outstanding"]
    if amount > owed:
        raise RepaymentExceedsDebt(f"loan {loan['id']} owes {owed}, repayment {amount}")
    interest = min(amount, loan["interest_due"])
    principal = amount - interest
    loan = {**loan, "interest_due": loan["interest_due"] - interest,
            "outstanding": loan["outstanding"] - principal,
            "interest_paid": loan["interest_paid"] + interest,
            "principal_paid": loan["principal_paid"] + principal}
    return loan, interest, principal


def close_repaid(state: State, loan: dict[str, Any], now_ms: int, closed_by: str) -> dict:
    """Nothing owed: the loan closes and the pledge is released in the same transaction."""
    state.delete(f"pledge/{loan['patent']}")
    return {**loan, "state": "repaid", "closed_ms": now_ms, "closed_by": closed_by,
            "on_time": now_ms <= loan["maturity_ms"], "shortfall": 0}


def on_repay(call: Call) -> None:
    state, now_ms, amount = call.state, call.ctx.timestamp_ms, call.args.amount
    loan = get_loan(state, call.args.loan)
    if loan["state"] != "active":
        raise NotOpen(f"loan {loan['id']} is {loan['state']}, not active")
    if all(org != call.org for org, _ in loan["borrowers"]):
        raise NotBorrower(f"{call.org} is not a borrower of loan {loan['id']}")
    loan, interest, principal = apply_payment(loan, amount, now_ms)
    transfer_units(state, "BPC", call.org, loan["lender"], amount)
    repaid = loan["interest_due"] == 0 and loan["outstanding"] == 0
    if repaid:
        loan = close_repaid(state, loan, now_ms, "repayment")
    state.put(f"loan/{loan['id']}", loan)
    call.emit("loan", "repaid", loan=loan["id"], by=call.org, amount=amount,
              interest=interest, principal=principal, outstanding=loan["outstanding"],
              closed=repaid)
    if repaid:
        call.emit("registry", "pledge_released", patent=loan["patent"], pledgee=loan["lender"])


def settle_by_sale(state: State, loan_id: str, now_ms: int) -> tuple[dict[str, Any], int]:
    """The exchange pays the whole debt from a sale's price: (closed loan, amount)."""
    loan = accrue(get_loan(state, loan_id), now_ms)
    owed = loan["interest_due"] + loan["outstanding"]
    loan, _, _ = apply_payment(loan, owed, now_ms)
    loan = close_repaid(state, loan, now_ms, "sale")
    state.put(f"loan/{loan['id']}", loan)
    return loan, owed


# -- enforce ------------------------------------------------------------------------------


def on_enforce(call: Call) -> None:
    """After maturity, unpaid: the patent passes whole to the lender, and the unpaid
    interest and principal are recorded as the shortfall."""
    state, now_ms = call.state, call.ctx.timestamp_ms
    loan = get_loan(state, call.args.loan)
    if loan["state"] != "active":
        raise NotOpen(f"loan {loan['id']} is {loan['state']}, not active")
    if loan["lender"] != call.org:
        raise NotLender(f"loan {loan['id']} was funded by {loan['lender']}, not {call.org}")
    if now_ms <= loan["maturity_ms"]:
        raise LoanNotDue(f"loan {loan['id']} matures on {loan['maturity_date']}")
    loan = accrue(loan, now_ms)
    shortfall = loan["interest_due"] + loan["outstanding"]
    state.delete(f"pledge/{loan['patent']}")
    previous = set_owners(state, loan["patent"], [[call.org, FULL_SHARE_BPS]])
    void_listing(state, loan["patent"])
    loan = {**loan, "state": "enforced", "closed_ms": now_ms, "closed_by": "enforcement",
            "on_time": False, "shortfall": shortfall}
    state.put(f"loan/{loan['id']}", loan)
    call.emit("loan", "enforced", loan=loan["id"], patent=loan["patent"], lender=call.org,
              shortfall=shortfall)
    call.emit("registry", "pledge_enforced", patent=loan["patent"], pledgee=call.org,
              previous=previous)


# -- queries ------------------------------------------------------------------------------


def describe_loan(loan: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """The stored loan with what it owes now (interest accrued to the last block)."""
    current = accrue(loan, now_ms)
    active = loan["state"] == "active"
    return {**current, "owed_now": get_owed(loan, now_ms),
            "overdue": active and now_ms > loan["maturity_ms"]}


def query_loans(state: State, now_ms: int, loan_id: str | None = None) -> Any:
    if loan_id is not None:
        return describe_loan(get_loan(state, loan_id), now_ms)
    return [describe_loan(loan, now_ms) for _, loan in state.items("loan/")]


LENDERS = frozenset({"lender"})
OPS = {
    "loan.request": Op(on_request, args=LoanRequestArgs,
                       doc="Ask for a loan against your patent (every owner signs the terms)."),
    "loan.fund": Op(on_fund, roles=LENDERS, args=LoanRef,
                    doc="Fund a loan request: principal out and pledge in, atomically."),
    "loan.repay": Op(on_repay, args=RepayArgs,
                     doc="Repay a loan, interest first; full repayment releases the pledge."),
    "loan.enforce": Op(on_enforce, roles=LENDERS, args=LoanRef,
                       doc="After maturity, unpaid: take the patent, record the shortfall."),
}
QUERIES = {"loans": query_loans}
