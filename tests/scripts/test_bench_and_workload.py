"""Bench arithmetic and pre-signing; the demo story against the real contracts."""

from __future__ import annotations

import datetime
import random
from collections import defaultdict
from pathlib import Path

import msgpack
import nacl.signing
import pytest

from contracts import tx as txmod
from contracts.genesis import init_state
from contracts.runtime import BlockContext, apply_block
from ipchain.workloads import bench
from ipchain.workloads import story as workload
from ipchain.cluster.manager import Cluster


@pytest.mark.parametrize("values_s, pct, expected_ms", [
    ([], 50, None),
    ([0.010], 99, 10.0),
    ([0.001 * i for i in range(1, 101)], 50, 50.0),
    ([0.001 * i for i in range(1, 101)], 99, 99.0),
    ([0.001 * i for i in range(1, 101)], 100, 100.0),
    ([0.1, 0.2, 0.3], 50, 200.0),
])
def test_percentile_is_nearest_rank(values_s, pct, expected_ms) -> None:
    assert bench.percentile_ms(sorted(values_s), pct) == expected_ms


def test_summarize_counts_and_rates() -> None:
    cfg = bench.BenchConfig(nodes=4, duration_s=2.0, rate_tps=100)
    tally = bench.Tally(rejected=1, blocks=2, block_txs=3, final_height=5)
    tally.submitted_at = {"a": 10.0, "b": 10.5, "c": 11.0}
    tally.committed_at = {"a": 10.1, "b": 10.7}
    tally.proposed_at = {"a": 10.02, "b": 10.6}
    tally.last_commit = 10.7
    result = bench.summarize(cfg, tally, start=10.0, sent_end=11.0, agreement=True)
    # Latency split at the primary's proposal: waiting to be proposed, then agreeing.
    assert (result["to_proposal_p50_ms"], result["to_proposal_p99_ms"]) == (20.0, 100.0)
    assert (result["after_proposal_p50_ms"], result["after_proposal_p99_ms"]) == (80.0, 100.0)
    assert result["submitted"] == 4 and result["committed"] == 2
    assert result["rejected"] == 1 and result["uncommitted"] == 1
    assert result["committed_tps"] == round(2 / 0.7, 1)
    assert result["sent_tps"] == 2.0  # 4 offered over the 2 s run
    assert (result["p50_ms"], result["p99_ms"]) == (100.0, 200.0)
    assert {"nodes", "duration_s", "offered_tps", "committed_tps", "p50_ms", "p99_ms",
            "submitted", "committed", "rejected"} <= set(result)


def test_presigned_batches_use_each_nonce_once_and_apply(tmp_path: Path) -> None:
    cluster = Cluster.create(tmp_path / "d", 1, 31500, clients=4)
    batches = bench.presign(cluster, 103, 4, 25, random.Random(3))
    assert [len(b.ids) for b in batches] == [25, 25, 25, 25, 3]
    txs = [txmod.from_bytes(raw) for b in batches for raw in msgpack.unpackb(b.body)]
    assert [tx.id for tx in txs] == [i for b in batches for i in b.ids]
    nonces = defaultdict(list)
    for tx in txs:
        nonces[tx.sender_hex].append(tx.nonce)
    assert all(sorted(n) == list(range(len(n))) for n in nonces.values())
    receipts = apply_block(init_state(cluster.genesis),
                           BlockContext(cluster.chain_id, 1, 1_700_000_000_000), txs)
    assert all(r.ok for r in receipts), [r.code for r in receipts if not r.ok]


TODAY = datetime.date(2026, 11, 21)
TODAY_MS = int(datetime.datetime(2026, 11, 21, 12, tzinfo=datetime.timezone.utc).timestamp()
               * 1000)


def all_story_ops() -> set[str]:
    return {op for phase in workload.full_story(TODAY) for op in phase.ops}


def test_story_stops_at_the_first_phase_whose_ops_are_missing() -> None:
    assert [p.name for p in workload.story({"token.transfer"}, TODAY)] == ["funding"]
    everything = all_story_ops()
    names = [p.name for p in workload.story(everything, TODAY)]
    assert names[:2] == ["funding", "deposits"]
    assert names[-1] == "market: repayment and enforcement"
    assert names == [p.name for p in workload.full_story(TODAY)]
    cut = [p.name for p in workload.story(everything - {"pool.join"}, TODAY)]
    assert cut[-1] == "essentiality" and "deal creation" not in cut
    cut = [p.name for p in workload.story(everything - {"deal.default"}, TODAY)]
    assert cut[-1] == "waterfall period 2"
    cut = [p.name for p in workload.story(everything - {"loan.enforce"}, TODAY)]
    assert cut[-1] == "market: funding"


