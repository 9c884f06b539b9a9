"""Argument schemas of the registry ops (contracts/schema.py)."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from contracts.schema import Args, PatentId


class PatentRef(Args, frozen=True):
    """Names one patent."""

    patent: Annotated[PatentId, Meta(description="the patent, OFFICE:APPLICATION_NO")]
