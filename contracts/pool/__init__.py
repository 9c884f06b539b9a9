"""The patent pool: attested patents, BPR access tokens, treasury distributions."""

from __future__ import annotations

from contracts.pool.contract import OPS, QUERIES, get_pool, is_pool_licensed

__all__ = ["OPS", "QUERIES", "get_pool", "is_pool_licensed"]
