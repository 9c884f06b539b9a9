"""Securitization deals: named errors, the deal record, collateral and holder positions.

Shared by the origination ops (securitization.py) and the servicing ops
(servicing.py). Record layout, `deal/<id>` (id = the creating tx id's first 16 hex):

    id, trustee, originator, state ("open" | "closed"), created_height, timestamp_ms,
    closed_height (once closed),
    assets: {lid: {patents, defaulted, loss, recovered}},
    collateral_value        appraised value of the distinct underlying patents at creation
    tranches: [{name, principal, coupon_bps, sold, balance, interest_unpaid,
                written_down, written_back, holders: {org: {units, balance}}}]  senior first
    fees_per_period, fees_unpaid, mode ("sequential" | "pro_rata"),
    principal_per_period (None = all excess cash), reserve_target, reserve,
    tests: {oc_min_bps: {tranche: bps}, coverage_min_bps: int | None},
    trigger: {breach_periods, breach_count, triggered, fired_period},
    escrow      subscriptions held until close          } the BPC in the deal account
    reserve     cash kept back by the last distribution } that is NOT collections
    collected, paid, losses, recoveries   cumulative ledgers
    last_period

A holder's `units` are face value bought (they move with transfers and carry the residual
and write-back claims); `balance` is that holder's outstanding principal. The tranche
balance is always the sum of its holders' balances.
"""

from __future__ import annotations

from typing import Any

from contracts import errors, registry
from contracts.errors import PeriodAlreadyDistributed, PeriodOutOfOrder  # noqa: F401  (shared)
from contracts.licensing.offers import get_licence, is_licence_active  # noqa: F401  (interfaces.md)
from contracts.split import split_by_weights
from contracts.state import State

MAX_AMOUNT = 2**62
"""Bound on any amount in arguments, so sums and products stay within the codec's
64-bit integers for any realistic number of periods."""


# -- errors -----------------------------------------------------------------------------


class DealNotFound(errors.ContractError):
    """No deal with this id."""


class NotTrustee(errors.ContractError):
    """Only the deal's own trustee may close, distribute, record defaults or recoveries."""


class DealNotOpen(errors.ContractError):
    """Subscriptions and closing need a deal that is still open."""


class DealNotClosed(errors.ContractError):
    """Distributions, defaults and recoveries need a closed (sold) deal."""


class TrancheNotFound(errors.ContractError):
    """The deal has no tranche by that name."""


class TrancheFull(errors.ContractError):
    """The subscription exceeds what is left of the tranche."""


class TranchesNotSold(errors.ContractError):
    """A deal closes only once every tranche is fully subscribed."""




class AdvanceRateExceeded(errors.ContractError):
    """Total tranche principal exceeds the appraised collateral times the advance rate."""


class AssetNotActive(errors.ContractError):
    """An underlying licence is not active (not accepted, outside its dates, or every
    patent it covers is dead): it has no royalties to assign."""


class OriginatorNotLicensor(errors.ContractError):
    """A true sale needs the originator to hold the whole royalty stream (sole licensor)."""


class AssetAlreadyAssigned(errors.ContractError):
    """The licence's royalties are already assigned to a deal."""


class AssetNotInDeal(errors.ContractError):
    """The licence is not an underlying asset of this deal."""


class AssetAlreadyDefaulted(errors.ContractError):
    """The asset is already written off; record further cash as a recovery."""


class AssetNotDefaulted(errors.ContractError):
    """A recovery is recorded against a defaulted asset."""


class LossExceedsPrincipal(errors.ContractError):
    """A loss larger than the outstanding principal cannot be written down in full."""


class NotHolder(errors.ContractError):
    """The sender holds no (or not enough of a) position in this tranche."""


class NotInvestor(errors.ContractError):
    """Positions move only to organisations with the investor role."""


# -- the record ---------------------------------------------------------------------------


def deal_account(deal_id: str) -> str:
    return f"deal:{deal_id}"


def get_deal(state: State, deal_id: Any) -> dict[str, Any]:
    record = state.get(f"deal/{deal_id}") if isinstance(deal_id, str) else None
    if record is None:
        raise DealNotFound(f"no deal {deal_id!r}")
    return record


def put_deal(state: State, deal: dict[str, Any]) -> None:
    state.put(f"deal/{deal['id']}", deal)


