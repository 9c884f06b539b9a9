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
from ipchain.workloads import demo
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
def replay(tmp_path_factory: pytest.TempPathFactory) -> workload.Replay:
    cluster = Cluster.create(tmp_path_factory.mktemp("story") / "d", 1, 31700)
    replay = workload.replay_story(cluster.genesis, cluster.client_key,
                                   workload.full_story(TODAY), NOON_MS)
    assert all(r.ok for receipts in replay.receipts for r in receipts)
    return replay


@pytest.fixture(scope="module")
def views(replay: workload.Replay) -> dict[str, Any]:
    return asyncio.run(demo.get_story_views(make_local_getter(replay), replay.refs))


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
                  "all 4 nodes agree at height 29"):
        assert title in out, title
    assert demo.report(rows, views, [], [head] * 3 + [{**head, "state_root": "ee" * 32}]) is False
    broken = copy.deepcopy(views)
    no_default(broken)
    assert demo.report(rows, broken, [], [head] * 4) is False
    assert demo.report(rows, broken, [], [head] * 4, complete=False) is True
