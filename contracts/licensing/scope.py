"""What a licence covers, and the exclusivity rule over it.

A licence covers cells (patent, field of use, territory, day). The rule (contracts.md,
"Exclusivity") is checked here, in one place, by licence.offer, licence.accept,
licence.take_open, licence.open_offer and pool.join, so that no order of operations can
slip past it:

- a cell covered by an exclusive or sole licence is covered by no other licence. A sole
  licence (Chinese practice: 排他许可) lets the licensor keep using the patent but bars
  any further licensee, so towards third parties it excludes exactly as an exclusive
  licence (独占许可) does; both are "exclusive kinds" here;
- a patent in a pool is licensed to every BPR holder in every field and territory from
  the day it joined, so no exclusive kind may overlap that;
- a patent under a live open-licence declaration may not receive an exclusive or sole
  licence (Patent Law Art. 51, third paragraph), and a patent under one may not be
  declared open (Implementing Rules Art. 86).

Fields and territories are free strings agreed by the parties; "*" means all of them.
Dates are ISO "YYYY-MM-DD", both ends inclusive; they compare correctly as strings.
"""

from __future__ import annotations

import datetime
from typing import Any

from contracts import errors
from contracts.registry.core import get_block_date, parse_date
from contracts.state import State

ANY = "*"
KINDS = ("exclusive", "non_exclusive", "sole")
EXCLUSIVE_KINDS = frozenset({"exclusive", "sole"})
MAX_SCOPE_ITEMS = 64
"""Bounds the conflict check's work per licence (and the record's size)."""


class LicenceNotFound(errors.NotFound):
    """No licence (offered or granted) has this id."""


class ExclusiveConflict(errors.ContractError):
    """The licence would overlap an exclusive or sole licence, a pooled patent or an
    open-licence declaration on some (patent, field, territory, day)."""


def get_licence(state: State, lid: Any) -> dict[str, Any]:
    record = state.get(f"licence/{lid}") if isinstance(lid, str) and "/" not in lid else None
    if record is None:
        raise LicenceNotFound(f"no licence {lid!r}")
    return record


# -- dates ----------------------------------------------------------------------------


parse_iso_date = parse_date  # one strict ISO-date parser for the whole registry family


def get_block_iso(timestamp_ms: int) -> str:
    return get_block_date(timestamp_ms).isoformat()


def add_days_iso(day: str, days: int) -> str:
    return (datetime.date.fromisoformat(day) + datetime.timedelta(days=days)).isoformat()


# -- scope arguments ------------------------------------------------------------------


def check_scope_list(value: Any, what: str) -> list[str]:
    """A non-empty set of names, stored sorted; "*" (all) stands alone."""
    if value is None:
        return [ANY]
    if (not isinstance(value, list) or not value or len(value) > MAX_SCOPE_ITEMS
            or not all(isinstance(item, str) and 0 < len(item) <= 64 for item in value)):
        raise errors.BadArguments(f"{what} must be a list of 1..{MAX_SCOPE_ITEMS} names")
    if len(set(value)) != len(value):
        raise errors.BadArguments(f"{what} lists a name twice")
    if ANY in value and len(value) > 1:
        raise errors.BadArguments(f'{what}: "*" already means all; list it alone')
    return sorted(value)


# -- overlap --------------------------------------------------------------------------


def is_names_overlap(a: list[str], b: list[str]) -> bool:
    return ANY in a or ANY in b or not set(a).isdisjoint(b)


def is_days_overlap(a_start: str, a_end: str, b_start: str, b_end: str) -> bool:
    return a_start <= b_end and b_start <= a_end


def is_scope_overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Do two licences share at least one (patent, field, territory, day) cell?"""
    return (not set(a["patents"]).isdisjoint(b["patents"])
            and is_names_overlap(a["fields"], b["fields"])
            and is_names_overlap(a["territories"], b["territories"])
            and is_days_overlap(a["start_date"], a["end_date"], b["start_date"], b["end_date"]))


def is_conflict(a: dict[str, Any], b: dict[str, Any]) -> bool:
    exclusive = a["kind"] in EXCLUSIVE_KINDS or b["kind"] in EXCLUSIVE_KINDS
    return exclusive and is_scope_overlap(a, b)


# -- indexes other modules write ------------------------------------------------------


def licence_index_key(pid: str, lid: str) -> str:
    """Active licences per patent: the only licences that can conflict."""
    return f"licidx/patent/{pid}/{lid}"


def pooled_key(pid: str, pool_id: str) -> str:
    """Written by pool.join; value = the ISO day the patent joined."""
    return f"pooled/{pid}/{pool_id}"


def open_offer_key(pid: str) -> str:
    return f"open_offer/{pid}"


def get_active_licences_of(state: State, pid: str) -> list[dict[str, Any]]:
    licences = []
    for key in state.keys(f"licidx/patent/{pid}/"):
        record = state.get(f"licence/{key.rsplit('/', 1)[1]}")
        if record is not None and record["state"] == "active":
            licences.append(record)
    return licences


def get_live_open_offer(state: State, pid: str) -> dict[str, Any] | None:
    offer = state.get(open_offer_key(pid))
    return offer if offer is not None and offer["state"] == "open" else None


def find_conflict(state: State, candidate: dict[str, Any]) -> str | None:
    """Why `candidate` (a licence record, active or not) may not become active, or None."""
    exclusive = candidate["kind"] in EXCLUSIVE_KINDS
    for pid in candidate["patents"]:
        for other in get_active_licences_of(state, pid):
            if other["id"] != candidate["id"] and is_conflict(candidate, other):
                return f"overlaps {other['kind']} licence {other['id']} on {pid}"
        if not exclusive:
            continue
        for key, joined in state.items(f"pooled/{pid}/"):
            if candidate["end_date"] >= joined:
                return f"{pid} is in pool {key.rsplit('/', 1)[1]} from {joined}"
        offer = get_live_open_offer(state, pid)
        if offer is not None and candidate["end_date"] >= offer["date"]:
            return f"{pid} is under open-licence declaration {offer['id']}"
    return None


def require_no_conflict(state: State, candidate: dict[str, Any]) -> None:
    reason = find_conflict(state, candidate)
    if reason is not None:
        raise ExclusiveConflict(f"licence {candidate['id']}: {reason}")


def find_exclusive_from(state: State, pid: str, day: str) -> dict[str, Any] | None:
    """An active exclusive or sole licence on `pid` that runs on `day` or later: what a
    pool grant or an open licence, both open-ended from `day`, would overlap."""
    for licence in get_active_licences_of(state, pid):
        if licence["kind"] in EXCLUSIVE_KINDS and licence["end_date"] >= day:
            return licence
    return None
