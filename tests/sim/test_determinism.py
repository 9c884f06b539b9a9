"""One seed, one outcome: a failing seed replays exactly, in this process or another."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

from ipchain.sim.faults import MIXES
from ipchain.sim.run import SimConfig, run_seed

CFG = SimConfig(blocks=30, mix=MIXES["normal"])
FAULTY_SEED = 3
"""Normal mix, 30 blocks, seed 3: one-way blocks, loss and a delay storm around replica 2."""


def test_same_seed_same_deliveries_roots_plan_and_verdict() -> None:
    first, second = run_seed(FAULTY_SEED, CFG), run_seed(FAULTY_SEED, CFG)
    assert first.plan.episodes, "the seed should exercise faults"
    assert first.digests == second.digests and first.digests[0]
    assert first.plan == second.plan
    assert first.violations == second.violations
    assert {k: v for k, v in first.stats.items() if k != "wall_s"} == \
        {k: v for k, v in second.stats.items() if k != "wall_s"}
    assert first.fingerprint == second.fingerprint


def test_different_seeds_explore_different_schedules() -> None:
    a, b = run_seed(1, CFG), run_seed(2, CFG)
    assert a.plan != b.plan and a.fingerprint != b.fingerprint


def test_replay_in_a_fresh_process_with_another_hash_seed_matches() -> None:
    """Set and str hashing differ per process; nothing in a run may depend on them."""
    here = run_seed(FAULTY_SEED, replace(CFG, cli_flags="x"))
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-m", "scripts.sim", "--seed", str(FAULTY_SEED),
                          "--blocks", "30", "--mix", "normal", "--json"],
                         capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0, out.stderr
    there = json.loads(out.stdout)
    assert there["fingerprint"] == here.fingerprint
    assert {int(k): v for k, v in there["digests"].items()} == here.digests


def test_fast_keyring_changes_speed_not_outcome() -> None:
    """Same seed with real Ed25519 signatures: the same blocks and the same verdict."""
    cfg = replace(CFG, blocks=15)
    fast, real = run_seed(FAULTY_SEED, cfg), run_seed(FAULTY_SEED, replace(cfg, ed25519=True))
    assert fast.config.keyring_label == "fast-insecure-sim" and real.config.keyring_label == "ed25519"
    assert fast.digests == real.digests and fast.ok and real.ok
