"""Typed builders for the licensing ops (generated; see `ipchain.sdk.builders`)."""

from __future__ import annotations

from typing import Any, Literal

from contracts.licensing.schemas import OpenTerms
from ipchain.sdk.opcall import UNSET, OpCall, Unset, build

__all__ = [
    "licence_accept",
    "licence_offer",
    "licence_open_offer",
    "licence_take_open",
    "licence_withdraw",
    "royalty_pay",
    "royalty_report",
]


def licence_accept(*,
    licence: str,
) -> OpCall:
    """Accept a licence offered to you: pays the fee, activates it.

    licence: licence id (first 16 hex of the offer's tx id)
    """
    return build(
        'licence.accept',
        licence=licence,
    )


def licence_offer(*,
    licensee: str,
    patents: list[str],
    kind: Literal['exclusive', 'non_exclusive', 'sole'],
    start_date: str,
    end_date: str,
    royalty_bps: int | Unset = UNSET,
    royalty_floor_per_unit: int | None | Unset = UNSET,
    royalty_cap_per_unit: int | None | Unset = UNSET,
    minimum_annual_royalty: int | None | Unset = UNSET,
    fields: list[str] | None | Unset = UNSET,
    territories: list[str] | None | Unset = UNSET,
    sublicensable: bool | Unset = UNSET,
    fee: int | Unset = UNSET,
) -> OpCall:
    """Offer a licence on patents you own to one organisation.

    royalty_bps: royalty on net sales, basis points
    royalty_floor_per_unit: at least this much per unit sold (minor units)
    royalty_cap_per_unit: at most this much per unit sold; not below the floor
    minimum_annual_royalty: due per licensed year whatever the sales (paid quarterly)
    licensee: the organisation offered the licence
    patents: the licensed patents, each once
    kind: exclusivity of the licence
    start_date: first licensed day
    end_date: last licensed day (not in the past)
    fields: fields of use; default ["*"]
    territories: territories; default ["*"]
    sublicensable: may the licensee sublicense
    fee: up-front fee in BPC minor units
    """
    return build(
        'licence.offer',
        royalty_bps=royalty_bps,
        royalty_floor_per_unit=royalty_floor_per_unit,
        royalty_cap_per_unit=royalty_cap_per_unit,
        minimum_annual_royalty=minimum_annual_royalty,
        licensee=licensee,
        patents=patents,
        kind=kind,
        start_date=start_date,
        end_date=end_date,
        fields=fields,
        territories=territories,
        sublicensable=sublicensable,
        fee=fee,
    )


def licence_open_offer(*,
    patent: str,
    price: int,
    terms: OpenTerms | dict[str, Any] | None | Unset = UNSET,
) -> OpCall:
    """Declare an open licence on a granted patent you own.

    patent: a granted patent you own
    price: fee per taker, BPC minor units
    terms: royalty terms and term
    """
    return build(
        'licence.open_offer',
        patent=patent,
        price=price,
        terms=terms,
    )


def licence_take_open(*,
    patent: str,
    price: int | None | Unset = UNSET,
) -> OpCall:
    """Take a licence under an open declaration by paying its price.

    patent: the patent with a live declaration
    price: the price you expect; refused (PriceChanged) if it differs
    """
    return build(
        'licence.take_open',
        patent=patent,
        price=price,
    )


def licence_withdraw(*,
    licence: str,
) -> OpCall:
    """Withdraw a licence offer you made (while still offered).

    licence: licence id (first 16 hex of the offer's tx id)
    """
    return build(
        'licence.withdraw',
        licence=licence,
    )


def royalty_pay(*,
    licence: str,
    period: str,
) -> OpCall:
    """Pay a reported quarter's royalty to the licensors (or the deal).

    licence: licence id (first 16 hex of the offer's tx id)
    period: the quarter paid, YYYY-Qn
    """
    return build(
        'royalty.pay',
        licence=licence,
        period=period,
    )


def royalty_report(*,
    licence: str,
    period: str,
    net_sales: int,
    units: int,
) -> OpCall:
    """Report a quarter's net sales and units under a licence.

    licence: licence id (first 16 hex of the offer's tx id)
    period: the quarter reported, YYYY-Qn
    net_sales: net sales, BPC minor units
    units: units sold
    """
    return build(
        'royalty.report',
        licence=licence,
        period=period,
        net_sales=net_sales,
        units=units,
    )
