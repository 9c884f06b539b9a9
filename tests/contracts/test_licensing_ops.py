"""licence.offer / accept / withdraw, open licences, and the licence queries: one table
per op (pre-state, op, expected error or post-state)."""

from __future__ import annotations

import pytest
from test_licensing_support import (
    A, B, LAB, PENDING, Case, advance_to, bpc, grant_licence, new_pool, new_world, offer,
    offer_args, pledge, pool_in, run_case, set_status,
)

from contracts.licensing.offers import get_licence, is_licence_active

# -- licence.offer ----------------------------------------------------------------------


def _offered(chain, ctx, receipt):
    lid = receipt.events[0].data["licence"]
    licence = get_licence(chain.state, lid)
    assert licence["state"] == "offered" and licence["licensee"] == "bolt"
    assert licence["licensors"] == [["acme", 10_000]]
    assert licence["sublicensable"] is False
    assert lid == receipt.tx_id[:16]
    assert chain.query("licences", "licensee", "bolt")[0]["id"] == lid


def _co_owned_licensors(chain, ctx, receipt):
    licence = get_licence(chain.state, receipt.events[0].data["licence"])
    # CN:1 (acme 100 %) and CN:2 (acme 60, univ 40): acme 16 000 / 20 000 = 80 %
    assert licence["licensors"] == [["acme", 8000], ["univ", 2000]]
    assert licence["patents"] == [A, B]


def _exclusive_granted(chain):
    return {"lid": grant_licence(chain, kind="exclusive", fields=["phones"],
                                 territories=["CN"])}


def _non_exclusive_granted(chain):
    return {"lid": grant_licence(chain, licensee="univ")}


def _pooled_a(chain):
    pool = new_pool(chain)
    pool_in(chain, pool, A, "acme")
    return {"pool": pool}


def _open_a(chain):
    chain.must("acme", "licence.open_offer", patent=A, price=100)
    return {}


OFFER_CASES = [
    Case("non-exclusive offer is recorded, not yet active", "acme", offer_args(),
         check=_offered),
    Case("licensors are every owner of every patent, pro rata", "acme",
         offer_args(patents=[B, A]), check=_co_owned_licensors),
    Case("a pending application may be licensed", "acme", offer_args(patents=[PENDING])),
    Case("unknown kind", "acme", offer_args(kind="semi"), "BadArguments"),
    Case("no patents", "acme", offer_args(patents=[]), "BadArguments"),
    Case("a patent listed twice", "acme", offer_args(patents=[A, A]), "BadArguments"),
    Case("unknown patent", "acme", offer_args(patents=["CN:99"]), "NotFound"),
    Case("sender owns none of it", "bolt", offer_args(licensee="univ"), "NotLicensor"),
    Case("sender owns only some of the patents", "univ",
         offer_args(patents=[A, B]), "NotLicensor"),
    Case("licensee unknown", "acme", offer_args(licensee="nobody"), "UnknownAccount"),
    Case("licensee owns a licensed patent", "acme",
         offer_args(patents=[B], licensee="univ"), "BadArguments"),
    Case("start after end", "acme",
         offer_args(start_date="2025-01-01", end_date="2024-12-31"), "BadArguments"),
    Case("already over", "acme",
         offer_args(start_date="2022-01-01", end_date="2023-12-31"), "BadArguments"),
    Case("not an ISO date", "acme", offer_args(end_date="20251231"), "BadArguments"),
    Case("not a calendar date", "acme", offer_args(end_date="2025-02-30"), "BadArguments"),
    Case("wildcard mixed with names", "acme", offer_args(fields=["*", "phones"]),
         "BadArguments"),
    Case("empty territory list", "acme", offer_args(territories=[]), "BadArguments"),
    Case("royalty above 100 %", "acme", offer_args(royalty_bps=10_001), "BadArguments"),
    Case("per-unit floor above cap", "acme",
         offer_args(royalty_floor_per_unit=5, royalty_cap_per_unit=4), "BadArguments"),
    Case("negative fee", "acme", offer_args(fee=-1), "BadArguments"),
    Case("boolean fee", "acme", offer_args(fee=True), "BadArguments"),
    Case("sublicensable must be a bool", "acme", offer_args(sublicensable="yes"),
         "BadArguments"),
    Case("regulator writes nothing", "reg", offer_args(), "Unauthorized"),
    Case("lapsed patent", "acme", offer_args(), "PatentInactive",
         setup=lambda ch: set_status(ch, A, "LAPSED") or {}),
    Case("pledged patent (Civil Code Art. 444)", "acme", offer_args(), "PatentPledged",
         setup=lambda ch: pledge(ch, A) or {}),
    Case("exclusive over an active non-exclusive licence", "acme",
         offer_args(kind="exclusive", licensee="bolt"), "ExclusiveConflict",
         setup=_non_exclusive_granted),
    Case("non-exclusive inside an exclusive cell", "acme",
         offer_args(licensee="univ", fields=["phones"]), "ExclusiveConflict",
         setup=_exclusive_granted),
    Case("sole over an exclusive cell", "acme",
         offer_args(licensee="univ", kind="sole", territories=["CN", "US"]),
         "ExclusiveConflict", setup=_exclusive_granted),
    Case("wildcard field overlaps a named one", "acme",
         offer_args(licensee="univ", territories=["CN"]), "ExclusiveConflict",
         setup=_exclusive_granted),
    Case("another field is free", "acme",
         offer_args(licensee="univ", kind="exclusive", fields=["cars"]),
         setup=_exclusive_granted),
    Case("another territory is free", "acme",
         offer_args(licensee="univ", kind="sole", territories=["US"]),
         setup=_exclusive_granted),
    Case("after the exclusive term is free", "acme",
         offer_args(licensee="univ", start_date="2026-01-01", end_date="2027-12-31"),
         setup=_exclusive_granted),
    Case("exclusive on a pooled patent", "acme", offer_args(kind="exclusive"),
         "ExclusiveConflict", setup=_pooled_a),
    Case("non-exclusive on a pooled patent: owners keep bilateral rights", "acme",
         offer_args(), setup=_pooled_a),
    Case("sole under an open-licence declaration (Art. 51)", "acme",
         offer_args(kind="sole"), "ExclusiveConflict", setup=_open_a),
]


