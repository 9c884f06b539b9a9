"""Read-only queries behind `GET /v1/state/{kind}/{...}`.

Each contract module exposes `QUERIES = {kind: fn(state, now_ms, *parts)}`; `now_ms`
is the timestamp of the last committed block, so derived facts (expiry, licence in
force) read the same on every node at the same height.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable

from contracts import catalogue, errors
from contracts.state import State
from contracts.token import query_balance, query_supply

Query = Callable[..., Any]
QUERIES: dict[str, Query] = {
    "balances": lambda state, now_ms, account: query_balance(state, account),
    "supply": lambda state, now_ms: query_supply(state),
    **catalogue.QUERIES,
}
"""Every state kind: the token's two and each family's, merged once (catalogue.py)."""


def get_queries() -> dict[str, Query]:
    return QUERIES


def run_query(state: State, now_ms: int, kind: str, parts: list[str]) -> Any:
    queries = get_queries()
    fn = queries.get(kind)
    if fn is None:
        raise errors.NotFound(f"unknown state query {kind!r}; known: {sorted(queries)}")
    # Check the path's arity up front rather than catching TypeError around the call,
    # which would also report a query's own bug as the client's bad path.
    try:
        inspect.signature(fn).bind(state, now_ms, *parts)
    except TypeError as exc:
        raise errors.BadArguments(f"query {kind}: wrong number of path parts") from exc
    return fn(state, now_ms, *parts)
