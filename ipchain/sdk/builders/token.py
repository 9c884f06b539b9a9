"""Typed builders for the token ops (generated; see `ipchain.sdk.builders`)."""

from __future__ import annotations

from ipchain.sdk.opcall import UNSET, OpCall, Unset, build

__all__ = [
    "token_transfer",
]


def token_transfer(*,
    to: str,
    amount: int,
) -> OpCall:
    """Move BPC to another organisation.

    to: receiving organisation (not the sender's own)
    amount: BPC minor units to move, 1 .. 2^62
    """
    return build(
        'token.transfer',
        to=to,
        amount=amount,
    )
