"""Typed builders for the registry ops (generated; see `ipchain.sdk.builders`)."""

from __future__ import annotations

from typing import Any, Literal

from contracts.registry.schemas import PatentMeta
from ipchain.sdk.opcall import UNSET, OpCall, Unset, build

__all__ = [
    "appraisal_post",
    "licence_open_withdraw",
    "patent_approve_assign",
    "patent_assign",
    "patent_cite",
    "patent_deposit",
    "patent_enforce",
    "patent_pledge",
    "patent_release",
    "patent_set_status",
    "patent_withdraw",
]


def appraisal_post(*,
    patent: str,
    value: int,
    basis: str,
) -> OpCall:
    """Post an appraisal of a patent's value (not one you own).

    patent: the patent appraised
    value: value in BPC minor units, 0 .. 2^62
    basis: the method or report behind the value
    """
    return build(
        'appraisal.post',
        patent=patent,
        value=value,
        basis=basis,
    )


def licence_open_withdraw(*,
    patent: str,
) -> OpCall:
    """Withdraw your patent's open-licence declaration.

    patent: the patent, OFFICE:APPLICATION_NO
    """
    return build(
        'licence.open_withdraw',
        patent=patent,
    )


def patent_approve_assign(*,
    patent: str,
    to: list[tuple[str, int]],
) -> OpCall:
    """Co-sign the pending assignment, repeating its terms.

    patent: the patent
    to: the new owners and shares
    """
    return build(
        'patent.approve_assign',
        patent=patent,
        to=to,
    )


def patent_assign(*,
    patent: str,
    to: list[tuple[str, int]],
) -> OpCall:
    """Propose or co-sign new owners (all owners and any pledgee sign).

    patent: the patent
    to: the new owners and shares
    """
    return build(
        'patent.assign',
        patent=patent,
        to=to,
    )


def patent_cite(*,
    citing: str,
    cited: str,
) -> OpCall:
    """Record a citation (an office, or an owner of the citing patent).

    citing: the citing (later) patent
    cited: the cited (earlier) patent
    """
    return build(
        'patent.cite',
        citing=citing,
        cited=cited,
    )


def patent_deposit(*,
    office: str,
    application_no: str,
    doc_hash: str,
    meta: PatentMeta | dict[str, Any],
    supersedes: str | None | Unset = UNSET,
) -> OpCall:
    """Deposit a patent document: proof it existed at this block.

    office: the office the application was filed at
    application_no: its application number
    doc_hash: SHA-256 of the document, lower-case hex
    meta: bibliographic data
    supersedes: the deposit this one corrects (same or another id)
    """
    return build(
        'patent.deposit',
        office=office,
        application_no=application_no,
        doc_hash=doc_hash,
        meta=meta,
        supersedes=supersedes,
    )


def patent_enforce(*,
    patent: str,
) -> OpCall:
    """After `until`, the pledgee takes the patent whole.

    patent: the patent, OFFICE:APPLICATION_NO
    """
    return build(
        'patent.enforce',
        patent=patent,
    )


def patent_pledge(*,
    patent: str,
    pledgee: str,
    amount: int,
    until: str,
) -> OpCall:
    """Pledge a patent as collateral (every owner signs the terms).

    patent: the patent pledged
    pledgee: the secured creditor (not an owner)
    amount: secured amount, BPC minor units, 1 .. 2^62
    until: the pledge may be enforced after this day
    """
    return build(
        'patent.pledge',
        patent=patent,
        pledgee=pledgee,
        amount=amount,
        until=until,
    )


def patent_release(*,
    patent: str,
) -> OpCall:
    """The pledgee releases its pledge.

    patent: the patent, OFFICE:APPLICATION_NO
    """
    return build(
        'patent.release',
        patent=patent,
    )


def patent_set_status(*,
    patent: str,
    status: Literal['EXPIRED', 'FILED', 'GRANTED', 'INVALIDATED', 'LAPSED', 'PUBLISHED', 'REJECTED', 'WITHDRAWN'],
    date: str | None | Unset = UNSET,
) -> OpCall:
    """The office moves a patent to a new status.

    patent: the patent
    status: the new status
    date: the day it took effect; default: the deposit's date or the block's
    """
    return build(
        'patent.set_status',
        patent=patent,
        status=status,
        date=date,
    )


def patent_withdraw(*,
    patent: str,
) -> OpCall:
    """Withdraw a pending application (every co-owner asks).

    patent: the patent, OFFICE:APPLICATION_NO
    """
    return build(
        'patent.withdraw',
        patent=patent,
    )
