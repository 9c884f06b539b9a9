"""Servicing ops, table-driven: deal.distribute, deal.default, deal.recover, and the
waterfall as a closed deal lives it (arrears, reserve, trigger, pro rata, losses).

Reference deal (test_securitization_support): collateral 1 000 000 over L1..L3 (400 000,
350 000, 250 000); senior 500 000 at 200 bps (fund 300 000, inv2 200 000), mezz 200 000
at 400 bps (inv2 150 000, inv3 50 000), equity 100 000 at 0 bps (inv3); fees 1 000 a
period to the trustee; OC minimums senior 150 %, mezz 110 %; coverage minimum 100 %.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest
from test_securitization_support import (
    bpc, closed_deal, collect, create_deal, deal_of, new_deal_chain, report_of, step_of,
    subscribe_all, tranche_of,
)

from contract_chain import Chain
from contracts.token.ledger import transfer_units

# -- deal.distribute ----------------------------------------------------------------------------


def distributed_once(chain: Chain) -> str:
    deal_id = closed_deal(chain)
    chain.must("trust", "deal.distribute", deal=deal_id, period=1)
    return deal_id


def open_deal(chain: Chain) -> str:
    deal_id = create_deal(chain)
    subscribe_all(chain, deal_id)
    return deal_id


DISTRIBUTE_REFUSALS: list[tuple[str, Callable[[Chain], str], str, int, str]] = [
    ("deal-still-open", open_deal, "trust", 1, "DealNotClosed"),
    ("another-trustee", closed_deal, "trust2", 1, "NotTrustee"),
    ("sender-lacks-trustee-role", closed_deal, "fund", 1, "Unauthorized"),
    ("period-twice", distributed_once, "trust", 1, "PeriodAlreadyDistributed"),
    ("period-skipped", closed_deal, "trust", 2, "PeriodOutOfOrder"),
    ("period-zero", closed_deal, "trust", 0, "BadArguments"),
    ("unknown-deal", lambda c: "e" * 16, "trust", 1, "DealNotFound"),
]


@pytest.mark.parametrize("setup, sender, period, code",
                         [pytest.param(*row[1:], id=row[0]) for row in DISTRIBUTE_REFUSALS])
def test_distribute_refusals(setup: Callable[[Chain], str], sender: str, period: int,
                             code: str) -> None:
    chain = new_deal_chain()
    deal_id = setup(chain)
    collect(chain, deal_id, 50_000)
    chain.fails(code, sender, "deal.distribute", deal=deal_id, period=period)


def test_distribute_pays_fees_interest_then_principal_to_holders() -> None:
    chain = new_deal_chain()
    deal_id = closed_deal(chain)
    collect(chain, deal_id, 20_000)
    before = {org: bpc(chain, org) for org in ("trust", "fund", "inv2", "inv3")}
    chain.must("trust", "deal.distribute", deal=deal_id, period=1)
    gained = {org: bpc(chain, org) - before[org] for org in before}
    # fees 1 000; senior interest 10 000 + principal 1 000 split 3:2; mezz interest 8 000 3:1
    assert gained == {"trust": 1_000, "fund": 6_600, "inv2": 4_400 + 6_000, "inv3": 2_000}
    report = report_of(chain, deal_id, 1)
    assert report["payments"] == {"senior": {"fund": 6_600, "inv2": 4_400},
                                  "mezz": {"inv2": 6_000, "inv3": 2_000}, "equity": {}}
    assert (report["collections"], report["total_paid"], report["mode"]) == (
        20_000, 20_000, "sequential")
    assert report["tests"]["all_pass"] and report["tests"]["coverage"]["value_bps"] == 11_111
    assert tranche_of(chain, deal_id, "senior")["balance"] == 499_000
    deal = deal_of(chain, deal_id)
    assert (deal["collected"], deal["paid"], deal["last_period"]) == (20_000, 20_000, 1)
    assert bpc(chain, f"deal:{deal_id}") == 0


def test_unpaid_interest_accrues_and_is_paid_first_next_period() -> None:
    chain = new_deal_chain()
    deal_id = closed_deal(chain)
    collect(chain, deal_id, 15_000)
    chain.must("trust", "deal.distribute", deal=deal_id, period=1)
    mezz = step_of(report_of(chain, deal_id, 1), "interest", "mezz")
    assert (mezz["due"], mezz["paid"], mezz["unpaid"]) == (8_000, 4_000, 4_000)
    assert tranche_of(chain, deal_id, "mezz")["interest_unpaid"] == 4_000
    collect(chain, deal_id, 30_000)
    chain.must("trust", "deal.distribute", deal=deal_id, period=2)
    report = report_of(chain, deal_id, 2)
    assert step_of(report, "interest", "mezz")["due"] == 12_000
    assert step_of(report, "principal", "senior")["paid"] == 30_000 - 1_000 - 10_000 - 12_000
    assert tranche_of(chain, deal_id, "mezz")["interest_unpaid"] == 0


def test_fees_in_arrears_accrue() -> None:
    chain = new_deal_chain()
    deal_id = closed_deal(chain)
    collect(chain, deal_id, 400)
    chain.must("trust", "deal.distribute", deal=deal_id, period=1)
    assert deal_of(chain, deal_id)["fees_unpaid"] == 600
    collect(chain, deal_id, 2_000)
    chain.must("trust", "deal.distribute", deal=deal_id, period=2)
    fees = step_of(report_of(chain, deal_id, 2), "fees", None)
    assert (fees["due"], fees["paid"]) == (1_600, 1_600)


def test_reserve_is_kept_in_the_account_and_never_counted_as_collections() -> None:
    chain = new_deal_chain()
    deal_id = closed_deal(chain, principal_per_period=1_000, reserve_target=5_000)
    collect(chain, deal_id, 30_000)
    chain.must("trust", "deal.distribute", deal=deal_id, period=1)
    first = report_of(chain, deal_id, 1)
    assert (first["reserve_out"], first["payments"]["equity"]) == (5_000, {"inv3": 5_000})
    assert bpc(chain, f"deal:{deal_id}") == 5_000
    chain.must("trust", "deal.distribute", deal=deal_id, period=2)
    second = report_of(chain, deal_id, 2)
    assert (second["collections"], second["reserve_in"], second["cash"]) == (0, 5_000, 5_000)
    assert step_of(second, "interest", "senior")["paid"] == 4_000  # reserve covers a shortfall


def test_pro_rata_only_while_every_test_passes() -> None:
    chain = new_deal_chain()
    deal_id = closed_deal(chain, mode="pro_rata", principal_per_period=8_000)
    collect(chain, deal_id, 30_000)
    chain.must("trust", "deal.distribute", deal=deal_id, period=1)
    report = report_of(chain, deal_id, 1)
    assert report["mode"] == "pro_rata"
    assert step_of(report, "principal", None)["parts"] == {"senior": 5_000, "mezz": 2_000,
                                                           "equity": 1_000}
    collect(chain, deal_id, 17_000)  # coverage below 100 %: back to sequential
    chain.must("trust", "deal.distribute", deal=deal_id, period=2)
    report = report_of(chain, deal_id, 2)
    assert report["mode"] == "sequential" and not report["tests"]["coverage"]["pass"]


def test_breach_for_n_periods_fires_a_latched_trigger() -> None:
    chain = new_deal_chain()
    deal_id = closed_deal(chain, trigger={"breach_periods": 2})
    for period, cash in ((1, 17_000), (2, 20_000)):  # coverage fails, then OC fails
        if period == 2:
            chain.must("trust", "deal.default", deal=deal_id, asset="a000000000000001", loss=0)
        collect(chain, deal_id, cash)
        chain.must("trust", "deal.distribute", deal=deal_id, period=period)
    second = report_of(chain, deal_id, 2)
    assert (second["trigger"]["triggered"], second["trigger"]["fired_period"]) == (True, 2)
    assert second["mode"] == "triggered"
    # all excess cash retires senior principal; junior interest stops
    assert step_of(second, "principal", "senior")["paid"] == 20_000 - 1_000 - 10_000
    assert step_of(second, "interest", "mezz")["paid"] == 0
    assert tranche_of(chain, deal_id, "mezz")["interest_unpaid"] == 8_000 + 2_000
    collect(chain, deal_id, 1_000_000)  # OC still fails (L1 is out); the trigger holds anyway
    chain.must("trust", "deal.distribute", deal=deal_id, period=3)
    third = report_of(chain, deal_id, 3)
    assert third["trigger"]["triggered"] and third["mode"] == "triggered"
    assert [t["balance_end"] for t in third["tranches"]] == [0, 0, 0]
    assert deal_of(chain, deal_id)["trigger"]["fired_period"] == 2


def test_trigger_count_resets_on_a_passing_period() -> None:
    chain = new_deal_chain()
    deal_id = closed_deal(chain, trigger={"breach_periods": 2})
    for period, cash in ((1, 17_000), (2, 40_000), (3, 17_000)):
        collect(chain, deal_id, cash)
        chain.must("trust", "deal.distribute", deal=deal_id, period=period)
    trigger = deal_of(chain, deal_id)["trigger"]
    assert (trigger["breach_count"], trigger["triggered"]) == (1, False)


def test_everything_repaid_sends_the_residual_to_equity() -> None:
    chain = new_deal_chain()
    deal_id = closed_deal(chain)
    collect(chain, deal_id, 1_000_000)
    chain.must("trust", "deal.distribute", deal=deal_id, period=1)
    report = report_of(chain, deal_id, 1)
    assert report["tranches"][2]["residual"] == 1_000_000 - 1_000 - 18_000 - 800_000
    assert [t["balance_end"] for t in report["tranches"]] == [0, 0, 0]
    assert report["payments"]["equity"] == {"inv3": 100_000 + report["tranches"][2]["residual"]}


# -- deal.default ---------------------------------------------------------------------------------

def defaulted_l1(chain: Chain) -> str:
    deal_id = closed_deal(chain)
    chain.must("trust", "deal.default", deal=deal_id, asset="a000000000000001", loss=5)
    return deal_id


DEFAULT_REFUSALS: list[tuple[str, Callable[[Chain], str], str, dict[str, Any], str]] = [
    ("deal-still-open", open_deal, "trust", {"asset": "a000000000000001", "loss": 1}, "DealNotClosed"),
    ("another-trustee", closed_deal, "trust2", {"asset": "a000000000000001", "loss": 1}, "NotTrustee"),
    ("not-an-asset", closed_deal, "trust", {"asset": "a000000000000009", "loss": 1}, "AssetNotInDeal"),
    ("twice", defaulted_l1, "trust", {"asset": "a000000000000001", "loss": 1}, "AssetAlreadyDefaulted"),
    ("loss-over-principal", closed_deal, "trust", {"asset": "a000000000000001", "loss": 800_001},
     "LossExceedsPrincipal"),
    ("loss-negative", closed_deal, "trust", {"asset": "a000000000000001", "loss": -1}, "BadArguments"),
]


@pytest.mark.parametrize("setup, sender, args, code",
                         [pytest.param(*row[1:], id=row[0]) for row in DEFAULT_REFUSALS])
def test_default_refusals(setup: Callable[[Chain], str], sender: str, args: dict[str, Any],
                          code: str) -> None:
    chain = new_deal_chain()
    deal_id = setup(chain)
    chain.fails(code, sender, "deal.default", deal=deal_id, **args)


@pytest.mark.parametrize("loss, balances, mezz_holders", [
    (60_000, [500_000, 200_000, 40_000], {"inv2": 150_000, "inv3": 50_000}),
    (150_000, [500_000, 150_000, 0], {"inv2": 112_500, "inv3": 37_500}),
    (800_000, [0, 0, 0], {"inv2": 0, "inv3": 0}),
])
def test_default_writes_down_equity_first(loss: int, balances: list[int],
                                          mezz_holders: dict[str, int]) -> None:
    chain = new_deal_chain()
    deal_id = closed_deal(chain)
    chain.must("trust", "deal.default", deal=deal_id, asset="a000000000000001", loss=loss)
    deal = deal_of(chain, deal_id)
    assert [t["balance"] for t in deal["tranches"]] == balances
    assert sum(t["written_down"] for t in deal["tranches"]) == deal["losses"] == loss
    assert {o: p["balance"] for o, p in deal["tranches"][1]["holders"].items()} == mezz_holders
    assert deal["assets"]["a000000000000001"] == {"patents": ["CN:1"], "defaulted": True, "loss": loss,
                                    "recovered": 0}
    assert chain.query("deals", deal_id)["performing_value"] == 600_000


def test_defaulted_asset_fails_the_oc_test() -> None:
    chain = new_deal_chain()
    deal_id = closed_deal(chain)
    chain.must("trust", "deal.default", deal=deal_id, asset="a000000000000001", loss=0)
    collect(chain, deal_id, 20_000)
    chain.must("trust", "deal.distribute", deal=deal_id, period=1)
    tests = report_of(chain, deal_id, 1)["tests"]
    assert tests["performing_value"] == 600_000
    assert tests["oc"]["senior"] == {"value_bps": 12_000, "min_bps": 15_000, "pass": False}


# -- deal.recover ---------------------------------------------------------------------------------


def defaulted(chain: Chain) -> str:
    deal_id = closed_deal(chain)
    chain.must("trust", "deal.default", deal=deal_id, asset="a000000000000001", loss=750_000)
    transfer_units(chain.state, "BPC", "lic", "trust", 2_000_000)
    return deal_id


RECOVER_REFUSALS: list[tuple[str, Callable[[Chain], str], str, dict[str, Any], str]] = [
    ("asset-performing", defaulted, "trust", {"asset": "a000000000000002", "amount": 1}, "AssetNotDefaulted"),
    ("not-an-asset", defaulted, "trust", {"asset": "a0000000000000ff", "amount": 1}, "AssetNotInDeal"),
    ("another-trustee", defaulted, "trust2", {"asset": "a000000000000001", "amount": 1}, "NotTrustee"),
    ("trustee-cannot-pay", defaulted, "trust", {"asset": "a000000000000001", "amount": 2_000_001},
     "InsufficientFunds"),
    ("amount-zero", defaulted, "trust", {"asset": "a000000000000001", "amount": 0}, "BadArguments"),
    ("deal-still-open", open_deal, "trust", {"asset": "a000000000000001", "amount": 1}, "DealNotClosed"),
]


@pytest.mark.parametrize("setup, sender, args, code",
                         [pytest.param(*row[1:], id=row[0]) for row in RECOVER_REFUSALS])
def test_recover_refusals(setup: Callable[[Chain], str], sender: str, args: dict[str, Any],
                          code: str) -> None:
    chain = new_deal_chain()
    deal_id = setup(chain)
    chain.fails(code, sender, "deal.recover", deal=deal_id, **args)


def test_recoveries_write_back_senior_first_and_arrive_as_collections() -> None:
    chain = new_deal_chain()
    deal_id = defaulted(chain)  # equity 100 000, mezz 200 000, senior 450 000 written down
    assert [t["balance"] for t in deal_of(chain, deal_id)["tranches"]] == [50_000, 0, 0]
    chain.must("trust", "deal.recover", deal=deal_id, asset="a000000000000001", amount=500_000)
    deal = deal_of(chain, deal_id)
    assert [t["balance"] for t in deal["tranches"]] == [500_000, 50_000, 0]
    assert [t["written_back"] for t in deal["tranches"]] == [450_000, 50_000, 0]
    assert deal["tranches"][1]["holders"] == {"inv2": {"units": 150_000, "balance": 37_500},
                                              "inv3": {"units": 50_000, "balance": 12_500}}
    chain.must("trust", "deal.recover", deal=deal_id, asset="a000000000000001", amount=300_000)
    deal = deal_of(chain, deal_id)  # only 250 000 of loss is left to write back
    assert [t["balance"] for t in deal["tranches"]] == [500_000, 200_000, 100_000]
    assert deal["assets"]["a000000000000001"]["recovered"] == 750_000 and deal["recoveries"] == 800_000
    chain.must("trust", "deal.distribute", deal=deal_id, period=1)
    assert report_of(chain, deal_id, 1)["collections"] == 800_000
