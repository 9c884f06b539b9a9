"""Securitization: royalty-backed deals with tranches and a payment waterfall.

Life of a deal (IP-ABS in the manner of the 2019 Shenzhen/Guangzhou deals and the Bowie
bonds): a trustee creates it over licences whose royalties will back it; investors
subscribe to tranches in BPC, held in escrow in the deal account; closing is a true sale
(the proceeds go to the originator and the licences' royalties are assigned to the deal);
then the trustee distributes each period's collections through the waterfall, records
defaults and recoveries, and every distribution leaves a disclosure report.

Origination and transfer live here; servicing in servicing.py; the arithmetic in
waterfall.py; errors, the record layout and collateral reads in core.py.
"""

from __future__ import annotations

from typing import Any

from contracts import errors
from contracts.securitization import servicing
from contracts.securitization.core import (  # noqa: F401  (errors re-exported: one import for clients)
    MAX_AMOUNT, AdvanceRateExceeded, AssetAlreadyAssigned, AssetAlreadyDefaulted,
    AssetNotActive, AssetNotDefaulted, AssetNotInDeal, DealNotClosed, DealNotFound,
    DealNotOpen, LossExceedsPrincipal, NotHolder, NotInvestor, NotTrustee,
    OriginatorNotLicensor, PeriodAlreadyDistributed, PeriodOutOfOrder, TrancheFull,
    TrancheNotFound, TranchesNotSold, compute_patent_value, compute_performing_value,
    deal_account, get_assignment, get_deal, get_licence, get_tranche, is_licence_active,
    put_deal, require_state, require_trustee,
)
from contracts.genesis import get_contract_config
from contracts.membership.governance import is_org_active
from contracts.call import Call, Op, org_roles
from contracts.securitization.schemas import (
    CreateDealArgs, DealRef, DealTransferArgs, DefaultArgs, DistributeDealArgs, RecoverArgs,
    SubscribeArgs,
)
from contracts.state import State
from contracts.token.ledger import balance_of, transfer_units
from contracts.securitization.waterfall import FULL_BPS

MAX_TRANCHES = 8
MODES = ("sequential", "pro_rata")


# -- deal.create: argument checks ------------------------------------------------------------


def _is_int(value: Any, low: int = 0, high: int = MAX_AMOUNT) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def check_tranches(value: Any) -> list[dict[str, Any]]:
    """Tranches in priority order, each {name, principal > 0, coupon_bps in 0..10000}."""
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_TRANCHES:
        raise errors.BadArguments(f"tranches must be a list of 1 to {MAX_TRANCHES}")
    names: set[str] = set()
    tranches = []
    for entry in value:
        if not isinstance(entry, dict) or set(entry) != {"name", "principal", "coupon_bps"}:
            raise errors.BadArguments("each tranche is {name, principal, coupon_bps}")
        name = entry["name"]
        if not isinstance(name, str) or not 1 <= len(name) <= 32 or "/" in name or name in names:
            raise errors.BadArguments(f"tranche name {name!r} missing, too long or repeated")
        if not _is_int(entry["principal"], 1) or not _is_int(entry["coupon_bps"], 0, FULL_BPS):
            raise errors.BadArguments(f"tranche {name}: principal > 0, coupon_bps 0..10000")
        names.add(name)
        tranches.append({
            "name": name, "principal": entry["principal"], "coupon_bps": entry["coupon_bps"],
            "sold": 0, "balance": 0, "interest_unpaid": 0, "written_down": 0,
            "written_back": 0, "holders": {}})
    if sum(t["principal"] for t in tranches) > MAX_AMOUNT:
        raise errors.BadArguments("total principal too large")
    return tranches


def check_tests(value: Any, names: list[str]) -> dict[str, Any]:
    """{oc_min_bps: {tranche: bps}, coverage_min_bps: bps | None}; both optional."""
    if not isinstance(value, dict) or not set(value) <= {"oc_min_bps", "coverage_min_bps"}:
        raise errors.BadArguments("tests is {oc_min_bps: {tranche: bps}, coverage_min_bps}")
    oc = value.get("oc_min_bps", {})
    if not isinstance(oc, dict) or not all(k in names and _is_int(v) for k, v in oc.items()):
        raise errors.BadArguments("oc_min_bps maps tranche names to basis points")
    coverage = value.get("coverage_min_bps")
    if coverage is not None and not _is_int(coverage):
        raise errors.BadArguments("coverage_min_bps must be a non-negative integer or null")
    return {"oc_min_bps": dict(sorted(oc.items())), "coverage_min_bps": coverage}


def check_trigger(value: Any, default_periods: int) -> dict[str, Any]:
    if not isinstance(value, dict) or not set(value) <= {"breach_periods"}:
        raise errors.BadArguments("trigger is {breach_periods}")
    periods = value.get("breach_periods", default_periods)
    if not _is_int(periods, 1, 1000):
        raise errors.BadArguments("breach_periods must be between 1 and 1000")
    return {"breach_periods": periods, "breach_count": 0, "triggered": False,
            "fired_period": None}


