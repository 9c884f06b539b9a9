"""Read-only queries behind `GET /v1/state/{kind}/{...}`.

Each contract module exposes `QUERIES = {kind: fn(state, now_ms, *parts)}`; `now_ms`
is the timestamp of the last committed block, so derived facts (expiry, licence in
force) read the same on every node at the same height.
"""

from __future__ import annotations

from typing import Any, Callable

from contracts import errors
from contracts.state import State
from contracts.token import query_balance, query_supply

Query = Callable[..., Any]


def _registry() -> dict[str, Query]:
    from contracts import licensing, membership, pool, registry, securitization

    queries: dict[str, Query] = {
        "balances": lambda state, now_ms, account: query_balance(state, account),
        "supply": lambda state, now_ms: query_supply(state),
    }
    for module in (membership, registry, licensing, pool, securitization):
        for kind, fn in getattr(module, "QUERIES", {}).items():
            if kind in queries:
                raise RuntimeError(f"query {kind} registered twice")
            queries[kind] = fn
    return queries


def run_query(state: State, now_ms: int, kind: str, parts: list[str]) -> Any:
    queries = _registry()
    fn = queries.get(kind)
    if fn is None:
        raise errors.NotFound(f"unknown state query {kind!r}; known: {sorted(queries)}")
    try:
        return fn(state, now_ms, *parts)
    except TypeError as exc:
        raise errors.BadArguments(f"query {kind}: wrong number of path parts") from exc
