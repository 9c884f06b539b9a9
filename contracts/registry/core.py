"""The patent record and the facts every contract family reads from it.

Licensing, the pool and securitization decide "may this patent be licensed, pooled,
pledged, securitised?" from the functions here, so the answer is computed in one place:
the stored status is what the office last said; the *effective* status also knows that
a term ends on its own, without anyone sending a transaction (Patent Law Art. 42).

Record layout (`patent/<pid>`, pid = "<office>:<application_no>"): id, office,
application_no, doc_hash, kind, title, filing_date, publication_date, grant_date,
priorities, ipc, applicants, inventors, owners ([[org, bps], ...] sorted by org, summing
to 10 000), status, status_date (the day the status took effect), supersedes, version,
height, timestamp_ms. Dates are ISO
"YYYY-MM-DD" strings; they compare correctly as strings but are parsed to check them.
"""

from __future__ import annotations

import datetime
import re
from typing import Any

from contracts import errors
from contracts.genesis import DEFAULT_CONTRACT_CONFIG, get_contract_config
from contracts.state import State

FULL_SHARE_BPS = 10_000
MS_PER_DAY = 86_400_000
EPOCH = datetime.date(1970, 1, 1)

KINDS = ("invention", "utility_model", "design")
STATUSES = ("FILED", "PUBLISHED", "GRANTED", "LAPSED", "EXPIRED", "INVALIDATED",
            "REJECTED", "WITHDRAWN")
PENDING = frozenset({"FILED", "PUBLISHED"})
"""Applications still under examination: they can be granted, rejected or withdrawn."""
INACTIVE = frozenset({"LAPSED", "EXPIRED", "INVALIDATED", "REJECTED", "WITHDRAWN"})
"""No right exists (any more, or ever): nothing may be licensed, pooled or pledged."""

DEFAULT_TERM_YEARS: dict[str, int] = DEFAULT_CONTRACT_CONFIG["patent_term_years"]
"""Patent Law Art. 42 (as amended 2021): terms run from the filing date."""

ISO_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
"""Only the extended calendar form: then dates also compare correctly as strings
(3.11's fromisoformat alone would take '20230201' and '2023-W05-3' too)."""
OFFICE_RE = re.compile(r"[A-Z]{2}")
"""WIPO ST.3 two-letter codes (CN, US, EP, WO, ...)."""
APPLICATION_NO_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""No '/' or ':' beyond the pid's own separator: ids appear in state keys and API paths,
so "PCT/US2019/012345" is written "PCT-US2019-012345"."""


# -- errors -------------------------------------------------------------------------


class NotOwner(errors.ContractError):
    """The sender's organisation does not own (a share of) this patent."""


class PatentExists(errors.ContractError):
    """A deposit already exists under this (office, application_no)."""


class DuplicateDocument(errors.ContractError):
    """This document hash is already deposited; a hash registers once in the registry."""


class DatesOutOfOrder(errors.ContractError):
    """Dates must satisfy priority <= filing <= publication <= grant <= the block's date."""


class BadStatusTransition(errors.ContractError):
    """The status machine does not allow this move from the patent's current status."""


class PatentInactive(errors.ContractError):
    """The patent is lapsed, expired, invalidated, rejected, withdrawn or superseded."""


class PatentPledged(errors.ContractError):
    """The patent is pledged; the change needs the pledgee's co-signature or a release."""


# -- dates --------------------------------------------------------------------------


def parse_date(value: Any, what: str) -> datetime.date:
    """An ISO calendar date; refuses anything else (times, week dates, '2023-2-1')."""
    if not isinstance(value, str) or not ISO_DATE_RE.fullmatch(value):
        raise errors.BadArguments(f"{what} must be an ISO date YYYY-MM-DD")
    try:
        return datetime.date.fromisoformat(value)
    except ValueError as exc:
        raise errors.BadArguments(f"{what} is not a valid date: {value!r}") from exc