@pytest.mark.parametrize("today, period, first_day", [
    (datetime.date(2026, 11, 21), "2026-Q3", datetime.date(2026, 7, 1)),
    (datetime.date(2026, 1, 1), "2025-Q4", datetime.date(2025, 10, 1)),
    (datetime.date(2026, 4, 1), "2026-Q1", datetime.date(2026, 1, 1)),
])
def test_previous_quarter(today, period, first_day) -> None:
    assert workload.get_previous_quarter(today) == (period, first_day)


@pytest.mark.parametrize("today, count, expected", [
    (datetime.date(2026, 11, 21), 2, ["2026-Q2", "2026-Q3"]),
    (datetime.date(2026, 1, 1), 2, ["2025-Q3", "2025-Q4"]),
    (datetime.date(2026, 4, 1), 2, ["2025-Q4", "2026-Q1"]),
    (datetime.date(2026, 3, 31), 3, ["2025-Q2", "2025-Q3", "2025-Q4"]),
    (datetime.date(2026, 7, 1), 1, ["2026-Q2"]),
])
def test_ended_quarters_are_distinct_past_quarters_oldest_first(today, count, expected) -> None:
    quarters = workload.get_ended_quarters(today, count)
    assert [period for period, _ in quarters] == expected
    assert all(first_day < today for _, first_day in quarters)


def test_resolve_fills_refs_and_names_the_missing_one() -> None:
    args = {"deal": workload.Ref("deal"), "assets": [workload.Ref("a")], "n": 1}
    assert workload.resolve(args, {"deal": "d1", "a": "l1"}) == {
        "deal": "d1", "assets": ["l1"], "n": 1}
    with pytest.raises(workload.UnresolvedRef, match="a"):
        workload.resolve(args, {"deal": "d1"})


def test_sign_story_binds_records_only_after_their_phase() -> None:
    """In the demo a phase's steps run concurrently, so a step may not refer to a record
    created in its own phase; signing refuses it the same way."""
    key = nacl.signing.SigningKey(b"\x01" * 32)
    phases = [workload.Phase("one", (
        workload.Step("org", "pool.create", {}, "make", binds="pool"),
        workload.Step("org", "pool.join", {"pool": workload.Ref("pool")}, "use too early")))]
    with pytest.raises(workload.UnresolvedRef, match="pool"):
        workload.sign_story(phases, "chain", lambda org: key)
    phases = [workload.Phase("one", phases[0].steps[:1]),
              workload.Phase("two", phases[0].steps[1:])]
    blocks, refs = workload.sign_story(phases, "chain", lambda org: key)
    assert refs == {"pool": workload.record_id(blocks[0][0].id)}
    assert blocks[1][0].args == {"pool": refs["pool"]}
    assert [tx.nonce for block in blocks for tx in block] == [0, 1]


NEW_STORY_OPS = {"licence.open_offer", "licence.take_open", "deal.default", "deal.recover",
                 "market.list", "market.offer", "market.buy", "market.cancel", "loan.request",
                 "loan.fund", "loan.repay", "loan.enforce"}
"""Ops the full story uses beyond offers, royalties, the pool and one distribution."""


@pytest.mark.parametrize("today", [
    TODAY, datetime.date(2026, 1, 1), datetime.date(2027, 3, 31), datetime.date(2027, 7, 2)])
def test_the_story_commits_against_the_current_contracts(tmp_path: Path, today) -> None:
    """Every step of the demo, phase by phase in its own block, is accepted by the
    contracts this checkout registers (what the nodes will run), whatever today is:
    its royalty periods are the quarters that ended last."""
    cluster = Cluster.create(tmp_path / "d", 1, 31600)
    phases = workload.story(workload.get_available_ops(), today)
    assert len(phases) == len(workload.full_story(today))  # every contract family is in
    noon_ms = int(datetime.datetime(today.year, today.month, today.day, 12,
                                    tzinfo=datetime.timezone.utc).timestamp() * 1000)
    replay = workload.replay_story(cluster.genesis, cluster.client_key, phases, noon_ms)
    failed = [(phase.name, step.what, r.code, r.message)
              for phase, receipts in zip(phases, replay.receipts)
              for step, r in zip(phase.steps, receipts) if not r.ok]
    assert failed == []
    committed = [tx.op for block in replay.blocks for tx in block]
    assert NEW_STORY_OPS <= set(committed)
    assert committed.count("deal.distribute") == 3 and committed.count("royalty.pay") == 5
    assert set(replay.refs) == {*workload.LICENCES, "pool", "deal", "listing", "bid", "loan_1",
                                "loan_2"}
    genesis_bpc = sum(org["bpc"] for org in cluster.genesis["organisations"])
    assert replay.state.get("supply/BPC") == genesis_bpc  # moves BPC, never creates it