def check_terms(args: dict[str, Any]) -> dict[str, Any]:
    """The optional money terms, with their defaults."""
    fees = args.get("fees_per_period", 0)
    mode = args.get("mode", "sequential")
    target = args.get("principal_per_period")
    reserve = args.get("reserve_target", 0)
    if not _is_int(fees) or not _is_int(reserve):
        raise errors.BadArguments("fees_per_period and reserve_target are amounts >= 0")
    if mode not in MODES:
        raise errors.BadArguments(f"mode must be one of {MODES}")
    if target is not None and not _is_int(target, 1):
        raise errors.BadArguments("principal_per_period is a positive amount or null (all)")
    return {"fees_per_period": fees, "mode": mode, "principal_per_period": target,
            "reserve_target": reserve}


def check_assets(state: State, value: Any, originator: str, timestamp_ms: int,
                 ) -> dict[str, dict[str, Any]]:
    """Active licences, solely licensed by the originator, not assigned to a deal yet."""
    if (not isinstance(value, list) or not value
            or not all(isinstance(lid, str) for lid in value) or len(set(value)) != len(value)):
        raise errors.BadArguments("assets is a non-empty list of distinct licence ids")
    assets = {}
    for lid in sorted(value):
        licence = get_licence(state, lid)
        if not is_licence_active(state, lid, timestamp_ms):
            raise AssetNotActive(f"licence {lid} is not active")
        if licence["licensors"] != [[originator, FULL_BPS]]:
            raise OriginatorNotLicensor(f"{originator} is not the sole licensor of {lid}")
        if get_assignment(state, lid) is not None:
            raise AssetAlreadyAssigned(f"licence {lid} is assigned to {get_assignment(state, lid)}")
        assets[lid] = {"patents": sorted(licence["patents"]), "defaulted": False, "loss": 0,
                       "recovered": 0}
    return assets


def on_create(call: Call) -> None:
    """A trustee sets up a deal; the advance rate caps what the collateral may raise."""
    args: CreateDealArgs = call.args
    given = args.to_value()
    if not is_org_active(call.state, args.originator):
        raise errors.UnknownAccount(f"no organisation {args.originator!r}")
    tranches = check_tranches(given["tranches"])
    names = [t["name"] for t in tranches]
    tests = check_tests(given.get("tests", {}), names)
    config = get_contract_config(call.state)
    trigger = check_trigger(given.get("trigger", {}), config["breach_periods"])
    terms = check_terms(given)
    ts = call.ctx.timestamp_ms
    assets = check_assets(call.state, given["assets"], args.originator, ts)
    collateral = compute_patent_value(
        call.state, [pid for lid in assets for pid in assets[lid]["patents"]], ts)
    principal = sum(t["principal"] for t in tranches)
    rate_bps = config["advance_rate_bps"]
    if principal * FULL_BPS > collateral * rate_bps:
        raise AdvanceRateExceeded(f"principal {principal} > collateral {collateral} "
                                  f"x {rate_bps} bps")
    deal_id = call.tx.id[:16]
    if f"deal/{deal_id}" in call.state:
        raise errors.BadArguments(f"deal {deal_id} exists")
    put_deal(call.state, {
        "id": deal_id, "trustee": call.org, "originator": args.originator, "state": "open",
        "created_height": call.ctx.height, "timestamp_ms": ts, "assets": assets,
        "collateral_value": collateral, "tranches": tranches, **terms, "fees_unpaid": 0,
        "tests": tests, "trigger": trigger, "escrow": 0, "reserve": 0, "collected": 0,
        "paid": 0, "losses": 0, "recoveries": 0, "last_period": 0})
    call.emit("deal", "created", deal=deal_id, trustee=call.org, originator=args.originator,
              principal=principal, collateral_value=collateral)


# -- subscriptions, closing, transfers ----------------------------------------------------------


def on_subscribe(call: Call) -> None:
    amount = call.args.amount
    deal = get_deal(call.state, call.args.deal)
    require_state(deal, "open")
    tranche = get_tranche(deal, call.args.tranche)
    room = tranche["principal"] - tranche["sold"]
    if amount > room:
        raise TrancheFull(f"tranche {tranche['name']} has {room} left")
    transfer_units(call.state, "BPC", call.org, deal_account(deal["id"]), amount)
    position = tranche["holders"].setdefault(call.org, {"units": 0, "balance": 0})
    position["units"] += amount
    position["balance"] += amount
    tranche["sold"] += amount
    tranche["balance"] += amount
    deal["escrow"] += amount
    put_deal(call.state, deal)
    call.emit("deal", "subscribed", deal=deal["id"], tranche=tranche["name"], investor=call.org,
              amount=amount)