def get_block_date(timestamp_ms: int) -> datetime.date:
    """The UTC calendar day of a block timestamp, by integer arithmetic only."""
    return EPOCH + datetime.timedelta(days=timestamp_ms // MS_PER_DAY)


def add_years(day: datetime.date, years: int) -> datetime.date:
    """The anniversary; a 29 February start ends on 28 February in common years."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


# -- reads --------------------------------------------------------------------------


def get_patent(state: State, pid: str) -> dict[str, Any]:
    record = state.get(f"patent/{pid}") if isinstance(pid, str) else None
    if record is None:
        raise errors.NotFound(f"no patent {pid!r}")
    return record


def get_term_years(state: State, kind: str) -> int:
    return get_contract_config(state)["patent_term_years"].get(kind, DEFAULT_TERM_YEARS[kind])


def compute_expiry_date(patent: dict[str, Any], term_years: int | None = None) -> datetime.date:
    """The first day the right no longer exists: the filing date's term anniversary."""
    years = DEFAULT_TERM_YEARS[patent["kind"]] if term_years is None else term_years
    return add_years(datetime.date.fromisoformat(patent["filing_date"]), years)


def get_effective_status(patent: dict[str, Any], timestamp_ms: int,
                         term_years: int | None = None) -> str:
    """The stored status, except that a live record past its term reads EXPIRED.

    Terminal statuses stay as they are: an application rejected in year 3 is REJECTED
    forever, not EXPIRED in year 20.
    """
    status = patent["status"]
    if status in INACTIVE:
        return status
    if get_block_date(timestamp_ms) >= compute_expiry_date(patent, term_years):
        return "EXPIRED"
    return status


def get_status(state: State, pid: str, timestamp_ms: int) -> str:
    """Effective status with the term configured in genesis."""
    patent = get_patent(state, pid)
    return get_effective_status(patent, timestamp_ms, get_term_years(state, patent["kind"]))


def get_superseded_by(state: State, pid: str) -> str | None:
    """Set when a correction under another pid replaced this record."""
    return state.get(f"superseded/{pid}")


def is_active(state: State, pid: str, timestamp_ms: int) -> bool:
    """Pending or granted, within its term, and not replaced by a correction."""
    return (get_status(state, pid, timestamp_ms) not in INACTIVE
            and get_superseded_by(state, pid) is None)


def is_in_force(state: State, pid: str, timestamp_ms: int) -> bool:
    """Granted and still within its term: an enforceable right exists today."""
    return (get_status(state, pid, timestamp_ms) == "GRANTED"
            and get_superseded_by(state, pid) is None)


def get_owners(state: State, pid: str) -> list[list[Any]]:
    return get_patent(state, pid)["owners"]


def is_owner(state: State, pid: str, org: str) -> bool:
    return any(owner == org for owner, _ in get_owners(state, pid))


def get_pledge(state: State, pid: str) -> dict[str, Any] | None:
    return state.get(f"pledge/{pid}")


def is_pledged(state: State, pid: str) -> bool:
    return f"pledge/{pid}" in state


def get_appraisal(state: State, pid: str) -> int | None:
    """The latest appraised value in BPC minor units, or None if never appraised."""
    record = state.get(f"appraisal/{pid}")
    return None if record is None else record["value"]


def require_owner(state: State, pid: str, org: str) -> dict[str, Any]:
    patent = get_patent(state, pid)
    if not any(owner == org for owner, _ in patent["owners"]):
        raise NotOwner(f"{org} does not own {pid}")
    return patent


def require_active(state: State, pid: str, timestamp_ms: int) -> None:
    if not is_active(state, pid, timestamp_ms):
        superseded = get_superseded_by(state, pid)
        why = f"superseded by {superseded}" if superseded else get_status(state, pid, timestamp_ms)
        raise PatentInactive(f"{pid} is {why}")


# -- shares -------------------------------------------------------------------------------


def require_right_holder(state: State, org: str, what: str) -> None:
    """A live organisation that may hold rights: a regulator reads everything and writes
    nothing, so it can neither own nor hold a patent in pledge."""
    record = state.get(f"org/{org}")  # one read: this runs for every owner of every deposit
    if record is None or record.get("removed", False):
        raise errors.UnknownAccount(f"{what}: no organisation {org!r}")
    if "regulator" in record["roles"]:
        raise errors.Unauthorized(f"{what}: {org} is a regulator and holds no rights")


def check_shares(state: State, shares: Any, what: str) -> list[list[Any]]:
    """[[org, bps], ...] with distinct live orgs and positive shares summing to 10 000.

    Returned sorted by org id, the one order every node stores.
    """
    if not isinstance(shares, list) or not shares:
        raise errors.BadArguments(f"{what} must be a non-empty list of [org, bps]")
    seen: set[str] = set()
    for entry in shares:
        if (not isinstance(entry, list) or len(entry) != 2 or not isinstance(entry[0], str)
                or not isinstance(entry[1], int) or isinstance(entry[1], bool)):
            raise errors.BadArguments(f"{what}: each entry is [org id, share in bps]")
        org, bps = entry
        if org in seen:
            raise errors.BadArguments(f"{what}: {org} listed twice")
        if bps <= 0:
            raise errors.BadArguments(f"{what}: {org}'s share must be positive")
        require_right_holder(state, org, what)
        seen.add(org)
    if sum(bps for _, bps in shares) != FULL_SHARE_BPS:
        raise errors.BadArguments(f"{what}: shares must sum to {FULL_SHARE_BPS} bps")
    return sorted([org, bps] for org, bps in shares)