@pytest.mark.parametrize("case", OFFER_CASES, ids=str)
def test_offer(case: Case) -> None:
    run_case("licence.offer", case)


# -- licence.accept -----------------------------------------------------------------------


def _offer_default(chain):
    return {"lid": offer(chain, fee=1001, patents=[A, B])}


def _accepted(chain, ctx, receipt):
    licence = get_licence(chain.state, ctx["lid"])
    assert licence["state"] == "active" and licence["accepted_height"] == chain.height
    # 1001 by 8000:2000 -> 800.8 / 200.2: the remainder unit goes to acme (larger rest)
    assert receipt.events[0].data["parts"] == {"acme": 801, "univ": 200}
    assert bpc(chain, "bolt") == 1_000_000 - 1001
    assert bpc(chain, "acme") == 1_000_000 + 801 and bpc(chain, "univ") == 1_000_000 + 200
    assert is_licence_active(chain.state, ctx["lid"], chain.timestamp_ms)
    assert [item["id"] for item in chain.query("licences", "patent", A)] == [ctx["lid"]]


def _two_exclusive_offers(chain):
    first = offer(chain, kind="exclusive")
    second = offer(chain, kind="exclusive", licensee="univ")
    chain.must("bolt", "licence.accept", licence=first)
    return {"lid": second}


def _assigned_after_offer(chain):
    lid = offer(chain)
    chain.must("acme", "patent.assign", patent=A, to=[["lab", 10_000]])
    return {"lid": lid}


def _pooled_after_offer(chain):
    lid = offer(chain, kind="exclusive")
    pool = new_pool(chain)
    pool_in(chain, pool, A, "acme")
    return {"lid": lid}


def _opened_after_offer(chain):
    lid = offer(chain, kind="sole")
    chain.must("acme", "licence.open_offer", patent=A, price=5)
    return {"lid": lid}


def _then(step):
    """A setup that offers the default licence, then does `step`."""
    def setup(chain):
        lid = offer(chain)
        step(chain)
        return {"lid": lid}
    return setup