def on_close(call: Call) -> None:
    """True sale: proceeds to the originator, royalties to the deal from now on."""
    deal = get_deal(call.state, call.args.deal)
    require_trustee(deal, call.org)
    require_state(deal, "open")
    unsold = [t["name"] for t in deal["tranches"] if t["sold"] != t["principal"]]
    if unsold:
        raise TranchesNotSold(f"tranches not fully sold: {unsold}")
    for lid in sorted(deal["assets"]):
        if get_assignment(call.state, lid) is not None:
            raise AssetAlreadyAssigned(f"licence {lid} is assigned to another deal")
        if not is_licence_active(call.state, lid, call.ctx.timestamp_ms):
            raise AssetNotActive(f"licence {lid} is no longer active")
    proceeds = deal["escrow"]
    transfer_units(call.state, "BPC", deal_account(deal["id"]), deal["originator"], proceeds)
    for lid in sorted(deal["assets"]):
        call.state.put(f"royalty_assignment/{lid}", deal_account(deal["id"]))
    deal.update(state="closed", escrow=0, closed_height=call.ctx.height)
    put_deal(call.state, deal)
    call.emit("deal", "closed", deal=deal["id"], originator=deal["originator"],
              proceeds=proceeds, assets=sorted(deal["assets"]))


def on_transfer(call: Call) -> None:
    """Move `amount` face units of a position; its outstanding balance moves pro rata
    (rounded down, all of it when the whole position moves)."""
    args: DealTransferArgs = call.args
    deal = get_deal(call.state, args.deal)
    tranche = get_tranche(deal, args.tranche)
    position = tranche["holders"].get(call.org)
    if position is None or position["units"] < args.amount:
        raise NotHolder(f"{call.org} holds fewer than {args.amount} units of {args.tranche}")
    target = args.to
    if target == call.org:
        raise errors.BadArguments("a position cannot move to its own holder")
    if not is_org_active(call.state, target):
        raise errors.UnknownAccount(f"no organisation {target!r}")
    if "investor" not in org_roles(call.state, target):
        raise NotInvestor(f"{target} lacks the investor role")
    units = args.amount
    balance = position["balance"] * units // position["units"]
    receiver = tranche["holders"].setdefault(target, {"units": 0, "balance": 0})
    receiver["units"] += units
    receiver["balance"] += balance
    position["units"] -= units
    position["balance"] -= balance
    if position["units"] == 0:
        del tranche["holders"][call.org]
    tranche["holders"] = dict(sorted(tranche["holders"].items()))
    put_deal(call.state, deal)
    call.emit("deal", "transferred", deal=deal["id"], tranche=tranche["name"],
              source=call.org, target=target, units=units, balance=balance)


# -- queries ------------------------------------------------------------------------------------


def query_deals(state: State, now_ms: int, deal_id: str | None = None) -> Any:
    """One deal in full (tranches, holders, ledgers, live account figures), or a summary
    of every deal."""
    if deal_id is None:
        return [{"id": d["id"], "state": d["state"], "trustee": d["trustee"],
                 "originator": d["originator"], "last_period": d["last_period"],
                 "tranches": {t["name"]: t["balance"] for t in d["tranches"]}}
                for _, d in state.items("deal/")]
    deal = get_deal(state, deal_id)
    account = balance_of(state, "BPC", deal_account(deal_id))
    return {**deal, "account_balance": account,
            "pending_collections": account - deal["escrow"] - deal["reserve"],
            "performing_value": compute_performing_value(state, deal, now_ms),
            "triggered": deal["trigger"]["triggered"]}


def query_reports(state: State, now_ms: int, deal_id: str, period: str | None = None) -> Any:
    """The disclosure report of one period, or every report of the deal in order."""
    get_deal(state, deal_id)
    if period is None:
        return [report for _, report in state.items(f"deal_report/{deal_id}/")]
    if not period.isdigit():
        raise errors.BadArguments("period must be a positive integer")
    report = state.get(servicing.report_key(deal_id, int(period)))
    if report is None:
        raise errors.NotFound(f"deal {deal_id} has no report for period {period}")
    return report


OPS = {
    "deal.create": Op(on_create, roles=frozenset({"trustee"}), args=CreateDealArgs,
                      doc="Set up a deal: licences as collateral, tranches to sell."),
    "deal.subscribe": Op(on_subscribe, roles=frozenset({"investor"}), args=SubscribeArgs,
                         doc="Buy units of a tranche of an open deal."),
    "deal.close": Op(on_close, roles=frozenset({"trustee"}), args=DealRef,
                     doc="Close a fully sold deal: proceeds to the originator (true sale)."),
    "deal.distribute": Op(servicing.on_distribute, roles=frozenset({"trustee"}),
                          args=DistributeDealArgs,
                          doc="Run the waterfall for the next period; publishes its report."),
    "deal.default": Op(servicing.on_default, roles=frozenset({"trustee"}), args=DefaultArgs,
                       doc="Mark an asset defaulted; its loss is written down equity first."),
    "deal.recover": Op(servicing.on_recover, roles=frozenset({"trustee"}), args=RecoverArgs,
                       doc="Pay recovered cash on a defaulted asset into the deal."),
    "deal.transfer": Op(on_transfer, args=DealTransferArgs,
                        doc="Move units of your tranche position to another investor."),
}

QUERIES = {"deals": query_deals, "deal_reports": query_reports}
