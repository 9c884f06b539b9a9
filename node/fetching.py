"""State transfer on the node's side: fetched blocks reach the replica without stalling it.

The replica asks for a range (`FetchBlocks`); a peer answers with the blocks, their
commit certificates, and the votes that certify the range's checkpoint and results.
Checking their signatures costs milliseconds per block on a loaded machine, so it is
done a batch at a time in turns with the API (`node.offload.Turns`,
`PreverifiedKeyring`), and the replica's own checks of the same messages are then
lookups; decoding an answer's blocks and votes takes turns too. A peer's answer is
bounded (node/serving.py): when it stops short, the rest is asked for at once rather
than after the replica's fetch timeout.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, Callable

from consensus import events as ev
from consensus import messages as wire
from node.chain import read_certificate
from node.logs import Event

if TYPE_CHECKING:
    from node.runtime import Runtime

log = logging.getLogger("ipchain.runtime")
FETCH_BATCH_BLOCKS = 16
"""Fetched blocks are decoded and their signatures checked this many at a time."""
VOTES_PER_TURN = 32
"""Fetched votes decoded in one turn (node/offload.py `Turns`): about 1 ms."""
QUEUED_FRESH_S = 2.0
"""A fetch asks only for blocks after those a fetch handed to the replica this recently:
the replica asks again every fetch timeout while it still works through the last
answer, and refetching what waits in its queue cost the serving peers and us twice.
Past this, a range is fetched whole again (a queued block may have been a bad copy)."""


class FetchedBatches:
    """One peer's answer to a fetch, handed over FETCH_BATCH_BLOCKS blocks at a time."""

    def __init__(self, hand_over: Callable[[list[tuple[bytes, bytes]]], Any]) -> None:
        self.hand_over = hand_over
        self.pending: list[tuple[bytes, bytes]] = []
        self.count = 0
        self.top = 0
        """The highest sequence number in the answer."""

    async def add(self, preprepare: bytes, certificate: bytes) -> None:
        self.pending.append((preprepare, certificate))
        if len(self.pending) >= FETCH_BATCH_BLOCKS:
            await self.flush()

    async def flush(self) -> None:
        if self.pending:
            batch, self.pending = self.pending, []
            self.count += len(batch)
            self.top = max(self.top, await self.hand_over(batch))


class BlockFetcher:
    """The runtime's `Bus.fetch`: one task per range, blocks queued as `BlockFetched`."""

    def __init__(self, runtime: "Runtime") -> None:
        self.runtime = runtime
        self.queued_through, self.queued_at = 0, 0.0
        """The highest fetched block handed to the replica, and when (see QUEUED_FRESH_S)."""

    def fetch(self, first: int, last: int) -> None:
        if time.monotonic() - self.queued_at < QUEUED_FRESH_S and first <= self.queued_through:
            first = self.queued_through + 1
            if first > last:
                self.runtime.counters["fetch_skipped_queued"] += 1
                return
        self.runtime.spawn(self._fetch(first, last))

    async def _fetch(self, first: int, last: int) -> None:
        runtime = self.runtime
        started_ms, received, asked = time.time_ns() // 1_000_000, 0, first
        while asked <= last:
            answer = FetchedBatches(self._hand_over)
            proof = await runtime.transport.fetch_blocks(asked, last, answer.add)
            await answer.flush()
            received += answer.count
            await self._hand_over_votes(proof)
            if answer.top < asked:
                break  # nobody served anything, or only what we did not ask for
            asked = answer.top + 1
        # An empty answer is normal (a restarted node probes for blocks nobody has yet):
        # at info it was a warning in every fresh cluster's log.
        log.log(logging.INFO if received else logging.DEBUG,
                Event("fetched", first=first, last=last, blocks=received,
                      height=runtime.executor.height,
                      ms=time.time_ns() // 1_000_000 - started_ms))

    async def _hand_over_votes(self, raws: list[bytes]) -> None:
        """The range's stable checkpoint votes and execution votes (three per block:
        768 for a full answer), decoded VOTES_PER_TURN at a time."""
        for start in range(0, len(raws), VOTES_PER_TURN):
            async with self.runtime.turns.turn():
                self.runtime.on_peer_messages(raws[start:start + VOTES_PER_TURN])

    async def _hand_over(self, raws: list[tuple[bytes, bytes]]) -> int:
        """Decode a batch of fetched blocks, check their signatures ahead, and queue them
        for the replica. The highest sequence number in the batch (0 if none was readable)."""
        runtime = self.runtime
        async with runtime.turns.turn():
            events, malformed, top = self._decode(raws)
        if malformed:
            runtime.counters["fetched_block_malformed"] += malformed
        await runtime.keyring.check_ahead(
            [msg for event in events for msg in (event.preprepare, *event.certificate)])
        for event in events:
            runtime.events.put_nowait(event)
        if events:
            self.queued_through = max(self.queued_through, top)
            self.queued_at = time.monotonic()
        return top

    def _decode(self, raws: list[tuple[bytes, bytes]]) -> tuple[list[ev.BlockFetched], int, int]:
        """Blocks the replica has already delivered are dropped here (it would ignore them)."""
        events, malformed, top = [], 0, 0
        for preprepare, certificate in raws:
            try:
                event = ev.BlockFetched(wire.decode(preprepare), read_certificate(certificate))
            except (wire.WireError, ValueError):
                malformed += 1
                continue
            seq = getattr(event.preprepare.body, "seq", 0)
            top = max(top, seq)
            if seq > self.runtime.replica.last_delivered:
                events.append(event)
        return events, malformed, top
