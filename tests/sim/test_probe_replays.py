"""Replays of the normal-mix seeds where a replica's unanswered start-up probe dropped
the f+1 claims it heard meanwhile, and it never caught up in the quiet cluster."""

from __future__ import annotations

import pytest

from ipchain.sim.faults import MIXES
from ipchain.sim.run import SimConfig, run_seed


@pytest.mark.parametrize("seed", [475, 712])
def test_replica_behind_after_the_heal_catches_up_in_a_quiet_cluster(seed: int) -> None:
    result = run_seed(seed, SimConfig(mix=MIXES["normal"]))
    assert result.violations == [], result.describe()
    heights = {final["height"] for final in result.finals}
    assert len(heights) == 1, result.finals
