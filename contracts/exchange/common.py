"""What the exchange's sales, loans and ratings share: its named errors, its settings
from genesis, argument checks, and the co-signature of every owner.

Everything the exchange reads from the registry comes through the imports below, so a
move of the registry modules touches this file only.
"""

from __future__ import annotations

from typing import Any

from contracts import errors
from contracts.genesis import get_contract_config
from contracts.registry.core import (  # noqa: F401  (re-exported to sales and loans)
    FULL_SHARE_BPS, MS_PER_DAY, NotOwner, PatentPledged, get_appraisal, get_block_date,
    get_owners, get_patent, get_pledge, get_status, get_superseded_by, is_active, is_in_force,
    is_owner, parse_date, require_active, require_right_holder,
)
from contracts.registry.rights import AlreadyApproved, PledgeHeldForLoan, set_owners  # noqa: F401
from contracts.call import Call
from contracts.state import State

DAYS_PER_YEAR = 365
"""Actual/365 fixed: a leap year's 29 February accrues a 366th day of interest."""
ESCROW_ACCOUNT = "market:escrow"
"""One BPC account holds every open offer's price: its balance is the sum of the open
offers, which the invariant tests check after every step."""
RECORD_ID_HEX = 16
"""Listings, offers and loans are named by their creating transaction's id (first 16
hex characters), like licences, pools and deals."""

# -- errors ---------------------------------------------------------------------------


class ListingNotFound(errors.NotFound):
    """No listing has this id."""


class OfferNotFound(errors.NotFound):
    """No offer has this id."""


class LoanNotFound(errors.NotFound):
    """No loan or loan request has this id."""


class NotOpen(errors.ContractError):
    """The listing, offer or loan is no longer open (settled, cancelled or replaced)."""


class Expired(errors.ContractError):
    """The listing or offer expired (its `expires` day is before the block's day)."""


class PriceMismatch(errors.ContractError):
    """The price named by the buyer or seller is not the listing's or the offer's price."""


class PatentNotInForce(errors.ContractError):
    """Only a granted patent within its term can be sold on the exchange."""


class PledgeExceedsPrice(errors.ContractError):
    """The pledge's outstanding secured amount exceeds what the price pays after the
    clearing fee, so the pledgee could not be paid off and the pledge not released."""


class ListingIncomplete(errors.ContractError):
    """The listing is not signed by every current owner yet."""


class ListingStale(errors.ContractError):
    """The patent's owners changed since the listing was signed."""


class BuyerIsOwner(errors.ContractError):
    """An owner of the patent cannot buy it or offer for it."""


class NotOfferer(errors.ContractError):
    """Only the organisation that made an offer can cancel it."""


class NoAppraisal(errors.ContractError):
    """A pledge loan is sized against the latest appraisal; the patent has none."""


class LoanToValueExceeded(errors.ContractError):
    """The principal exceeds `ltv_max_bps` of the latest appraisal."""


class NotBorrower(errors.ContractError):
    """Only the loan's borrowers repay it."""


class NotLender(errors.ContractError):
    """Only the loan's lender enforces it."""


class LoanNotDue(errors.ContractError):
    """A loan can be enforced only after its maturity with something unpaid."""


class RepaymentExceedsDebt(errors.ContractError):
    """The repayment is larger than the accrued interest plus the outstanding principal."""


class RequestStale(errors.ContractError):
    """The patent's owners changed since the loan was requested."""


# -- settings ---------------------------------------------------------------------------


def get_exchange_config(state: State) -> dict[str, Any]:
    """The genesis settings (contracts/genesis.py ContractConfig) with the clearing
    account resolved: null there means the first admin organisation by id."""
    config = get_contract_config(state)
    if config["clearing_account"] is None:
        admins = [record["id"] for _, record in state.items("org/")
                  if "admin" in record["roles"] and not record.get("removed", False)]
        config["clearing_account"] = admins[0] if admins else "market:clearing"
    return config


# -- arguments (types and ranges are in schemas.py; these need the block) -----------------


def check_expires(call: Call, value: str) -> str:
    """An ISO day not before the block's day: the listing or offer is good through it."""
    if parse_date(value, "expires") < get_block_date(call.ctx.timestamp_ms):
        raise errors.BadArguments(f"expires {value} is already past")
    return value


def is_expired(record: dict[str, Any], timestamp_ms: int) -> bool:
    return get_block_date(timestamp_ms).isoformat() > record["expires"]


def record_id(call: Call) -> str:
    return call.tx.id[:RECORD_ID_HEX]


# -- every owner signs -------------------------------------------------------------------


def add_owner_signature(state: State, record: dict[str, Any], org: str) -> bool:
    """Add `org` to the record's approvals; True once every *current* owner signed.

    Approvals are counted against the owners of today, so a former owner's signature
    never completes a sale or a loan of a patent it no longer holds.
    """
    owners = {owner for owner, _ in get_owners(state, record["patent"])}
    approvals = set(record["approvals"]) & owners
    if org in approvals:
        raise AlreadyApproved(f"{org} already signed {record['id']}")
    approvals.add(org)
    record["approvals"] = sorted(approvals)
    return owners <= approvals


def void_listing(state: State, pid: str) -> None:
    """The patent changed hands (a sale or an enforced loan): the listing its old
    owners signed ends."""
    listing_id = state.get(f"market_listed/{pid}")
    if listing_id is not None:
        listing = state.get(f"market_listing/{listing_id}")
        state.put(f"market_listing/{listing_id}", {**listing, "state": "closed"})
        state.delete(f"market_listed/{pid}")
