"""A new primary numbers its first proposals after the NEW-VIEW's, never under them.

Found by `ipchain sim --seed 403 --mix full`: replica 1 became primary of view 1 and,
in the one step that installed its NEW-VIEW, adopted the stable checkpoint a
VIEW-CHANGE carried; stabilising proposed a batch at seq 20 (the view looked installed
already), then installing the NEW-VIEW dropped that slot and set the next sequence
number back to 20, so the final proposal signed a second, different PRE-PREPARE for
view 1 seq 20. An honest replica equivocated; with f+1 of them safety would be gone.

The same numbering must survive a restart: a primary restored from a WAL that holds
its NEW-VIEW takes the NEW-VIEW's pre-prepares back, as it does its other ones.
"""

from __future__ import annotations

from collections import Counter

from consensus import events as ev
from consensus.messages import Checkpoint, NewView, PrePrepare
from net import Network
from test_view_change import FAST, prepare_then_lose_the_primary, restart

TIMEOUT_MS = 1_000
CONFIG = dict(batch_delay_ms=5, max_batch_txs=10, request_timeout_ms=TIMEOUT_MS,
              checkpoint_interval_blocks=2, log_window_blocks=4)


def payloads(tag: str, count: int) -> list[bytes]:
    return [f"{tag}-{i}".encode() for i in range(count)]


def own_preprepares(net: Network, i: int, view: int) -> list:
    return [m.body for m in net.broadcasts(PrePrepare, by=i)
            if m.sender == i and m.body.view == view]


def test_new_primary_adopting_a_checkpoint_signs_one_preprepare_per_seq():
    """The new primary of view 1 missed the checkpoint votes for seq 2, so it adopts the
    stable checkpoint from the VIEW-CHANGEs while installing its NEW-VIEW, with
    requests pending: every (view 1, seq) it signs must carry one digest."""
    net = Network.build(4, **CONFIG)
    net.drop = lambda src, dst, msg: dst == 1 and isinstance(msg.body, Checkpoint)
    for i in range(4):
        net.submit(i, payloads("a", 20))  # two full blocks: seq 1 and 2
    net.run(for_ms=TIMEOUT_MS // 2)
    assert net.heights() == [2, 2, 2, 2]
    assert net.replicas[1].low_mark == 0 and net.replicas[2].low_mark == 2
    net.down.add(0)  # the view-0 primary dies with requests pending everywhere
    for i in (1, 2, 3):
        net.submit(i, payloads("b", 15))
    net.run(for_ms=10 * TIMEOUT_MS)

    assert net.replicas[1].stats["new_views_sent"] == 1
    signed = own_preprepares(net, 1, view=1)
    digests = {}
    for pp in signed:
        digests.setdefault(pp.seq, set()).add(pp.digest)
    assert signed and all(len(d) == 1 for d in digests.values()), \
        f"replica 1 signed conflicting pre-prepares in view 1: {sorted(digests.items())}"
    assert not any(net.replicas[i].stats["evidence"] for i in (1, 2, 3))
    net.assert_agreement(replicas=[1, 2, 3])
    committed = Counter(t for d in net.delivered[1] for t in d.txs)
    assert sorted(committed) == sorted(payloads("a", 20) + payloads("b", 15))
    assert max(committed.values()) == 1


def test_primary_restarted_after_its_new_view_numbers_after_its_preprepares():
    """The brief's durability question: the new primary persists its NEW-VIEW (with the
    pre-prepares it re-proposes at seq 1..3) and crashes before executing anything. Its
    restart must take those pre-prepares back from the WAL, or the next request gets
    seq 1 again with another batch: a second PRE-PREPARE for (view 1, seq 1)."""
    net = Network.build(4, **FAST)
    prepare_then_lose_the_primary(net, payloads("p", 30))
    step = net.step

    def crash_after_new_view(i, event):
        actions = step(i, event)
        if i == 1 and any(isinstance(a, ev.Persist) and isinstance(a.msg.body, NewView)
                          for a in actions):
            net.down.add(1)
        return actions
    net.step = crash_after_new_view
    net.run(for_ms=3 * TIMEOUT_MS)
    net.step = step
    (new_view,) = net.broadcasts(NewView, by=1)
    reproposed = {pp.body.seq: pp.body.digest for pp in new_view.body.preprepares}
    assert sorted(reproposed) == [1, 2, 3] and net.heights()[1] == 0

    fresh = restart(net, 1)
    assert (fresh.view, fresh.in_view_change) == (1, False)
    net.submit(1, payloads("q", 25))  # two full batches and a partial one
    if "batch" in net.timers[1]:
        net.fire(1, "batch")
    signed = own_preprepares(net, 1, view=1)
    assert all(pp.seq not in reproposed for pp in signed), \
        f"restarted primary signed {[(pp.seq, pp.digest.hex()[:8]) for pp in signed]} " \
        f"under its NEW-VIEW's {sorted(reproposed)}"
    assert fresh.next_seq == 4 + len(signed)
