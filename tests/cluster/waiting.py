"""Waiting on a live cluster with a deadline: a condition polled, never a bare sleep.

Its own module name (not conftest) so the cluster tests can import it."""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from ipchain.sdk import client


async def until(predicate: Callable[[], Awaitable[Any]], what: str, deadline_s: float) -> Any:
    """`client.until`, failing the test (not erroring it) at the deadline."""
    try:
        return await client.until(predicate, what, deadline_s, poll_s=0.1)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None
