"""Licences: bilateral offers and acceptances, and open licences (Patent Law Arts. 50-52).

A licence is offered by an owner of every listed patent; its licensors are the patents'
owners, weighted by their shares (a patent's owners split its weight pro rata, each
patent weighing the same), fixed by the offer; fee and royalties are paid to them by
those shares. Royalties keep going to them even if a patent is later assigned: the
licence is their contract. The licensee accepts and
pays the lump-sum fee in the same transaction, so a licence is never active unpaid nor
paid for and inactive. Running royalties are in contracts/licensing/royalty.py.

Rules checked at offer and again at accept (the world may change in between):
- every patent exists, is alive (pending or granted, in term) and is not pledged (Civil
  Code Art. 444: a pledged right may not be licensed without the pledgee);
- the exclusivity rule of contracts/licensing/scope.py;
- at accept, the owners must still be the ones who offered (OfferStale otherwise).

An open licence is a standing declaration for one granted patent: anyone (but an
owner) takes a non-exclusive, all-fields, all-territories licence by paying its price.
Withdrawing the declaration only stops new takes; licences already taken stay.
"""

from __future__ import annotations

from typing import Any

from contracts import errors, registry
from contracts.licensing import royalty
from contracts.licensing.schemas import (
    LicenceRef, OfferArgs, OpenOfferArgs, PatentRef, TakeOpenArgs,
)
from contracts.licensing.scope import (
    ANY, MAX_SCOPE_ITEMS, ExclusiveConflict, LicenceNotFound, add_days_iso,
    check_scope_list, find_exclusive_from, get_block_date, get_block_iso, get_licence,
    get_live_open_offer, licence_index_key, open_offer_key, parse_iso_date,
    require_no_conflict,
)
from contracts.membership.governance import is_org_active
from contracts.licensing.royalty import (
    LicenceNotActive, NotLicensee, check_amount, check_royalty_terms, get_patent_last_day,
    pay_by_shares,
)
from contracts.call import Call, Op
from contracts.split import split_by_weights
from contracts.state import State

__all__ = ["ExclusiveConflict", "LicenceNotActive", "LicenceNotFound", "NotLicensee",
           "get_licence", "is_licence_active"]

FULL_BPS = 10_000
MAX_TERM_DAYS = 36_500
LICENSING_ROLES = frozenset({"member"})


class NotLicensor(errors.ContractError):
    """The sender does not own every patent of the licence (or the open licence)."""


class LicenceNotOffered(errors.ContractError):
    """Only a pending offer can be accepted or withdrawn."""


class OfferStale(errors.ContractError):
    """The patents' owners changed since the offer; the new owners must offer again."""


class OfferExpired(errors.ContractError):
    """The licence's end date has passed; there is nothing left to accept."""


class OpenOfferNotFound(errors.NotFound):
    """The patent has no live open-licence declaration."""


class OpenOfferExists(errors.ContractError):
    """The patent already has a live open-licence declaration; withdraw it first."""


class PriceChanged(errors.ContractError):
    """The open licence's price is not the one the taker agreed to pay."""


class AlreadyLicensed(errors.ContractError):
    """The taker already holds a running licence under this open-licence declaration."""


class PatentNotGranted(errors.ContractError):
    """Open licences are declared for granted patents in force (Art. 50)."""


# -- reads ---------------------------------------------------------------------------


def is_licence_active(state: State, lid: str, timestamp_ms: int) -> bool:
    """Accepted, within its dates, and at least one of its patents still alive."""
    licence = state.get(f"licence/{lid}")
    if licence is None or licence["state"] != "active":
        return False
    today = get_block_iso(timestamp_ms)
    return (licence["start_date"] <= today <= licence["end_date"]
            and any(registry.is_active(state, pid, timestamp_ms) for pid in licence["patents"]))


def compute_licensors(state: State, patents: list[str]) -> list[list[Any]]:
    """Every owner of any patent, weighted by share, normalised to 10 000 bps exactly."""
    weights: dict[str, int] = {}
    for pid in patents:
        for org, bps in registry.get_owners(state, pid):
            weights[org] = weights.get(org, 0) + bps
    parts = split_by_weights(FULL_BPS, weights)
    return [[org, bps] for org, bps in sorted(parts.items()) if bps > 0]


def check_patent_usable(state: State, pid: str, timestamp_ms: int) -> None:
    """Alive and unpledged: a right that may be licensed today."""
    registry.get_patent(state, pid)
    if not registry.is_active(state, pid, timestamp_ms):
        raise registry.PatentInactive(f"{pid} is {registry.get_status(state, pid, timestamp_ms)}")
    if registry.is_pledged(state, pid):
        raise registry.PatentPledged(f"{pid} is pledged; it may not be licensed "
                                     "(Civil Code Art. 444)")


