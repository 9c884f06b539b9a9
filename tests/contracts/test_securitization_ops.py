"""Origination ops, table-driven: deal.create, deal.subscribe, deal.close, deal.transfer,
the queries, and one deal end to end through the registry and licensing ops.

Every refusal row asserts the error code AND that the state root did not move
(`chain.fails`). Servicing ops (distribute, default, recover) are in
test_securitization_servicing.py.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest
from test_securitization_support import (
    SUBSCRIPTIONS, TRANCHES, bpc, closed_deal, collect, create_args, create_deal, deal_of,
    new_deal_chain, put_licence, put_patent, subscribe_all, tranche_of,
)

from contract_chain import Chain
from contracts import errors
from contracts.token.ledger import transfer_units

Prepare = Callable[[Chain], None] | None


def lapse(pid: str) -> Callable[[Chain], None]:
    def prepare(chain: Chain) -> None:
        patent = chain.get(f"patent/{pid}")
        chain.state.put(f"patent/{pid}", {**patent, "status": "LAPSED"})
    return prepare


def tranches_with(**changes: Any) -> list[dict[str, Any]]:
    """TRANCHES with the senior tranche's fields changed."""
    return [{**TRANCHES[0], **changes}] + [dict(t) for t in TRANCHES[1:]]


# -- deal.create ----------------------------------------------------------------------------

CREATE_REFUSALS: list[tuple[str, Prepare, str, dict[str, Any], str]] = [
    ("sender-lacks-trustee-role", None, "fund", {}, "Unauthorized"),
    ("unknown-originator", None, "trust", {"originator": "nobody"}, "UnknownAccount"),
    ("missing-licence", None, "trust", {"assets": ["a000000000000001", "a000000000000009"]}, "LicenceNotFound"),
    ("licence-only-offered", lambda c: put_licence(c.state, "a000000000000004", ["CN:1"], status="offered"),
     "trust", {"assets": ["a000000000000001", "a000000000000004"]}, "AssetNotActive"),
    ("licence-patent-lapsed", lapse("CN:3"), "trust", {}, "AssetNotActive"),
    ("co-licensed-stream", lambda c: put_licence(c.state, "a000000000000004", ["CN:1"],
                                                 licensors=[["acme", 5000], ["bolt", 5000]]),
     "trust", {"assets": ["a000000000000001", "a000000000000004"]}, "OriginatorNotLicensor"),
    ("originator-is-not-the-licensor", None, "trust", {"originator": "bolt"},
     "OriginatorNotLicensor"),
    ("licence-already-assigned", lambda c: c.state.put("royalty_assignment/a000000000000002", "deal:x"),
     "trust", {}, "AssetAlreadyAssigned"),
    ("assets-repeated", None, "trust", {"assets": ["a000000000000001", "a000000000000001"]}, "BadArguments"),
    ("assets-empty", None, "trust", {"assets": []}, "BadArguments"),
    ("assets-not-ids", None, "trust", {"assets": [["a000000000000001"]]}, "BadArguments"),
    ("assets-missing", None, "trust", {"assets": ...}, "BadArguments"),
    ("tranches-empty", None, "trust", {"tranches": []}, "BadArguments"),
    ("tranche-names-repeated", None, "trust",
     {"tranches": tranches_with(name="mezz")}, "BadArguments"),
    ("tranche-principal-zero", None, "trust", {"tranches": tranches_with(principal=0)},
     "BadArguments"),
    ("tranche-coupon-over-100pct", None, "trust", {"tranches": tranches_with(coupon_bps=10_001)},
     "BadArguments"),
    ("tranche-unknown-field", None, "trust", {"tranches": tranches_with(rating="AAA")},
     "BadArguments"),
    ("tranche-principal-bool", None, "trust", {"tranches": tranches_with(principal=True)},
     "BadArguments"),
    ("mode-unknown", None, "trust", {"mode": "turbo"}, "BadArguments"),
    ("oc-test-names-no-tranche", None, "trust", {"tests": {"oc_min_bps": {"aaa": 10_000}}},
     "BadArguments"),
    ("coverage-negative", None, "trust", {"tests": {"coverage_min_bps": -1}}, "BadArguments"),
    ("tests-unknown-key", None, "trust", {"tests": {"ic_min_bps": 1}}, "BadArguments"),
    ("breach-periods-zero", None, "trust", {"trigger": {"breach_periods": 0}}, "BadArguments"),
    ("principal-per-period-zero", None, "trust", {"principal_per_period": 0}, "BadArguments"),
    ("fees-negative", None, "trust", {"fees_per_period": -5}, "BadArguments"),
    ("principal-one-over-advance-rate", None, "trust",
     {"tranches": tranches_with(principal=500_001)}, "AdvanceRateExceeded"),
    ("unappraised-patent-counts-zero", lambda c: c.state.delete("appraisal/CN:3"), "trust", {},
     "AdvanceRateExceeded"),
]


