"""market.list / buy / offer / accept / cancel / delist: one table per op (pre-state,
op, expected error or post-state; every refusal also asserts the state root did not
move), and the hand-checked settlement of the issue."""

from __future__ import annotations

import pytest
from test_exchange_support import (
    A, B, C, CLEARING, ESCROW, LATER, PENDING, Case, bpc, fund_loan, list_patent, make_offer,
    new_world, run_case,
)

from contracts.exchange.sales import get_listing, get_offer

# -- the hand-checked example ---------------------------------------------------------------


def test_hand_checked_settlement_price_1000003_fee_25bps_pledge_400000_owners_6667_3333():
    """Price 1 000 003 at 25 bps: fee floor(1 000 003 x 25 / 10 000) = floor(2 500.0075)
    = 2 500 to the clearing account. The pledgee gets its 400 000. The sellers split
    1 000 003 - 2 500 - 400 000 = 597 503 by 6 667 : 3 333: 398 355.2401 and
    199 147.7499, floors 398 355 + 199 147 = 597 502, and the one unit left goes to the
    larger remainder (0.7499, univ): acme 398 355, univ 199 148."""
    chain = new_world()
    for owner in ("acme", "univ"):
        chain.must(owner, "patent.pledge", patent=B, pledgee="fund", amount=400_000,
                   until="2030-01-01")
    listing = list_patent(chain, B, price=1_000_003)
    before = {org: bpc(chain, org) for org in ("bank", CLEARING, "fund", "acme", "univ")}
    receipt = chain.must("bank", "market.buy", listing=listing, price=1_000_003)
    gained = {org: bpc(chain, org) - before[org] for org in before}
    assert gained == {"bank": -1_000_003, CLEARING: 2_500, "fund": 400_000,
                      "acme": 398_355, "univ": 199_148}
    assert sum(gained.values()) == 0
    settled = receipt.events[0].data
    assert (settled["clearing_fee"], settled["secured_paid"], settled["parts"]) == (
        2_500, 400_000, {"acme": 398_355, "univ": 199_148})
    assert chain.get(f"patent/{B}")["owners"] == [["bank", 10_000]]
    assert chain.get(f"pledge/{B}") is None
    assert get_listing(chain.state, listing)["state"] == "sold"


def test_a_sale_pays_off_an_exchange_loan_with_its_interest_and_closes_it():
    chain = new_world()
    loan = fund_loan(chain, principal=400_000, rate_bps=730, term_days=90)
    chain.advance(days=10)  # 400 000 x 7.30 % x 10 / 365 = 800 of interest
    listing = list_patent(chain, A, price=1_000_000)
    bank_before = bpc(chain, "bank")
    chain.must("bolt", "market.buy", listing=listing, price=1_000_000)
    assert bpc(chain, "bank") - bank_before == 400_800
    record = chain.get(f"loan/{loan}")
    assert (record["state"], record["closed_by"], record["on_time"]) == ("repaid", "sale", True)
    assert chain.get(f"pledge/{A}") is None


# -- market.list --------------------------------------------------------------------------


def _listed(chain, ctx, receipt):
    listing = get_listing(chain.state, receipt.events[0].data["listing"])
    assert listing["state"] == "open" and listing["sellers"] == [["acme", 10_000]]
    assert chain.query("listings", listing["id"])["expired"] is False


def _half_signed(chain, ctx, receipt):
    assert receipt.events[0].name == "listing_signed"
    listing = get_listing(chain.state, receipt.events[0].data["listing"])
    assert (listing["state"], listing["approvals"]) == ("signing", ["acme"])


def _pledged_b(amount):
    def setup(chain):
        for owner in ("acme", "univ"):
            chain.must(owner, "patent.pledge", patent=B, pledgee="fund", amount=amount,
                       until="2030-01-01")
        return {}
    return setup


def _acme_signed_b(chain):
    chain.must("acme", "market.list", patent=B, price=5_000, expires=LATER)
    return {}


def list_args(**overrides):
    return {"patent": A, "price": 1_000, "expires": LATER, **overrides}