def _withdrawn_offer(chain):
    lid = offer(chain)
    chain.must("acme", "licence.withdraw", licence=lid)
    return {"lid": lid}


def _lid(ctx):
    return {"licence": ctx["lid"]}


ACCEPT_CASES = [
    Case("licensee pays the fee to the licensors by share", "bolt", _lid,
         setup=_offer_default, check=_accepted),
    Case("only the licensee accepts", "univ", _lid, "NotLicensee", setup=_offer_default),
    Case("unknown licence", "bolt", {"licence": "00" * 8}, "LicenceNotFound"),
    Case("accepting twice", "bolt", _lid, "LicenceNotOffered",
         setup=lambda ch: {"lid": grant_licence(ch)}),
    Case("withdrawn offer", "bolt", _lid, "LicenceNotOffered", setup=_withdrawn_offer),
    Case("licensee cannot pay", "poor", _lid, "InsufficientFunds",
         setup=lambda ch: {"lid": offer(ch, licensee="poor", fee=51)}),
    Case("licensee pays exactly all it has", "poor", _lid,
         setup=lambda ch: {"lid": offer(ch, licensee="poor", fee=50)},
         check=lambda ch, ctx, r: bpc(ch, "poor") == 0 or pytest.fail("poor kept BPC")),
    Case("a competing exclusive was accepted first", "univ", _lid, "ExclusiveConflict",
         setup=_two_exclusive_offers),
    Case("the patent lapsed since the offer", "bolt", _lid, "PatentInactive",
         setup=_then(lambda ch: set_status(ch, A, "LAPSED"))),
    Case("the patent was pledged since the offer", "bolt", _lid, "PatentPledged",
         setup=_then(lambda ch: pledge(ch, A))),
    Case("the owners changed since the offer", "bolt", _lid, "OfferStale",
         setup=_assigned_after_offer),
    Case("the licence term is over", "bolt", _lid, "OfferExpired",
         setup=_then(lambda ch: advance_to(ch, "2026-01-01"))),
    Case("the patent joined a pool since the exclusive offer", "bolt", _lid,
         "ExclusiveConflict", setup=_pooled_after_offer),
    Case("an open licence was declared since the sole offer", "bolt", _lid,
         "ExclusiveConflict", setup=_opened_after_offer),
]


@pytest.mark.parametrize("case", ACCEPT_CASES, ids=str)
def test_accept(case: Case) -> None:
    run_case("licence.accept", case)


# -- licence.withdraw ---------------------------------------------------------------------

WITHDRAW_CASES = [
    Case("the offering licensor withdraws", "acme", _lid,
         setup=lambda ch: {"lid": offer(ch)},
         check=lambda ch, ctx, r: get_licence(ch.state, ctx["lid"])["state"] == "withdrawn"
         or pytest.fail("not withdrawn")),
    Case("a co-owner licensor withdraws", "univ", _lid,
         setup=lambda ch: {"lid": offer(ch, patents=[B])}),
    Case("a stranger cannot", "bolt", _lid, "NotLicensor",
         setup=lambda ch: {"lid": offer(ch)}),
    Case("an accepted licence cannot be withdrawn", "acme", _lid, "LicenceNotOffered",
         setup=lambda ch: {"lid": grant_licence(ch)}),
]


@pytest.mark.parametrize("case", WITHDRAW_CASES, ids=str)
def test_withdraw(case: Case) -> None:
    run_case("licence.withdraw", case)


# -- licence.open_offer -------------------------------------------------------------------


def _declared(chain, ctx, receipt):
    declaration = chain.query("open_licences", A)
    assert declaration["state"] == "open" and declaration["price"] == 100
    assert declaration["royalty_bps"] == 200 and declaration["term_days"] == 365
    assert declaration["licensors"] == [["acme", 10_000]]


def _past_exclusive(chain):
    grant_licence(chain, kind="exclusive", end_date="2024-03-31")
    advance_to(chain, "2024-04-01")
    return {}