@pytest.mark.parametrize("prepare, sender, overrides, code",
                         [pytest.param(*row[1:], id=row[0]) for row in CREATE_REFUSALS])
def test_create_refusals(prepare: Prepare, sender: str, overrides: dict[str, Any],
                         code: str) -> None:
    chain = new_deal_chain()
    if prepare:
        prepare(chain)
    chain.fails(code, sender, "deal.create", **create_args(**overrides))


def test_create_records_an_open_deal_sized_on_collateral() -> None:
    chain = new_deal_chain()
    deal = deal_of(chain, create_deal(chain))
    assert (deal["state"], deal["trustee"], deal["originator"]) == ("open", "trust", "acme")
    assert deal["collateral_value"] == 1_000_000
    assert [(t["name"], t["principal"], t["sold"], t["balance"]) for t in deal["tranches"]] == [
        ("senior", 500_000, 0, 0), ("mezz", 200_000, 0, 0), ("equity", 100_000, 0, 0)]
    assert sorted(deal["assets"]) == ["a000000000000001", "a000000000000002", "a000000000000003"]
    assert deal["trigger"] == {"breach_periods": 3, "breach_count": 0, "triggered": False,
                               "fired_period": None}
    assert (deal["escrow"], deal["reserve"], deal["last_period"]) == (0, 0, 0)
    assert chain.get("royalty_assignment/a000000000000001") is None  # assigned only at close


@pytest.mark.parametrize("contracts, overrides, code", [
    pytest.param({"advance_rate_bps": 5_000}, {}, "AdvanceRateExceeded", id="lower-rate-refuses"),
    pytest.param({"advance_rate_bps": 5_000},
                 {"tranches": [{"name": "a", "principal": 500_000, "coupon_bps": 100}],
                  "tests": {}}, None,
                 id="lower-rate-exact-fit"),
    pytest.param({"breach_periods": 5}, {"trigger": ...}, None, id="trigger-default-from-config"),
])
def test_create_reads_config(contracts: dict[str, Any], overrides: dict[str, Any],
                             code: str | None) -> None:
    chain = new_deal_chain(contracts)
    if code:
        chain.fails(code, "trust", "deal.create", **create_args(**overrides))
        return
    deal = deal_of(chain, create_deal(chain, **overrides))
    assert deal["trigger"]["breach_periods"] == contracts.get("breach_periods", 3)


def test_collateral_counts_each_patent_once_and_only_live_ones() -> None:
    chain = new_deal_chain()
    put_patent(chain.state, "CN:4", "acme", 900_000, status="LAPSED")
    put_licence(chain.state, "a000000000000004", ["CN:1", "CN:4"])  # CN:1 again, and a dead patent
    one_tranche = [{"name": "a", "principal": 320_000, "coupon_bps": 100}]
    deal = deal_of(chain, create_deal(chain, assets=["a000000000000001", "a000000000000004"], tranches=one_tranche,
                                      tests={}))
    assert deal["collateral_value"] == 400_000
    chain.fails("AdvanceRateExceeded", "trust", "deal.create",
                **create_args(assets=["a000000000000001", "a000000000000004"], tests={},
                              tranches=[{**one_tranche[0], "principal": 320_001}]))


# -- deal.subscribe ----------------------------------------------------------------------------

