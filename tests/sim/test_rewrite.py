"""Issue 17 B2 in the simulator: a network adversary without keys rewrites what no
signature covers (a PRE-PREPARE's transactions, a served block's certificate list, the
sender field) and delivers its forgery ahead of the genuine packet. Blame only what is
signed: across many seeds this must cause no view change, no evidence and no checker
violation — exactly as if the adversary were not there.
"""

from __future__ import annotations

from ipchain.sim.faults import MIXES, Episode, FaultPlan
from ipchain.sim.run import SimConfig, Simulation


def run(seed: int, cfg: SimConfig, plan: FaultPlan | None = None) -> Simulation:
    sim = Simulation(seed, cfg, plan)
    result = sim.run()
    assert result.ok, result.describe()
    sim.result = result
    return sim


def test_unsigned_rewrites_cause_no_view_change_and_no_evidence_over_many_seeds() -> None:
    cfg = SimConfig(blocks=30, mix=MIXES["none"], rewrite_rate=0.5)
    forged_preprepares = 0
    for seed in range(1, 41):
        sim = run(seed, cfg)
        stats = sim.result.stats
        assert stats["view_changes"] == 0, sim.result.describe()
        assert stats["max_view"] == 0 and stats["evidence"] == 0, sim.result.describe()
        assert all(h.replica.view == 0 and not h.replica.in_view_change for h in sim.hosts)
        dropped = sum(h.replica.stats["dropped_preprepare_txs_mismatch"] for h in sim.hosts)
        forged_preprepares += dropped
    # The adversary did reach the replicas (else the test proves nothing).
    assert forged_preprepares > 100


def test_rewrites_during_catch_up_are_dropped_and_the_crashed_replica_still_catches_up() -> None:
    """Served blocks are rewritten too: a replica that restarts behind fetches through
    the forgeries and ends at the others' height, with nothing held against anyone."""
    cfg = SimConfig(blocks=40, mix=MIXES["none"], rewrite_rate=0.5)
    rewritten_blocks = 0
    for seed in range(1, 9):
        plan = FaultPlan(seed, "explicit", (2,), {}, (Episode(200, 1_500, "crash", (2,)),))
        sim = run(seed, cfg, plan)
        stats = sim.result.stats
        assert stats["height_min"] == stats["height_max"], sim.result.describe()
        assert stats["evidence"] == 0 and stats["max_view"] == 0, sim.result.describe()
        rewritten_blocks += sim.network.rewriter.stats["rewritten_blocks"]
    assert rewritten_blocks > 0
