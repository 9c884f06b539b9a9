"""Typed builders for the pool ops (generated; see `ipchain.sdk.builders`)."""

from __future__ import annotations

from ipchain.sdk.opcall import UNSET, OpCall, Unset, build

__all__ = [
    "pool_attest",
    "pool_convert",
    "pool_create",
    "pool_distribute",
    "pool_join",
]


def pool_attest(*,
    pool: str,
    patent: str,
    basis: str | Unset = UNSET,
) -> OpCall:
    """Attest that a patent is essential to a pool (not one you own).

    pool: pool id (first 16 hex of the creating tx id)
    patent: the patent attested (not one you own)
    basis: the evaluation's basis
    """
    return build(
        'pool.attest',
        pool=pool,
        patent=patent,
        basis=basis,
    )


def pool_convert(*,
    pool: str,
    bpc_amount: int,
) -> OpCall:
    """Convert BPC into the pool's BPR access tokens.

    pool: pool id (first 16 hex of the creating tx id)
    bpc_amount: BPC minor units paid in, 1 .. 2^62
    """
    return build(
        'pool.convert',
        pool=pool,
        bpc_amount=bpc_amount,
    )


def pool_create(*,
    name: str,
    admin_fee_bps: int,
    bpr_ratio: tuple[int, int],
    bpr_term_days: int | None | Unset = UNSET,
) -> OpCall:
    """Create a patent pool that you run.

    name: pool name
    admin_fee_bps: the admin's cut of each distribution
    bpr_ratio: [num, den]: BPR minted per BPC converted is num/den (terms 1 .. 2^32)
    bpr_term_days: days a conversion's BPR stays live, 1 .. 36 500 (default: forever)
    """
    return build(
        'pool.create',
        name=name,
        admin_fee_bps=admin_fee_bps,
        bpr_ratio=bpr_ratio,
        bpr_term_days=bpr_term_days,
    )


def pool_distribute(*,
    pool: str,
    period: str,
) -> OpCall:
    """Distribute the treasury for an ended quarter to contributors.

    pool: pool id (first 16 hex of the creating tx id)
    period: the ended quarter, YYYY-Qn
    """
    return build(
        'pool.distribute',
        pool=pool,
        period=period,
    )


def pool_join(*,
    pool: str,
    patent: str,
) -> OpCall:
    """Put an attested patent you own into a pool.

    pool: pool id (first 16 hex of the creating tx id)
    patent: an attested, active patent you own
    """
    return build(
        'pool.join',
        pool=pool,
        patent=patent,
    )
