"""Argument schemas of the securitization ops (contracts/schema.py).

The deal's advance rate (`advance_rate_bps`) and default breach trigger
(`breach_periods`) are genesis settings (contracts/genesis.py ContractConfig), not
arguments: a trustee cannot raise what the collateral may borrow against.
"""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from contracts.schema import (
    AMOUNT_MAX, Amount, AmountOrZero, Args, Bps, OrgId, RecordId, bounded, whole,
)

DealId = Annotated[RecordId, Meta(description="deal id (first 16 hex of the creating tx id)")]
LicenceId = Annotated[RecordId, Meta(description="licence id (16 hex)")]
TrancheName = Annotated[str, Meta(pattern=whole(r"[^/]{1,32}"),
                                  description="tranche name, 1 .. 32 chars, no '/'")]
BpsFigure = Annotated[int, Meta(ge=0, le=AMOUNT_MAX, description="basis points (may exceed 10 000)")]


class Tranche(Args, frozen=True):
    """One tranche, in priority order (senior first)."""

    name: TrancheName
    principal: Annotated[Amount, Meta(description="face amount sold, BPC minor units")]
    coupon_bps: Annotated[Bps, Meta(description="interest per period, basis points")]


class DealTests(Args, frozen=True):
    """Coverage tests run at each distribution; a failure feeds the breach trigger."""

    oc_min_bps: Annotated[dict[TrancheName, BpsFigure], Meta(
        description="minimum over-collateralisation per tranche name, basis points")] = {}
    coverage_min_bps: Annotated[BpsFigure | None, Meta(
        description="minimum interest coverage, basis points")] = None


class Trigger(Args, frozen=True):
    """When the deal switches to sequential pay-down."""

    breach_periods: Annotated[Annotated[int, Meta(ge=1, le=1000)] | None, Meta(
        description="consecutive failed periods that trigger it, 1 .. 1000 "
                    "(default: genesis contracts.breach_periods)")] = None


class CreateDealArgs(Args, frozen=True):
    """A trustee sets up a deal over licences the originator solely licenses."""

    originator: Annotated[OrgId, Meta(description="the organisation selling the receivables")]
    assets: Annotated[list[LicenceId], Meta(min_length=1, max_length=64,
                                            description="active licences, each once")]
    tranches: Annotated[list[Tranche], Meta(min_length=1, max_length=8,
                                            description="1 .. 8 tranches, senior first")]
    tests: Annotated[DealTests | None, Meta(description="coverage tests")] = None
    trigger: Annotated[Trigger | None, Meta(description="breach trigger")] = None
    fees_per_period: Annotated[AmountOrZero, Meta(description="trustee fee per period")] = 0
    mode: Annotated[Literal["sequential", "pro_rata"], Meta(
        description="principal pay-down while tests pass")] = "sequential"
    principal_per_period: Annotated[Amount | None, Meta(
        description="scheduled principal per period (default: all available cash)")] = None
    reserve_target: Annotated[AmountOrZero, Meta(
        description="cash kept in reserve before the residual")] = 0


class SubscribeArgs(Args, frozen=True):
    """An investor buys units of a tranche while the deal is open."""

    deal: DealId
    tranche: TrancheName
    amount: Annotated[Amount, Meta(description="units (= BPC minor units paid)")]


class DealRef(Args, frozen=True):
    """Names one deal."""

    deal: DealId


class DistributeDealArgs(Args, frozen=True):
    """The trustee runs the waterfall for the next period."""

    deal: DealId
    period: Annotated[int, bounded(1, 1_000_000, "the next period number: 1, 2, 3, ...")]


class DefaultArgs(Args, frozen=True):
    """An asset stops performing; its loss is written down, equity first."""

    deal: DealId
    asset: LicenceId
    loss: Annotated[AmountOrZero, Meta(description="loss written down, BPC minor units")]


class RecoverArgs(Args, frozen=True):
    """Recovered cash on a defaulted asset is paid into the deal."""

    deal: DealId
    asset: LicenceId
    amount: Annotated[Amount, Meta(description="BPC minor units paid in")]


class DealTransferArgs(Args, frozen=True):
    """Move units of your tranche position to another investor."""

    deal: DealId
    tranche: TrancheName
    to: Annotated[OrgId, Meta(description="an investor organisation (not yourself)")]
    amount: Annotated[Amount, Meta(description="units moved")]
