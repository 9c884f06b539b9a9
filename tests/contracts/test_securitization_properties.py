"""Deal invariants over random op sequences, each property named after its invariant.

Hypothesis draws a deal's terms (mode, coupons, fees, principal schedule, reserve, test
minimums, trigger length) and a sequence of collections, distributions, defaults,
recoveries and position transfers; every op goes through signed transactions and
apply_block. After each op the invariant is checked; a refused op must leave the state
root unchanged. The same invariants on the pure waterfall are in
test_waterfall_properties.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from test_securitization_support import bpc, closed_deal, collect, deal_of, new_deal_chain

from contract_chain import Chain
from contracts.token.ledger import transfer_units

INVESTORS = ["fund", "inv2", "inv3"]
ASSETS = ["a000000000000001", "a000000000000002", "a000000000000003"]

terms = st.fixed_dictionaries({
    "mode": st.sampled_from(["sequential", "pro_rata"]),
    "fees_per_period": st.integers(0, 5_000),
    "principal_per_period": st.one_of(st.none(), st.integers(1, 60_000)),
    "reserve_target": st.integers(0, 20_000),
    "trigger": st.builds(lambda n: {"breach_periods": n}, st.integers(1, 4)),
    "tests": st.builds(lambda s, m, c: {"oc_min_bps": {"senior": s, "mezz": m},
                                        "coverage_min_bps": c},
                       st.integers(10_000, 25_000), st.integers(10_000, 16_000),
                       st.one_of(st.none(), st.integers(5_000, 20_000))),
    "tranches": st.builds(lambda a, b, c: [
        {"name": "senior", "principal": 500_000, "coupon_bps": a},
        {"name": "mezz", "principal": 200_000, "coupon_bps": b},
        {"name": "equity", "principal": 100_000, "coupon_bps": c}],
        st.integers(0, 600), st.integers(0, 1_200), st.sampled_from([0, 0, 500])),
})

COLLECT = st.tuples(st.just("collect"), st.integers(0, 250_000))
DISTRIBUTE = st.tuples(st.just("distribute"))
actions = st.lists(st.one_of(
    COLLECT, COLLECT, DISTRIBUTE, DISTRIBUTE, DISTRIBUTE,  # listed again to weight them
    st.tuples(st.just("default"), st.sampled_from(ASSETS), st.integers(0, 10_000)),
    st.tuples(st.just("recover"), st.sampled_from(ASSETS), st.integers(1, 400_000)),
    st.tuples(st.just("transfer"), st.integers(0, 2), st.integers(0, 5), st.integers(1, 10_000)),
), min_size=4, max_size=20)


@dataclass
class Run:
    chain: Chain
    deal_id: str
    inflow: int = 0
    """BPC that came into the deal account after close: collections and recoveries."""
    history: list[dict[str, Any]] = field(default_factory=list)
    """The deal record after each op."""

    def reports(self) -> list[dict[str, Any]]:
        return self.chain.query("deal_reports", self.deal_id)


def apply_action(run: Run, action: tuple) -> None:
    chain, deal_id = run.chain, run.deal_id
    kind = action[0]
    if kind == "collect":
        collect(chain, deal_id, action[1])
        run.inflow += action[1]
        return
    deal = deal_of(chain, deal_id)
    if kind == "distribute":
        op, args = "deal.distribute", {"period": deal["last_period"] + 1}
    elif kind == "default":
        outstanding = sum(t["balance"] for t in deal["tranches"])
        op, args = "deal.default", {"asset": action[1], "loss": outstanding * action[2] // 10_000}
    elif kind == "recover":
        op, args = "deal.recover", {"asset": action[1], "amount": action[2]}
    else:
        tranche = deal["tranches"][action[1]]
        holders = sorted(tranche["holders"])
        source = holders[action[2] % len(holders)]
        units = max(1, tranche["holders"][source]["units"] * action[3] // 10_000)
        target = [o for o in INVESTORS if o != source][action[2] % 2]
        signer, op = source, "deal.transfer"
        args = {"tranche": tranche["name"], "to": target, "amount": units}
    signer = "trust" if kind != "transfer" else signer
    before = chain.state.root()
    receipt = chain.run(signer, op, deal=deal_id, **args)
    if receipt.ok and kind == "recover":
        run.inflow += action[2]
    if not receipt.ok:  # e.g. recovering on a performing asset: refused, nothing moved
        assert chain.state.root() == before, receipt.code
        assert receipt.code in {"AssetNotDefaulted", "AssetAlreadyDefaulted"}, receipt.message


def simulate(deal_terms: dict[str, Any], steps: list[tuple]) -> Run:
    chain = new_deal_chain()
    transfer_units(chain.state, "BPC", "lic", "trust", 50_000_000)  # the trustee's recoveries
    run = Run(chain, closed_deal(chain, **deal_terms))
    for action in steps:
        apply_action(run, action)
        run.history.append(deal_of(chain, run.deal_id))
    return run


SEQUENCES = settings(max_examples=40, deadline=None)


@SEQUENCES
@given(terms, actions)
def test_total_paid_never_exceeds_collections(deal_terms: dict[str, Any], steps: list) -> None:
    run = simulate(deal_terms, steps)
    deal = run.history[-1]
    paid = sum(report["total_paid"] for report in run.reports())
    assert paid == deal["paid"] <= deal["collected"] <= run.inflow
    # what was not paid out is still in the account: reserve + not yet distributed
    assert bpc(run.chain, f"deal:{run.deal_id}") == run.inflow - paid
    for report in run.reports():
        assert report["total_paid"] <= report["collections"] + report["reserve_in"]
        assert report["total_paid"] + report["reserve_out"] == report["cash"]


@SEQUENCES
@given(terms, actions)
def test_nothing_junior_paid_while_senior_due_unpaid(deal_terms: dict[str, Any],
                                                     steps: list) -> None:
    run = simulate(deal_terms, steps)
    for report in run.reports():
        for j, junior in enumerate(report["steps"]):
            if junior["paid"]:
                assert all(s["unpaid"] == 0 for s in report["steps"][:j]), report["steps"]
        if report["mode"] == "triggered" and report["tranches"][0]["balance_end"] > 0:
            assert all(t["interest_paid"] == 0 for t in report["tranches"][1:])


@SEQUENCES
@given(terms, actions)
def test_write_downs_equal_losses(deal_terms: dict[str, Any], steps: list) -> None:
    run = simulate(deal_terms, steps)
    for deal in run.history:
        tranches, assets = deal["tranches"], deal["assets"].values()
        assert sum(t["written_down"] for t in tranches) == deal["losses"] == sum(
            a["loss"] for a in assets)
        assert sum(t["written_back"] for t in tranches) == sum(a["recovered"] for a in assets)
        assert all(t["written_back"] <= t["written_down"] for t in tranches)
        assert all(a["recovered"] <= a["loss"] for a in assets)


@SEQUENCES
@given(terms, actions)
def test_holders_sum_to_tranche_balance(deal_terms: dict[str, Any], steps: list) -> None:
    run = simulate(deal_terms, steps)
    for deal in run.history:
        for tranche in deal["tranches"]:
            holders = tranche["holders"].values()
            assert sum(p["balance"] for p in holders) == tranche["balance"]
            assert sum(p["units"] for p in holders) == tranche["principal"]


@SEQUENCES
@given(terms, actions)
def test_no_negative_balance(deal_terms: dict[str, Any], steps: list) -> None:
    run = simulate(deal_terms, steps)
    state = run.chain.state
    assert all(value > 0 for _, value in state.items("bal/"))
    assert sum(value for _, value in state.items("bal/BPC/")) == state.get("supply/BPC")
    for deal in run.history:
        for name in ("fees_unpaid", "reserve", "escrow", "collected", "paid", "losses"):
            assert deal[name] >= 0
        for tranche in deal["tranches"]:
            assert 0 <= tranche["balance"] <= tranche["principal"]
            assert tranche["interest_unpaid"] >= 0
            assert all(p["balance"] >= 0 and p["units"] > 0 for p in tranche["holders"].values())


@SEQUENCES
@given(terms, actions)
def test_every_split_sums_to_the_whole(deal_terms: dict[str, Any], steps: list) -> None:
    run = simulate(deal_terms, steps)
    for report in run.reports():
        holders_total = 0
        for tranche in report["tranches"]:
            owed = tranche["interest_paid"] + tranche["principal_paid"] + tranche["residual"]
            paid = sum(report["payments"][tranche["name"]].values())
            assert paid == owed
            holders_total += paid
        assert holders_total + report["fees_paid"] == report["total_paid"]
        for step in report["steps"]:
            if step["kind"] not in ("fees", "reserve"):
                assert sum(step["parts"].values()) == step["paid"]
