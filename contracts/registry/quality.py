"""Simple families, forward citations and the five-dimension quality score.

Everything here is derived from deposits and citations already on chain: nobody enters
a family size or a score, so nobody can inflate one (the 2021 blockchain patent quality
report's five dimensions, 20 points each).

A simple family is the set of deposits with exactly the same priorities. A first filing
claims no priority, so it is keyed by itself as if it were its own priority (as in the
EPO's DOCDB families); that puts it in one family with the later filings that claim it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from contracts.codec import encode
from contracts.genesis import get_contract_config
from contracts.registry.core import get_patent, get_status, get_superseded_by
from contracts.state import State

POINTS_PER_DIMENSION = 20
"""Five dimensions of at most 20 points: the score is always within 0-100."""


# -- families -------------------------------------------------------------------------


def compute_family_priorities(patent: dict[str, Any]) -> list[dict[str, str]]:
    """The priorities that define the family, in one canonical order."""
    claimed = patent["priorities"] or [{"number": patent["application_no"],
                                        "date": patent["filing_date"],
                                        "office": patent["office"]}]
    return sorted(claimed, key=lambda p: (p["office"], p["number"], p["date"]))


def compute_family_key(patent: dict[str, Any]) -> str:
    return hashlib.sha256(encode(compute_family_priorities(patent))).hexdigest()


def add_to_family(state: State, patent: dict[str, Any]) -> None:
    state.put(f"family/{compute_family_key(patent)}/{patent['id']}", patent["office"])


def remove_from_family(state: State, patent: dict[str, Any]) -> None:
    state.delete(f"family/{compute_family_key(patent)}/{patent['id']}")


def get_family(state: State, pid: str) -> dict[str, Any]:
    """Members (sorted ids), their distinct offices, and the family key."""
    key = compute_family_key(get_patent(state, pid))
    prefix = f"family/{key}/"
    members = {k[len(prefix):]: office for k, office in state.items(prefix)}
    return {"key": key, "members": sorted(members), "size": len(members),
            "offices": sorted(set(members.values()))}


# -- citations ------------------------------------------------------------------------


def get_citing(state: State, pid: str) -> list[str]:
    """Patents that cite `pid` (its forward citations), sorted."""
    prefix = f"citation/{pid}/"
    return [key[len(prefix):] for key in state.keys(prefix)]


# -- the score ----------------------------------------------------------------------------


def compute_band_points(value: int, bands: list[list[int]]) -> int:
    """Points of the last band whose lower bound is not above `value`.

    Clamped to 0-20 so that no genesis configuration can push a score out of 0-100.
    """
    points = 0
    for lower, band_points in bands:
        if value >= lower:
            points = band_points
    return max(0, min(POINTS_PER_DIMENSION, points))


def normalise_ipc(symbol: str) -> str:
    """'h04l 9/32' -> 'H04L9/32': offices print IPC symbols with and without spaces."""
    return "".join(symbol.split()).upper()


def is_base_technology(ipc: list[str], base: list[str]) -> bool:
    """True if any class falls under a base group: 'H04L9' covers 'H04L9/32', not 'H04L91'."""
    groups = [normalise_ipc(b) for b in base]
    for symbol in (normalise_ipc(s) for s in ipc):
        if any(symbol == g or symbol.startswith(g + "/") for g in groups):
            return True
    return False


def compute_authorization_points(status: str, superseded: bool) -> int:
    if superseded:
        return 0
    return {"GRANTED": POINTS_PER_DIMENSION, "FILED": 10, "PUBLISHED": 10}.get(status, 0)


def compute_quality(state: State, pid: str, timestamp_ms: int) -> dict[str, int]:
    """The score and its five parts, as of `timestamp_ms` (expiry is derived)."""
    patent = get_patent(state, pid)
    config = get_contract_config(state)
    family = get_family(state, pid)
    home = config["home_office"]
    parts = {
        "authorization": compute_authorization_points(
            get_status(state, pid, timestamp_ms), get_superseded_by(state, pid) is not None),
        "citations": compute_band_points(len(get_citing(state, pid)), config["citation_bands"]),
        "technology": POINTS_PER_DIMENSION if is_base_technology(
            patent["ipc"], config["base_ipc"]) else 0,
        "family": compute_band_points(family["size"], config["family_bands"]),
        "international": compute_band_points(
            len([o for o in family["offices"] if o != home]), config["international_bands"]),
    }
    return {"score": sum(parts.values()), **parts}
