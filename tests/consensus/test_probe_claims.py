"""A start-up probe that nobody answers must not forget what f+1 peers claimed meanwhile.

Found by `ipchain sim --mix normal` seeds 475 and 712: replica 3, cut off from hearing,
kept probing for blocks; after the heal f+1 peers' votes named seqs beyond its
watermarks, which were noted only into the probe's guess, and when the probe gave up
it reset its target to its own height. The cluster then went quiet and nothing named
those blocks again: the replica sat 3-5 blocks behind for good.
"""

from __future__ import annotations

from consensus import events as ev
from consensus.catchup import PROBE_ATTEMPTS
from consensus.messages import Commit
from net import Network

CONFIG = dict(checkpoint_interval_blocks=2, log_window_blocks=4)


def fetches(actions: list) -> list[tuple[int, int]]:
    return [(a.first, a.last) for a in actions if isinstance(a, ev.FetchBlocks)]


def test_unanswered_probe_falls_back_to_what_f_plus_1_peers_claim() -> None:
    net = Network.build(4, **CONFIG)
    replica = net.replicas[3]
    replica.restore([], 0)  # probes: asks for the next chunk, nobody has one to give
    claimed = 9  # beyond the high watermark (0 + 4): only a claim, until f+1 agree
    for peer in (0, 1):
        net.inject(3, net.sign_as(peer, Commit(0, claimed, bytes(32))))
    assert replica.probing and replica.claimed_seq() == claimed
    asked = []
    for _ in range(PROBE_ATTEMPTS + 1):
        asked += fetches(net.step(3, ev.TimerFired("fetch")))
    assert not replica.probing
    assert asked[-1] == (1, claimed), asked
    assert replica.target_seq == claimed


def test_unanswered_probe_without_claims_concludes_we_are_not_behind() -> None:
    """One peer's claim is not enough (it may lie): the probe ends as before."""
    net = Network.build(4, **CONFIG)
    replica = net.replicas[3]
    replica.restore([], 0)
    net.inject(3, net.sign_as(0, Commit(0, 9, bytes(32))))
    assert replica.claimed_seq() == 0
    asked = []
    for _ in range(PROBE_ATTEMPTS + 1):
        asked += fetches(net.step(3, ev.TimerFired("fetch")))
    assert not replica.probing and replica.target_seq == 0
    assert len(asked) == PROBE_ATTEMPTS  # then the last timer asks for nothing
