"""Typed builders for the exchange ops (generated; see `ipchain.sdk.builders`)."""

from __future__ import annotations

from ipchain.sdk.opcall import UNSET, OpCall, Unset, build

__all__ = [
    "loan_enforce",
    "loan_fund",
    "loan_repay",
    "loan_request",
    "market_accept",
    "market_buy",
    "market_cancel",
    "market_delist",
    "market_list",
    "market_offer",
]


def loan_enforce(*,
    loan: str,
) -> OpCall:
    """After maturity, unpaid: take the patent, record the shortfall.

    loan: loan id (first 16 hex of the request's tx id)
    """
    return build(
        'loan.enforce',
        loan=loan,
    )


def loan_fund(*,
    loan: str,
) -> OpCall:
    """Fund a loan request: principal out and pledge in, atomically.

    loan: loan id (first 16 hex of the request's tx id)
    """
    return build(
        'loan.fund',
        loan=loan,
    )


def loan_repay(*,
    loan: str,
    amount: int,
) -> OpCall:
    """Repay a loan, interest first; full repayment releases the pledge.

    loan: loan id (first 16 hex of the request's tx id)
    amount: BPC minor units, at most what is owed
    """
    return build(
        'loan.repay',
        loan=loan,
        amount=amount,
    )


def loan_request(*,
    patent: str,
    principal: int,
    rate_bps: int,
    term_days: int,
) -> OpCall:
    """Ask for a loan against your patent (every owner signs the terms).

    patent: patent id OFFICE:APPLICATION_NO, e.g. CN:2024101
    principal: BPC minor units to borrow, 1 .. 2^62
    rate_bps: simple interest a year, actual/365, in bps
    term_days: days from funding to maturity; 0 = due on demand
    """
    return build(
        'loan.request',
        patent=patent,
        principal=principal,
        rate_bps=rate_bps,
        term_days=term_days,
    )


def market_accept(*,
    offer: str,
    price: int,
) -> OpCall:
    """Accept a bid as an owner; the last acceptance settles it.

    offer: offer id (first 16 hex of the offer's tx id)
    price: BPC minor units the buyer pays, 1 .. 2^62
    """
    return build(
        'market.accept',
        offer=offer,
        price=price,
    )


def market_buy(*,
    listing: str,
    price: int,
) -> OpCall:
    """Buy a listing: fee, pledgee, sellers and ownership in one tx.

    listing: listing id (first 16 hex of the first signature's tx id)
    price: BPC minor units the buyer pays, 1 .. 2^62
    """
    return build(
        'market.buy',
        listing=listing,
        price=price,
    )


def market_cancel(*,
    offer: str,
) -> OpCall:
    """Cancel your bid and get its escrow back.

    offer: offer id (first 16 hex of the offer's tx id)
    """
    return build(
        'market.cancel',
        offer=offer,
    )


def market_delist(*,
    listing: str,
) -> OpCall:
    """Withdraw a listing of your patent.

    listing: listing id (first 16 hex of the first signature's tx id)
    """
    return build(
        'market.delist',
        listing=listing,
    )


def market_list(*,
    patent: str,
    price: int,
    expires: str,
) -> OpCall:
    """List your patent for sale (every owner signs price and expiry).

    patent: patent id OFFICE:APPLICATION_NO, e.g. CN:2024101
    price: BPC minor units the buyer pays, 1 .. 2^62
    expires: last day the listing or offer is good, not before the block's day
    """
    return build(
        'market.list',
        patent=patent,
        price=price,
        expires=expires,
    )


def market_offer(*,
    patent: str,
    price: int,
    expires: str,
) -> OpCall:
    """Bid for a granted patent; the price is escrowed at once.

    patent: patent id OFFICE:APPLICATION_NO, e.g. CN:2024101
    price: BPC minor units the buyer pays, 1 .. 2^62
    expires: last day the listing or offer is good, not before the block's day
    """
    return build(
        'market.offer',
        patent=patent,
        price=price,
        expires=expires,
    )
