"""The token ledger: BPC and BPR balances, and the one function that moves value."""

from __future__ import annotations

from contracts.token.ledger import (
    ASSETS, OPS, balance_of, burn, mint, query_balance, query_supply, transfer_units,
)

__all__ = ["ASSETS", "OPS", "balance_of", "burn", "mint", "query_balance", "query_supply",
           "transfer_units"]
