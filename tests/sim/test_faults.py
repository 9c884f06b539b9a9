"""Fault plans: drawn from the seed, within the mix's limits, printable."""

from __future__ import annotations

from dataclasses import replace

import pytest

from consensus.quorum import max_faulty
from ipchain.sim.faults import (MIXES, NETWORK_KINDS, SPLIT_KIND, Episode, FaultMix,
                             generate_plan, link_condition, negative_control_mix)

SEEDS = range(1, 201)


@pytest.mark.parametrize("n", [4, 7, 10])
def test_normal_mix_faults_at_most_f_backups(n: int) -> None:
    for seed in SEEDS:
        plan = generate_plan(seed, n, MIXES["normal"], 2_500)
        assert len(plan.faulty) <= max_faulty(n) and 0 not in plan.faulty
        assert set(plan.byzantine) <= set(plan.faulty)
        for episode in plan.episodes:
            assert 0 <= episode.start_ms <= episode.end_ms <= 2_500
            assert episode.kind != SPLIT_KIND
            if episode.kind not in NETWORK_KINDS:
                assert episode.targets and set(episode.targets) <= set(plan.faulty)


def test_full_mix_may_fault_the_primary_and_split_the_cluster() -> None:
    plans = [generate_plan(seed, 4, MIXES["full"], 2_500) for seed in SEEDS]
    assert any(0 in p.faulty for p in plans)
    assert any(e.kind == SPLIT_KIND for p in plans for e in p.episodes)
    assert all(len(p.faulty) <= 1 for p in plans)


def test_every_kind_and_behaviour_of_the_normal_mix_is_drawn() -> None:
    plans = [generate_plan(seed, 4, MIXES["normal"], 2_500) for seed in SEEDS]
    assert {e.kind for p in plans for e in p.episodes} == set(MIXES["normal"].kinds)
    assert {b for p in plans for b in p.byzantine.values()} == set(MIXES["normal"].behaviours)
    crashes = [e for p in plans for e in p.episodes if e.kind == "crash"]
    assert any(e.torn for e in crashes) and not all(e.torn for e in crashes)


@pytest.mark.parametrize("n", [4, 7])
def test_negative_control_has_f_plus_one_colluders_including_the_primary(n: int) -> None:
    for seed in range(1, 30):
        plan = generate_plan(seed, n, negative_control_mix(n), 2_500)
        assert len(plan.faulty) == max_faulty(n) + 1 and 0 in plan.faulty
        assert plan.byzantine == {i: "collude" for i in plan.faulty}


def test_plan_is_a_function_of_the_seed() -> None:
    assert generate_plan(9, 4, MIXES["normal"], 2_500) == generate_plan(9, 4, MIXES["normal"], 2_500)
    assert generate_plan(9, 4, MIXES["normal"], 2_500) != generate_plan(10, 4, MIXES["normal"], 2_500)


def test_none_mix_has_no_faults() -> None:
    plan = generate_plan(3, 4, MIXES["none"], 2_500)
    assert (plan.faulty, plan.byzantine, plan.episodes) == ((), {}, ())


def test_plan_prints_seed_byzantine_replicas_and_episodes() -> None:
    plan = generate_plan(4, 4, replace(MIXES["normal"], byzantine_probability=1.0), 2_500)
    text = plan.describe()
    assert "seed 4" in text and "byzantine replica" in text
    assert all(e.kind in text for e in plan.episodes)
    assert plan.to_value()["episodes"][0]["kind"] == plan.episodes[0].kind


def test_unknown_kinds_and_behaviours_are_refused() -> None:
    with pytest.raises(ValueError):
        FaultMix("x", kinds=("meteor",))
    with pytest.raises(ValueError):
        FaultMix("x", behaviours=("polite",))


def test_episode_link_conditions() -> None:
    n = 4
    isolate = link_condition(Episode(0, 1, "partition", (2,)), n)
    assert isolate.blocked and (2, 0) in isolate.links and (0, 2) in isolate.links
    assert (0, 1) not in isolate.links
    deaf = link_condition(Episode(0, 1, "oneway", (2,), direction="in"), n)
    assert (0, 2) in deaf.links and (2, 0) not in deaf.links
    lossy = link_condition(Episode(0, 1, "loss", (1,), rate=0.3), n)
    assert lossy.loss == 0.3 and not lossy.blocked and (1, 3) in lossy.links
    assert link_condition(Episode(0, 1, "crash", (1,)), n) is None
