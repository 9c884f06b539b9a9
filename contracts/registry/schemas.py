"""Argument schemas of the registry ops (contracts/schema.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

from contracts.schema import LIST_MAX, AmountOrZero, Amount, Args, Hex32, IsoDate, OrgId, PatentId, whole

Office = Annotated[str, Meta(pattern=whole(r"[A-Z]{2}"), description="WIPO ST.3 office code, e.g. CN")]
ApplicationNo = Annotated[str, Meta(pattern=whole(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"),
                                    description="application number: letters, digits, . _ -")]
Title = Annotated[str, Meta(min_length=1, max_length=512, description="non-empty, <= 512 chars")]
TextItem = Annotated[str, Meta(min_length=1, max_length=512)]
ShareBps = Annotated[int, Meta(ge=1, le=10_000, description="share in basis points, 1 .. 10 000")]
Shares = Annotated[list[tuple[OrgId, ShareBps]], Meta(
    min_length=1, max_length=LIST_MAX,
    description="[[org, bps], ...]: distinct organisations, shares summing to 10 000")]
PatentStatus = Literal["FILED", "PUBLISHED", "GRANTED", "REJECTED", "LAPSED", "INVALIDATED",
                       "WITHDRAWN", "EXPIRED"]
"""Every status a record can show; which the office may set from which is the handler's
state machine (BadStatusTransition), not the schema's."""


class Priority(Args, frozen=True):
    """A Paris Convention priority claim."""

    number: Annotated[TextItem, Meta(description="the earlier application's number")]
    date: Annotated[IsoDate, Meta(description="the earlier application's filing date")]
    office: Annotated[Office, Meta(description="the earlier application's office")]


class PatentMeta(Args, frozen=True):
    """Bibliographic data of a deposit (WIPO ST.9 fields)."""

    title: Annotated[Title, Meta(description="title of the invention")]
    kind: Annotated[Literal["invention", "utility_model", "design"],
                    Meta(description="patent kind; sets the term (20, 10 or 15 years)")]
    filing_date: Annotated[IsoDate, Meta(description="filing date, YYYY-MM-DD")]
    publication_date: Annotated[IsoDate | None, Meta(description="publication date, if any")] = None
    grant_date: Annotated[IsoDate | None, Meta(description="grant date, if any")] = None
    priorities: Annotated[list[Priority], Meta(max_length=LIST_MAX,
                                               description="priority claims")] = []
    ipc: Annotated[list[TextItem], Meta(max_length=LIST_MAX,
                                        description="IPC classes, e.g. G06F21")] = []
    applicants: Annotated[list[TextItem], Meta(max_length=LIST_MAX,
                                               description="applicant names")] = []
    inventors: Annotated[list[TextItem], Meta(max_length=LIST_MAX,
                                              description="inventor names")] = []
    owners: Annotated[Shares | None, Meta(
        description="owners and shares; required unless the deposit supersedes")] = None


class DepositArgs(Args, frozen=True):
    """Deposit a patent document (or a correction superseding an earlier deposit)."""

    office: Annotated[Office, Meta(description="the office the application was filed at")]
    application_no: Annotated[ApplicationNo, Meta(description="its application number")]
    doc_hash: Annotated[Hex32, Meta(description="SHA-256 of the document, lower-case hex")]
    meta: Annotated[PatentMeta, Meta(description="bibliographic data")]
    supersedes: Annotated[PatentId | None, Meta(
        description="the deposit this one corrects (same or another id)")] = None


class PatentRef(Args, frozen=True):
    """Names one patent."""

    patent: Annotated[PatentId, Meta(description="the patent, OFFICE:APPLICATION_NO")]


class SetStatusArgs(Args, frozen=True):
    """The office moves a patent to a new status."""

    patent: Annotated[PatentId, Meta(description="the patent")]
    status: Annotated[PatentStatus, Meta(description="the new status")]
    date: Annotated[IsoDate | None, Meta(
        description="the day it took effect; default: the deposit's date or the block's")] = None


class CiteArgs(Args, frozen=True):
    """Record that one patent cites another as prior art."""

    citing: Annotated[PatentId, Meta(description="the citing (later) patent")]
    cited: Annotated[PatentId, Meta(description="the cited (earlier) patent")]


class AppraiseArgs(Args, frozen=True):
    """An evaluator's appraisal of a patent's value."""

    patent: Annotated[PatentId, Meta(description="the patent appraised")]
    value: Annotated[AmountOrZero, Meta(description="value in BPC minor units, 0 .. 2^62")]
    basis: Annotated[Title, Meta(description="the method or report behind the value")]


class AssignArgs(Args, frozen=True):
    """Propose, or co-sign, new owners of a patent."""

    patent: Annotated[PatentId, Meta(description="the patent")]
    to: Annotated[Shares, Meta(description="the new owners and shares")]


class PledgeArgs(Args, frozen=True):
    """Pledge a patent as collateral (every owner signs the same terms)."""

    patent: Annotated[PatentId, Meta(description="the patent pledged")]
    pledgee: Annotated[OrgId, Meta(description="the secured creditor (not an owner)")]
    amount: Annotated[Amount, Meta(description="secured amount, BPC minor units, 1 .. 2^62")]
    until: Annotated[IsoDate, Meta(description="the pledge may be enforced after this day")]
