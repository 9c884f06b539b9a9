"""The op registry, built in one place: every family's ops and state queries by name.

This is the only module that imports every contract family; the runtime asks it for
an op by name, and the families import only `contracts.call`, so nothing here closes
an import cycle.
"""

from __future__ import annotations

from typing import Any, Callable

from contracts import exchange, licensing, membership, pool, registry, securitization, token
from contracts.call import Op

FAMILIES = (token, membership, registry, licensing, pool, securitization, exchange)
"""In catalogue order: what `GET /v1/ops` and docs/ops.md list first."""


def _merge(kind: str, tables: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for table in tables:
        for name, entry in table.items():
            if name in merged:
                raise RuntimeError(f"{kind} {name} registered twice")
            merged[name] = entry
    return merged


OPS: dict[str, Op] = _merge("op", [family.OPS for family in FAMILIES])
QUERIES: dict[str, Callable[..., Any]] = _merge(
    "query", [getattr(family, "QUERIES", {}) for family in FAMILIES])


def get_ops() -> dict[str, Op]:
    return OPS
