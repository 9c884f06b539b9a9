"""Argument schemas of the pool ops (contracts/schema.py)."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from contracts.schema import Amount, Args, Bps, PatentId, Period, RecordId

PoolId = Annotated[RecordId, Meta(description="pool id (first 16 hex of the creating tx id)")]
RatioTerm = Annotated[int, Meta(ge=1, le=2**32)]
"""Keeps amount * num below 2**94 and the ratio readable; real ratios are small."""


class CreatePoolArgs(Args, frozen=True):
    """Create a patent pool run by the sender (an admin organisation)."""

    name: Annotated[str, Meta(min_length=1, max_length=128, description="pool name")]
    admin_fee_bps: Annotated[Bps, Meta(description="the admin's cut of each distribution")]
    bpr_ratio: Annotated[tuple[RatioTerm, RatioTerm], Meta(
        description="[num, den]: BPR minted per BPC converted is num/den (terms 1 .. 2^32)")]
    bpr_term_days: Annotated[Annotated[int, Meta(ge=1, le=36_500)] | None, Meta(
        description="days a conversion's BPR stays live, 1 .. 36 500 (default: forever)")
    ] = None


class AttestArgs(Args, frozen=True):
    """An evaluator attests that a patent is essential to a pool's standard."""

    pool: PoolId
    patent: Annotated[PatentId, Meta(description="the patent attested (not one you own)")]
    basis: Annotated[str, Meta(max_length=256, description="the evaluation's basis")] = ""


class JoinArgs(Args, frozen=True):
    """An owner puts an attested patent into a pool."""

    pool: PoolId
    patent: Annotated[PatentId, Meta(description="an attested, active patent you own")]


class ConvertArgs(Args, frozen=True):
    """Convert BPC into the pool's BPR access tokens."""

    pool: PoolId
    bpc_amount: Annotated[Amount, Meta(description="BPC minor units paid in, 1 .. 2^62")]


class DistributeArgs(Args, frozen=True):
    """The pool admin distributes the treasury for an ended quarter."""

    pool: PoolId
    period: Annotated[Period, Meta(description="the ended quarter, YYYY-Qn")]