def check_patent_licensable(state: State, pid: str, org: str, timestamp_ms: int) -> None:
    """Usable, and `org` owns a share of it."""
    check_patent_usable(state, pid, timestamp_ms)
    if not registry.is_owner(state, pid, org):
        raise NotLicensor(f"{org} does not own {pid}")


def _list(value: list[str] | None) -> list[str] | None:
    return None if value is None else list(value)


def check_patent_list(value: Any) -> list[str]:
    if (not isinstance(value, list) or not value or len(value) > MAX_SCOPE_ITEMS
            or not all(isinstance(pid, str) for pid in value)):
        raise errors.BadArguments(f"patents must be a list of 1..{MAX_SCOPE_ITEMS} patent ids")
    if len(set(value)) != len(value):
        raise errors.BadArguments("patents lists a patent twice")
    return sorted(value)


# -- offer, accept, withdraw ---------------------------------------------------------


def build_offer(call: Call) -> dict[str, Any]:
    """The offered licence record, every argument checked; writes nothing."""
    args: OfferArgs = call.args
    start = parse_iso_date(args.start_date, "start_date")
    end = parse_iso_date(args.end_date, "end_date")
    today = get_block_iso(call.ctx.timestamp_ms)
    if start > end or end.isoformat() < today:
        raise errors.BadArguments("need start_date <= end_date and end_date not in the past")
    patents = check_patent_list(list(args.patents))
    for pid in patents:
        check_patent_licensable(call.state, pid, call.org, call.ctx.timestamp_ms)
    licensors = compute_licensors(call.state, patents)
    if not is_org_active(call.state, args.licensee):
        raise errors.UnknownAccount(f"no organisation {args.licensee!r}")
    if any(org == args.licensee for org, _ in licensors):
        raise errors.BadArguments("the licensee owns a licensed patent; an owner needs no licence")
    return {
        "id": call.tx.id[:16], "state": "offered", "offered_by": call.org,
        "licensors": licensors, "licensee": args.licensee, "patents": patents,
        "kind": args.kind, "fields": check_scope_list(_list(args.fields), "fields"),
        "territories": check_scope_list(_list(args.territories), "territories"),
        "start_date": start.isoformat(), "end_date": end.isoformat(),
        "sublicensable": args.sublicensable, "fee": args.fee,
        **check_royalty_terms(args.to_value()),
        "open_offer": None, "height": call.ctx.height, "timestamp_ms": call.ctx.timestamp_ms,
        "accepted_height": None, "accepted_timestamp_ms": None,
    }


def index_parties(state: State, licence: dict[str, Any]) -> None:
    state.put(f"licidx/licensee/{licence['licensee']}/{licence['id']}", 1)
    for org, _ in licence["licensors"]:
        state.put(f"licidx/licensor/{org}/{licence['id']}", 1)


def activate(call: Call, licence: dict[str, Any]) -> dict[str, int]:
    """Pay the fee to the licensors and make the licence active; checks come first."""
    require_no_conflict(call.state, licence)
    parts = pay_by_shares(call.state, licence["licensee"], licence["fee"], licence["licensors"])
    active = {**licence, "state": "active", "accepted_height": call.ctx.height,
              "accepted_timestamp_ms": call.ctx.timestamp_ms}
    call.state.put(f"licence/{licence['id']}", active)
    for pid in licence["patents"]:
        call.state.put(licence_index_key(pid, licence["id"]), 1)
    return parts


def on_offer(call: Call) -> None:
    licence = build_offer(call)
    require_no_conflict(call.state, licence)
    if f"licence/{licence['id']}" in call.state:
        raise errors.BadArguments("licence id collision; resend with another nonce")
    call.state.put(f"licence/{licence['id']}", licence)
    index_parties(call.state, licence)
    call.emit("licence", "offered", licence=licence["id"], licensee=licence["licensee"],
              kind=licence["kind"], patents=licence["patents"], fee=licence["fee"])


def on_accept(call: Call) -> None:
    licence = get_licence(call.state, call.args.licence)
    if licence["state"] != "offered":
        raise LicenceNotOffered(f"licence {licence['id']} is {licence['state']}")
    if licence["licensee"] != call.org:
        raise NotLicensee(f"licence {licence['id']} is offered to {licence['licensee']}")
    if licence["end_date"] < get_block_iso(call.ctx.timestamp_ms):
        raise OfferExpired(f"licence {licence['id']} ended on {licence['end_date']}")
    for pid in licence["patents"]:
        check_patent_usable(call.state, pid, call.ctx.timestamp_ms)
    if (compute_licensors(call.state, licence["patents"]) != licence["licensors"]
            or not all(registry.is_owner(call.state, pid, licence["offered_by"])
                       for pid in licence["patents"])):
        raise OfferStale(f"the owners of {licence['patents']} changed since the offer")
    parts = activate(call, licence)
    call.emit("licence", "accepted", licence=licence["id"], licensee=call.org,
              fee=licence["fee"], parts=parts)


