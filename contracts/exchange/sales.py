"""Patent sales on the exchange: delivery versus payment, in one transaction.

A listing is signed by every current owner (like patent.assign) and names its price
and the last day it is good; any organisation may buy it at that price. A buyer may
instead offer a price: its BPC is escrowed at once, and the sale happens when every
owner has accepted the offer. Either way the settlement is one transaction: the price
pays the clearing fee (`clearing_fee_bps`, to the clearing account), then the pledgee
up to the outstanding secured amount (which releases the pledge; a pledge that secures
an exchange loan closes that loan as repaid), then the sellers by their shares (largest
remainder); the buyer becomes the sole owner. Nothing else about the patent changes:
licences run with the patent and pool membership stays, the buyer now counting as its
contributor (contracts/pool.py weighs contributors by current ownership).

A pledge whose secured amount is larger than what the price leaves after the clearing
fee is refused, rather than paid "up to" the price: the pledgee does not sign a sale,
so a sale must never release its pledge for less than it secures.

State: market_listing/<id>, market_offer/<id>, market_listed/<pid> -> the id of the
patent's current listing; the escrow is the BPC account ESCROW_ACCOUNT.
"""

from __future__ import annotations

from typing import Any

from contracts import errors
from contracts.exchange import loans
from contracts.exchange.common import (
    ESCROW_ACCOUNT, FULL_SHARE_BPS, BuyerIsOwner, Expired, ListingIncomplete, ListingNotFound,
    ListingStale, NotOfferer, NotOpen, NotOwner, OfferNotFound, PatentNotInForce,
    PledgeExceedsPrice, PriceMismatch, add_owner_signature, check_expires, get_exchange_config,
    get_owners, get_patent, get_pledge, get_status, is_expired, is_in_force, is_owner,
    record_id, set_owners, void_listing,
)
from contracts.exchange.schemas import (
    AcceptArgs, BuyArgs, ListArgs, ListingRef, OfferArgs, OfferRef,
)
from contracts.call import Call, Op
from contracts.split import split_by_weights
from contracts.state import State
from contracts.token.ledger import balance_of, transfer_units


def get_listing(state: State, listing_id: Any) -> dict[str, Any]:
    record = state.get(f"market_listing/{listing_id}") if isinstance(listing_id, str) else None
    if record is None:
        raise ListingNotFound(f"no listing {listing_id!r}")
    return record


def get_offer(state: State, offer_id: Any) -> dict[str, Any]:
    record = state.get(f"market_offer/{offer_id}") if isinstance(offer_id, str) else None
    if record is None:
        raise OfferNotFound(f"no offer {offer_id!r}")
    return record


def get_secured(state: State, pid: str, now_ms: int) -> tuple[int, dict[str, Any] | None]:
    """(outstanding secured amount, pledge): a loan's debt with interest to now, or the
    amount a plain pledge names."""
    pledge = get_pledge(state, pid)
    if pledge is None:
        return 0, None
    if pledge.get("loan") is not None:
        return loans.get_owed(loans.get_loan(state, pledge["loan"]), now_ms), pledge
    return pledge["amount"], pledge


def require_in_force(state: State, pid: str, now_ms: int) -> None:
    get_patent(state, pid)
    if not is_in_force(state, pid, now_ms):
        raise PatentNotInForce(f"{pid} is {get_status(state, pid, now_ms)}, not granted and "
                               f"in force")


def check_covers_pledge(state: State, pid: str, price: int, now_ms: int) -> tuple[int, int]:
    """(clearing fee, secured amount) of a sale at `price`; refuses a pledge it cannot pay."""
    fee = price * get_exchange_config(state)["clearing_fee_bps"] // FULL_SHARE_BPS
    secured, _ = get_secured(state, pid, now_ms)
    if secured > price - fee:
        raise PledgeExceedsPrice(f"{pid} secures {secured}; a price of {price} pays "
                                 f"{price - fee} after the clearing fee of {fee}")
    return fee, secured


# -- settlement ---------------------------------------------------------------------------


