"""Running royalties: what a licensee owes for a reporting period, and paying it.

Periods are calendar quarters written "YYYY-Qn" ("2026-Q3"): the usual reporting cycle
of licence agreements; they sort correctly as strings and their days are fixed, so the
same text means the same days on every node.

Earned royalty for a quarter = net_sales * royalty_bps // 10 000 (rounded down, in the
licensor's disfavour as usual for integer minor units), then raised to the per-unit
floor and lowered to the per-unit cap when the licence has them.

The minimum annual royalty is credited against earned royalty per calendar year: the
year owes max(minimum, earned). Quarterly instalments keep that exact: through the j-th
licensed quarter of a year the cumulative due is max(minimum * j // 4, earned so far),
and a quarter owes that minus what its earlier quarters already owed. A full year sums
to max(minimum, earned); a year the licence covers for k quarters owes
max(minimum * k // 4, earned). Hence reports are made in order, each once its quarter
(or the licence's accrual) has ended.

Accrual stops on the last day any licensed patent is alive (Patent Law Arts. 42-44:
expiry, lapse for unpaid fees, invalidation) or on the licence's end date, whichever is
first. A quarter that starts after that day cannot be reported; the quarter that holds
it is reported for the sales up to that day.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

from contracts import errors, registry
from contracts.errors import PeriodOutOfOrder  # noqa: F401  (shared; re-exported)
from contracts.licensing.scope import get_block_date, get_licence, parse_iso_date
from contracts.registry.core import compute_expiry_date, get_term_years
from contracts.call import Call, Op
from contracts.split import split_by_weights
from contracts.licensing.schemas import PayArgs, ReportArgs
from contracts.state import State
from contracts.token.ledger import balance_of, transfer_units

FULL_BPS = 10_000
MAX_AMOUNT = 2**62
"""Far above any real amount; keeps products like net_sales * rate_bps inside 64 bits."""
PERIOD_RE = re.compile(r"^([0-9]{4})-Q([1-4])$")
QUARTERS_PER_YEAR = 4
ROYALTY_TERMS = ("minimum_annual_royalty", "royalty_bps", "royalty_cap_per_unit",
                 "royalty_floor_per_unit")
ONE_DAY = datetime.timedelta(days=1)


class NotLicensee(errors.ContractError):
    """Only the licensee accepts, reports under or pays for a licence."""


class LicenceNotActive(errors.ContractError):
    """The licence was never accepted (still offered, or withdrawn)."""


class PeriodAlreadyReported(errors.ContractError):
    """This licence already has a report for this period; a report is final."""


class PeriodAlreadyPaid(errors.ContractError):
    """This period's royalty is already paid; paying twice is refused."""


class PeriodNotReported(errors.ContractError):
    """Pay follows report: the amount due is fixed by the report."""



class PeriodNotEnded(errors.ContractError):
    """The quarter (or the licence's accrual within it) has not ended yet."""


class PeriodOutsideTerm(errors.ContractError):
    """The quarter lies wholly before the licence starts or after it ends."""


class AccrualEnded(errors.ContractError):
    """Every licensed patent had expired, lapsed or been invalidated before this quarter."""


# -- terms ---------------------------------------------------------------------------


