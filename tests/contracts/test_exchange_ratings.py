"""Credit ratings: each component from the chain's own records, the weighted score,
the bands, and the weights read from genesis."""

from __future__ import annotations

import pytest
from test_exchange_support import A, fund_loan, new_world
from test_licensing_support import advance_to

from contracts import errors
from contracts.exchange.ratings import compute_band, compute_credit


@pytest.mark.parametrize("score, band", [
    (100, "A"), (80, "A"), (79, "B"), (60, "B"), (59, "C"), (40, "C"), (39, "D"), (20, "D"),
    (19, "E"), (0, "E"),
])
def test_bands(score, band):
    assert compute_band(score) == band


def test_no_history_gets_the_configured_score():
    chain = new_world()
    credit = chain.query("credit", "acme")
    assert (credit["score"], credit["band"], credit["history"]) == (50, "C", False)
    assert {c["score"] for c in credit["components"].values()} == {None}
    with pytest.raises(errors.NotFound, match="no organisation"):
        chain.query("credit", "nobody")


def _royalty_licence(chain):
    receipt = chain.must("acme", "licence.offer", licensee="univ", patents=[A],
                         kind="non_exclusive", start_date="2024-01-01",
                         end_date="2025-12-31", fee=0, royalty_bps=1000)
    lid = receipt.events[0].data["licence"]
    chain.must("univ", "licence.accept", licence=lid)
    return lid


def test_royalties_on_time_late_and_unpaid():
    """Due 60 days after the quarter: Q1 paid on 2024-05-30 (on time), Q2 paid on
    2024-09-01 (due 2024-08-30: late), Q3 reported and never paid (unpaid once due)."""
    chain = new_world()
    lid = _royalty_licence(chain)
    advance_to(chain, "2024-04-02")
    chain.must("univ", "royalty.report", licence=lid, period="2024-Q1", net_sales=10_000,
               units=1)
    advance_to(chain, "2024-05-30")
    chain.must("univ", "royalty.pay", licence=lid, period="2024-Q1")
    advance_to(chain, "2024-07-02")
    chain.must("univ", "royalty.report", licence=lid, period="2024-Q2", net_sales=10_000,
               units=1)
    advance_to(chain, "2024-09-01")
    chain.must("univ", "royalty.pay", licence=lid, period="2024-Q2")
    advance_to(chain, "2024-10-02")
    chain.must("univ", "royalty.report", licence=lid, period="2024-Q3", net_sales=10_000,
               units=1)
    advance_to(chain, "2024-11-29")  # Q3 due 2024-11-30: not yet counted
    royalties = chain.query("credit", "univ")["components"]["royalties"]
    assert (royalties["good"], royalties["late"], royalties["bad"]) == (1, 1, 0)
    advance_to(chain, "2024-12-01")
    credit = chain.query("credit", "univ")
    royalties = credit["components"]["royalties"]
    assert (royalties["good"], royalties["late"], royalties["bad"]) == (1, 1, 1)
    assert royalties["score"] == (100 + 50) // 3 == credit["score"]
    assert credit["band"] == "C"
    assert chain.query("credit", "acme")["history"] is False  # the licensor is not rated


def test_loans_repaid_on_time_count_in_full_and_enforced_count_nothing():
    chain = new_world()
    first = fund_loan(chain, principal=100_000, term_days=30)
    chain.must("acme", "loan.repay", loan=first, amount=100_000)
    assert chain.query("credit", "acme")["score"] == 100
    second = fund_loan(chain, principal=100_000, term_days=0)
    assert chain.query("credit", "acme")["components"]["loans"]["bad"] == 0
    chain.advance(days=1)
    overdue = chain.query("credit", "acme")["components"]["loans"]
    assert (overdue["good"], overdue["bad"], overdue["score"]) == (1, 1, 50)
    chain.must("bank", "loan.enforce", loan=second)
    credit = chain.query("credit", "acme")
    assert (credit["score"], credit["band"]) == (50, "C")
    assert chain.query("credit", "bank")["history"] is False  # lenders are not rated for lending


def test_a_loan_repaid_after_maturity_counts_as_late():
    chain = new_world()
    loan = fund_loan(chain, principal=100_000, rate_bps=0, term_days=0)
    chain.advance(days=1)
    chain.must("acme", "loan.repay", loan=loan, amount=100_000)
    loans = chain.query("credit", "acme")["components"]["loans"]
    assert (loans["late"], loans["score"]) == (1, 50)


def test_originated_tranches_written_down_count_as_defaulted():
    chain = new_world()
    deal = {"id": "d1", "originator": "univ", "state": "closed", "tranches": [
        {"name": "senior", "written_down": 0, "written_back": 0},
        {"name": "mezzanine", "written_down": 150, "written_back": 150},
        {"name": "equity", "written_down": 500, "written_back": 0}]}
    chain.state.put("deal/d1", deal)
    chain.state.put("deal/d2", {**deal, "id": "d2", "state": "open"})  # never closed
    tranches = compute_credit(chain.state, "univ", chain.timestamp_ms)["components"][
        "securitization"]
    assert (tranches["good"], tranches["bad"], tranches["score"]) == (2, 1, 66)


def test_weights_come_from_genesis():
    chain = new_world({"credit_weights": {"royalties": 0, "loans": 1, "securitization": 3},
                       "credit_no_history_score": 10})
    assert chain.query("credit", "acme")["score"] == 10
    first = fund_loan(chain, principal=100_000, term_days=30)
    chain.must("acme", "loan.repay", loan=first, amount=100_000)
    chain.state.put("deal/d1", {"id": "d1", "originator": "acme", "state": "closed",
                                "tranches": [{"written_down": 1, "written_back": 0}]})
    credit = compute_credit(chain.state, "acme", chain.timestamp_ms)
    assert credit["score"] == (100 * 1 + 0 * 3) // 4
    assert credit["components"]["loans"]["weight"] == 1


@pytest.mark.parametrize("contracts, message", [
    ({"clearing_fee_bps": 10_001}, "clearing_fee_bps"),
    ({"ltv_max_bps": -1}, "ltv_max_bps"),
    ({"clearing_account": "nobody"}, "clearing_account"),
    ({"credit_weights": {"loans": -1}}, "credit_weights"),
    ({"credit_weights": {"gossip": 1}}, "credit_weights"),
    ({"credit_late_points": -1}, "credit_late_points"),
    ({"credit_no_history_score": 101}, "credit_no_history_score"),
    ({"royalty_grace_days": "60"}, "royalty_grace_days"),
])
def test_bad_exchange_settings_fail_the_genesis(contracts, message):
    with pytest.raises(errors.BadArguments, match=message):
        new_world(contracts)
