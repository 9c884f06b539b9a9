"""A replica whose contract execution is non-deterministic is caught by the execution
certificates on every seed: it fail-stops at the first block a quorum certified
against it (never signing on from there), and the others commit on."""

from __future__ import annotations

import pytest

from consensus import events as ev
from dataclasses import replace

from ipchain.sim.faults import MIXES, NETWORK_KINDS, FaultMix
from ipchain.sim.run import SimConfig, Simulation

# The non-deterministic replica is the one fault 4 replicas tolerate, so with 4 only
# network faults (which count against nobody) ride along; with 7 (f = 2) one more
# replica may crash, pause, be cut off or be Byzantine.
CFG_4 = SimConfig(blocks=12, liveness_blocks=3, nondeterministic_replica=2,
                  mix=FaultMix("network", kinds=NETWORK_KINDS, faulty=0))
CFG_7 = SimConfig(nodes=7, blocks=12, liveness_blocks=3, nondeterministic_replica=2,
                  mix=replace(MIXES["normal"], faulty=1))
CASES = [(CFG_4, seed) for seed in range(30)] + [(CFG_7, seed) for seed in range(20)]


@pytest.mark.parametrize("cfg,seed", CASES, ids=[f"n{c.nodes}-seed{s}" for c, s in CASES])
def test_non_deterministic_replica_is_caught(cfg, seed):
    sim = Simulation(seed, cfg)
    sim.run()
    odd = sim.hosts[2]
    assert odd.diverged is not None, "the non-deterministic replica went unnoticed"
    height, mine, quorum = (odd.diverged[k] for k in ("height", "mine", "quorum"))
    assert odd.diverged["reason"] == "execution"
    assert mine != quorum and mine == odd.block_hashes[height].hex()
    assert quorum == sim.hosts[0].block_hashes[height].hex()
    others = [h for h in sim.hosts if h.index != 2]
    assert all(h.diverged is None for h in others)
    # the unfaulted others certified every block they executed; a replica the plan cut
    # off or made lossy may miss a certificate or two, but certifies most
    for host in others:
        certified = host.certified_heights()
        if host.index in sim.plan.faulty:
            assert not host.honest or len(certified) >= host.chain.height // 2
            continue
        assert host.chain.height >= cfg.blocks // 2
        # (the run may end while the last block's votes are still in flight)
        assert certified == list(range(1, len(certified) + 1))
        assert len(certified) >= host.chain.height - 2
        assert all(host.block_hashes[h] == sim.hosts[0].block_hashes[h]
                   for h in range(1, min(host.chain.height, sim.hosts[0].chain.height) + 1))
    # and it stopped: it signs nothing after its divergence
    assert odd.replica.step(ev.TimerFired("batch"), 0) == []


def test_without_the_fault_nobody_diverges_and_every_block_is_certified():
    sim = Simulation(7, SimConfig(blocks=12, liveness_blocks=3))
    result = sim.run()
    assert result.ok, result.describe()
    for host in sim.hosts:
        assert host.diverged is None
        assert len(host.certified_heights()) >= host.chain.height - 2
