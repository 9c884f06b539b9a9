"""Seed swarms over real replicas: faults of at most f replicas never break a checker,
and f+1 colluding Byzantine replicas always do (the negative control).

Named after what they show, in the manner of the paper's sections: normal case under
backup faults (§4.2), view change under primary faults (§4.4), Byzantine behaviours.
Long swarms are marked soak: `pytest -m soak tests/sim`.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from ipchain.checks import SAFETY
from ipchain.sim.faults import (BACKUP_BEHAVIOURS, MIXES, Episode, FaultPlan,
                             negative_control_mix)
from ipchain.sim.run import SimConfig, Simulation, run_seed


def swarm(cfg: SimConfig, seeds) -> list[str]:
    failures = []
    for seed in seeds:
        result = run_seed(seed, cfg)
        if not result.ok:
            failures.append(result.describe())
    return failures


# -- at most f faulty replicas: nothing may break ---------------------------------------------
def test_normal_case_survives_backup_crash_pause_partition_loss_and_lies() -> None:
    failures = swarm(SimConfig(blocks=40, mix=MIXES["normal"]), range(1, 26))
    assert not failures, "\n\n".join(failures)


def test_seven_replicas_survive_two_faulty_backups() -> None:
    failures = swarm(SimConfig(nodes=7, blocks=20, mix=MIXES["normal"]), range(1, 5))
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("behaviour", BACKUP_BEHAVIOURS)
def test_one_byzantine_backup_cannot_break_anything(behaviour: str) -> None:
    plan = FaultPlan(seed=1, mix="explicit", faulty=(2,), byzantine={2: behaviour})
    result = run_seed(1, SimConfig(blocks=25, mix=MIXES["none"]), plan)
    assert result.ok, result.describe()


def test_crashed_backup_restarts_from_its_wal_and_catches_up() -> None:
    plan = FaultPlan(1, "explicit", (2,), {}, (Episode(200, 1_200, "crash", (2,)),))
    result = run_seed(1, SimConfig(blocks=30, mix=MIXES["none"]), plan)
    assert result.ok, result.describe()
    assert result.stats["restarts"] == 1 and result.stats["height_min"] == result.stats["height_max"]


def test_view_change_replaces_a_crashed_primary() -> None:
    plan = FaultPlan(1, "explicit", (0,), {}, (Episode(300, 2_300, "crash", (0,)),))
    result = run_seed(1, SimConfig(blocks=50, mix=MIXES["none"]), plan)
    assert result.ok, result.describe()
    assert result.stats["max_view"] >= 1


@pytest.mark.parametrize("behaviour", ["mute", "wrong_digest", "equivocate"])
def test_view_change_replaces_a_byzantine_primary(behaviour: str) -> None:
    plan = FaultPlan(1, "explicit", (0,), {0: behaviour})
    result = run_seed(1, SimConfig(blocks=25, mix=MIXES["none"]), plan)
    assert result.ok, result.describe()


def test_full_mix_with_primary_faults_never_violates() -> None:
    failures = swarm(SimConfig(blocks=50, mix=MIXES["full"]), range(1, 13))
    assert not failures, "\n\n".join(failures)


def test_a_few_hundred_full_mix_schedules_on_4_and_7_replicas_never_violate() -> None:
    """The CI-sized swarm: every fault kind with at most f faulty replicas, primary
    faults and view changes included (the soak runs go to thousands)."""
    failures = swarm(SimConfig(blocks=25, mix=MIXES["full"]), range(1000, 1240))
    failures += swarm(SimConfig(nodes=7, blocks=15, mix=MIXES["full"]), range(2000, 2060))
    assert not failures, "\n\n".join(failures)


def test_blocks_committed_before_a_view_change_keep_a_valid_certificate() -> None:
    """Regression: a batch committed in view v and re-proposed in v+1 was delivered with
    the v+1 pre-prepare and the view-v commits (full mix seeds 4, 5, 7, 10, 14; fixed
    by the commit "Retransmit own votes ..., deliver with same-view certificates")."""
    result = run_seed(4, SimConfig(mix=MIXES["full"]))
    assert not [v for v in result.violations if v.invariant == "certificates"], result.describe()


def test_replica_that_missed_the_new_view_rejoins() -> None:
    result = run_seed(764, SimConfig(mix=MIXES["full"]))
    assert not [v for v in result.violations if v.invariant == "liveness"], result.describe()


def test_liveness_phase_sends_every_burst_before_the_run_may_end() -> None:
    """Regression: the run stopped as soon as the healed cluster was quiet, before the
    later liveness bursts were sent, so "new requests commit after healing" judged 2 of
    5 bursts (most `none` seeds), 1 of 5 (normal seed 17) or none (full seed 11)."""
    for seed, mix in ((1, "none"), (17, "normal")):
        cfg = SimConfig(blocks=50, mix=MIXES[mix])
        sim = Simulation(seed, cfg)
        result = sim.run()
        probes = [s for s in sim.history().submissions.values() if s.kind == "liveness"]
        assert len(probes) == cfg.liveness_blocks * cfg.txs_per_block
        assert result.ok, result.describe()


# -- the negative control: f+1 colluders must be caught ----------------------------------------
def test_f_plus_one_colluding_replicas_are_caught_forking_the_honest_ones() -> None:
    cfg = SimConfig(blocks=15, mix=negative_control_mix(4))
    for seed in range(1, 4):
        result = run_seed(seed, cfg)
        assert len(result.plan.byzantine) == 2 and 0 in result.plan.byzantine
        caught = {v.invariant for v in result.violations}
        assert "agreement" in caught and "state_roots" in caught, result.describe()
        assert "replay: " in result.describe() and f"seed {seed}" in result.describe()


def test_f_colluders_cannot_fork_the_honest_replicas() -> None:
    cfg = SimConfig(blocks=15, mix=replace(negative_control_mix(4), faulty=1))
    for seed in range(1, 4):
        result = run_seed(seed, cfg)
        assert result.plan.byzantine == {0: "collude"}
        assert not {v.invariant for v in result.violations} & set(SAFETY), result.describe()


# -- soak ------------------------------------------------------------------------------------------
@pytest.mark.soak
def test_soak_normal_mix_1000_seeds() -> None:
    failures = swarm(SimConfig(mix=MIXES["normal"]), range(1, 1001))
    assert not failures, "\n\n".join(failures[:10])


@pytest.mark.soak
def test_soak_full_mix_500_seeds() -> None:
    failures = swarm(SimConfig(mix=MIXES["full"]), range(1, 501))
    assert not failures, "\n\n".join(failures[:10])


@pytest.mark.soak
@pytest.mark.parametrize("nodes", [7, 10])
def test_soak_larger_clusters(nodes: int) -> None:
    failures = swarm(SimConfig(nodes=nodes, mix=MIXES["normal"]), range(1, 101))
    assert not failures, "\n\n".join(failures[:10])


@pytest.mark.soak
def test_soak_ed25519_signatures() -> None:
    failures = swarm(SimConfig(mix=MIXES["normal"], ed25519=True), range(1, 51))
    assert not failures, "\n\n".join(failures[:10])


@pytest.mark.soak
@pytest.mark.parametrize("nodes", [4, 7])
def test_soak_negative_control_always_caught(nodes: int) -> None:
    cfg = SimConfig(nodes=nodes, blocks=20, mix=negative_control_mix(nodes))
    missed = [seed for seed in range(1, 101)
              if "agreement" not in {v.invariant for v in run_seed(seed, cfg).violations}]
    assert not missed

