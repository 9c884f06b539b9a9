"""Servicing a closed deal: period distributions, defaults and recoveries.

The trustee's `deal.distribute` reads the period's collections from the deal account,
runs the tests and the pure waterfall (contracts/securitization/waterfall.py), pays fees and holders,
and writes the disclosure report. `deal.default` writes a loss down equity first;
`deal.recover` brings cash in and writes principal back senior first.
"""

from __future__ import annotations

from typing import Any

from contracts import errors
from contracts.securitization.core import (
    AssetAlreadyDefaulted, AssetNotDefaulted, AssetNotInDeal, LossExceedsPrincipal,
    PeriodAlreadyDistributed, PeriodOutOfOrder, compute_performing_value, deal_account, get_deal,
    get_outstanding, increase_balances, put_deal, reduce_balances, require_state, require_trustee,
    split_to_holders,
)
from contracts.call import Call
from contracts.securitization.schemas import DefaultArgs, RecoverArgs
from contracts.state import State
from contracts.token.ledger import balance_of, transfer_units
from contracts.securitization.waterfall import (
    WaterfallPlan, compute_tests, compute_trigger, compute_waterfall, compute_write_back,
    compute_write_down,
)


def report_key(deal_id: str, period: int) -> str:
    """Zero-padded so that reports list in period order under the sorted key scan."""
    return f"deal_report/{deal_id}/{period:010d}"


def get_collections(state: State, deal: dict[str, Any]) -> int:
    """BPC received since the last distribution: the account minus what is not
    collections (subscription escrow, the reserve kept from the last period)."""
    account = balance_of(state, "BPC", deal_account(deal["id"]))
    collections = account - deal["escrow"] - deal["reserve"]
    if collections < 0:  # only a bug can get here; the runtime turns it into a rejection
        raise RuntimeError(f"deal {deal['id']}: account holds less than its own ledger")
    return collections


def get_waterfall_inputs(deal: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": t["name"], "balance": t["balance"], "coupon_bps": t["coupon_bps"],
             "interest_unpaid": t["interest_unpaid"]} for t in deal["tranches"]]


def require_next_period(deal: dict[str, Any], period: int) -> None:
    if period < 1:
        raise errors.BadArguments("periods are numbered from 1")
    if period <= deal["last_period"]:
        raise PeriodAlreadyDistributed(f"deal {deal['id']}: period {period} is distributed")
    if period != deal["last_period"] + 1:
        raise PeriodOutOfOrder(f"deal {deal['id']}: next period is {deal['last_period'] + 1}")


def apply_plan(deal: dict[str, Any], plan: WaterfallPlan) -> dict[str, dict[str, int]]:
    """Carry the plan out on the deal's tranches; returns the payment per tranche per
    holder. Interest is split on opening balances, before principal lowers them."""
    payments: dict[str, dict[str, int]] = {}
    equity = deal["tranches"][-1]["name"]
    for tranche in deal["tranches"]:
        name = tranche["name"]
        paid: dict[str, int] = {}
        parts = [split_to_holders(tranche, plan.interest_paid[name]),
                 reduce_balances(tranche, plan.principal_paid[name])]
        if name == equity:
            parts.append(split_to_holders(tranche, plan.residual))
        for part in parts:
            for org, amount in part.items():
                paid[org] = paid.get(org, 0) + amount
        tranche["interest_unpaid"] = plan.interest_unpaid[name]
        payments[name] = dict(sorted(paid.items()))
    return payments


def pay_out(state: State, deal: dict[str, Any], fees_paid: int,
            payments: dict[str, dict[str, int]]) -> int:
    """One transfer per recipient, in sorted order; returns the total paid."""
    totals: dict[str, int] = {deal["trustee"]: fees_paid}
    for by_holder in payments.values():
        for org, amount in by_holder.items():
            totals[org] = totals.get(org, 0) + amount
    for org in sorted(totals):
        transfer_units(state, "BPC", deal_account(deal["id"]), org, totals[org])
    return sum(totals.values())


def build_report(deal: dict[str, Any], call: Call, period: int, collections: int,
                 opening: list[dict[str, Any]], plan: WaterfallPlan,
                 tests: dict[str, Any], mode: str, payments: dict[str, Any]) -> dict[str, Any]:
    tranches = []
    for before, tranche in zip(opening, deal["tranches"]):
        name = tranche["name"]
        tranches.append({
            "name": name, "balance_start": before["balance"], "balance_end": tranche["balance"],
            "interest_due": plan.interest_due[name], "interest_paid": plan.interest_paid[name],
            "interest_unpaid": plan.interest_unpaid[name],
            "principal_paid": plan.principal_paid[name],
            "residual": plan.residual if tranche is deal["tranches"][-1] else 0,
            "written_down": tranche["written_down"] - tranche["written_back"]})
    return {"deal": deal["id"], "period": period, "height": call.ctx.height,
            "timestamp_ms": call.ctx.timestamp_ms, "collections": collections,
            "reserve_in": plan.cash - collections, "cash": plan.cash,
            "steps": [step.to_value() for step in plan.steps],
            "fees_paid": plan.steps[0].paid, "fees_unpaid": plan.fees_unpaid,
            "fee_account": deal["trustee"], "total_paid": plan.total_paid,
            "reserve_out": plan.reserve, "tranches": tranches, "tests": tests,
            "trigger": dict(deal["trigger"]), "mode": mode, "payments": payments}


