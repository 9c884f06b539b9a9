"""Bench arithmetic and pre-signing; the demo story against the real contracts."""

from __future__ import annotations

import datetime
import random
from collections import defaultdict
from pathlib import Path

import msgpack
import pytest

from contracts import tx as txmod
from contracts.genesis import init_state
from contracts.runtime import BlockContext, apply_block
from scripts import bench, workload
from scripts.cluster import Cluster


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
    tally.last_commit = 10.7
    result = bench.summarize(cfg, tally, start=10.0, sent_end=11.0, agreement=True)
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
    families = (workload.registry_phases(), workload.licensing_phases(TODAY),
                workload.pool_phases(TODAY), workload.securitization_phases(TODAY))
    return {op for family in families for phase in family for op in phase.ops} | {
        "token.transfer"}


def test_story_stops_at_the_first_phase_whose_ops_are_missing() -> None:
    assert [p.name for p in workload.story({"token.transfer"}, TODAY)] == ["funding"]
    everything = all_story_ops()
    names = [p.name for p in workload.story(everything, TODAY)]
    assert names[:2] == ["funding", "deposits"] and names[-1] == "waterfall"
    cut = [p.name for p in workload.story(everything - {"pool.join"}, TODAY)]
    assert cut[-1] == "essentiality" and "deal creation" not in cut


@pytest.mark.parametrize("today, period, first_day", [
    (datetime.date(2026, 11, 21), "2026-Q3", datetime.date(2026, 7, 1)),
    (datetime.date(2026, 1, 1), "2025-Q4", datetime.date(2025, 10, 1)),
    (datetime.date(2026, 4, 1), "2026-Q1", datetime.date(2026, 1, 1)),
])
def test_previous_quarter(today, period, first_day) -> None:
    assert workload.get_previous_quarter(today) == (period, first_day)


def test_resolve_fills_refs_and_names_the_missing_one() -> None:
    args = {"deal": workload.Ref("deal"), "assets": [workload.Ref("a")], "n": 1}
    assert workload.resolve(args, {"deal": "d1", "a": "l1"}) == {
        "deal": "d1", "assets": ["l1"], "n": 1}
    with pytest.raises(workload.UnresolvedRef, match="a"):
        workload.resolve(args, {"deal": "d1"})


def test_the_story_commits_against_the_current_contracts(tmp_path: Path) -> None:
    """Every step of the demo, phase by phase in its own block, is accepted by the
    contracts this checkout registers (what the nodes will run)."""
    cluster = Cluster.create(tmp_path / "d", 1, 31600)
    state = init_state(cluster.genesis)
    supply = state.get("supply/BPC")
    nonce: dict[str, int] = defaultdict(int)
    refs: dict[str, str] = {}
    phases = workload.story(workload.get_available_ops(), TODAY)
    for height, phase in enumerate(phases, start=1):
        txs = []
        for step in phase.steps:
            key = cluster.client_key(step.org)
            txs.append(txmod.sign_tx(key, cluster.chain_id, nonce[step.org], step.op,
                                     workload.resolve(step.args, refs)))
            nonce[step.org] += 1
        ctx = BlockContext(cluster.chain_id, height, TODAY_MS + height * 1000)
        receipts = apply_block(state, ctx, txs)
        failed = [(s.what, r.code, r.message) for s, r in zip(phase.steps, receipts) if not r.ok]
        assert failed == [], phase.name
        refs.update({s.binds: workload.record_id(tx.id)
                     for s, tx in zip(phase.steps, txs) if s.binds})
    assert state.get("supply/BPC") == supply  # the story moves BPC, never creates it
