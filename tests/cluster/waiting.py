"""Waiting on a live cluster with a deadline: a condition polled, never a bare sleep.

Its own module name (not conftest) so the cluster tests can import it."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable

from ipchain.sdk import client


async def until(predicate: Callable[[], Awaitable[Any]], what: str, deadline_s: float) -> Any:
    """The predicate's first truthy answer; a node answering with an API error counts as
    not yet. Fails the test with `what` once `deadline_s` has passed."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            found = await predicate()
        except client.ApiError:
            found = None
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)