def on_distribute(call: Call) -> None:
    period = call.args.period
    deal = get_deal(call.state, call.args.deal)
    require_trustee(deal, call.org)
    require_state(deal, "closed")
    require_next_period(deal, period)
    collections = get_collections(call.state, deal)
    opening = get_waterfall_inputs(deal)
    performing = compute_performing_value(call.state, deal, call.ctx.timestamp_ms)
    tests = compute_tests(performing, collections, opening, deal["tests"]["oc_min_bps"],
                          deal["tests"]["coverage_min_bps"])
    tests["performing_value"] = performing
    deal["trigger"] = compute_trigger(deal["trigger"], tests["all_pass"], period)
    triggered = deal["trigger"]["triggered"]
    pro_rata = deal["mode"] == "pro_rata" and tests["all_pass"] and not triggered
    plan = compute_waterfall(
        collections + deal["reserve"], opening,
        fees_due=deal["fees_per_period"] + deal["fees_unpaid"],
        principal_target=deal["principal_per_period"], pro_rata=pro_rata,
        triggered=triggered, reserve_target=deal["reserve_target"])
    payments = apply_plan(deal, plan)
    paid = pay_out(call.state, deal, plan.steps[0].paid, payments)
    deal.update(fees_unpaid=plan.fees_unpaid, reserve=plan.reserve, last_period=period,
                collected=deal["collected"] + collections, paid=deal["paid"] + paid)
    mode = "triggered" if triggered else ("pro_rata" if pro_rata else "sequential")
    report = build_report(deal, call, period, collections, opening, plan, tests, mode,
                          payments)
    call.state.put(report_key(deal["id"], period), report)
    put_deal(call.state, deal)
    call.emit("deal", "distributed", deal=deal["id"], period=period,
              collections=collections, paid=paid, reserve=plan.reserve, mode=mode,
              triggered=triggered)


def get_defaultable_asset(deal: dict[str, Any], lid: Any) -> dict[str, Any]:
    if not isinstance(lid, str) or lid not in deal["assets"]:
        raise AssetNotInDeal(f"{lid!r} is not an asset of deal {deal['id']}")
    return deal["assets"][lid]


def require_serviced_asset(call: Call) -> tuple[dict[str, Any], dict[str, Any]]:
    """The checks deal.default and deal.recover share, in one order: (deal, asset)."""
    deal = get_deal(call.state, call.args.deal)
    require_trustee(deal, call.org)
    require_state(deal, "closed")
    return deal, get_defaultable_asset(deal, call.args.asset)


def on_default(call: Call) -> None:
    """The asset stops performing; the loss is written down equity first."""
    args: DefaultArgs = call.args
    deal, asset = require_serviced_asset(call)
    if asset["defaulted"]:
        raise AssetAlreadyDefaulted(f"{args.asset} already defaulted")
    outstanding = get_outstanding(deal)
    if args.loss > outstanding:
        raise LossExceedsPrincipal(f"loss {args.loss} exceeds outstanding {outstanding}")
    written = compute_write_down([(t["name"], t["balance"]) for t in deal["tranches"]],
                                 args.loss)
    for tranche in deal["tranches"]:
        reduce_balances(tranche, written[tranche["name"]])
        tranche["written_down"] += written[tranche["name"]]
    asset.update(defaulted=True, loss=args.loss)
    deal["losses"] += args.loss
    put_deal(call.state, deal)
    call.emit("deal", "defaulted", deal=deal["id"], asset=args.asset, loss=args.loss,
              written_down=written)


def on_recover(call: Call) -> None:
    """The trustee pays recovered cash in (it is collections of the next distribution);
    up to the asset's loss, written-down principal is reinstated senior first."""
    args: RecoverArgs = call.args
    deal, asset = require_serviced_asset(call)
    if not asset["defaulted"]:
        raise AssetNotDefaulted(f"{args.asset} has not defaulted")
    transfer_units(call.state, "BPC", call.org, deal_account(deal["id"]), args.amount)
    owed = [(t["name"], t["written_down"] - t["written_back"]) for t in deal["tranches"]]
    back = compute_write_back(owed, min(args.amount, asset["loss"] - asset["recovered"]))
    for tranche in deal["tranches"]:
        increase_balances(tranche, back[tranche["name"]])
        tranche["written_back"] += back[tranche["name"]]
    asset["recovered"] += sum(back.values())
    deal["recoveries"] += args.amount
    put_deal(call.state, deal)
    call.emit("deal", "recovered", deal=deal["id"], asset=args.asset,
              amount=args.amount, written_back=back)
