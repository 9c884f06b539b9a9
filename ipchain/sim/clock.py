"""Simulated time: one heap of timed callbacks, and each host's skewed view of the clock.

Time inside the simulator is an integer in microseconds so that links with sub-ms
latency still order messages; replicas see whole milliseconds (what `time.time()`
would give a real node), offset per host to model unsynchronised clocks. Ties are
broken by insertion order, so a run is a pure function of its seed.
"""

from __future__ import annotations

import heapq
from typing import Any, Callable, Iterable

US_PER_MS = 1000


class EventQueue:
    """A discrete-event scheduler: `at(time_us, fn, *args)`, then `run_until(...)`."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, Callable[..., Any], tuple[Any, ...]]] = []
        self._order = 0
        self.now_us = 0
        self.events_run = 0

    def at(self, time_us: int, fn: Callable[..., Any], *args: Any) -> None:
        """Schedule `fn(*args)`; a time in the past runs at the current instant."""
        self._order += 1
        heapq.heappush(self._heap, (max(time_us, self.now_us), self._order, fn, args))

    def after(self, delay_us: int, fn: Callable[..., Any], *args: Any) -> None:
        """`at(now_us + delay_us, ...)`, pushed here: every packet and timer comes this way."""
        self._order += 1
        heapq.heappush(self._heap, (self.now_us + max(delay_us, 0), self._order, fn, args))

    def after_each(self, fn: Callable[..., Any],
                   scheduled: Iterable[tuple[int, tuple[Any, ...]]]) -> None:
        """`after(delay_us, fn, *args)` for each (delay_us, args), in order: one packet
        to several peers, without a call per copy."""
        heap, now_us, order = self._heap, self.now_us, self._order
        for delay_us, args in scheduled:
            order += 1
            heapq.heappush(heap, (now_us + delay_us if delay_us > 0 else now_us, order, fn, args))
        self._order = order

    def __len__(self) -> int:
        return len(self._heap)

    def run_until(self, end_us: int, is_done: Callable[[], bool], max_events: int) -> bool:
        """Run callbacks due by `end_us` until `is_done()`; False if the budget ran out.

        `is_done` is polled only every 64 events: it may be costly and a few extra
        events after the goal change nothing a checker looks at.
        """
        heap = self._heap
        pop = heapq.heappop
        while heap and heap[0][0] <= end_us:
            if self.events_run % 64 == 0:
                if is_done():
                    return True
                if self.events_run >= max_events:
                    return False
            time_us, _, fn, args = pop(heap)
            self.now_us = time_us
            self.events_run += 1
            fn(*args)
        self.now_us = max(self.now_us, end_us)
        return True


class SimClock:
    """Each host's wall clock: simulated time plus a fixed per-host offset, in ms."""

    def __init__(self, queue: EventQueue, epoch_ms: int, offsets_ms: list[int]) -> None:
        self.queue = queue
        self.epoch_ms = epoch_ms
        """The wall-clock time (ms since the Unix epoch) at simulated time zero."""
        self.offsets_ms = offsets_ms

    def now_ms(self, host: int) -> int:
        return self.epoch_ms + self.queue.now_us // US_PER_MS + self.offsets_ms[host]

    def sim_ms(self) -> int:
        """Simulated milliseconds since the run started (for plans and reports)."""
        return self.queue.now_us // US_PER_MS
