"""A Prometheus histogram that takes a whole block's observations in one call.

The commit latency is one observation per executed transaction. prometheus_client's
`Histogram.observe` takes a lock and walks the bucket bounds in Python for each one:
at a few hundred transactions per block that was most of `NodeMetrics.on_block`, the
largest per-transaction cost a node paid after a block was stored (issue 10). Here a
block's observations are binned with `bisect` (C) and added up once, and the series
are built at scrape time with the library's own `HistogramMetricFamily`, so what
/metrics shows is what `Histogram` showed: the same names, buckets, `_count`, `_sum`
and `_created` (tests/node/test_block_histogram.py renders both and compares).

Only the event loop's thread observes (the block listener), so no lock is needed; a
scrape on the same thread sees either all of a block or none of it.
"""

from __future__ import annotations

import bisect
import time
from typing import Iterable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString


class BlockHistogram:
    """A label-less histogram fed many observations at once (`observe_all`)."""

    def __init__(self, name: str, documentation: str, buckets: Iterable[float],
                 registry: CollectorRegistry) -> None:
        self.name, self.documentation = name, documentation
        self.bounds = tuple(sorted(float(b) for b in buckets))
        self.counts = [0] * (len(self.bounds) + 1)
        """Per bucket, not cumulative; the last one is +Inf."""
        self.sum = 0.0
        self.created = time.time()
        registry.register(self)

    def observe_all(self, values: Iterable[float]) -> None:
        """Each value falls in the first bucket whose bound is >= it, as in
        `Histogram.observe` (`bisect_left` finds that bound)."""
        counts, bounds, where = self.counts, self.bounds, bisect.bisect_left
        total = 0.0
        for value in values:
            counts[where(bounds, value)] += 1
            total += value
        self.sum += total

    def observe(self, value: float) -> None:
        self.observe_all((value,))

    def collect(self) -> Iterator[Metric]:
        cumulative, buckets = 0, []
        for bound, count in zip((*self.bounds, float("inf")), self.counts):
            cumulative += count
            buckets.append((floatToGoString(bound), cumulative))
        family = HistogramMetricFamily(self.name, self.documentation, buckets=buckets,
                                       sum_value=self.sum)
        family.add_sample(f"{self.name}_created", {}, self.created)
        yield family
