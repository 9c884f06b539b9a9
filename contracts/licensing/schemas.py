"""Argument schemas of the licensing and royalty ops (contracts/schema.py)."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from contracts.schema import Args, RecordId

LicenceId = Annotated[RecordId, Meta(description="licence id (first 16 hex of the offer's tx id)")]


class LicenceRef(Args, frozen=True):
    """Names one licence: accept or withdraw an offer."""

    licence: LicenceId
