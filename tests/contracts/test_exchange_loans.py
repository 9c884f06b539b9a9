"""loan.request / fund / repay / enforce: one table per op (every refusal asserts the
state root did not move), and the interest arithmetic worked by hand."""

from __future__ import annotations

import pytest
from test_exchange_support import (
    A, B, C, PENDING, Case, bpc, fund_loan, list_patent, new_world, request_loan, run_case,
)

from contract_chain import DAY_MS

from contracts.exchange.loans import compute_interest, get_loan

# -- interest, by hand ----------------------------------------------------------------------


@pytest.mark.parametrize("outstanding, rate_bps, days, interest", [
    (500_000, 730, 1, 100),        # 500 000 x 7.30 % / 365 = 100 a day exactly
    (500_000, 730, 30, 3_000),
    (1_000, 100, 1, 0),            # 0.0027...: floor
    (1_000_003, 999, 365, 99_900),  # a year: 99 900.2997 -> 99 900
    (500_000, 730, 0, 0),
    (500_000, 730, -3, 0),         # never negative, whatever the clock says
    (0, 730, 10, 0),
])
def test_interest_is_actual_365_floored(outstanding, rate_bps, days, interest):
    assert compute_interest(outstanding, rate_bps, days) == interest


def test_repayments_pay_interest_first_and_a_part_day_is_never_lost():
    chain = new_world()
    loan = fund_loan(chain, principal=500_000, rate_bps=730, term_days=90)
    assert bpc(chain, "acme") == 1_500_000 and chain.get(f"pledge/{A}")["loan"] == loan
    chain.advance(ms=10 * DAY_MS + DAY_MS // 2 - 1000)  # the block lands 10.5 days in
    receipt = chain.must("acme", "loan.repay", loan=loan, amount=1_500)
    data = receipt.events[0].data
    assert (data["interest"], data["principal"], data["outstanding"]) == (1_000, 500, 499_500)
    chain.advance(ms=DAY_MS // 2)  # the half day carried over plus this half: one more day
    chain.must("acme", "loan.repay", loan=loan, amount=99)
    record = get_loan(chain.state, loan)
    # day 11: 499 500 x 7.30 % / 365 = 99.9 -> 99, all paid by the 99
    assert (record["interest_paid"], record["principal_paid"]) == (1_099, 500)


def test_full_repayment_releases_the_pledge_and_no_interest_accrues_after():
    chain = new_world()
    loan = fund_loan(chain, principal=500_000, rate_bps=730, term_days=90)
    chain.advance(days=30)  # 500 000 x 7.30 % x 30 / 365 = 3 000
    assert chain.query("loans", loan)["owed_now"] == 503_000
    chain.fails("RepaymentExceedsDebt", "acme", "loan.repay", loan=loan, amount=503_001)
    chain.must("acme", "loan.repay", loan=loan, amount=503_000)
    record = get_loan(chain.state, loan)
    assert (record["state"], record["on_time"], record["outstanding"]) == ("repaid", True, 0)
    assert chain.get(f"pledge/{A}") is None
    chain.advance(days=400)
    assert chain.query("loans", loan)["owed_now"] == 0
    assert chain.query("loans", loan)["interest_due"] == 0
    chain.fails("NotOpen", "acme", "loan.repay", loan=loan, amount=1)


def test_enforcement_after_maturity_moves_ownership_and_records_the_shortfall():
    chain = new_world()
    loan = fund_loan(chain, principal=500_000, rate_bps=730, term_days=0)
    chain.must("acme", "loan.repay", loan=loan, amount=100_000)  # same day: no interest
    chain.advance(days=2)
    receipt = chain.must("bank", "loan.enforce", loan=loan)
    record = get_loan(chain.state, loan)
    # 400 000 x 7.30 % x 2 days / 365 = 160 of interest on top of the principal left
    assert (record["state"], record["shortfall"]) == ("enforced", 400_160)
    assert chain.get(f"patent/{A}")["owners"] == [["bank", 10_000]]
    assert chain.get(f"pledge/{A}") is None
    assert [e.name for e in receipt.events] == ["enforced", "pledge_enforced"]
    # the licence granted before runs with the patent
    assert chain.query("licences", "patent", A)[0]["state"] == "active"


# -- loan.request -------------------------------------------------------------------------


def request_args(**overrides):
    return {"patent": A, "principal": 500_000, "rate_bps": 730, "term_days": 90, **overrides}


def _requested(chain, ctx, receipt):
    loan = get_loan(chain.state, receipt.events[0].data["loan"])
    assert loan["state"] == "requested" and loan["borrowers"] == [["acme", 10_000]]


def _signing(chain, ctx, receipt):
    loan = get_loan(chain.state, receipt.events[0].data["loan"])
    assert (loan["state"], loan["approvals"]) == ("signing", ["acme"])


def _pledged_a(chain):
    chain.must("acme", "patent.pledge", patent=A, pledgee="fund", amount=5, until="2030-01-01")
    return {}


REQUEST_CASES = [
    Case("a sole owner's request is open to lenders", "acme", request_args(),
         check=_requested),
    Case("one of two owners: signing", "acme", request_args(patent=B), check=_signing),
    Case("not an owner", "bolt", request_args(), "NotOwner"),
    Case("a pending application may be pledged", "acme", request_args(patent=PENDING)),
    Case("lapsed patent", "acme", request_args(), "PatentInactive",
         setup=lambda ch: ch.must("cnipa", "patent.set_status", patent=A,
                                  status="LAPSED") and {}),
    Case("already pledged", "acme", request_args(), "PatentPledged", setup=_pledged_a),
    Case("zero principal", "acme", request_args(principal=0), "BadArguments"),
    Case("negative rate", "acme", request_args(rate_bps=-1), "BadArguments"),
    Case("rate above 100 %", "acme", request_args(rate_bps=10_001), "BadArguments"),
    Case("negative term", "acme", request_args(term_days=-1), "BadArguments"),
    Case("term above 100 years", "acme", request_args(term_days=36_501), "BadArguments"),
    Case("unknown argument", "acme", {**request_args(), "lender": "bank"}, "BadArguments"),
    Case("string principal", "acme", request_args(principal="500000"), "BadArguments"),
]


@pytest.mark.parametrize("case", REQUEST_CASES, ids=str)
def test_request(case: Case) -> None:
    run_case("loan.request", case)


# -- loan.fund ----------------------------------------------------------------------------


def _request(**terms):
    return lambda chain: {"loan": request_loan(chain, **terms)}


def _funded(chain, ctx, receipt):
    loan = get_loan(chain.state, ctx["loan"])
    assert (loan["state"], loan["lender"], loan["outstanding"]) == ("active", "bank", 1_000_000)
    assert bpc(chain, "acme") == 2_000_000 and bpc(chain, "bank") == 49_000_000
    pledge = chain.get(f"pledge/{A}")
    assert (pledge["pledgee"], pledge["amount"], pledge["loan"]) == ("bank", 1_000_000,
                                                                     ctx["loan"])


def _funded_split(chain, ctx, receipt):
    assert receipt.events[0].data["parts"] == {"acme": 333_350, "univ": 166_650}


FUND_CASES = [
    Case("at the LTV cap: principal out, pledge in", "bank", lambda ctx: ctx,
         setup=_request(principal=1_000_000), check=_funded),
    Case("co-owners get the principal by shares", "bank", lambda ctx: ctx,
         setup=_request(patent=B, principal=500_000), check=_funded_split),
    Case("one unit above the LTV cap", "bank", lambda ctx: ctx, "LoanToValueExceeded",
         setup=_request(principal=1_000_001)),
    Case("never appraised", "bank", lambda ctx: ctx, "NoAppraisal",
         setup=_request(patent=C, principal=1)),
    Case("not a lender", "fund", lambda ctx: ctx, "Unauthorized", setup=_request()),
    Case("lender cannot pay", "bank2", lambda ctx: ctx, "InsufficientFunds", setup=_request()),
    Case("signed by one owner of two", "bank", lambda ctx: ctx, "NotOpen",
         setup=lambda ch: {"loan": ch.must("acme", "loan.request", **request_args(
             patent=B)).events[0].data["loan"]}),
    Case("funded already", "bank", lambda ctx: ctx, "NotOpen",
         setup=lambda ch: {"loan": fund_loan(ch)}),
    Case("owners changed since the request", "bank", lambda ctx: ctx, "RequestStale",
         setup=lambda ch: (ctx := _request()(ch)) and ch.must(
             "acme", "patent.assign", patent=A, to=[["univ", 10_000]]) and ctx),
    Case("unknown loan", "bank", {"loan": "ab" * 8}, "LoanNotFound"),
]


@pytest.mark.parametrize("case", FUND_CASES, ids=str)
def test_fund(case: Case) -> None:
    run_case("loan.fund", case)


# -- loan.repay and loan.enforce ---------------------------------------------------------------


def _loan(term_days=90):
    return lambda chain: {"loan": fund_loan(chain, term_days=term_days)}


def _loan_overdue(chain):
    ctx = _loan(term_days=1)(chain)
    chain.advance(days=3)
    return ctx


REPAY_CASES = [
    Case("a part repayment", "acme", lambda ctx: {**ctx, "amount": 1_000}, setup=_loan()),
    Case("more than is owed", "acme", lambda ctx: {**ctx, "amount": 500_001},
         "RepaymentExceedsDebt", setup=_loan()),
    Case("not a borrower", "univ", lambda ctx: {**ctx, "amount": 1}, "NotBorrower",
         setup=_loan()),
    Case("zero", "acme", lambda ctx: {**ctx, "amount": 0}, "BadArguments", setup=_loan()),
    Case("borrower cannot pay", "acme", lambda ctx: {**ctx, "amount": 500_000},
         "InsufficientFunds",
         setup=lambda ch: (ctx := _loan()(ch)) and ch.must(
             "acme", "token.transfer", to="bolt", amount=1_100_000) and ctx),
    Case("a request not funded", "acme", lambda ctx: {**ctx, "amount": 1}, "NotOpen",
         setup=_request()),
]


@pytest.mark.parametrize("case", REPAY_CASES, ids=str)
def test_repay(case: Case) -> None:
    run_case("loan.repay", case)


ENFORCE_CASES = [
    Case("after maturity, unpaid", "bank", lambda ctx: ctx, setup=_loan_overdue),
    Case("before maturity", "bank", lambda ctx: ctx, "LoanNotDue", setup=_loan()),
    Case("not the lender", "bank2", lambda ctx: ctx, "NotLender", setup=_loan_overdue),
    Case("a borrower cannot enforce", "acme", lambda ctx: ctx, "Unauthorized",
         setup=_loan_overdue),
    Case("repaid in full", "bank", lambda ctx: ctx, "NotOpen",
         setup=lambda ch: (ctx := _loan(term_days=0)(ch)) and ch.must(
             "acme", "loan.repay", loan=ctx["loan"], amount=500_000) and ctx),
]


@pytest.mark.parametrize("case", ENFORCE_CASES, ids=str)
def test_enforce(case: Case) -> None:
    run_case("loan.enforce", case)


def test_a_loan_pledge_ends_only_through_the_loan():
    chain = new_world()
    fund_loan(chain, term_days=0)
    chain.advance(days=2)
    chain.fails("PledgeHeldForLoan", "bank", "patent.enforce", patent=A)
    chain.fails("PledgeHeldForLoan", "bank", "patent.release", patent=A)
    chain.fails("PledgeHeldForLoan", "acme", "patent.assign", patent=A, to=[["univ", 10_000]])
    # a sale is the other way out, paying the loan from the price
    chain.must("univ", "market.buy", listing=list_patent(chain, A, price=600_000),
               price=600_000)
    assert chain.get(f"patent/{A}")["owners"] == [["univ", 10_000]]


def test_enforcement_ends_the_old_owners_listing():
    chain = new_world()
    loan = fund_loan(chain, term_days=0)
    listing = list_patent(chain, A, price=900_000)
    chain.advance(days=1)
    chain.must("bank", "loan.enforce", loan=loan)
    assert chain.get(f"market_listing/{listing}")["state"] == "closed"
    chain.fails("NotOpen", "univ", "market.buy", listing=listing, price=900_000)


def test_a_request_signed_before_the_owners_changed_starts_over():
    chain = new_world()
    first = chain.must("acme", "loan.request", patent=B, principal=1_000, rate_bps=0,
                       term_days=1).events[0].data["loan"]
    chain.must("acme", "patent.assign", patent=B, to=[["acme", 5000], ["bolt", 5000]])
    chain.must("univ", "patent.approve_assign", patent=B, to=[["acme", 5000], ["bolt", 5000]])
    second = chain.must("acme", "loan.request", patent=B, principal=1_000, rate_bps=0,
                        term_days=1).events[0].data["loan"]
    assert second != first and get_loan(chain.state, first)["state"] == "replaced"
    assert get_loan(chain.state, second)["borrowers"] == [["acme", 5000], ["bolt", 5000]]
