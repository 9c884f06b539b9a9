"""GET /v1/blocks/{height}?wait_ms=N: a follower's long poll for the next block.

A follower (the bench, an indexer, a wallet waiting for its block) used to ask for the
next height every 10 ms: the answer came up to one polling interval after the block
was stored — on average half of it, added to every latency such a follower measures —
and 100 requests a second cost the node about 3 % of its CPU for 404s. With `wait_ms`
the node answers when the block is stored (or with the usual 404 once `wait_ms` has
passed), so the follower sees it at once and the node handles one request per block.

The wait is bounded (`MAX_BLOCK_WAIT_MS`) and costs one future per waiting request;
a request for a height already stored answers at once, as without `wait_ms`.

The answer lists the block's transaction ids. A follower asks for the block just
stored, whose receipts (one per transaction, in order, each naming its id) the
listener was handed: the last few blocks' receipts are kept by reference, so the
answer need not hash every transaction of the block again (about half of building it).
"""

from __future__ import annotations

import asyncio
from typing import Any

from node.chain import Header

MAX_BLOCK_WAIT_MS = 5_000
"""The longest a block request may wait: well below clients' and proxies' request
timeouts (a follower asks again; the bench waits 500 ms at a time)."""
RECENT_BLOCKS = 8
"""Blocks whose receipts are kept for their answers: a follower a few blocks behind."""


class BlockWaits:
    """Requests waiting for a height, woken by the runtime's block listener."""

    def __init__(self) -> None:
        self._waiting: dict[int, list[asyncio.Future[None]]] = {}
        self._recent: dict[int, list[Any]] = {}
        """Height -> the receipts its listener call carried, for the last RECENT_BLOCKS."""

    @property
    def waiting(self) -> int:
        return sum(len(futures) for futures in self._waiting.values())

    def on_block(self, header: Header, receipts: Any = None) -> None:
        """The runtime stored the block at `header.height`: wake everyone waiting for it
        or an earlier height (usually one key; a catch-up stores many blocks at once)."""
        if receipts is not None:
            recent = self._recent
            recent[header.height] = receipts
            if len(recent) > RECENT_BLOCKS:
                del recent[next(iter(recent))]  # the oldest: dicts keep insertion order
        if not self._waiting:
            return
        for height in [h for h in self._waiting if h <= header.height]:
            for future in self._waiting.pop(height):
                if not future.done():
                    future.set_result(None)

    def tx_ids(self, height: int) -> list[str] | None:
        """The block's transaction ids (hex, in block order) if it is a recent one."""
        receipts = self._recent.get(height)
        return None if receipts is None else [receipt.tx_id for receipt in receipts]

    async def wait(self, height: int, timeout_s: float) -> None:
        """Return once a block at `height` or above was stored, or after `timeout_s`;
        the caller reads its store either way (a restore from a snapshot moves the
        height without a block listener call)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(height, []).append(future)
        try:
            await asyncio.wait_for(future, timeout_s)
        except asyncio.TimeoutError:
            pass
        finally:
            waiting = self._waiting.get(height)
            if waiting and future in waiting:
                waiting.remove(future)
                if not waiting:
                    del self._waiting[height]

    def release_all(self) -> None:
        """Answer every waiting request now (graceful stop): each reads its store."""
        for futures in self._waiting.values():
            for future in futures:
                if not future.done():
                    future.set_result(None)
        self._waiting.clear()


def install(runtime: Any) -> BlockWaits:
    waits = BlockWaits()
    runtime.listeners.append(waits.on_block)
    return waits
