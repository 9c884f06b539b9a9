"""royalty.report / royalty.pay: the amount due per quarter, minimums, floors and caps,
accrual ending with the patents, assignment to a securitization deal, paying once."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_licensing_support import (
    A, B, Case, advance_to, bpc, grant_licence, new_world, offer, run_case, set_status,
)

from contracts import errors
from contracts.licensing.royalty import (
    compute_earned_royalty, compute_quarter_due, get_patent_last_day, get_period_days,
    parse_period,
)

# -- pure calculations ------------------------------------------------------------------


@pytest.mark.parametrize("net_sales, units, rate_bps, floor, cap, expected", [
    (10_000, 5, 500, None, None, 500),
    (10_001, 5, 500, None, None, 500),       # rounds down
    (10_000, 1000, 500, 3, None, 3000),      # the per-unit floor lifts it
    (10_000, 100, 500, None, 1, 100),        # the per-unit cap lowers it
    (10_000, 100, 500, 2, 10, 500),          # between floor and cap
    (0, 0, 500, 3, 10, 0),
    (10_000, 0, 500, None, 10, 0),           # a per-unit cap with no units caps at zero
    (123_456_789, 7, 10_000, None, None, 123_456_789),
])
def test_compute_earned_royalty(net_sales, units, rate_bps, floor, cap, expected) -> None:
    assert compute_earned_royalty(net_sales, units, rate_bps, floor, cap) == expected


@pytest.mark.parametrize("text, expected", [
    ("2026-Q3", (2026, 3)), ("0001-Q1", (1, 1)), ("2024-Q4", (2024, 4)),
    ("2026-Q5", None), ("2026Q1", None), ("26-Q1", None), ("2026-q1", None),
    ("0000-Q1", None), ("2026-Q1 ", None), (20261, None),
])
def test_parse_period(text, expected) -> None:
    if expected is None:
        with pytest.raises(errors.BadArguments):
            parse_period(text)
    else:
        assert parse_period(text) == expected


def test_period_days_cover_the_year_without_gaps() -> None:
    assert get_period_days(9999, 4)[1] == datetime.date(9999, 12, 31)
    assert get_period_days(2023, 1)[1] == datetime.date(2023, 3, 31)
    days = [get_period_days(2024, q) for q in (1, 2, 3, 4)]
    assert days[0][0] == datetime.date(2024, 1, 1) and days[3][1] == datetime.date(2024, 12, 31)
    for (_, end), (start, _) in zip(days, days[1:]):
        assert start - end == datetime.timedelta(days=1)


@settings(max_examples=300, deadline=None)
@given(minimum=st.none() | st.integers(0, 10**9),
       earned=st.lists(st.integers(0, 10**9), min_size=1, max_size=4))
def test_annual_royalty_is_max_of_minimum_and_earned(minimum, earned) -> None:
    """Quarterly instalments of max(minimum, earned): never negative, and a year's dues
    sum to max(minimum * k / 4, earned) for the k quarters it covers (rounded down)."""
    due_before = earned_so_far = 0
    for index, amount in enumerate(earned, start=1):
        earned_so_far += amount
        due = compute_quarter_due(minimum, index, earned_so_far, due_before)
        assert due >= 0
        due_before += due
    quarters = len(earned)
    assert due_before == max((minimum or 0) * quarters // 4, sum(earned))


# -- royalty.report -----------------------------------------------------------------------


def _licence(**terms):
    """Setup: an active licence acme -> bolt on CN:1 (2024-2025), clock at 2024-04-01."""
    def setup(chain):
        lid = grant_licence(chain, **{"royalty_bps": 500, "fee": 0, **terms})
        advance_to(chain, "2024-04-01")
        return {"lid": lid}
    return setup


def _q(period, net_sales=10_000, units=5):
    return lambda ctx: {"licence": ctx["lid"], "period": period, "net_sales": net_sales,
                        "units": units}


def _due(expected):
    def check(chain, ctx, receipt):
        data = receipt.events[0].data
        assert data["due"] == expected, data
        record = chain.get(f"royalty/{ctx['lid']}/{data['period']}")
        assert record["due"] == expected and record["paid"] is False
    return check


def _reported_q1(chain):
    ctx = _licence()(chain)
    chain.must("bolt", "royalty.report", **_q("2024-Q1")(ctx))
    return ctx


def _q2_ended(chain):
    ctx = _reported_q1(chain)
    advance_to(chain, "2024-07-01")
    return ctx


def _q3_ended_nothing_reported(chain):
    ctx = _licence()(chain)
    advance_to(chain, "2024-10-01")
    return ctx


def _offered_only(chain):
    lid = offer(chain, royalty_bps=500)
    advance_to(chain, "2024-04-01")
    return {"lid": lid}


REPORT_CASES = [
    Case("earned = net sales x rate", "bolt", _q("2024-Q1"), setup=_licence(), check=_due(500)),
    Case("the quarter's part of the annual minimum", "bolt", _q("2024-Q1"),
         setup=_licence(minimum_annual_royalty=4001), check=_due(1000)),
    Case("earned above the minimum's part", "bolt", _q("2024-Q1", 100_000),
         setup=_licence(minimum_annual_royalty=4000), check=_due(5000)),
    Case("per-unit floor", "bolt", _q("2024-Q1", 10_000, 1000),
         setup=_licence(royalty_floor_per_unit=3), check=_due(3000)),
    Case("per-unit cap", "bolt", _q("2024-Q1", 10_000, 100),
         setup=_licence(royalty_cap_per_unit=1), check=_due(100)),
    Case("the licensee's second quarter", "bolt", _q("2024-Q2"), setup=_q2_ended,
         check=_due(500)),
    Case("a report is final", "bolt", _q("2024-Q1"), "PeriodAlreadyReported",
         setup=_reported_q1),
    Case("only the licensee reports", "acme", _q("2024-Q1"), "NotLicensee", setup=_licence()),
    Case("an offer that was never accepted", "bolt", _q("2024-Q1"), "LicenceNotActive",
         setup=_offered_only),
    Case("unknown licence", "bolt", lambda ctx: _q("2024-Q1")({"lid": "ab" * 8}),
         "LicenceNotFound"),
    Case("a quarter that has not ended", "bolt", _q("2024-Q2"), "PeriodNotEnded",
         setup=_reported_q1),
    Case("before the licence starts", "bolt", _q("2024-Q1"), "PeriodOutsideTerm",
         setup=_licence(start_date="2024-04-01")),
    Case("after the licence ends", "bolt", _q("2024-Q2"), "PeriodOutsideTerm",
         setup=_licence(end_date="2024-03-31")),
    Case("quarters are reported in order", "bolt", _q("2024-Q3"), "PeriodOutOfOrder",
         setup=_q3_ended_nothing_reported),
    Case("not a quarter", "bolt", _q("2024-Q5"), "BadArguments", setup=_licence()),
    Case("negative sales", "bolt", _q("2024-Q1", -1), "BadArguments", setup=_licence()),
    Case("boolean units", "bolt", _q("2024-Q1", 1, True), "BadArguments", setup=_licence()),
    Case("a royalty too large to represent", "bolt", _q("2024-Q1", 1, 2**62), "BadArguments",
         setup=_licence(royalty_floor_per_unit=2**62)),
]


@pytest.mark.parametrize("case", REPORT_CASES, ids=str)
def test_report(case: Case) -> None:
    run_case("royalty.report", case)


def report(chain, lid, period, net_sales=10_000, units=5, code=None):
    args = {"licence": lid, "period": period, "net_sales": net_sales, "units": units}
    if code is not None:
        return chain.fails(code, "bolt", "royalty.report", **args)
    return chain.must("bolt", "royalty.report", **args).events[0].data


def test_a_year_of_reports_owes_max_of_minimum_and_earned() -> None:
    chain = new_world()
    lid = grant_licence(chain, royalty_bps=1000, minimum_annual_royalty=10_000, fee=0)
    dues = []
    for period, day, sales in [("2024-Q1", "2024-04-01", 50_000), ("2024-Q2", "2024-07-01", 0),
                               ("2024-Q3", "2024-10-01", 20_000),
                               ("2024-Q4", "2025-01-01", 10_000)]:
        advance_to(chain, day)
        dues.append(report(chain, lid, period, sales)["due"])
    # earned 5000, 0, 2000, 1000 = 8000 < 10 000: the year owes the minimum
    assert dues == [5000, 0, 2500, 2500] and sum(dues) == 10_000
    advance_to(chain, "2025-04-01")
    assert report(chain, lid, "2025-Q1", 0)["due"] == 2500   # a new year, a new minimum


def test_a_partial_first_year_owes_its_quarters_of_the_minimum() -> None:
    chain = new_world()
    lid = grant_licence(chain, royalty_bps=1000, minimum_annual_royalty=10_000, fee=0,
                        start_date="2024-08-15")
    advance_to(chain, "2024-10-01")
    assert report(chain, lid, "2024-Q3", 0)["due"] == 2500
    advance_to(chain, "2025-01-01")
    assert report(chain, lid, "2024-Q4", 0)["due"] == 2500


def test_accrual_stops_when_the_last_patent_lapses() -> None:
    chain = new_world()
    lid = grant_licence(chain, royalty_bps=500, fee=0)
    advance_to(chain, "2024-05-10")
    set_status(chain, A, "LAPSED")
    report(chain, lid, "2024-Q1")
    advance_to(chain, "2024-07-01")
    report(chain, lid, "2024-Q2")          # the quarter holding the lapse still counts
    advance_to(chain, "2024-10-01")
    report(chain, lid, "2024-Q3", code="AccrualEnded")
    assert chain.query("royalties", lid)["accrual_last_day"] == "2024-05-09"


def test_accrual_ends_at_expiry_but_continues_while_any_patent_lives() -> None:
    chain = new_world()
    chain.grant(chain.deposit("acme", "6", kind="utility_model", filing_date="2014-06-01"))
    only_um = grant_licence(chain, patents=["CN:6"], royalty_bps=500, fee=0)
    both = grant_licence(chain, patents=["CN:6", A], royalty_bps=500, fee=0,
                         licensee="lab")
    advance_to(chain, "2024-04-01")
    for lid, licensee in ((only_um, "bolt"), (both, "lab")):
        chain.must(licensee, "royalty.report", licence=lid, period="2024-Q1", net_sales=1,
                   units=1)
    # utility model term: 10 years from filing, so the last day is 2024-05-31
    chain.fails("PeriodNotEnded", "bolt", "royalty.report", licence=only_um,
                period="2024-Q2", net_sales=1, units=1)
    advance_to(chain, "2024-06-01")
    chain.must("bolt", "royalty.report", licence=only_um, period="2024-Q2", net_sales=1,
               units=1)
    advance_to(chain, "2024-10-01")
    chain.fails("AccrualEnded", "bolt", "royalty.report", licence=only_um, period="2024-Q3",
                net_sales=1, units=1)
    chain.must("lab", "royalty.report", licence=both, period="2024-Q2", net_sales=1, units=1)
    chain.must("lab", "royalty.report", licence=both, period="2024-Q3", net_sales=1, units=1)


def test_accrual_ends_on_the_date_the_office_gives_the_invalidation() -> None:
    chain = new_world()
    lid = grant_licence(chain, royalty_bps=500, fee=0)
    advance_to(chain, "2024-03-01")
    chain.must("cnipa", "patent.set_status", patent=A, status="INVALIDATED", date="2024-02-15")
    assert get_patent_last_day(chain.state, A, datetime.date(2024, 12, 1)) == datetime.date(
        2024, 2, 14)
    advance_to(chain, "2024-07-01")
    report(chain, lid, "2024-Q1")
    report(chain, lid, "2024-Q2", code="AccrualEnded")


def test_a_terminal_status_without_a_recorded_date_ends_accrual_no_earlier_than_today() -> None:
    chain = new_world()
    set_status(chain, A, "LAPSED")
    patent = {k: v for k, v in chain.get(f"patent/{A}").items() if k != "status_date"}
    chain.state.put(f"patent/{A}", patent)
    today = datetime.date(2024, 12, 1)
    assert get_patent_last_day(chain.state, A, today) == datetime.date(2024, 11, 30)
    assert get_patent_last_day(chain.state, B, today) == datetime.date(2043, 2, 28)


# -- royalty.pay --------------------------------------------------------------------------


def _reported(**terms):
    def setup(chain):
        ctx = _licence(**terms)(chain)
        chain.must(chain_licensee(chain, ctx), "royalty.report", **_q("2024-Q1")(ctx))
        return ctx
    return setup


def chain_licensee(chain, ctx):
    return chain.get(f"licence/{ctx['lid']}")["licensee"]


def _co_owned_reported(chain):
    lid = grant_licence(chain, patents=[B], royalty_bps=1001, fee=0)
    advance_to(chain, "2024-04-01")
    chain.must("bolt", "royalty.report", licence=lid, period="2024-Q1", net_sales=10_000,
               units=0)
    return {"lid": lid}


def _assigned(chain):
    ctx = _reported()(chain)
    # what securitization's deal.close writes for each underlying licence
    chain.state.put(f"royalty_assignment/{ctx['lid']}", "deal:d1")
    return ctx


def _paid(chain, ctx, receipt):
    data = receipt.events[0].data
    assert data["amount"] == 1001 and data["to"] == "licensors"
    assert data["parts"] == {"acme": 601, "univ": 400}
    assert bpc(chain, "bolt") == 1_000_000 - 1001
    assert chain.query("royalties", ctx["lid"])["outstanding"] == 0


def _paid_to_deal(chain, ctx, receipt):
    assert receipt.events[0].data["to"] == "deal:d1"
    assert bpc(chain, "deal:d1") == 500 and bpc(chain, "acme") == 1_000_000
    assert chain.get(f"royalty/{ctx['lid']}/2024-Q1")["paid_to"] == "deal:d1"


def _paid_twice(chain):
    ctx = _reported()(chain)
    chain.must("bolt", "royalty.pay", licence=ctx["lid"], period="2024-Q1")
    return ctx


def _poor_reported(chain):
    lid = grant_licence(chain, licensee="poor", royalty_bps=10_000, fee=0)
    advance_to(chain, "2024-04-01")
    chain.must("poor", "royalty.report", licence=lid, period="2024-Q1", net_sales=51, units=0)
    return {"lid": lid}


def _period(period="2024-Q1"):
    return lambda ctx: {"licence": ctx["lid"], "period": period}


PAY_CASES = [
    Case("paid to the licensors by share, exactly", "bolt", _period(),
         setup=_co_owned_reported, check=_paid),
    Case("paid to the deal that bought the royalties", "bolt", _period(), setup=_assigned,
         check=_paid_to_deal),
    Case("nothing due is still marked paid", "bolt", _period(), setup=_reported(royalty_bps=0),
         check=lambda ch, ctx, r: ch.get(f"royalty/{ctx['lid']}/2024-Q1")["paid"]
         or pytest.fail("not marked paid")),
    Case("paying twice", "bolt", _period(), "PeriodAlreadyPaid", setup=_paid_twice),
    Case("paying before reporting", "bolt", _period("2024-Q2"), "PeriodNotReported",
         setup=_reported()),
    Case("only the licensee pays", "acme", _period(), "NotLicensee", setup=_reported()),
    Case("the licensee cannot pay", "poor", _period(), "InsufficientFunds",
         setup=_poor_reported),
    Case("not a quarter", "bolt", _period("Q1-2024"), "BadArguments", setup=_reported()),
]


@pytest.mark.parametrize("case", PAY_CASES, ids=str)
def test_pay(case: Case) -> None:
    run_case("royalty.pay", case)


def test_royalty_queries() -> None:
    chain = new_world()
    lid = grant_licence(chain, royalty_bps=500, fee=0)
    advance_to(chain, "2024-07-01")
    report(chain, lid, "2024-Q1")
    report(chain, lid, "2024-Q2", 20_000)
    chain.must("bolt", "royalty.pay", licence=lid, period="2024-Q1")
    summary = chain.query("royalties", lid)
    assert [r["period"] for r in summary["reports"]] == ["2024-Q1", "2024-Q2"]
    assert summary["outstanding"] == 1000 and summary["assigned_to"] is None
    assert chain.query("royalties", lid, "2024-Q2")["due"] == 1000
    with pytest.raises(errors.NotFound):
        chain.query("royalties", lid, "2024-Q3")
