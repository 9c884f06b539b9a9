"""The demo's tables, built from the whole story replayed in-process.

The demo reads its tables back through `GET /v1/state/...`; here the same reads go to
the contracts' query functions on an in-process replay, wrapped the way node/api.py
wraps them, so the demo's reading and printing is checked without a cluster (the live
run is tests/cluster/test_cli.py).
"""

from __future__ import annotations

import asyncio
import copy
import datetime
from typing import Any

import pytest

from contracts import errors
from contracts.queries import run_query
from ipchain.workloads import demo, market
from ipchain.workloads import story as workload
from ipchain.cluster.manager import Cluster

TODAY = datetime.date(2026, 11, 21)
NOON_MS = int(datetime.datetime(2026, 11, 21, 12, tzinfo=datetime.timezone.utc).timestamp()
              * 1000)
Q2, Q3 = "2026-Q2", "2026-Q3"


def make_local_getter(replay: workload.Replay) -> demo.Getter:
    """GET /v1/state/{kind}/{parts...} answered in-process, shaped as node/api.py does."""
    height = len(replay.blocks)

    async def get(kind: str, *parts: str) -> Any:
        try:
            result = run_query(replay.state, replay.timestamp_ms, kind, list(parts))
        except errors.ContractError:
            return None
        if isinstance(result, dict):
            return {**result, "height": height}
        return {"height": height, "result": result}
    return get


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    return Cluster.create(tmp_path_factory.mktemp("story") / "d", 1, 31700)


@pytest.fixture(scope="module")
def replay(cluster: Cluster) -> workload.Replay:
    replay = workload.replay_story(cluster.genesis, cluster.client_key,
                                   workload.full_story(TODAY), NOON_MS)
    failed = [(r.code, r.message) for receipts in replay.receipts for r in receipts if not r.ok]
    assert failed == []
    return replay


@pytest.fixture(scope="module")
def ratings_before(cluster: Cluster) -> dict[str, Any]:
    """The ratings as the demo reads them: after the story, before the market chapter."""
    before, chapter = market.split_chapter(workload.full_story(TODAY))
    assert chapter and all(p.name.startswith("market:") for p in chapter)
    replay = workload.replay_story(cluster.genesis, cluster.client_key, before, NOON_MS)
    return asyncio.run(market.get_ratings(make_local_getter(replay)))