LIST_CASES = [
    Case("a sole owner's listing is open at once", "acme", list_args(), check=_listed),
    Case("one of two owners: signing, not open", "acme", list_args(patent=B),
         check=_half_signed),
    Case("the second owner signs the same terms", "univ",
         list_args(patent=B, price=5_000), setup=_acme_signed_b,
         check=lambda ch, ctx, r: r.events[0].name == "listed" or pytest.fail("not open")),
    Case("the same owner twice", "acme", list_args(patent=B, price=5_000), "AlreadyApproved",
         setup=_acme_signed_b),
    Case("not an owner", "bolt", list_args(), "NotOwner"),
    Case("pending application", "acme", list_args(patent=PENDING), "PatentNotInForce"),
    Case("unknown patent", "acme", list_args(patent="CN:99"), "NotFound"),
    Case("zero price", "acme", list_args(price=0), "BadArguments"),
    Case("price above the range", "acme", list_args(price=2**62 + 1), "BadArguments"),
    Case("boolean price", "acme", list_args(price=True), "BadArguments"),
    Case("expired already", "acme", list_args(expires="2023-12-31"), "BadArguments"),
    Case("not a date", "acme", list_args(expires="soon"), "BadArguments"),
    Case("unknown argument", "acme", {**list_args(), "note": "x"}, "BadArguments"),
    Case("missing argument", "acme", {"patent": A, "price": 1}, "BadArguments"),
    Case("pledge larger than the price after the fee", "acme",
         list_args(patent=B, price=1_000_000), "PledgeExceedsPrice",
         setup=_pledged_b(997_501)),
    Case("pledge the price just covers", "acme", list_args(patent=B, price=1_000_000),
         setup=_pledged_b(997_500)),
    Case("regulator writes nothing", "reg", list_args(), "Unauthorized"),
]


@pytest.mark.parametrize("case", LIST_CASES, ids=str)
def test_list(case: Case) -> None:
    run_case("market.list", case)


# -- market.buy ---------------------------------------------------------------------------


def _listing_a(chain):
    return {"listing": list_patent(chain, A, price=1_000)}


def _half_listed_b(chain):
    receipt = chain.must("acme", "market.list", patent=B, price=1_000, expires=LATER)
    return {"listing": receipt.events[0].data["listing"]}


def _listing_then_pledged(chain):
    ctx = _listing_a(chain)
    chain.must("acme", "patent.pledge", patent=A, pledgee="fund", amount=5_000,
               until="2030-01-01")
    return ctx


def _listing_then_lapsed(chain):
    ctx = _listing_a(chain)
    chain.must("cnipa", "patent.set_status", patent=A, status="LAPSED")
    return ctx


def _listing_then_assigned(chain):
    ctx = _listing_a(chain)
    chain.must("acme", "patent.assign", patent=A, to=[["acme", 5000], ["univ", 5000]])
    return ctx


def _listing_expired(chain):
    ctx = {"listing": list_patent(chain, A, price=1_000, expires="2024-01-02")}
    chain.advance(days=3)
    return ctx


def _listing_delisted(chain):
    ctx = _listing_a(chain)
    chain.must("acme", "market.delist", listing=ctx["listing"])
    return ctx


def _bought(chain, ctx, receipt):
    assert chain.get(f"patent/{A}")["owners"] == [["univ", 10_000]]
    assert bpc(chain, CLEARING) == 2  # 1 000 x 25 bps = 2.5 -> 2
    assert [e.name for e in receipt.events] == ["settled", "assigned"]


def buy(ctx, **overrides):
    return {"listing": ctx["listing"], "price": 1_000, **overrides}


BUY_CASES = [
    Case("buy at the listed price", "univ", buy, setup=_listing_a, check=_bought),
    Case("price mismatch", "univ", lambda ctx: buy(ctx, price=999), "PriceMismatch",
         setup=_listing_a),
    Case("expired listing", "univ", buy, "Expired", setup=_listing_expired),
    Case("listing signed by fewer than all owners", "bolt", buy, "ListingIncomplete",
         setup=_half_listed_b),
    Case("delisted", "univ", buy, "NotOpen", setup=_listing_delisted),
    Case("owners changed since the listing", "bolt", buy, "ListingStale",
         setup=_listing_then_assigned),
    Case("lapsed since the listing: not in force", "univ", buy, "PatentNotInForce",
         setup=_listing_then_lapsed),
    Case("pledged since, above the price", "univ", buy, "PledgeExceedsPrice",
         setup=_listing_then_pledged),
    Case("the owner buys its own patent", "acme", buy, "BuyerIsOwner", setup=_listing_a),
    Case("buyer cannot pay", "poor", buy, "InsufficientFunds", setup=_listing_a),
    Case("unknown listing", "univ", {"listing": "00" * 8, "price": 1_000}, "ListingNotFound"),
    Case("sold already", "bolt", buy, "NotOpen",
         setup=lambda ch: (ctx := _listing_a(ch)) and ch.must(
             "univ", "market.buy", **buy(ctx)) and ctx),
]