def on_withdraw(call: Call) -> None:
    licence = get_licence(call.state, call.args.licence)
    if all(org != call.org for org, _ in licence["licensors"]):
        raise NotLicensor(f"{call.org} is not a licensor of {licence['id']}")
    if licence["state"] != "offered":
        raise LicenceNotOffered(f"licence {licence['id']} is {licence['state']}")
    call.state.put(f"licence/{licence['id']}", {**licence, "state": "withdrawn"})
    call.emit("licence", "withdrawn", licence=licence["id"], by=call.org)


# -- open licences -------------------------------------------------------------------

OPEN_TERMS = frozenset(royalty.ROYALTY_TERMS) | {"term_days"}


def check_open_terms(terms: Any) -> dict[str, Any]:
    if terms is None:
        terms = {}
    if not isinstance(terms, dict) or not set(terms) <= OPEN_TERMS:
        raise errors.BadArguments(f"terms is a map with keys among {sorted(OPEN_TERMS)}")
    term_days = terms.get("term_days")
    if term_days is not None and not 1 <= check_amount(term_days, "term_days") <= MAX_TERM_DAYS:
        raise errors.BadArguments(f"term_days must be within 1..{MAX_TERM_DAYS}")
    return {**check_royalty_terms(terms), "term_days": term_days}


def on_open_offer(call: Call) -> None:
    args: OpenOfferArgs = call.args
    price = args.price
    terms = check_open_terms(None if args.terms is None else args.terms.to_value())
    pid, now_ms = args.patent, call.ctx.timestamp_ms
    check_patent_licensable(call.state, pid, call.org, now_ms)
    if not registry.is_in_force(call.state, pid, now_ms):
        raise PatentNotGranted(f"{pid} is {registry.get_status(call.state, pid, now_ms)}")
    if get_live_open_offer(call.state, pid) is not None:
        raise OpenOfferExists(f"{pid} already has a live open-licence declaration")
    today = get_block_iso(now_ms)
    exclusive = find_exclusive_from(call.state, pid, today)
    if exclusive is not None:
        raise ExclusiveConflict(f"{pid} is under {exclusive['kind']} licence {exclusive['id']}")
    offer = {"id": call.tx.id[:16], "patent": pid, "state": "open", "declared_by": call.org,
             "licensors": registry.get_owners(call.state, pid), "price": price, **terms,
             "date": today, "granted": 0, "height": call.ctx.height,
             "timestamp_ms": now_ms, "withdrawn_height": None}
    call.state.put(open_offer_key(pid), offer)
    call.emit("licence", "open_offered", patent=pid, offer=offer["id"], price=price)


def on_open_withdraw(call: Call) -> None:
    pid = call.args.patent
    registry.get_patent(call.state, pid)
    offer = get_live_open_offer(call.state, pid)
    if offer is None:
        raise OpenOfferNotFound(f"{pid} has no live open-licence declaration")
    if not registry.is_owner(call.state, pid, call.org):
        raise NotLicensor(f"{call.org} does not own {pid}")
    call.state.put(open_offer_key(pid),
                   {**offer, "state": "withdrawn", "withdrawn_height": call.ctx.height})
    call.emit("licence", "open_withdrawn", patent=pid, offer=offer["id"])


def find_open_licence(state: State, org: str, offer_id: str, today: str) -> str | None:
    """A running licence `org` already took under this declaration."""
    for key in state.keys(f"licidx/licensee/{org}/"):
        licence = state.get(f"licence/{key.rsplit('/', 1)[1]}")
        if licence["open_offer"] == offer_id and licence["end_date"] >= today:
            return licence["id"]
    return None


def build_open_licence(call: Call, offer: dict[str, Any]) -> dict[str, Any]:
    today = get_block_iso(call.ctx.timestamp_ms)
    last_day = get_patent_last_day(call.state, offer["patent"],
                                   get_block_date(call.ctx.timestamp_ms)).isoformat()
    end = last_day if offer["term_days"] is None else min(
        last_day, add_days_iso(today, offer["term_days"] - 1))
    royalty_terms = {name: offer[name] for name in royalty.ROYALTY_TERMS}
    return {
        "id": call.tx.id[:16], "state": "offered", "offered_by": offer["declared_by"],
        "licensors": offer["licensors"], "licensee": call.org, "patents": [offer["patent"]],
        "kind": "non_exclusive", "fields": [ANY], "territories": [ANY],
        "start_date": today, "end_date": end, "sublicensable": False, "fee": offer["price"],
        **royalty_terms, "open_offer": offer["id"], "height": call.ctx.height,
        "timestamp_ms": call.ctx.timestamp_ms, "accepted_height": None,
        "accepted_timestamp_ms": None,
    }


