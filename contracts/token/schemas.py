"""Argument schemas of the token ops (contracts/schema.py)."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from contracts.schema import Amount, Args, OrgId


class TransferArgs(Args, frozen=True):
    """Move BPC from the sender's organisation to another organisation."""

    to: Annotated[OrgId, Meta(description="receiving organisation (not the sender's own)")]
    amount: Annotated[Amount, Meta(description="BPC minor units to move, 1 .. 2^62")]