def check_amount(value: Any, what: str, *, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_AMOUNT:
        raise errors.BadArguments(f"{what} must be an integer in 0..{MAX_AMOUNT}")
    return value


def check_royalty_terms(args: dict[str, Any]) -> dict[str, Any]:
    """The running-royalty terms of an offer or an open-licence declaration."""
    rate_bps = check_amount(args.get("royalty_bps", 0), "royalty_bps")
    if rate_bps > FULL_BPS:
        raise errors.BadArguments("royalty_bps must not exceed 10000")
    floor = check_amount(args.get("royalty_floor_per_unit"), "royalty_floor_per_unit",
                         optional=True)
    cap = check_amount(args.get("royalty_cap_per_unit"), "royalty_cap_per_unit", optional=True)
    if floor is not None and cap is not None and floor > cap:
        raise errors.BadArguments("royalty_floor_per_unit exceeds royalty_cap_per_unit")
    minimum = check_amount(args.get("minimum_annual_royalty"), "minimum_annual_royalty",
                           optional=True)
    return {"minimum_annual_royalty": minimum, "royalty_bps": rate_bps,
            "royalty_cap_per_unit": cap, "royalty_floor_per_unit": floor}


def compute_earned_royalty(net_sales: int, units: int, rate_bps: int,
                           floor_per_unit: int | None, cap_per_unit: int | None) -> int:
    earned = net_sales * rate_bps // FULL_BPS
    if floor_per_unit is not None:
        earned = max(earned, floor_per_unit * units)
    if cap_per_unit is not None:
        earned = min(earned, cap_per_unit * units)
    return earned


def compute_quarter_due(minimum_annual: int | None, quarter_in_year: int,
                        earned_so_far: int, due_before: int) -> int:
    """This quarter's instalment of max(minimum, earned) for its year (see module doc).

    `quarter_in_year` counts licensed quarters of the year up to this one (1..4);
    `earned_so_far` includes this quarter; `due_before` is what earlier quarters of the
    year owed. Never negative: both terms of the max only grow through a year.
    """
    floor = (minimum_annual or 0) * quarter_in_year // QUARTERS_PER_YEAR
    return max(floor, earned_so_far) - due_before


# -- periods -------------------------------------------------------------------------


def parse_period(value: Any) -> tuple[int, int]:
    match = PERIOD_RE.match(value) if isinstance(value, str) else None
    if match is None or int(match.group(1)) < 1:
        raise errors.BadArguments(f"period must be a calendar quarter like 2026-Q3, got {value!r}")
    return int(match.group(1)), int(match.group(2))


def format_period(year: int, quarter: int) -> str:
    return f"{year:04d}-Q{quarter}"


def get_period_of(day: datetime.date) -> tuple[int, int]:
    return day.year, (day.month - 1) // 3 + 1


def get_period_days(year: int, quarter: int) -> tuple[datetime.date, datetime.date]:
    """First and last day of the quarter."""
    last_of_month = (31, 30, 30, 31)[quarter - 1]
    return (datetime.date(year, 3 * quarter - 2, 1),
            datetime.date(year, 3 * quarter, last_of_month))


def get_previous_period(year: int, quarter: int) -> tuple[int, int]:
    return (year - 1, 4) if quarter == 1 else (year, quarter - 1)


# -- accrual -------------------------------------------------------------------------


def get_status_change_date(patent: dict[str, Any], today: datetime.date) -> datetime.date:
    """The day a terminal status (LAPSED, INVALIDATED, ...) took effect, as the office
    recorded it (it may backdate a lapse to the unpaid annuity's due date). A record
    without one (written before the registry kept status dates) reads as ending today:
    never earlier than the truth, so nothing owed is cut off."""
    recorded = patent.get("status_date")
    return parse_iso_date(recorded, "status_date") if isinstance(recorded, str) else today


def get_patent_last_day(state: State, pid: str, today: datetime.date) -> datetime.date:
    """The last day the patent gives a right to license: the day before its term's
    anniversary, or before its lapse, invalidation, rejection or withdrawal."""
    patent = registry.get_patent(state, pid)
    last = compute_expiry_date(patent, get_term_years(state, patent["kind"])) - ONE_DAY
    if patent["status"] in registry.INACTIVE:
        last = min(last, get_status_change_date(patent, today) - ONE_DAY)
    return last


def get_accrual_last_day(state: State, licence: dict[str, Any],
                         today: datetime.date) -> datetime.date:
    """The last day royalties accrue: the licence's end, or the death of its last patent."""
    patents_last = max(get_patent_last_day(state, pid, today) for pid in licence["patents"])
    return min(datetime.date.fromisoformat(licence["end_date"]), patents_last)


# -- reporting -----------------------------------------------------------------------


def royalty_key(lid: str, period: str) -> str:
    return f"royalty/{lid}/{period}"


def check_reportable(state: State, licence: dict[str, Any], year: int, quarter: int,
                     today: datetime.date) -> None:
    """Raise the named reason this quarter cannot be reported now, if there is one."""
    first_day, last_day = get_period_days(year, quarter)
    start = datetime.date.fromisoformat(licence["start_date"])
    if last_day < start or first_day > datetime.date.fromisoformat(licence["end_date"]):
        raise PeriodOutsideTerm(f"{format_period(year, quarter)} is outside the licence term "
                                f"{licence['start_date']}..{licence['end_date']}")
    accrual_last = get_accrual_last_day(state, licence, today)
    if first_day > accrual_last:
        raise AccrualEnded(f"royalties stopped accruing on {accrual_last.isoformat()}")
    if today <= min(last_day, accrual_last):
        raise PeriodNotEnded(f"{format_period(year, quarter)} has not ended")
    if (year, quarter) != get_period_of(start):
        previous = format_period(*get_previous_period(year, quarter))
        if royalty_key(licence["id"], previous) not in state:
            raise PeriodOutOfOrder(f"report {previous} first")


def compute_report(state: State, licence: dict[str, Any], year: int, quarter: int,
                   net_sales: int, units: int) -> dict[str, int]:
    """Earned and due for the quarter, crediting earned against the annual minimum."""
    earned = compute_earned_royalty(net_sales, units, licence["royalty_bps"],
                                    licence["royalty_floor_per_unit"],
                                    licence["royalty_cap_per_unit"])
    start_year, start_quarter = get_period_of(datetime.date.fromisoformat(licence["start_date"]))
    first_quarter = start_quarter if start_year == year else 1
    earned_before = due_before = 0
    for earlier in range(first_quarter, quarter):
        record = state.get(royalty_key(licence["id"], format_period(year, earlier)))
        earned_before += record["earned"]
        due_before += record["due"]
    due = compute_quarter_due(licence["minimum_annual_royalty"], quarter - first_quarter + 1,
                              earned_before + earned, due_before)
    if max(earned, due) > MAX_AMOUNT:
        raise errors.BadArguments(f"royalty above {MAX_AMOUNT}: check net_sales and units")
    return {"earned": earned, "due": due}


def on_report(call: Call) -> None:
    args: ReportArgs = call.args
    net_sales, units = args.net_sales, args.units
    year, quarter = parse_period(args.period)
    licence = get_licence(call.state, args.licence)
    if licence["licensee"] != call.org:
        raise NotLicensee(f"{call.org} is not the licensee of {licence['id']}")
    if licence["state"] != "active":
        raise LicenceNotActive(f"licence {licence['id']} is {licence['state']}")
    period = format_period(year, quarter)
    if royalty_key(licence["id"], period) in call.state:
        raise PeriodAlreadyReported(f"{licence['id']} already reported {period}")
    today = get_block_date(call.ctx.timestamp_ms)
    check_reportable(call.state, licence, year, quarter, today)
    amounts = compute_report(call.state, licence, year, quarter, net_sales, units)
    call.state.put(royalty_key(licence["id"], period), {
        "licence": licence["id"], "period": period, "net_sales": net_sales, "units": units,
        **amounts, "paid": False, "paid_to": None, "paid_height": None,
        "height": call.ctx.height, "timestamp_ms": call.ctx.timestamp_ms,
    })
    call.emit("royalty", "reported", licence=licence["id"], period=period, **amounts)


# -- paying --------------------------------------------------------------------------


def get_royalty_assignee(state: State, lid: str) -> str | None:
    """Set by securitization's deal.close: the deal account collects the royalties."""
    return state.get(f"royalty_assignment/{lid}")


def pay_by_shares(state: State, payer: str, amount: int,
                  shares: list[list[Any]]) -> dict[str, int]:
    """Move `amount` BPC from `payer` to the holders of `shares`, exactly (largest
    remainder); checks the payer's balance first so nothing moves on a refusal."""
    have = balance_of(state, "BPC", payer)
    if have < amount:
        raise errors.InsufficientFunds(f"{payer} holds {have} BPC, needs {amount}")
    parts = split_by_weights(amount, {org: bps for org, bps in shares})
    for org, part in parts.items():
        transfer_units(state, "BPC", payer, org, part)
    return parts


def on_pay(call: Call) -> None:
    period = format_period(*parse_period(call.args.period))
    licence = get_licence(call.state, call.args.licence)
    if licence["licensee"] != call.org:
        raise NotLicensee(f"{call.org} is not the licensee of {licence['id']}")
    record = call.state.get(royalty_key(licence["id"], period))
    if record is None:
        raise PeriodNotReported(f"{licence['id']} has no report for {period}")
    if record["paid"]:
        raise PeriodAlreadyPaid(f"{licence['id']} already paid {period}")
    assignee = get_royalty_assignee(call.state, licence["id"])
    if assignee is not None:
        parts = pay_by_shares(call.state, call.org, record["due"], [[assignee, 1]])
    else:
        parts = pay_by_shares(call.state, call.org, record["due"], licence["licensors"])
    to = assignee if assignee is not None else "licensors"
    call.state.put(royalty_key(licence["id"], period), {
        **record, "paid": True, "paid_to": to, "paid_height": call.ctx.height,
        "paid_timestamp_ms": call.ctx.timestamp_ms})
    call.emit("royalty", "paid", licence=licence["id"], period=period, amount=record["due"],
              to=to, parts=parts)


# -- queries -------------------------------------------------------------------------


def query_royalties(state: State, now_ms: int, lid: str, period: str | None = None) -> Any:
    """One licence's reports (with what is still unpaid), or one period's report."""
    licence = get_licence(state, lid)
    if period is not None:
        record = state.get(royalty_key(lid, period))
        if record is None:
            raise errors.NotFound(f"no royalty report {lid} {period}")
        return record
    reports = [value for _, value in state.items(f"royalty/{lid}/")]
    return {
        "licence": lid, "reports": reports,
        "accrual_last_day": (get_accrual_last_day(state, licence,
                                                  get_block_date(now_ms)).isoformat()
                             if licence["state"] == "active" else None),
        "assigned_to": get_royalty_assignee(state, lid),
        "outstanding": sum(r["due"] for r in reports if not r["paid"]),
    }


OPS = {
    "royalty.report": Op(on_report, roles=frozenset({"member"}), args=ReportArgs,
                         doc="Report a quarter's net sales and units under a licence."),
    "royalty.pay": Op(on_pay, roles=frozenset({"member"}), args=PayArgs,
                      doc="Pay a reported quarter's royalty to the licensors (or the deal)."),
}
QUERIES = {"royalties": query_royalties}
