"""Exact integer splits: every part is an integer and the parts sum to the whole.

Largest remainder (Hamilton): each part gets floor(total * weight / sum), then the
units left over go one each to the largest fractional remainders; ties go to the
larger weight, then the smaller id, so the result never depends on dict order.
"""

from __future__ import annotations

from contracts import errors


def split_by_weights(total: int, weights: dict[str, int]) -> dict[str, int]:
    if total < 0:
        raise errors.BadArguments("cannot split a negative amount")
    if any(w < 0 for w in weights.values()):
        raise errors.BadArguments("weights must not be negative")
    weight_sum = sum(weights.values())
    if weight_sum == 0:
        raise errors.BadArguments("cannot split by weights that sum to zero")
    parts = {k: total * w // weight_sum for k, w in weights.items()}
    left = total - sum(parts.values())
    by_remainder = sorted(weights, key=lambda k: (-(total * weights[k] % weight_sum),
                                                  -weights[k], k))
    for key in by_remainder[:left]:
        parts[key] += 1
    return {k: parts[k] for k in sorted(parts)}
