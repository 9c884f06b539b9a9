"""Patent registry: deposits as existence proofs, and the status the office gives them.

A deposit proves that a document with this SHA-256 existed no later than the block
that holds it (the event carries the height and timestamp). A record's bibliographic
data never changes in place: a correction is a new deposit naming what it supersedes,
and the old version stays readable. Ownership, pledges and appraisals are in
rights.py; families and the quality score in quality.py. Other contract
families import their reads from the package face (contracts/registry/__init__.py).
"""

from __future__ import annotations

from typing import Any

from contracts import errors
from contracts.call import Call, Op, org_roles
from contracts.registry import quality, rights
from contracts.registry.core import (
    OFFICE_RE, PENDING, BadStatusTransition, DatesOutOfOrder, DuplicateDocument, NotOwner,
    PatentExists, PatentInactive, PatentPledged, check_shares, get_block_date, get_patent,
    get_status, get_superseded_by, is_pledged, parse_date, require_active, require_owner,
)
from contracts.registry.schemas import (
    AppraiseArgs, CiteArgs, DepositArgs, PatentRef, SetStatusArgs,
)
from contracts.state import State

MAX_TEXT = 512
MAX_LIST = 64

TRANSITIONS: dict[str, frozenset[str]] = {
    "FILED": frozenset({"PUBLISHED", "GRANTED", "REJECTED"}),
    "PUBLISHED": frozenset({"GRANTED", "REJECTED"}),
    "GRANTED": frozenset({"LAPSED", "INVALIDATED"}),
    "EXPIRED": frozenset({"INVALIDATED"}),
}
"""What the office may do, from the *effective* status. Invalidation is retroactive
(Art. 47), so an expired patent can still be invalidated. WITHDRAWN is the owners' act
(patent.withdraw) and EXPIRED is derived, so the office sets neither."""
DATED_FIELDS = {"PUBLISHED": "publication_date", "GRANTED": "grant_date"}
"""Statuses whose date is also a bibliographic field (ST.9 INID 43/45)."""
GRANT_WITHOUT_PUBLICATION = frozenset({"utility_model", "design"})
"""Utility models and designs are granted after preliminary examination only, with no
separate publication (Art. 40)."""


class AlreadySuperseded(errors.ContractError):
    """This record was already replaced by a correction under another id."""


class CitationExists(errors.ContractError):
    """This citation is already recorded."""


class ConflictOfInterest(errors.ContractError):
    """An evaluator may not appraise a patent its own organisation owns."""


# -- validating a deposit ----------------------------------------------------------------


def check_text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        raise errors.BadArguments(f"{what} must be a non-empty string of at most {MAX_TEXT}")
    return value