def settle(call: Call, pid: str, buyer: str, price: int, payer: str) -> dict[str, Any]:
    """Fee, pledgee, sellers, ownership: all of it or none (the runtime rolls back)."""
    state, now_ms = call.state, call.ctx.timestamp_ms
    require_in_force(state, pid, now_ms)
    fee, secured = check_covers_pledge(state, pid, price, now_ms)
    have = balance_of(state, "BPC", payer)
    if have < price:
        raise errors.InsufficientFunds(f"{payer} holds {have} BPC, the price is {price}")
    clearing = get_exchange_config(state)["clearing_account"]
    transfer_units(state, "BPC", payer, clearing, fee)
    pledge = get_pledge(state, pid)
    if pledge is not None:
        if pledge.get("loan") is not None:
            loans.settle_by_sale(state, pledge["loan"], now_ms)
        state.delete(f"pledge/{pid}")
        transfer_units(state, "BPC", payer, pledge["pledgee"], secured)
    sellers = get_owners(state, pid)
    parts = split_by_weights(price - fee - secured, dict(sellers))
    for org, part in parts.items():
        transfer_units(state, "BPC", payer, org, part)
    set_owners(state, pid, [[buyer, FULL_SHARE_BPS]])
    void_listing(state, pid)
    settlement = {"patent": pid, "buyer": buyer, "price": price, "clearing_fee": fee,
                  "clearing_account": clearing, "pledgee": pledge and pledge["pledgee"],
                  "secured_paid": secured, "loan": pledge and pledge.get("loan"),
                  "sellers": sellers, "parts": parts}
    call.emit("market", "settled", **settlement)
    if pledge is not None:
        call.emit("registry", "pledge_released", patent=pid, pledgee=pledge["pledgee"])
    call.emit("registry", "assigned", patent=pid, previous=sellers,
              owners=[[buyer, FULL_SHARE_BPS]])
    return settlement


# -- listings -----------------------------------------------------------------------------


def on_list(call: Call) -> None:
    """Every owner signs the same price and expiry; other terms replace the listing."""
    args = call.args
    state, pid, now_ms = call.state, args.patent, call.ctx.timestamp_ms
    require_in_force(state, pid, now_ms)
    if not is_owner(state, pid, call.org):
        raise NotOwner(f"{call.org} does not own {pid}")
    terms = {"price": args.price, "expires": check_expires(call, args.expires)}
    check_covers_pledge(state, pid, terms["price"], now_ms)
    listing_id = state.get(f"market_listed/{pid}")
    listing = None if listing_id is None else get_listing(state, listing_id)
    if (listing is None or {k: listing[k] for k in terms} != terms
            or listing["sellers"] != get_owners(state, pid)):
        if listing is not None:
            state.put(f"market_listing/{listing['id']}", {**listing, "state": "replaced"})
        listing = {"id": record_id(call), "patent": pid, **terms,
                   "sellers": get_owners(state, pid), "approvals": [], "state": "signing",
                   "height": call.ctx.height, "timestamp_ms": now_ms}
    if add_owner_signature(state, listing, call.org):
        listing["state"] = "open"
    state.put(f"market_listing/{listing['id']}", listing)
    state.put(f"market_listed/{pid}", listing["id"])
    call.emit("market", "listed" if listing["state"] == "open" else "listing_signed",
              listing=listing["id"], patent=pid, by=call.org, **terms)


def on_delist(call: Call) -> None:
    listing = get_listing(call.state, call.args.listing)
    if listing["state"] not in ("signing", "open"):
        raise NotOpen(f"listing {listing['id']} is {listing['state']}")
    if not is_owner(call.state, listing["patent"], call.org):
        raise NotOwner(f"{call.org} does not own {listing['patent']}")
    call.state.put(f"market_listing/{listing['id']}", {**listing, "state": "cancelled"})
    call.state.delete(f"market_listed/{listing['patent']}")
    call.emit("market", "delisted", listing=listing["id"], patent=listing["patent"],
              by=call.org)


def check_buyable(call: Call, listing: dict[str, Any], price: int) -> None:
    state, pid = call.state, listing["patent"]
    if listing["state"] == "signing":
        raise ListingIncomplete(f"listing {listing['id']} is signed by "
                                f"{listing['approvals']} only, not every owner")
    if listing["state"] != "open":
        raise NotOpen(f"listing {listing['id']} is {listing['state']}")
    if is_expired(listing, call.ctx.timestamp_ms):
        raise Expired(f"listing {listing['id']} expired on {listing['expires']}")
    if price != listing["price"]:
        raise PriceMismatch(f"listing {listing['id']} asks {listing['price']}, not {price}")
    if get_owners(state, pid) != listing["sellers"]:
        raise ListingStale(f"the owners of {pid} changed since listing {listing['id']}")
    if is_owner(state, pid, call.org):
        raise BuyerIsOwner(f"{call.org} already owns (a share of) {pid}")


def on_buy(call: Call) -> None:
    """The buyer names the price it agrees to pay: terms cannot change under it."""
    listing = get_listing(call.state, call.args.listing)
    check_buyable(call, listing, call.args.price)
    settle(call, listing["patent"], call.org, listing["price"], call.org)
    call.state.put(f"market_listing/{listing['id']}", {**listing, "state": "sold",
                                                       "buyer": call.org})


# -- offers -------------------------------------------------------------------------------