@pytest.mark.parametrize("case", BUY_CASES, ids=str)
def test_buy(case: Case) -> None:
    run_case("market.buy", case)


# -- market.offer, accept, cancel -----------------------------------------------------------


def _offered(chain, ctx, receipt):
    offer = get_offer(chain.state, receipt.events[0].data["offer"])
    assert offer["state"] == "open" and bpc(chain, ESCROW) == 1_000
    assert bpc(chain, "univ") == 1_000_000 - 1_000


OFFER_CASES = [
    Case("escrowed at once", "univ", list_args(), check=_offered),
    Case("owner offers for its own patent", "acme", list_args(), "BuyerIsOwner"),
    Case("pending application", "univ", list_args(patent=PENDING), "PatentNotInForce"),
    Case("more than the buyer holds", "poor", list_args(price=51), "InsufficientFunds"),
    Case("expired already", "univ", list_args(expires="2023-12-31"), "BadArguments"),
    Case("zero price", "univ", list_args(price=0), "BadArguments"),
]


@pytest.mark.parametrize("case", OFFER_CASES, ids=str)
def test_offer(case: Case) -> None:
    run_case("market.offer", case)


def _offer_a(chain):
    return {"offer": make_offer(chain, "univ", A, 1_000)}


def _offer_b(chain):
    return {"offer": make_offer(chain, "bolt", B, 1_000)}


def _offer_expired(chain):
    ctx = {"offer": make_offer(chain, "univ", A, 1_000, expires="2024-01-02")}
    chain.advance(days=3)
    return ctx


def _accepted(chain, ctx, receipt):
    assert chain.get(f"patent/{A}")["owners"] == [["univ", 10_000]]
    assert bpc(chain, ESCROW) == 0 and bpc(chain, "acme") == 1_000_000 + 998
    assert get_offer(chain.state, ctx["offer"])["state"] == "accepted"


def _one_of_two_accepted(chain, ctx, receipt):
    assert get_offer(chain.state, ctx["offer"])["approvals"] == ["acme"]
    assert chain.get(f"patent/{B}")["owners"] == [["acme", 6667], ["univ", 3333]]


def accept(ctx, **overrides):
    return {"offer": ctx["offer"], "price": 1_000, **overrides}


ACCEPT_CASES = [
    Case("the sole owner accepts: settled from escrow", "acme", accept, setup=_offer_a,
         check=_accepted),
    Case("one of two owners: recorded, not settled", "acme", accept, setup=_offer_b,
         check=_one_of_two_accepted),
    Case("not an owner", "bolt", accept, "NotOwner", setup=_offer_a),
    Case("price mismatch", "acme", lambda ctx: accept(ctx, price=1_001), "PriceMismatch",
         setup=_offer_a),
    Case("expired offer", "acme", accept, "Expired", setup=_offer_expired),
    Case("cancelled offer", "acme", accept, "NotOpen",
         setup=lambda ch: (ctx := _offer_a(ch)) and ch.must(
             "univ", "market.cancel", offer=ctx["offer"]) and ctx),
    Case("unknown offer", "acme", {"offer": "ff" * 8, "price": 1}, "OfferNotFound"),
]


@pytest.mark.parametrize("case", ACCEPT_CASES, ids=str)
def test_accept(case: Case) -> None:
    run_case("market.accept", case)


def _cancelled(chain, ctx, receipt):
    assert bpc(chain, ESCROW) == 0 and bpc(chain, "univ") == 1_000_000
    assert get_offer(chain.state, ctx["offer"])["state"] == "cancelled"


CANCEL_CASES = [
    Case("the buyer cancels: escrow returned", "univ", lambda ctx: {"offer": ctx["offer"]},
         setup=_offer_a, check=_cancelled),
    Case("an expired offer's escrow comes back too", "univ",
         lambda ctx: {"offer": ctx["offer"]}, setup=_offer_expired, check=_cancelled),
    Case("someone else's offer", "bolt", lambda ctx: {"offer": ctx["offer"]}, "NotOfferer",
         setup=_offer_a),
    Case("accepted already", "univ", lambda ctx: {"offer": ctx["offer"]}, "NotOpen",
         setup=lambda ch: (ctx := _offer_a(ch)) and ch.must(
             "acme", "market.accept", **accept(ctx)) and ctx),
]


@pytest.mark.parametrize("case", CANCEL_CASES, ids=str)
def test_cancel(case: Case) -> None:
    run_case("market.cancel", case)