OPEN_OFFER_CASES = [
    Case("the owner declares an open licence", "acme",
         {"patent": A, "price": 100, "terms": {"royalty_bps": 200, "term_days": 365}},
         check=_declared),
    Case("pending applications cannot be declared open", "acme",
         {"patent": PENDING, "price": 1}, "PatentNotGranted"),
    Case("only an owner declares", "bolt", {"patent": A, "price": 1}, "NotLicensor"),
    Case("a pledged patent cannot be declared open", "acme", {"patent": A, "price": 1},
         "PatentPledged", setup=lambda ch: pledge(ch, A) or {}),
    Case("one live declaration per patent", "acme", {"patent": A, "price": 1},
         "OpenOfferExists", setup=_open_a),
    Case("a patent under a running exclusive licence", "acme", {"patent": A, "price": 1},
         "ExclusiveConflict", setup=_exclusive_granted),
    Case("an exclusive licence that has ended does not block", "acme",
         {"patent": A, "price": 1}, setup=_past_exclusive),
    Case("unknown terms key", "acme", {"patent": A, "price": 1, "terms": {"rate": 1}},
         "BadArguments"),
    Case("zero-day term", "acme", {"patent": A, "price": 1, "terms": {"term_days": 0}},
         "BadArguments"),
    Case("a term beyond any patent's", "acme",
         {"patent": A, "price": 1, "terms": {"term_days": 2**40}}, "BadArguments"),
    Case("negative price", "acme", {"patent": A, "price": -1}, "BadArguments"),
]


@pytest.mark.parametrize("case", OPEN_OFFER_CASES, ids=str)
def test_open_offer(case: Case) -> None:
    run_case("licence.open_offer", case)


# -- licence.take_open and licence.open_withdraw ------------------------------------------


def _open_b(chain):
    chain.must("acme", "licence.open_offer", patent=B, price=1001,
               terms={"royalty_bps": 300, "term_days": 10})
    return {}


def _taken(chain, ctx, receipt):
    data = receipt.events[0].data
    licence = get_licence(chain.state, data["licence"])
    assert licence["kind"] == "non_exclusive" and licence["licensee"] == "bolt"
    assert licence["fields"] == ["*"] and licence["territories"] == ["*"]
    assert licence["start_date"] == "2024-01-01" and licence["end_date"] == "2024-01-10"
    assert licence["royalty_bps"] == 300 and licence["state"] == "active"
    assert data["parts"] == {"acme": 601, "univ": 400}
    assert chain.query("open_licences", B)["granted"] == 1


def _open_a_withdrawn(chain):
    _open_a(chain)
    chain.must("acme", "licence.open_withdraw", patent=A)
    return {}


def _taken_once(chain):
    chain.must("acme", "licence.open_offer", patent=A, price=10)
    chain.must("bolt", "licence.take_open", patent=A)
    return {}


TAKE_CASES = [
    Case("anyone takes it by paying; owners paid by share", "bolt", {"patent": B},
         setup=_open_b, check=_taken),
    Case("without a term the licence runs to the patent's last day", "bolt", {"patent": A},
         setup=_open_a,
         check=lambda ch, ctx, r: get_licence(ch.state, r.events[0].data["licence"])[
             "end_date"] == "2043-02-28" or pytest.fail("wrong end date")),
    Case("the agreed price guards against a change", "bolt", {"patent": A, "price": 99},
         "PriceChanged", setup=_open_a),
    Case("no declaration", "bolt", {"patent": A}, "OpenOfferNotFound"),
    Case("withdrawn declaration", "bolt", {"patent": A}, "OpenOfferNotFound",
         setup=_open_a_withdrawn),
    Case("an owner needs no licence", "univ", {"patent": B}, "BadArguments", setup=_open_b),
    Case("one running licence per taker", "bolt", {"patent": A}, "AlreadyLicensed",
         setup=_taken_once),
    Case("taker cannot pay", "poor", {"patent": B}, "InsufficientFunds", setup=_open_b),
    Case("the patent lapsed since the declaration", "bolt", {"patent": A},
         "PatentInactive", setup=lambda ch: _open_a(ch) or set_status(ch, A, "LAPSED") or {}),
]


@pytest.mark.parametrize("case", TAKE_CASES, ids=str)
def test_take_open(case: Case) -> None:
    run_case("licence.take_open", case)