def on_offer(call: Call) -> None:
    args = call.args
    state, pid, now_ms = call.state, args.patent, call.ctx.timestamp_ms
    require_in_force(state, pid, now_ms)
    if is_owner(state, pid, call.org):
        raise BuyerIsOwner(f"{call.org} already owns (a share of) {pid}")
    price, expires = args.price, check_expires(call, args.expires)
    transfer_units(state, "BPC", call.org, ESCROW_ACCOUNT, price)
    offer = {"id": record_id(call), "patent": pid, "buyer": call.org, "price": price,
             "expires": expires, "approvals": [], "state": "open",
             "height": call.ctx.height, "timestamp_ms": now_ms}
    state.put(f"market_offer/{offer['id']}", offer)
    call.emit("market", "offered", offer=offer["id"], patent=pid, buyer=call.org, price=price,
              expires=expires)


def on_accept(call: Call) -> None:
    """Each owner accepts (naming the price); the last acceptance settles from escrow."""
    state, price = call.state, call.args.price
    offer = get_offer(state, call.args.offer)
    if offer["state"] != "open":
        raise NotOpen(f"offer {offer['id']} is {offer['state']}")
    if is_expired(offer, call.ctx.timestamp_ms):
        raise Expired(f"offer {offer['id']} expired on {offer['expires']}")
    if price != offer["price"]:
        raise PriceMismatch(f"offer {offer['id']} is for {offer['price']}, not {price}")
    if not is_owner(state, offer["patent"], call.org):
        raise NotOwner(f"{call.org} does not own {offer['patent']}")
    if is_owner(state, offer["patent"], offer["buyer"]):
        raise BuyerIsOwner(f"{offer['buyer']} already owns (a share of) {offer['patent']}")
    if not add_owner_signature(state, offer, call.org):
        require_in_force(state, offer["patent"], call.ctx.timestamp_ms)
        check_covers_pledge(state, offer["patent"], offer["price"], call.ctx.timestamp_ms)
        state.put(f"market_offer/{offer['id']}", offer)
        call.emit("market", "offer_accepted", offer=offer["id"], by=call.org)
        return
    settle(call, offer["patent"], offer["buyer"], offer["price"], ESCROW_ACCOUNT)
    state.put(f"market_offer/{offer['id']}", {**offer, "state": "accepted"})


def on_cancel(call: Call) -> None:
    """The buyer takes its offer back, and its escrow with it (expired or not)."""
    offer = get_offer(call.state, call.args.offer)
    if offer["buyer"] != call.org:
        raise NotOfferer(f"offer {offer['id']} was made by {offer['buyer']}")
    if offer["state"] != "open":
        raise NotOpen(f"offer {offer['id']} is {offer['state']}")
    transfer_units(call.state, "BPC", ESCROW_ACCOUNT, call.org, offer["price"])
    call.state.put(f"market_offer/{offer['id']}", {**offer, "state": "cancelled"})
    call.emit("market", "offer_cancelled", offer=offer["id"], buyer=call.org,
              refunded=offer["price"])


# -- queries ------------------------------------------------------------------------------


def describe(record: dict[str, Any], now_ms: int) -> dict[str, Any]:
    return {**record, "expired": is_expired(record, now_ms)}


def query_listings(state: State, now_ms: int, listing_id: str | None = None) -> Any:
    if listing_id is not None:
        return describe(get_listing(state, listing_id), now_ms)
    return [describe(record, now_ms) for _, record in state.items("market_listing/")]


def query_offers(state: State, now_ms: int, offer_id: str | None = None) -> Any:
    if offer_id is not None:
        return describe(get_offer(state, offer_id), now_ms)
    return [describe(record, now_ms) for _, record in state.items("market_offer/")]


def query_market(state: State, now_ms: int) -> dict[str, Any]:
    """The clearing terms and the escrow, with the open offers it must equal."""
    config = get_exchange_config(state)
    open_offers = [r for _, r in state.items("market_offer/") if r["state"] == "open"]
    return {"clearing_fee_bps": config["clearing_fee_bps"],
            "clearing_account": config["clearing_account"], "ltv_max_bps": config["ltv_max_bps"],
            "escrow": balance_of(state, "BPC", ESCROW_ACCOUNT),
            "open_offers": len(open_offers),
            "open_offers_total": sum(r["price"] for r in open_offers)}


OPS = {
    "market.list": Op(on_list, args=ListArgs,
                      doc="List your patent for sale (every owner signs price and expiry)."),
    "market.delist": Op(on_delist, args=ListingRef, doc="Withdraw a listing of your patent."),
    "market.buy": Op(on_buy, args=BuyArgs,
                     doc="Buy a listing: fee, pledgee, sellers and ownership in one tx."),
    "market.offer": Op(on_offer, args=OfferArgs,
                       doc="Bid for a granted patent; the price is escrowed at once."),
    "market.accept": Op(on_accept, args=AcceptArgs,
                        doc="Accept a bid as an owner; the last acceptance settles it."),
    "market.cancel": Op(on_cancel, args=OfferRef,
                        doc="Cancel your bid and get its escrow back."),
}
QUERIES = {"listings": query_listings, "offers": query_offers, "market": query_market}