def check_text_list(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or len(value) > MAX_LIST:
        raise errors.BadArguments(f"{what} must be a list of at most {MAX_LIST} strings")
    return [check_text(item, what) for item in value]


def check_list_of_maps(value: Any, what: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or len(value) > MAX_LIST or not all(
            isinstance(item, dict) for item in value):
        raise errors.BadArguments(f"{what} must be a list of maps")
    return value


def check_priorities(value: Any) -> list[dict[str, str]]:
    """Paris Convention priorities: (number, date, office), each claimed once."""
    items = check_list_of_maps(value, "priorities")
    result = []
    for item in items:
        if set(item) != {"number", "date", "office"}:
            raise errors.BadArguments("each priority is {number, date, office}")
        parse_date(item["date"], "priority date")
        if not isinstance(item["office"], str) or not OFFICE_RE.fullmatch(item["office"]):
            raise errors.BadArguments("priority office must be a two-letter code")
        result.append({"number": check_text(item["number"], "priority number"),
                       "date": item["date"], "office": item["office"]})
    keys = [(p["office"], p["number"]) for p in result]
    if len(set(keys)) != len(keys):
        raise errors.BadArguments("a priority is claimed twice")
    return result


def check_dates(record: dict[str, Any], timestamp_ms: int) -> None:
    """priority <= filing <= publication <= grant <= today: a deposit cannot be
    dated after the block that proves it."""
    chain = [max((p["date"] for p in record["priorities"]), default=None),
             record["filing_date"], record["publication_date"], record["grant_date"],
             get_block_date(timestamp_ms).isoformat()]
    present = [d for d in chain if d is not None]
    if present != sorted(present):
        raise DatesOutOfOrder(f"dates must be ordered priority <= filing <= publication "
                              f"<= grant <= the block's date; got {present}")


def build_record(call: Call) -> dict[str, Any]:
    """The new record from the deposit's arguments, every field checked."""
    args: DepositArgs = call.args
    meta = args.meta.to_value()
    parse_date(meta["filing_date"], "filing_date")  # a real calendar day, not only its shape
    for name in ("publication_date", "grant_date"):
        if meta.get(name) is not None:
            parse_date(meta[name], name)
    supersedes = args.supersedes
    return {
        "id": f"{args.office}:{args.application_no}", "office": args.office,
        "application_no": args.application_no, "doc_hash": args.doc_hash,
        "kind": meta["kind"], "title": check_text(meta["title"], "title"),
        "filing_date": meta["filing_date"], "publication_date": meta.get("publication_date"),
        "grant_date": meta.get("grant_date"),
        "priorities": check_priorities(meta.get("priorities", [])),
        "ipc": check_text_list(meta.get("ipc", []), "ipc"),
        "applicants": check_text_list(meta.get("applicants", []), "applicants"),
        "inventors": check_text_list(meta.get("inventors", []), "inventors"),
        "owners": meta.get("owners"), "status": "FILED",
        "status_date": meta["filing_date"], "supersedes": supersedes,
        "version": 1, "height": call.ctx.height, "timestamp_ms": call.ctx.timestamp_ms,
    }


# -- deposit and correction ----------------------------------------------------------------


def on_deposit(call: Call) -> None:
    record = build_record(call)
    old = None
    if record["supersedes"] is None:
        record["owners"] = check_shares(call.state, record["owners"], "owners")
        if call.org not in {org for org, _ in record["owners"]}:
            raise NotOwner("the depositor must be one of the owners")
    else:
        old = prepare_correction(call, record)
    check_dates(record, call.ctx.timestamp_ms)
    check_unique(call.state, record, old)
    store_deposit(call.state, record, old)
    call.emit("registry", "deposited", patent=record["id"], doc_hash=record["doc_hash"],
              version=record["version"], supersedes=record["supersedes"],
              height=call.ctx.height, timestamp_ms=call.ctx.timestamp_ms)


def prepare_correction(call: Call, record: dict[str, Any]) -> dict[str, Any]:
    """A correction keeps the status, owners and office-given dates of what it replaces:
    ownership moves only through patent.assign, status only through the office.

    Under the same id it becomes the next version of the record. Under another id the
    old record goes inactive (is_active is False), so licences and pool entries naming
    it stop counting and are re-made on the new id; citations stay with the old id.
    """
    state, target = call.state, record["supersedes"]
    old = require_owner(state, target, call.org)
    if get_superseded_by(state, target) is not None:
        raise AlreadySuperseded(f"{target} was already superseded")
    if is_pledged(state, target):
        raise PatentPledged(f"{target} is pledged; release it before correcting it")
    if record["owners"] is not None and check_shares(state, record["owners"], "owners") \
            != old["owners"]:
        raise errors.BadArguments("a correction cannot change owners; use patent.assign")
    record["owners"] = old["owners"]
    record["status"], record["status_date"] = old["status"], old.get("status_date")
    for name in ("publication_date", "grant_date"):
        if record[name] is None:
            record[name] = old[name]
    if record["id"] == target:
        record["version"] = old.get("version", 1) + 1
    return old


def check_unique(state: State, record: dict[str, Any], old: dict[str, Any] | None) -> None:
    replacing = old is not None and old["id"] == record["id"]
    if f"patent/{record['id']}" in state and not replacing:
        raise PatentExists(f"{record['id']} is already deposited")
    holder = state.get(f"doc/{record['doc_hash']}")
    if holder is not None and (old is None or holder != old["id"]):
        raise DuplicateDocument(f"document {record['doc_hash']} is already deposited as {holder}")


def store_deposit(state: State, record: dict[str, Any], old: dict[str, Any] | None) -> None:
    if old is not None:
        quality.remove_from_family(state, old)
        rights.clear_consents(state, old["id"])
        if old["id"] == record["id"]:
            state.put(f"patent_version/{old['id']}/{old.get('version', 1):06d}", old)
        else:
            state.put(f"superseded/{old['id']}", record["id"])
    state.put(f"patent/{record['id']}", record)
    state.put(f"doc/{record['doc_hash']}", record["id"])
    quality.add_to_family(state, record)


# -- status -------------------------------------------------------------------------------


def on_set_status(call: Call) -> None:
    """The office moves a patent through FILED -> PUBLISHED -> GRANTED -> LAPSED/INVALIDATED."""
    state, pid, new = call.state, call.args.patent, call.args.status
    patent = get_patent(state, pid)
    if get_superseded_by(state, pid) is not None:
        raise PatentInactive(f"{pid} was superseded by {get_superseded_by(state, pid)}")
    current = get_status(state, pid, call.ctx.timestamp_ms)
    if new not in compute_next_statuses(current, patent["kind"]):
        raise BadStatusTransition(f"{pid}: {current} -> {new} is not allowed for a "
                                  f"{patent['kind']}")
    date = compute_status_date(call, patent, new)
    if new in DATED_FIELDS:
        patent[DATED_FIELDS[new]] = date
        check_dates(patent, call.ctx.timestamp_ms)
    patent["status"], patent["status_date"] = new, date
    state.put(f"patent/{pid}", patent)
    if new not in PENDING:
        state.delete(f"consent/withdraw/{pid}")
    call.emit("registry", "status_changed", patent=pid, previous=current, status=new, date=date)


def compute_next_statuses(current: str, kind: str) -> frozenset[str]:
    """Inventions are published before they are granted; utility models and designs
    have no publication stage and go FILED -> GRANTED (Art. 40)."""
    allowed = TRANSITIONS.get(current, frozenset())
    if current != "FILED":
        return allowed
    if kind in GRANT_WITHOUT_PUBLICATION:
        return allowed - {"PUBLISHED"}
    return allowed - {"GRANTED"}


def compute_status_date(call: Call, patent: dict[str, Any], new: str) -> str:
    """The day the new status took effect: the office's `date`, else the date the
    deposit declared for it, else the block's day. Licensing stops royalty accrual on
    it, so it may not precede the previous status nor follow the block."""
    today = get_block_date(call.ctx.timestamp_ms).isoformat()
    given = call.args.date
    if given is not None:
        date = parse_date(given, "date").isoformat()
    else:
        date = patent.get(DATED_FIELDS.get(new, ""), None) or today
    previous = patent.get("status_date") or patent["filing_date"]
    if not previous <= date <= today:
        raise DatesOutOfOrder(f"{new} dated {date}: must lie between {previous} and {today}")
    return date


def on_withdraw(call: Call) -> None:
    """Withdrawal gives up the application, so every co-owner must ask for it."""
    state, pid = call.state, call.args.patent
    patent = require_owner(state, pid, call.org)
    status = get_status(state, pid, call.ctx.timestamp_ms)
    if status not in PENDING or get_superseded_by(state, pid) is not None:
        raise BadStatusTransition(f"{pid}: only a pending application can be withdrawn "
                                  f"(it is {status})")
    if is_pledged(state, pid):
        raise PatentPledged(f"{pid} is pledged; withdrawing it would destroy the collateral")
    owners = {org for org, _ in patent["owners"]}
    if not rights.record_consent(state, "withdraw", pid, {}, call.org, owners):
        call.emit("registry", "withdraw_approved", patent=pid, by=call.org)
        return
    today = get_block_date(call.ctx.timestamp_ms).isoformat()
    patent["status"], patent["status_date"] = "WITHDRAWN", today
    state.put(f"patent/{pid}", patent)
    call.emit("registry", "status_changed", patent=pid, previous=status, status="WITHDRAWN",
              date=today)


# -- citations and appraisals ----------------------------------------------------------------


def on_cite(call: Call) -> None:
    """A forward citation, recorded by an examining office or the citing patent's owner."""
    state, citing, cited = call.state, call.args.citing, call.args.cited
    citing_record, cited_record = get_patent(state, citing), get_patent(state, cited)
    if citing == cited:
        raise errors.BadArguments("a patent cannot cite itself")
    if "office" not in org_roles(state, call.org) and all(
            owner != call.org for owner, _ in citing_record["owners"]):
        raise errors.Unauthorized("only an office or an owner of the citing patent may cite")
    if cited_record["filing_date"] > citing_record["filing_date"]:
        raise DatesOutOfOrder(f"{cited} was filed after {citing}; it cannot be prior art")
    key = f"citation/{cited}/{citing}"
    if key in state:
        raise CitationExists(f"{citing} already cites {cited}")
    state.put(key, {"by": call.org, "height": call.ctx.height})
    call.emit("registry", "cited", citing=citing, cited=cited)


def on_appraise(call: Call) -> None:
    """The latest appraisal replaces the previous one: securitization sizes a deal on
    what the patent is worth now."""
    args: AppraiseArgs = call.args
    state, pid = call.state, args.patent
    patent = get_patent(state, pid)
    check_text(args.basis, "basis")
    if any(owner == call.org for owner, _ in patent["owners"]):
        raise ConflictOfInterest(f"{call.org} owns {pid}")
    require_active(state, pid, call.ctx.timestamp_ms)
    state.put(f"appraisal/{pid}", {"value": args.value, "basis": args.basis,
                                   "evaluator": call.org, "height": call.ctx.height,
                                   "timestamp_ms": call.ctx.timestamp_ms})
    call.emit("registry", "appraised", patent=pid, value=args.value, evaluator=call.org)


OPS = {
    "patent.deposit": Op(on_deposit, roles=frozenset({"member"}), args=DepositArgs,
                         doc="Deposit a patent document: proof it existed at this block."),
    "patent.set_status": Op(on_set_status, roles=frozenset({"office"}), args=SetStatusArgs,
                            doc="The office moves a patent to a new status."),
    "patent.withdraw": Op(on_withdraw, args=PatentRef,
                              doc="Withdraw a pending application (every co-owner asks)."),
    "patent.cite": Op(on_cite, args=CiteArgs,
                      doc="Record a citation (an office, or an owner of the citing patent)."),
    "appraisal.post": Op(on_appraise, roles=frozenset({"evaluator"}), args=AppraiseArgs,
                         doc="Post an appraisal of a patent's value (not one you own)."),
    **rights.OPS,
}