OPEN_WITHDRAW_CASES = [
    Case("an owner withdraws", "acme", {"patent": A}, setup=_open_a,
         check=lambda ch, ctx, r: ch.query("open_licences", A)["state"] == "withdrawn"
         or pytest.fail("still open")),
    Case("a co-owner withdraws", "univ", {"patent": B}, setup=_open_b),
    Case("a stranger cannot", "bolt", {"patent": A}, "NotLicensor", setup=_open_a),
    Case("nothing to withdraw", "acme", {"patent": A}, "OpenOfferNotFound"),
]


@pytest.mark.parametrize("case", OPEN_WITHDRAW_CASES, ids=str)
def test_open_withdraw(case: Case) -> None:
    run_case("licence.open_withdraw", case)


def test_withdrawing_an_open_licence_keeps_licences_already_granted() -> None:
    chain = new_world()
    chain.must("acme", "licence.open_offer", patent=A, price=10)
    lid = chain.must("bolt", "licence.take_open", patent=A).events[0].data["licence"]
    chain.must("acme", "licence.open_withdraw", patent=A)
    assert is_licence_active(chain.state, lid, chain.timestamp_ms)
    chain.fails("OpenOfferNotFound", "univ", "licence.take_open", patent=A)
    # the granted non-exclusive licence still blocks an overlapping exclusive one
    chain.fails("ExclusiveConflict", "acme", "licence.offer", **offer_args(
        licensee="univ", kind="exclusive"))


def test_exclusive_possible_again_once_open_licences_end() -> None:
    chain = new_world()
    chain.must("acme", "licence.open_offer", patent=A, price=10, terms={"term_days": 30})
    chain.must("bolt", "licence.take_open", patent=A)
    chain.must("acme", "licence.open_withdraw", patent=A)
    chain.fails("ExclusiveConflict", "acme", "licence.offer",
                **offer_args(licensee="univ", kind="exclusive", end_date="2024-06-30"))
    lid = offer(chain, licensee="univ", kind="exclusive", start_date="2024-02-01",
                end_date="2024-06-30")
    chain.must("univ", "licence.accept", licence=lid)


# -- reads --------------------------------------------------------------------------------


def test_licence_queries_by_party_and_patent() -> None:
    chain = new_world()
    first = grant_licence(chain, patents=[B])
    second = offer(chain, licensee="lab")
    assert [x["id"] for x in chain.query("licences", "licensor", "univ")] == [first]
    assert sorted(x["id"] for x in chain.query("licences", "licensor", "acme")) == sorted(
        [first, second])
    assert [x["id"] for x in chain.query("licences", "licensee", "lab")] == [second]
    assert chain.query("licences", first)["in_force"] is True
    assert chain.query("licences", second)["in_force"] is False
    assert {x["id"] for x in chain.query("licences")} == {first, second}
    assert [x["id"] for x in chain.query("licences", "patent", B)] == [first]
    with pytest.raises(Exception) as info:
        chain.query("licences", "nope")
    assert getattr(info.value, "code", "") == "LicenceNotFound"
    with pytest.raises(Exception) as info:
        chain.query("licences", "a", "b", "c")
    assert getattr(info.value, "code", "") == "BadArguments"


def test_licence_stops_being_in_force_when_its_patents_die_or_its_term_ends() -> None:
    chain = new_world()
    lid = grant_licence(chain, patents=[A, B], licensee="lab", end_date="2024-12-31")
    set_status(chain, A, "LAPSED")
    assert is_licence_active(chain.state, lid, chain.timestamp_ms)
    set_status(chain, B, "INVALIDATED")
    assert not is_licence_active(chain.state, lid, chain.timestamp_ms)
    other = grant_licence(chain, patents=[LAB], sender="lab", licensee="bolt",
                          end_date="2024-12-31")
    assert is_licence_active(chain.state, other, chain.timestamp_ms)
    advance_to(chain, "2025-01-01")
    chain.block([])
    assert not is_licence_active(chain.state, other, chain.timestamp_ms)
    assert not is_licence_active(chain.state, "nonexistent", chain.timestamp_ms)