SUBSCRIBE_REFUSALS: list[tuple[str, str, dict[str, Any], str]] = [
    ("over-tranche-size", "fund", {"tranche": "senior", "amount": 500_001}, "TrancheFull"),
    ("over-what-is-left", "inv2", {"tranche": "senior", "amount": 100_001}, "TrancheFull"),
    ("unknown-tranche", "fund", {"tranche": "super", "amount": 1}, "TrancheNotFound"),
    ("unknown-deal", "fund", {"deal": "0" * 16, "tranche": "senior", "amount": 1},
     "DealNotFound"),
    ("sender-lacks-investor-role", "acme", {"tranche": "senior", "amount": 1}, "Unauthorized"),
    ("cannot-pay", "poor", {"tranche": "senior", "amount": 11}, "InsufficientFunds"),
    ("amount-zero", "fund", {"tranche": "senior", "amount": 0}, "BadArguments"),
    ("amount-not-int", "fund", {"tranche": "senior", "amount": "5"}, "BadArguments"),
]


@pytest.mark.parametrize("sender, args, code",
                         [pytest.param(*row[1:], id=row[0]) for row in SUBSCRIBE_REFUSALS])
def test_subscribe_refusals(sender: str, args: dict[str, Any], code: str) -> None:
    chain = new_deal_chain()
    deal_id = create_deal(chain)
    chain.must("fund", "deal.subscribe", deal=deal_id, tranche="senior", amount=400_000)
    chain.fails(code, sender, "deal.subscribe", **{"deal": deal_id, **args})


def test_subscribe_escrows_and_records_the_position() -> None:
    chain = new_deal_chain()
    deal_id = create_deal(chain)
    chain.must("fund", "deal.subscribe", deal=deal_id, tranche="senior", amount=300_000)
    chain.must("fund", "deal.subscribe", deal=deal_id, tranche="senior", amount=150_000)
    chain.must("inv2", "deal.subscribe", deal=deal_id, tranche="senior", amount=50_000)
    senior = tranche_of(chain, deal_id, "senior")
    assert senior["holders"] == {"fund": {"units": 450_000, "balance": 450_000},
                                 "inv2": {"units": 50_000, "balance": 50_000}}
    assert (senior["sold"], senior["balance"]) == (500_000, 500_000)
    assert bpc(chain, f"deal:{deal_id}") == deal_of(chain, deal_id)["escrow"] == 500_000
    assert bpc(chain, "fund") == 10_000_000 - 450_000
    assert chain.query("deals", deal_id)["pending_collections"] == 0  # escrow is not income
    chain.fails("TrancheFull", "inv3", "deal.subscribe", deal=deal_id, tranche="senior", amount=1)


# -- deal.close ---------------------------------------------------------------------------------

def sold_out(chain: Chain) -> str:
    deal_id = create_deal(chain)
    subscribe_all(chain, deal_id)
    return deal_id


def partly_sold(chain: Chain) -> str:
    deal_id = create_deal(chain)
    subscribe_all(chain, deal_id, SUBSCRIPTIONS[:-1])  # equity unsold
    return deal_id


def assigned_meanwhile(chain: Chain) -> str:
    deal_id = sold_out(chain)
    chain.state.put("royalty_assignment/a000000000000003", "deal:other")
    return deal_id


def died_meanwhile(chain: Chain) -> str:
    deal_id = sold_out(chain)
    lapse("CN:2")(chain)
    return deal_id


CLOSE_REFUSALS: list[tuple[str, Callable[[Chain], str], str, str]] = [
    ("another-trustee", sold_out, "trust2", "NotTrustee"),
    ("sender-lacks-trustee-role", sold_out, "fund", "Unauthorized"),
    ("tranche-not-sold", partly_sold, "trust", "TranchesNotSold"),
    ("already-closed", closed_deal, "trust", "DealNotOpen"),
    ("licence-assigned-meanwhile", assigned_meanwhile, "trust", "AssetAlreadyAssigned"),
    ("licence-died-meanwhile", died_meanwhile, "trust", "AssetNotActive"),
    ("unknown-deal", lambda c: "f" * 16, "trust", "DealNotFound"),
]


@pytest.mark.parametrize("setup, sender, code",
                         [pytest.param(*row[1:], id=row[0]) for row in CLOSE_REFUSALS])
def test_close_refusals(setup: Callable[[Chain], str], sender: str, code: str) -> None:
    chain = new_deal_chain()
    deal_id = setup(chain)
    chain.fails(code, sender, "deal.close", deal=deal_id)