@pytest.fixture(scope="module")
def views(replay: workload.Replay, ratings_before: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(demo.get_story_views(make_local_getter(replay), replay.refs,
                                            ratings_before))


def test_every_claim_of_the_issue_holds_on_the_story(views) -> None:
    checks = demo.compute_story_checks(views)
    assert len(checks) == 7 and all(holds == "yes" for _, holds in checks), checks


def test_the_bpr_buyer_and_only_it_is_licensed_for_every_pooled_patent(views) -> None:
    rows = demo.compute_pool_licence_rows(views)
    pooled = sorted(p.id for p in workload.POOLED)
    licensed = {(holder, patent): (in_pool, ok) for holder, _, patent, in_pool, ok, _ in rows}
    assert licensed == {
        **{(workload.BPR_BUYER, pid): ("yes", "yes") for pid in pooled},
        (workload.BPR_BUYER, workload.OPEN_PATENT.id): ("no", "no"),
        **{("harbor-capital", pid): ("yes", "no") for pid in pooled},
        ("harbor-capital", workload.OPEN_PATENT.id): ("no", "no"),
    }
    assert {row[1] for row in rows if row[0] == workload.BPR_BUYER} == {1000}


def test_the_licence_table_shows_the_open_licence_bought_at_its_price(views) -> None:
    rows = {row[0]: row for row in demo.compute_licence_rows(views)}
    assert sorted(rows) == ["A", "B", "C", "open"]
    label, _, licensors, licensee, patents, kind, fee, *_, made_by, in_force, _ = rows["open"]
    assert (licensors, licensee, patents, kind, fee, made_by, in_force) == (
        workload.OPEN_PATENT.owner, workload.OPEN_LICENSEE, workload.OPEN_PATENT.id,
        "non_exclusive", workload.OPEN_PRICE, "open offer", "yes")
    assert {rows[name][9] for name in "ABC"} == {"offer+accept"}


def test_royalties_show_two_quarters_paid_to_licensors_or_the_deal(views, replay) -> None:
    deal_account = f"deal:{replay.refs['deal']}"
    rows = [(label, period, due, status, paid_to)
            for label, _, period, _, _, _, due, status, paid_to, _, _
            in demo.compute_royalty_rows(views)]
    assert rows == [
        ("A", Q2, 240_000, "paid", deal_account), ("A", Q3, 300_000, "paid", deal_account),
        ("B", Q2, 100_000, "paid", "licensors"), ("B", Q3, 120_000, "paid", "licensors"),
        ("C", Q2, 40_000, "paid", deal_account), ("C", Q3, 30_000, "UNPAID", ""),
    ]


def test_the_deal_has_three_tranches_and_the_default_written_down_equity_first(views) -> None:
    rows = {row[0]: row for row in demo.compute_tranche_rows(views["deal"])}
    assert list(rows) == ["senior", "mezzanine", "equity"]
    written_down = {name: row[6] for name, row in rows.items()}
    written_back = {name: row[7] for name, row in rows.items()}
    assert written_down == {"senior": 0, "mezzanine": 150_000, "equity": 500_000}
    assert sum(written_down.values()) == workload.DEFAULT_LOSS
    assert written_back == {"senior": 0, "mezzanine": workload.RECOVERY, "equity": 0}
    assets = {row[0]: row[3:] for row in demo.compute_asset_rows(views)}
    assert assets == {"A": ["no", 0, 0], "C": ["yes", workload.DEFAULT_LOSS, workload.RECOVERY]}


def test_each_report_pays_out_exactly_its_collections(views) -> None:
    rows = demo.compute_report_rows(views["reports"])
    assert [(row[0], row[2]) for row in rows] == [
        (1, "sequential"), (2, "sequential"), (3, "triggered")]
    for period, _, _, collections, fees, interest, principal, residual, *_ in rows:
        assert fees + interest + principal + residual == collections, period
    assert [row[9] for row in rows] == [0, 0, workload.DEFAULT_LOSS - workload.RECOVERY]
    assert [row[10].endswith("pass") for row in rows] == [True, True, False]


def test_the_final_report_pays_nothing_junior_once_a_step_is_short(views) -> None:
    steps = demo.compute_step_rows(views["reports"][-1])
    short = next(i for i, row in enumerate(steps) if row[5] > 0)
    assert steps[short][1:3] == ["principal", "senior"]  # triggered: senior first
    assert all(row[4] == 0 for row in steps[short + 1:])
    assert ["interest", "mezzanine", 38_000, 0, 38_000] in [row[1:] for row in steps]
    trigger = views["reports"][-1]["trigger"]
    assert (trigger["triggered"], trigger["fired_period"]) == (True, 3)


def test_the_equity_residual_is_split_by_holding(views) -> None:
    equity = {(period, holder): amount for period, tranche, holder, amount
              in demo.compute_payment_rows(views["reports"]) if tranche == "equity"}
    for period in (1, 2):
        harbor, summit = equity[(period, "harbor-capital")], equity[(period, "summit-ventures")]
        assert harbor * 3 == summit * 2  # 200 000 : 300 000 units
    assert not any(period == 3 for period, _ in equity)


def drop_pool_licence(views: dict[str, Any]) -> None:
    views["pool_licensed"][0]["licensed"] = False


def drop_open_licence(views: dict[str, Any]) -> None:
    del views["licences"]["open_licence"]


def unpay_royalties(views: dict[str, Any]) -> None:
    for answer in views["royalties"].values():
        for report in answer["reports"]:
            report["paid"] = False


def two_tranches(views: dict[str, Any]) -> None:
    views["deal"]["tranches"].pop(1)


def one_report_before_default(views: dict[str, Any]) -> None:
    views["reports"].pop(0)


def no_default(views: dict[str, Any]) -> None:
    for asset in views["deal"]["assets"].values():
        asset["defaulted"] = False


def final_before_default(views: dict[str, Any]) -> None:
    views["reports"].pop()


@pytest.mark.parametrize("mutate, failing", [
    (drop_pool_licence, 0), (drop_open_licence, 1), (unpay_royalties, 2),
    (two_tranches, 3), (one_report_before_default, 4), (no_default, 5),
    (final_before_default, 6),
])
def test_story_checks_name_the_missing_element(views, mutate, failing) -> None:
    broken = copy.deepcopy(views)
    mutate(broken)
    holds = [holds for _, holds in demo.compute_story_checks(broken)]
    assert holds == ["no" if i == failing else "yes" for i in range(7)]


def test_report_prints_every_table_and_fails_on_disagreement(views, capsys) -> None:
    head = {"height": 29, "hash": "ab" * 32, "state_root": "cd" * 32}
    rows = [["tx", "phase", "op", "what", "node0", 1, "committed"]]
    assert demo.report(rows, views, [], [head] * 4) is True
    out = capsys.readouterr().out
    for title in ("pool licences", "licences", "royalties reported and paid",
                  "pool distribution", "deal tranches", "disclosure reports",
                  "payments to holders", "final disclosure report, period 3",
                  "period 3 waterfall", "period 3 balances", "period 3 tests",
                  "trigger: FIRED in period 3", "the story, checked on chain",
                  "exchange: listing and bid", "pledge loans", "credit ratings",
                  "the market chapter, checked on chain",
                  "all 4 nodes agree at height 29"):
        assert title in out, title
    assert demo.report(rows, views, [], [head] * 3 + [{**head, "state_root": "ee" * 32}]) is False
    broken = copy.deepcopy(views)
    no_default(broken)
    assert demo.report(rows, broken, [], [head] * 4) is False
    assert demo.report(rows, broken, [], [head] * 4, complete=False) is True


# -- the market chapter ----------------------------------------------------------------------


def test_every_claim_of_the_market_chapter_holds(views) -> None:
    chapter = views["market"]
    checks = market.compute_market_checks(chapter, chapter["before"], chapter["after"])
    assert len(checks) == 6 and all(holds == "yes" for _, holds in checks), checks


def test_the_sale_settles_fee_then_seller_in_one_transaction(replay) -> None:
    """6 000 003 at 25 bps: fee floor(15 000.0075) = 15 000 to the secretariat; no pledge;
    the university, sole owner, gets 5 985 003; Acme becomes the owner."""
    settled = [e.data for receipts in replay.receipts for r in receipts for e in r.events
               if (e.contract, e.name) == ("market", "settled")]
    assert len(settled) == 1
    sale = settled[0]
    assert (sale["buyer"], sale["price"], sale["clearing_fee"], sale["clearing_account"],
            sale["secured_paid"], sale["parts"]) == (
        market.BUYER, market.PRICE, 15_000, "alliance-secretariat", 0,
        {market.SELLER: 5_985_003})


def test_licences_on_the_sold_patent_survive_and_the_pool_keeps_it(views) -> None:
    chapter = views["market"]
    licensees = sorted(lic["licensee"] for lic in chapter["licences_on_patent"])
    assert licensees == ["acme-electronics", "openledger-community"]
    assert {lic["state"] for lic in chapter["licences_on_patent"]} == {"active"}
    members = {m["patent"]: m for m in views["pool"]["members"]}
    assert members[market.SOLD_PATENT_ID]["owners"] == [[market.BUYER, 10_000]]


def test_loan_rows_show_the_instalment_and_the_enforced_shortfall(views) -> None:
    rows = {row[0]: row for row in market.compute_loan_rows(views["market"])}
    assert rows["loan_1"][3:] == [market.LENDER, 400_000, 600, 180, "active", 100_000, 0,
                                  300_000, 0]
    assert rows["loan_2"][3:] == [market.LENDER, 250_000, 900, 0, "enforced", 0, 0,
                                  250_000, 250_000]


def test_credit_ratings_before_and_after_the_chapter(views) -> None:
    """acme: royalties Q2 late, Q3 on time (due 60 days after the quarter) -> 75 B;
    the university originated the deal whose mezzanine and equity were written down ->
    33 D; OpenLedger: one on time, two late, C's Q3 not yet due -> 66 B; Minim Devices:
    no history (50 C) until its second loan is enforced -> 0 E."""
    rows = {row[0]: row[1:3] for row in market.compute_rating_rows(
        views["market"]["before"], views["market"]["after"])}
    assert rows == {"acme-electronics": ["75 B", "75 B"], "north-university": ["33 D", "33 D"],
                    "openledger-community": ["66 B", "66 B"],
                    "minim-devices": ["50 C", "0 E"]}


def unsell(chapter: dict[str, Any]) -> None:
    chapter["patent"]["owners"] = [[market.SELLER, 10_000]]


def drop_licences(chapter: dict[str, Any]) -> None:
    chapter["licences_on_patent"] = []


def keep_escrow(chapter: dict[str, Any]) -> None:
    chapter["market"]["escrow"] = market.BID


def repay_nothing(chapter: dict[str, Any]) -> None:
    chapter["loans"]["loan_1"]["principal_paid"] = 0


def not_enforced(chapter: dict[str, Any]) -> None:
    chapter["loans"]["loan_2"]["state"] = "active"


def no_rating_change(chapter: dict[str, Any]) -> None:
    chapter["after"][market.BORROWER] = chapter["before"][market.BORROWER]


@pytest.mark.parametrize("mutate, failing", [
    (unsell, 0), (drop_licences, 1), (keep_escrow, 2), (repay_nothing, 3), (not_enforced, 4),
    (no_rating_change, 5),
])
def test_market_checks_name_the_missing_element(views, mutate, failing) -> None:
    chapter = copy.deepcopy(views["market"])
    mutate(chapter)
    holds = [holds for _, holds in market.compute_market_checks(
        chapter, chapter["before"], chapter["after"])]
    assert holds == ["no" if i == failing else "yes" for i in range(6)]
