"""Licensing: bilateral and open licence offers (`offers`), their scope and exclusivity
(`scope`), and running royalties (`royalty`)."""

from __future__ import annotations

from contracts.licensing.offers import OPS, QUERIES, get_licence, is_licence_active

__all__ = ["OPS", "QUERIES", "get_licence", "is_licence_active"]
