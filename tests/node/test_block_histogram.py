"""BlockHistogram (node/histograms.py) exposes what prometheus_client's Histogram does."""

from __future__ import annotations

import random
import re

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.exposition import generate_latest

from node.histograms import BlockHistogram
from node.metrics import LATENCY_BUCKETS_S


def _series(text: str) -> dict[str, float]:
    """name{labels} -> value, the _created timestamps left out (they differ by design)."""
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "_created" not in line:
            key, _, value = line.rpartition(" ")
            found[key] = float(value)
    return found


def test_same_exposition_as_the_library_histogram() -> None:
    rng = random.Random(7)
    values = [rng.choice(LATENCY_BUCKETS_S) * rng.choice((0.5, 1.0, 1.0, 2.0))
              for _ in range(2_000)] + [0.0, 1e9, *LATENCY_BUCKETS_S]  # bounds land in their bucket
    theirs, ours = CollectorRegistry(auto_describe=False), CollectorRegistry(auto_describe=False)
    reference = Histogram("x_seconds", "Help.", buckets=LATENCY_BUCKETS_S, registry=theirs)
    bulk = BlockHistogram("x_seconds", "Help.", LATENCY_BUCKETS_S, ours)
    for value in values:
        reference.observe(value)
    for start in range(0, len(values), 300):  # a block's observations at a time
        bulk.observe_all(values[start:start + 300])
    bulk.observe(0.01)
    reference.observe(0.01)

    expected, got = generate_latest(theirs).decode(), generate_latest(ours).decode()
    want, have = _series(expected), _series(got)
    assert want.keys() == have.keys()
    for key, value in want.items():
        if not key.endswith("_sum"):  # the sum may differ in its last bits (order of adding)
            assert have[key] == value, key
    assert abs(have["x_seconds_sum"] - want["x_seconds_sum"]) < 1e-6 * want["x_seconds_sum"]
    assert have["x_seconds_count"] == len(values) + 1
    # the same lines in the same order, the _created gauge included
    strip = lambda text: re.sub(r"(_created|_sum) \S+", r"\1 V", text)  # noqa: E731
    assert strip(got) == strip(expected)
