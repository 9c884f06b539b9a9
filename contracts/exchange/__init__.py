"""The IP exchange: patent sales with clearing, pledge-backed loans, credit ratings.

The IPOS model of a one-stop IP platform trades and finances patents through the
alliance: sales settle delivery against payment in one transaction (sales.py), loans
move the principal and register the pledge in one transaction (loans.py), and a credit
rating is computed from what the chain records about how each organisation paid
(ratings.py). Rules: specs/contracts.md, "The IP exchange".
"""

from __future__ import annotations

from contracts.exchange import loans, ratings, sales

OPS = {**sales.OPS, **loans.OPS}
QUERIES = {**sales.QUERIES, **loans.QUERIES, **ratings.QUERIES}

__all__ = ["OPS", "QUERIES", "loans", "ratings", "sales"]
