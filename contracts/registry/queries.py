"""Registry reads behind `GET /v1/state/<kind>/<patent id>`.

Derived facts (effective status, family, quality score) are computed at the timestamp of
the last committed block, so every node answers the same at the same height.
"""

from __future__ import annotations

from typing import Any

from contracts.registry.core import (
    compute_expiry_date, get_patent, get_pledge, get_status, get_superseded_by, get_term_years,
)
from contracts.registry.quality import compute_quality, get_citing, get_family
from contracts.registry.rights import CONSENT_KINDS, get_consent
from contracts.state import State


def get_versions(state: State, pid: str) -> list[dict[str, Any]]:
    """Earlier versions replaced by same-id corrections, oldest first."""
    return [record for _, record in state.items(f"patent_version/{pid}/")]


def query_patents(state: State, now_ms: int, pid: str | None = None) -> Any:
    """One patent with everything derived about it, or a summary of all of them."""
    if pid is None:
        return [{"id": record["id"], "title": record["title"], "owners": record["owners"],
                 "status": get_status(state, record["id"], now_ms)}
                for _, record in state.items("patent/")]
    patent = get_patent(state, pid)
    return {
        **patent,
        "effective_status": get_status(state, pid, now_ms),
        "expiry_date": compute_expiry_date(
            patent, get_term_years(state, patent["kind"])).isoformat(),
        "superseded_by": get_superseded_by(state, pid),
        "versions": get_versions(state, pid),
        "cited_by": get_citing(state, pid),
        "family": get_family(state, pid),
        "quality": compute_quality(state, pid, now_ms),
        "pledge": get_pledge(state, pid),
        "appraisal": state.get(f"appraisal/{pid}"),
        "pending": {kind: get_consent(state, kind, pid) for kind in CONSENT_KINDS},
    }


def query_families(state: State, now_ms: int, pid: str) -> dict[str, Any]:
    return get_family(state, pid)


def query_quality(state: State, now_ms: int, pid: str) -> dict[str, int]:
    return compute_quality(state, pid, now_ms)


def query_appraisals(state: State, now_ms: int, pid: str) -> dict[str, Any] | None:
    get_patent(state, pid)
    return state.get(f"appraisal/{pid}")


def query_pledges(state: State, now_ms: int, pid: str | None = None) -> Any:
    if pid is None:
        return {key[len("pledge/"):]: pledge for key, pledge in state.items("pledge/")}
    get_patent(state, pid)
    return get_pledge(state, pid)


QUERIES = {
    "patents": query_patents,
    "families": query_families,
    "quality": query_quality,
    "appraisals": query_appraisals,
    "pledges": query_pledges,
}