def on_take_open(call: Call) -> None:
    """Anyone but an owner takes a licence on the published terms by paying the price."""
    args: TakeOpenArgs = call.args
    pid, now_ms = args.patent, call.ctx.timestamp_ms
    registry.get_patent(call.state, pid)
    offer = get_live_open_offer(call.state, pid)
    if offer is None:
        raise OpenOfferNotFound(f"{pid} has no live open-licence declaration")
    if args.price is not None and args.price != offer["price"]:
        raise PriceChanged(f"the price is {offer['price']}, not {args.price}")
    if registry.is_owner(call.state, pid, call.org):
        raise errors.BadArguments(f"{call.org} owns {pid}; an owner needs no licence")
    check_patent_usable(call.state, pid, now_ms)
    if registry.get_owners(call.state, pid) != offer["licensors"]:
        raise OfferStale(f"the owners of {pid} changed since the declaration")
    held = find_open_licence(call.state, call.org, offer["id"], get_block_iso(now_ms))
    if held is not None:
        raise AlreadyLicensed(f"{call.org} already holds open licence {held} on {pid}")
    licence = build_open_licence(call, offer)
    parts = activate(call, licence)
    index_parties(call.state, licence)
    call.state.put(open_offer_key(pid), {**offer, "granted": offer["granted"] + 1})
    call.emit("licence", "open_taken", licence=licence["id"], patent=pid, licensee=call.org,
              fee=licence["fee"], parts=parts)


# -- queries -------------------------------------------------------------------------


def describe_licence(state: State, now_ms: int, licence: dict[str, Any]) -> dict[str, Any]:
    return {**licence, "in_force": is_licence_active(state, licence["id"], now_ms)}


def query_licences(state: State, now_ms: int, *parts: str) -> Any:
    """/licences: all; /licences/<lid>; /licences/licensee|licensor/<org>;
    /licences/patent/<pid> (the accepted licences on that patent)."""
    if len(parts) == 1:
        return describe_licence(state, now_ms, get_licence(state, parts[0]))
    if not parts:
        keys = [key[len("licence/"):] for key in state.keys("licence/")]
    elif len(parts) == 2 and parts[0] in ("licensee", "licensor"):
        keys = [key.rsplit("/", 1)[1] for key in state.keys(f"licidx/{parts[0]}/{parts[1]}/")]
    elif len(parts) == 2 and parts[0] == "patent":
        keys = [key.rsplit("/", 1)[1] for key in state.keys(f"licidx/patent/{parts[1]}/")]
    else:
        raise errors.BadArguments(
            "licences/[<id> | licensee/<org> | licensor/<org> | patent/<pid>]")
    return [describe_licence(state, now_ms, get_licence(state, lid)) for lid in sorted(keys)]


def query_open_licences(state: State, now_ms: int, pid: str | None = None) -> Any:
    if pid is not None:
        offer = state.get(open_offer_key(pid))
        if offer is None:
            raise OpenOfferNotFound(f"{pid} never had an open-licence declaration")
        return offer
    return [value for _, value in state.items("open_offer/")]


OPS = {
    "licence.offer": Op(on_offer, roles=LICENSING_ROLES, args=OfferArgs,
                        doc="Offer a licence on patents you own to one organisation."),
    "licence.accept": Op(on_accept, roles=LICENSING_ROLES, args=LicenceRef,
                         doc="Accept a licence offered to you: pays the fee, activates it."),
    "licence.withdraw": Op(on_withdraw, roles=LICENSING_ROLES, args=LicenceRef,
                           doc="Withdraw a licence offer you made (while still offered)."),
    "licence.open_offer": Op(on_open_offer, roles=LICENSING_ROLES, args=OpenOfferArgs,
                             doc="Declare an open licence on a granted patent you own."),
    "licence.open_withdraw": Op(on_open_withdraw, roles=LICENSING_ROLES, args=PatentRef,
                                doc="Withdraw your patent's open-licence declaration."),
    "licence.take_open": Op(on_take_open, roles=LICENSING_ROLES, args=TakeOpenArgs,
                            doc="Take a licence under an open declaration by paying its price."),
    **royalty.OPS,
}
QUERIES = {"licences": query_licences, "open_licences": query_open_licences,
           **royalty.QUERIES}
