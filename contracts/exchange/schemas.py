"""Argument schemas of the exchange's ops (contracts/schema.py): checked at admission
and again in the block, so the handlers keep only the rules that need state."""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from contracts.schema import Amount, Args, Bps, IsoDate, PatentId, RecordId, bounded

MAX_TERM_DAYS = 36_500
"""A hundred years: longer than any patent lives."""

ListingId = Annotated[RecordId, Meta(description="listing id (first 16 hex of the first "
                                                 "signature's tx id)")]
OfferId = Annotated[RecordId, Meta(description="offer id (first 16 hex of the offer's tx id)")]
LoanId = Annotated[RecordId, Meta(description="loan id (first 16 hex of the request's tx id)")]
Price = Annotated[Amount, Meta(description="BPC minor units the buyer pays, 1 .. 2^62")]
Expires = Annotated[IsoDate, Meta(description="last day the listing or offer is good, "
                                              "not before the block's day")]


class ListArgs(Args, frozen=True):
    """Offer a patent for sale; every current owner signs the same price and expiry."""

    patent: PatentId
    price: Price
    expires: Expires


class OfferArgs(Args, frozen=True):
    """Bid for a patent; the price is escrowed from the buyer at once."""

    patent: PatentId
    price: Price
    expires: Expires


class ListingRef(Args, frozen=True):
    """Names one listing: withdraw it."""

    listing: ListingId


class BuyArgs(Args, frozen=True):
    """Buy a listing at its price; naming the price means terms cannot change under you."""

    listing: ListingId
    price: Price


class AcceptArgs(Args, frozen=True):
    """Accept a bid as an owner, naming its price; the last owner's acceptance settles."""

    offer: OfferId
    price: Price


class OfferRef(Args, frozen=True):
    """Names one offer: the buyer cancels it and gets its escrow back."""

    offer: OfferId


class LoanRequestArgs(Args, frozen=True):
    """Ask for a loan against a patent; every current owner signs the same terms."""

    patent: PatentId
    principal: Annotated[Amount, Meta(description="BPC minor units to borrow, 1 .. 2^62")]
    rate_bps: Annotated[Bps, Meta(description="simple interest a year, actual/365, in bps")]
    term_days: bounded(0, MAX_TERM_DAYS, "days from funding to maturity; 0 = due on demand")


class LoanRef(Args, frozen=True):
    """Names one loan: fund the request, or enforce the loan after maturity."""

    loan: LoanId


class RepayArgs(Args, frozen=True):
    """Repay a loan: accrued interest first, then principal; the last unit frees the pledge."""

    loan: LoanId
    amount: Annotated[Amount, Meta(description="BPC minor units, at most what is owed")]