def require_trustee(deal: dict[str, Any], org: str) -> None:
    if deal["trustee"] != org:
        raise NotTrustee(f"{org} is not the trustee of deal {deal['id']}")


def require_state(deal: dict[str, Any], wanted: str) -> None:
    if deal["state"] != wanted:
        raise (DealNotOpen if wanted == "open" else DealNotClosed)(
            f"deal {deal['id']} is {deal['state']}, needs {wanted}")


def get_tranche(deal: dict[str, Any], name: Any) -> dict[str, Any]:
    for tranche in deal["tranches"]:
        if tranche["name"] == name:
            return tranche
    raise TrancheNotFound(f"deal {deal['id']} has no tranche {name!r}")


def get_outstanding(deal: dict[str, Any]) -> int:
    return sum(tranche["balance"] for tranche in deal["tranches"])


# -- collateral: licences and patents ------------------------------------------------------


def get_assignment(state: State, lid: str) -> str | None:
    return state.get(f"royalty_assignment/{lid}")


def compute_patent_value(state: State, patents: list[str], timestamp_ms: int) -> int:
    """Appraised value of the distinct, still active patents (unappraised counts zero).

    Distinct, because two licences of one patent are one collateral, not two.
    """
    value = 0
    for pid in sorted(set(patents)):
        if f"patent/{pid}" in state and registry.is_active(state, pid, timestamp_ms):
            value += registry.get_appraisal(state, pid) or 0
    return value


def is_asset_performing(state: State, deal: dict[str, Any], lid: str, timestamp_ms: int) -> bool:
    return not deal["assets"][lid]["defaulted"] and is_licence_active(state, lid, timestamp_ms)


def compute_performing_value(state: State, deal: dict[str, Any], timestamp_ms: int) -> int:
    """Today's appraised value behind the assets that still perform (the OC numerator)."""
    patents: list[str] = []
    for lid in sorted(deal["assets"]):
        if is_asset_performing(state, deal, lid, timestamp_ms):
            patents.extend(deal["assets"][lid]["patents"])
    return compute_patent_value(state, patents, timestamp_ms)


# -- holder positions -------------------------------------------------------------------------


def get_holding_weights(tranche: dict[str, Any]) -> dict[str, int]:
    """Cash paid to a tranche goes by outstanding balance; once the tranche is written
    down or repaid to zero, its residual claims (equity residual, accrued interest) go by
    face units, which no holder loses by being repaid."""
    holders = tranche["holders"]
    if tranche["balance"] > 0:
        return {org: pos["balance"] for org, pos in sorted(holders.items())}
    return {org: pos["units"] for org, pos in sorted(holders.items())}


def split_to_holders(tranche: dict[str, Any], amount: int) -> dict[str, int]:
    """`amount` split among the tranche's holders by holding; parts sum to `amount`."""
    if amount == 0:
        return {}
    weights = get_holding_weights(tranche)
    if not sum(weights.values()):  # a sold tranche always has units; never drop cash
        raise RuntimeError(f"tranche {tranche.get('name')} has no holders to pay")
    return {org: part for org, part in split_by_weights(amount, weights).items() if part}


def reduce_balances(tranche: dict[str, Any], amount: int) -> dict[str, int]:
    """Lower the tranche balance by `amount` (principal repaid or written down), split by
    holders' balances, so no holder's balance can go below zero. Mutates `tranche`."""
    if amount == 0:
        return {}
    weights = {org: pos["balance"] for org, pos in sorted(tranche["holders"].items())}
    parts = split_by_weights(amount, weights)
    for org, part in parts.items():
        tranche["holders"][org]["balance"] -= part
    tranche["balance"] -= amount
    return {org: part for org, part in parts.items() if part}


def increase_balances(tranche: dict[str, Any], amount: int) -> dict[str, int]:
    """Reinstate written-down principal by face units: the claim travels with the units,
    so a buyer of a written-down position gets its write-back. Mutates `tranche`."""
    if amount == 0:
        return {}
    weights = {org: pos["units"] for org, pos in sorted(tranche["holders"].items())}
    parts = split_by_weights(amount, weights)
    for org, part in parts.items():
        tranche["holders"][org]["balance"] += part
    tranche["balance"] += amount
    return {org: part for org, part in parts.items() if part}
