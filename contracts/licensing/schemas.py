"""Argument schemas of the licensing and royalty ops (contracts/schema.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from contracts.registry.schemas import PatentRef  # noqa: F401  (open_withdraw names a patent)
from contracts.schema import AmountOrZero, Args, Bps, IsoDate, OrgId, PatentId, Period, RecordId

LicenceId = Annotated[RecordId, Meta(description="licence id (first 16 hex of the offer's tx id)")]
ScopeName = Annotated[str, Meta(min_length=1, max_length=64)]
Scope = Annotated[list[ScopeName], Meta(
    min_length=1, max_length=64,
    description='names (fields of use or territories), each once; "*" (all) alone')]
MAX_TERM_DAYS = 36_500


class RoyaltyTerms(Args, frozen=True):
    """Running-royalty terms: a rate on net sales, per-unit floor and cap, a minimum."""

    royalty_bps: Annotated[Bps, Meta(description="royalty on net sales, basis points")] = 0
    royalty_floor_per_unit: Annotated[AmountOrZero | None, Meta(
        description="at least this much per unit sold (minor units)")] = None
    royalty_cap_per_unit: Annotated[AmountOrZero | None, Meta(
        description="at most this much per unit sold; not below the floor")] = None
    minimum_annual_royalty: Annotated[AmountOrZero | None, Meta(
        description="due per licensed year whatever the sales (paid quarterly)")] = None


class OfferArgs(RoyaltyTerms, frozen=True, kw_only=True):
    """Offer a licence on patents you own to one organisation."""

    licensee: Annotated[OrgId, Meta(description="the organisation offered the licence")]
    patents: Annotated[list[PatentId], Meta(min_length=1, max_length=64,
                                            description="the licensed patents, each once")]
    kind: Annotated[Literal["exclusive", "non_exclusive", "sole"],
                    Meta(description="exclusivity of the licence")]
    start_date: Annotated[IsoDate, Meta(description="first licensed day")]
    end_date: Annotated[IsoDate, Meta(description="last licensed day (not in the past)")]
    fields: Annotated[Scope | None, Meta(description='fields of use; default ["*"]')] = None
    territories: Annotated[Scope | None, Meta(description='territories; default ["*"]')] = None
    sublicensable: Annotated[bool, Meta(description="may the licensee sublicense")] = False
    fee: Annotated[AmountOrZero, Meta(description="up-front fee in BPC minor units")] = 0


class OpenTerms(RoyaltyTerms, frozen=True, kw_only=True):
    """The terms every taker of an open licence gets."""

    term_days: Annotated[Annotated[int, Meta(ge=1, le=MAX_TERM_DAYS)] | None, Meta(
        description="licence length in days, 1 .. 36 500 (default: to the patent's expiry)")
    ] = None


class OpenOfferArgs(Args, frozen=True):
    """Declare an open licence: anyone but an owner may take it at the price."""

    patent: Annotated[PatentId, Meta(description="a granted patent you own")]
    price: Annotated[AmountOrZero, Meta(description="fee per taker, BPC minor units")]
    terms: Annotated[OpenTerms | None, Meta(description="royalty terms and term")] = None


class TakeOpenArgs(Args, frozen=True):
    """Take a licence under a patent's open-licence declaration."""

    patent: Annotated[PatentId, Meta(description="the patent with a live declaration")]
    price: Annotated[AmountOrZero | None, Meta(
        description="the price you expect; refused (PriceChanged) if it differs")] = None


class LicenceRef(Args, frozen=True):
    """Names one licence: accept or withdraw an offer."""

    licence: LicenceId


class ReportArgs(Args, frozen=True):
    """The licensee reports a quarter's sales; the royalty due is computed from them."""

    licence: LicenceId
    period: Annotated[Period, Meta(description="the quarter reported, YYYY-Qn")]
    net_sales: Annotated[AmountOrZero, Meta(description="net sales, BPC minor units")]
    units: Annotated[AmountOrZero, Meta(description="units sold")]


class PayArgs(Args, frozen=True):
    """The licensee pays a reported quarter's royalty."""

    licence: LicenceId
    period: Annotated[Period, Meta(description="the quarter paid, YYYY-Qn")]