def test_close_is_a_true_sale_and_assigns_the_royalties() -> None:
    chain = new_deal_chain()
    before = bpc(chain, "acme")
    deal_id = closed_deal(chain)
    assert bpc(chain, "acme") - before == 800_000
    assert bpc(chain, f"deal:{deal_id}") == 0
    deal = deal_of(chain, deal_id)
    assert (deal["state"], deal["escrow"]) == ("closed", 0)
    for lid in ("a000000000000001", "a000000000000002", "a000000000000003"):
        assert chain.get(f"royalty_assignment/{lid}") == f"deal:{deal_id}"


def test_second_deal_over_the_same_licence_cannot_close() -> None:
    chain = new_deal_chain()
    first, second = sold_out(chain), create_deal(chain)
    subscribe_all(chain, second)
    chain.must("trust", "deal.close", deal=first)
    chain.fails("AssetAlreadyAssigned", "trust", "deal.close", deal=second)
    chain.fails("AssetAlreadyAssigned", "trust", "deal.create", **create_args())


# -- deal.transfer ------------------------------------------------------------------------------

TRANSFER_REFUSALS: list[tuple[str, str, dict[str, Any], str]] = [
    ("no-position-in-tranche", "fund", {"tranche": "mezz", "to": "inv3", "amount": 1},
     "NotHolder"),
    ("more-than-held", "inv3", {"tranche": "mezz", "to": "fund", "amount": 50_001}, "NotHolder"),
    ("to-a-non-investor", "fund", {"tranche": "senior", "to": "acme", "amount": 1},
     "NotInvestor"),
    ("to-nobody", "fund", {"tranche": "senior", "to": "ghost", "amount": 1}, "UnknownAccount"),
    ("to-self", "fund", {"tranche": "senior", "to": "fund", "amount": 1}, "BadArguments"),
    ("amount-zero", "fund", {"tranche": "senior", "to": "inv3", "amount": 0}, "BadArguments"),
    ("unknown-tranche", "fund", {"tranche": "x", "to": "inv3", "amount": 1}, "TrancheNotFound"),
    ("unknown-deal", "fund", {"deal": "1" * 16, "tranche": "senior", "to": "inv3", "amount": 1},
     "DealNotFound"),
]


@pytest.mark.parametrize("sender, args, code",
                         [pytest.param(*row[1:], id=row[0]) for row in TRANSFER_REFUSALS])
def test_transfer_refusals(sender: str, args: dict[str, Any], code: str) -> None:
    chain = new_deal_chain()
    deal_id = closed_deal(chain)
    chain.fails(code, sender, "deal.transfer", **{"deal": deal_id, **args})


def test_transfer_moves_units_and_a_pro_rata_balance() -> None:
    chain = new_deal_chain()
    deal_id = closed_deal(chain)
    collect(chain, deal_id, 29_000)  # 10 000 of senior principal repaid: factor 0.98
    chain.must("trust", "deal.distribute", deal=deal_id, period=1)
    assert tranche_of(chain, deal_id, "senior")["holders"]["fund"] == {"units": 300_000,
                                                                      "balance": 294_000}
    chain.must("fund", "deal.transfer", deal=deal_id, tranche="senior", to="inv3",
               amount=100_001)  # balance moved = 294 000 x 100 001 / 300 000, rounded down
    holders = tranche_of(chain, deal_id, "senior")["holders"]
    assert holders["fund"] == {"units": 199_999, "balance": 196_000}
    assert holders["inv3"] == {"units": 100_001, "balance": 98_000}
    chain.must("inv2", "deal.transfer", deal=deal_id, tranche="senior", to="inv3",
               amount=200_000)
    senior = tranche_of(chain, deal_id, "senior")
    assert sorted(senior["holders"]) == ["fund", "inv3"]  # a sold-out holder disappears
    assert sum(p["balance"] for p in senior["holders"].values()) == senior["balance"] == 490_000


def test_transfer_before_close_moves_the_subscription() -> None:
    chain = new_deal_chain()
    deal_id = create_deal(chain)
    chain.must("fund", "deal.subscribe", deal=deal_id, tranche="equity", amount=100_000)
    chain.must("fund", "deal.transfer", deal=deal_id, tranche="equity", to="inv2", amount=40_000)
    assert tranche_of(chain, deal_id, "equity")["holders"] == {
        "fund": {"units": 60_000, "balance": 60_000}, "inv2": {"units": 40_000, "balance": 40_000}}


# -- queries ------------------------------------------------------------------------------------


