"""Securitization: deals over licence receivables, tranches, the waterfall, servicing.

`core` holds deal records and their errors, `deals` origination and transfer,
`servicing` distribution, default and recovery, `waterfall` the pure arithmetic.
"""

from __future__ import annotations

from contracts.securitization.deals import OPS, QUERIES

__all__ = ["OPS", "QUERIES"]
