"""Typed builders for the securitization ops (generated; see `ipchain.sdk.builders`)."""

from __future__ import annotations

from typing import Any, Literal

from contracts.securitization.schemas import DealTests, Tranche, Trigger
from ipchain.sdk.opcall import UNSET, OpCall, Unset, build

__all__ = [
    "deal_close",
    "deal_create",
    "deal_default",
    "deal_distribute",
    "deal_recover",
    "deal_subscribe",
    "deal_transfer",
]


def deal_close(*,
    deal: str,
) -> OpCall:
    """Close a fully sold deal: proceeds to the originator (true sale).

    deal: deal id (first 16 hex of the creating tx id)
    """
    return build(
        'deal.close',
        deal=deal,
    )


def deal_create(*,
    originator: str,
    assets: list[str],
    tranches: list[Tranche | dict[str, Any]],
    tests: DealTests | dict[str, Any] | None | Unset = UNSET,
    trigger: Trigger | dict[str, Any] | None | Unset = UNSET,
    fees_per_period: int | Unset = UNSET,
    mode: Literal['pro_rata', 'sequential'] | Unset = UNSET,
    principal_per_period: int | None | Unset = UNSET,
    reserve_target: int | Unset = UNSET,
) -> OpCall:
    """Set up a deal: licences as collateral, tranches to sell.

    originator: the organisation selling the receivables
    assets: active licences, each once
    tranches: 1 .. 8 tranches, senior first
    tests: coverage tests
    trigger: breach trigger
    fees_per_period: trustee fee per period
    mode: principal pay-down while tests pass
    principal_per_period: scheduled principal per period (default: all available cash)
    reserve_target: cash kept in reserve before the residual
    """
    return build(
        'deal.create',
        originator=originator,
        assets=assets,
        tranches=tranches,
        tests=tests,
        trigger=trigger,
        fees_per_period=fees_per_period,
        mode=mode,
        principal_per_period=principal_per_period,
        reserve_target=reserve_target,
    )


def deal_default(*,
    deal: str,
    asset: str,
    loss: int,
) -> OpCall:
    """Mark an asset defaulted; its loss is written down equity first.

    deal: deal id (first 16 hex of the creating tx id)
    asset: licence id (16 hex)
    loss: loss written down, BPC minor units
    """
    return build(
        'deal.default',
        deal=deal,
        asset=asset,
        loss=loss,
    )


def deal_distribute(*,
    deal: str,
    period: int,
) -> OpCall:
    """Run the waterfall for the next period; publishes its report.

    deal: deal id (first 16 hex of the creating tx id)
    period: 
    """
    return build(
        'deal.distribute',
        deal=deal,
        period=period,
    )


def deal_recover(*,
    deal: str,
    asset: str,
    amount: int,
) -> OpCall:
    """Pay recovered cash on a defaulted asset into the deal.

    deal: deal id (first 16 hex of the creating tx id)
    asset: licence id (16 hex)
    amount: BPC minor units paid in
    """
    return build(
        'deal.recover',
        deal=deal,
        asset=asset,
        amount=amount,
    )


def deal_subscribe(*,
    deal: str,
    tranche: str,
    amount: int,
) -> OpCall:
    """Buy units of a tranche of an open deal.

    deal: deal id (first 16 hex of the creating tx id)
    tranche: tranche name, 1 .. 32 chars, no '/'
    amount: units (= BPC minor units paid)
    """
    return build(
        'deal.subscribe',
        deal=deal,
        tranche=tranche,
        amount=amount,
    )


def deal_transfer(*,
    deal: str,
    tranche: str,
    to: str,
    amount: int,
) -> OpCall:
    """Move units of your tranche position to another investor.

    deal: deal id (first 16 hex of the creating tx id)
    tranche: tranche name, 1 .. 32 chars, no '/'
    to: an investor organisation (not yourself)
    amount: units moved
    """
    return build(
        'deal.transfer',
        deal=deal,
        tranche=tranche,
        to=to,
        amount=amount,
    )