def test_delist_only_by_an_owner_and_only_once():
    chain = new_world()
    listing = list_patent(chain, A)
    chain.fails("NotOwner", "bolt", "market.delist", listing=listing)
    chain.must("acme", "market.delist", listing=listing)
    chain.fails("NotOpen", "acme", "market.delist", listing=listing)


# -- what a sale leaves alone -------------------------------------------------------------


def test_licences_and_pool_membership_survive_a_sale_and_the_buyer_contributes():
    chain = new_world()
    pool = chain.must("adm1", "pool.create", name="P", admin_fee_bps=1000,
                      bpr_ratio=[1, 100]).events[0].data["pool"]
    chain.must("eval", "pool.attest", pool=pool, patent=A)
    chain.must("acme", "pool.join", pool=pool, patent=A)
    licences = dict(chain.state.items("licence/"))
    members = dict(chain.state.items("pool_member/"))
    chain.must("univ", "market.buy", listing=list_patent(chain, A), price=1_000)
    assert dict(chain.state.items("licence/")) == licences
    assert dict(chain.state.items("pool_member/")) == members
    assert chain.query("licences", "patent", A)[0]["state"] == "active"
    described = chain.query("pools", pool)["members"][0]
    assert described["owners"] == [["univ", 10_000]]


def test_a_sale_voids_the_old_owners_listing_and_other_offers_stay_open():
    chain = new_world()
    listing = list_patent(chain, A)
    losing = make_offer(chain, "bolt", A, 700)
    winning = make_offer(chain, "univ", A, 900)
    chain.must("acme", "market.accept", offer=winning, price=900)
    assert get_listing(chain.state, listing)["state"] == "closed"
    assert get_offer(chain.state, losing)["state"] == "open"
    assert chain.query("market")["escrow"] == 700 == chain.query("market")["open_offers_total"]
    chain.must("bolt", "market.cancel", offer=losing)
    assert bpc(chain, ESCROW) == 0


def test_queries_list_listings_and_offers():
    chain = new_world()
    listing = list_patent(chain, C, price=5_000)
    offer = make_offer(chain, "acme", C, 4_000)
    assert [item["id"] for item in chain.query("listings")] == [listing]
    assert [item["id"] for item in chain.query("offers")] == [offer]
    assert chain.query("market")["clearing_account"] == CLEARING


# -- typed arguments, refused at admission ----------------------------------------------------


def test_every_exchange_op_declares_its_typed_schema():
    from contracts import exchange

    assert sorted(exchange.OPS) == [
        "loan.enforce", "loan.fund", "loan.repay", "loan.request", "market.accept",
        "market.buy", "market.cancel", "market.delist", "market.list", "market.offer"]
    assert all(op.args is not None and op.doc for op in exchange.OPS.values())


@pytest.mark.parametrize("op, args, field", [
    ("market.list", {"patent": A, "price": 1, "expires": LATER, "note": "x"}, "note"),
    ("market.list", {"patent": "cn-1", "price": 1, "expires": LATER}, "args.patent"),
    ("market.offer", {"patent": A, "price": 0, "expires": LATER}, "args.price"),
    ("market.offer", {"patent": A, "price": 1, "expires": "2024/12/31"}, "args.expires"),
    ("market.buy", {"listing": "XYZ", "price": 1}, "args.listing"),
    ("market.accept", {"offer": "0123456789abcdef"}, "price"),
    ("market.cancel", {"offer": "0123456789abcdef", "price": 1}, "price"),
    ("market.delist", {"listing": 7}, "args.listing"),
    ("loan.request", {"patent": A, "principal": 1, "rate_bps": 10_001, "term_days": 1},
     "args.rate_bps"),
    ("loan.request", {"patent": A, "principal": 1, "rate_bps": 1, "term_days": -1},
     "args.term_days"),
    ("loan.fund", {"loan": "0123456789ABCDEF"}, "args.loan"),
    ("loan.repay", {"loan": "0123456789abcdef", "amount": True}, "args.amount"),
    ("loan.enforce", {}, "loan"),
])
def test_bad_arguments_are_refused_at_admission_naming_the_field(op, args, field):
    from contract_chain import CHAIN_ID, signing_key

    from contracts import errors
    from contracts.runtime import check_args
    from contracts.tx import sign_tx

    with pytest.raises(errors.BadArguments) as info:
        check_args(sign_tx(signing_key("acme"), CHAIN_ID, 1, op, args))
    assert str(info.value).startswith(f"{op}: ") and field in str(info.value)