def test_queries_list_deals_and_reports() -> None:
    chain = new_deal_chain()
    deal_id = closed_deal(chain)
    collect(chain, deal_id, 20_000)
    chain.must("trust", "deal.distribute", deal=deal_id, period=1)
    collect(chain, deal_id, 7)
    listing = chain.query("deals")
    assert listing == [{"id": deal_id, "state": "closed", "trustee": "trust",
                        "originator": "acme", "last_period": 1,
                        "tranches": {"senior": 499_000, "mezz": 200_000, "equity": 100_000}}]
    full = chain.query("deals", deal_id)
    assert (full["account_balance"], full["pending_collections"]) == (7, 7)
    assert full["performing_value"] == 1_000_000 and full["triggered"] is False
    assert [r["period"] for r in chain.query("deal_reports", deal_id)] == [1]
    assert chain.query("deal_reports", deal_id, "1")["collections"] == 20_000


@pytest.mark.parametrize("parts, error", [
    (("deals", "nope"), "DealNotFound"),
    (("deal_reports", "nope"), "DealNotFound"),
    (("deal_reports", "DEAL", "2"), "NotFound"),
    (("deal_reports", "DEAL", "x"), "BadArguments"),
])
def test_query_errors(parts: tuple[str, ...], error: str) -> None:
    chain = new_deal_chain()
    deal_id = closed_deal(chain)
    with pytest.raises(errors.ContractError) as caught:
        chain.query(*[deal_id if p == "DEAL" else p for p in parts])
    assert caught.value.code == error


# -- end to end through the registry and licensing ops -----------------------------------------


def deposit_granted_appraised(chain: Chain, number: str, value: int) -> str:
    chain.must("acme", "patent.deposit", office="CN", application_no=number,
               doc_hash=f"{int(number):064x}",
               meta={"title": "Ledger", "kind": "invention", "filing_date": "2021-03-01",
                     "owners": [["acme", 10_000]]})
    pid = f"CN:{number}"
    chain.must("cnipa", "patent.set_status", patent=pid, status="PUBLISHED")
    chain.must("cnipa", "patent.set_status", patent=pid, status="GRANTED")
    chain.must("eval", "appraisal.post", patent=pid, value=value, basis="income approach")
    return pid


def test_end_to_end_royalty_pay_lands_in_the_deal_and_is_distributed() -> None:
    chain = new_deal_chain(values=())
    pid = deposit_granted_appraised(chain, "101", 1_000_000)
    offer = chain.must("acme", "licence.offer", licensee="bolt", patents=[pid],
                       kind="non_exclusive", start_date="2024-01-01", end_date="2030-12-31",
                       royalty_bps=1_000)
    lid = offer.events[0].data["licence"]
    chain.must("bolt", "licence.accept", licence=lid)
    deal_id = closed_deal(chain, assets=[lid])
    chain.advance(days=100)  # 2024-Q1 has ended
    chain.must("bolt", "royalty.report", licence=lid, period="2024-Q1", net_sales=300_000,
               units=10)
    acme_before = bpc(chain, "acme")
    chain.must("bolt", "royalty.pay", licence=lid, period="2024-Q1")
    assert bpc(chain, "acme") == acme_before  # assigned: the originator no longer collects
    assert chain.query("deals", deal_id)["pending_collections"] == 30_000
    chain.must("trust", "deal.distribute", deal=deal_id, period=1)
    report = chain.query("deal_reports", deal_id, "1")
    assert report["collections"] == report["total_paid"] == 30_000
    assert bpc(chain, f"deal:{deal_id}") == 0
    # the alliance keeps every BPC: royalties moved, none created or lost
    total = sum(value for _, value in chain.state.items("bal/BPC/"))
    assert total == chain.get("supply/BPC")


def test_distribute_counts_only_new_money_even_if_someone_pays_the_account_directly() -> None:
    chain = new_deal_chain()
    deal_id = closed_deal(chain)
    transfer_units(chain.state, "BPC", "lic", f"deal:{deal_id}", 5)
    chain.must("trust", "deal.distribute", deal=deal_id, period=1)
    assert chain.query("deal_reports", deal_id, "1")["collections"] == 5
    chain.must("trust", "deal.distribute", deal=deal_id, period=2)
    assert chain.query("deal_reports", deal_id, "2")["collections"] == 0
