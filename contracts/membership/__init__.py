"""Membership: organisations, roles and keys, changed only by admin governance."""

from __future__ import annotations

from contracts.membership.governance import (
    OPS, QUERIES, get_admins, get_org, is_key_fresh, is_org_active,
)

__all__ = ["OPS", "QUERIES", "get_admins", "get_org", "is_key_fresh", "is_org_active"]
