"""When a replica re-sends what it signed (normal.py `on_resend_timer`, execution.py
`on_exec_resend_timer`): only for a slot or vote gone quiet, and first only to the peers
that have not shown they are past it. Losing messages must still heal without a view
change (test_view_change.py's lossy-network test); these tests pin the economy."""

from __future__ import annotations

from consensus import events as ev
from consensus.messages import Commit, Executed, PrePrepare
from net import Network, is_kind

RESEND_MS = 400
CONFIG = dict(batch_delay_ms=5, max_batch_txs=10, request_timeout_ms=60_000,
              resend_timeout_ms=RESEND_MS)


def held_commits_to_primary(held_from: frozenset[int] = frozenset({2, 3}),
                            **config) -> Network:
    """One block whose COMMITs from `held_from` to the primary (replica 0) are held: the
    backups certify it, the primary keeps an open slot with every PREPARE and too few
    COMMITs."""
    net = Network.build(4, **{**CONFIG, **config})
    held = is_kind(Commit, dst=0)
    net.hold = lambda src, dst, msg: src in held_from and held(src, dst, msg)
    net.submit(0, [b"tx-1"])
    net.run(for_ms=0)
    assert net.heights() == [0, 1, 1, 1]
    net.actions.clear()
    return net


def resends(net: Network, by: int) -> list[tuple[str, int | None]]:
    """(kind, recipient or None for everyone) of what `by` sent since the last clear."""
    out = []
    for i, action in net.actions:
        if i == by and isinstance(action, (ev.Broadcast, ev.Send)):
            out.append((action.msg.body.KIND, action.to if isinstance(action, ev.Send) else None))
    return sorted(out, key=lambda item: (item[0], -1 if item[1] is None else item[1]))


def test_a_quiet_slot_resends_only_what_peers_lack():
    """Every backup's PREPARE shows it has the pre-prepare: the primary re-sends its
    COMMIT, not its PRE-PREPARE."""
    net = held_commits_to_primary()
    net.now_ms += RESEND_MS
    net.step(0, ev.TimerFired("resend"))
    assert resends(net, 0) == [("C", None)]
    assert net.replicas[0].stats["resend_peers_skipped"] == 3
    assert net.replicas[0].stats["resent"] == 1


def test_a_slot_still_hearing_votes_is_not_resent():
    """A slot open longer than the re-send delay but with a vote just in is slow, not
    lost: nothing goes out until it has been quiet that long."""
    net = held_commits_to_primary(frozenset({1, 2, 3}))
    net.now_ms += RESEND_MS // 2
    (first, *_) = net.held
    net.held.clear()
    net.inject(0, first[2])  # one COMMIT: new, but no quorum yet
    net.now_ms += RESEND_MS // 2 + 1
    net.step(0, ev.TimerFired("resend"))
    assert resends(net, 0) == []
    net.now_ms += RESEND_MS // 2
    net.step(0, ev.TimerFired("resend"))
    assert ("C", None) in resends(net, 0)


def test_a_slot_open_half_a_view_timeout_is_resent_even_while_votes_come():
    """Votes trickling in never leave the slot quiet, yet a re-send must still come
    before the request timer could suspect the view (half its timeout here: 1 s)."""
    net = Network.build(4, **{**CONFIG, "request_timeout_ms": 2_000})
    net.hold = lambda src, dst, msg: dst == 0
    net.submit(0, [b"tx-1"])
    net.run(for_ms=0)
    held = sorted(net.held, key=lambda link: isinstance(link[2].body, Commit))[:4]
    net.held.clear()
    opened_ms = net.now_ms
    replica = net.replicas[0]
    for _, _, msg in held:  # three PREPAREs and one COMMIT, 300 ms apart
        net.now_ms += 300
        net.inject(0, msg)
        net.actions.clear()
        net.step(0, ev.TimerFired("resend"))
        if net.now_ms - opened_ms < 1_000:
            assert replica.stats["resent"] == 0
    assert net.heights()[0] == 0 and net.now_ms - opened_ms == 1_200
    assert replica.stats["resent"] == 1
    assert resends(net, 0) == [("C", None)]  # every backup's PREPARE came: no PRE-PREPARE


def test_a_peer_that_executed_the_block_gets_no_copy():
    """An execution vote for the slot proves the peer committed and stored the block:
    the re-sent COMMIT goes to the other peers only."""
    net = held_commits_to_primary()
    net.inject(0, net.sign_as(2, Executed(1, b"h" * 32)))
    net.actions.clear()
    net.now_ms += RESEND_MS
    net.step(0, ev.TimerFired("resend"))
    assert resends(net, 0) == [("C", 1), ("C", 3)]
    assert net.replicas[0].stats["resend_peers_skipped"] == 3 + 1


def test_a_slot_quiet_twice_as_long_goes_to_everyone():
    """A peer that voted may have restarted since and lost the pre-prepare: after a
    second quiet period the primary's PRE-PREPARE goes to all again."""
    net = held_commits_to_primary()
    net.now_ms += RESEND_MS
    net.step(0, ev.TimerFired("resend"))
    assert resends(net, 0) == [("C", None)]
    net.actions.clear()
    net.now_ms += RESEND_MS
    net.step(0, ev.TimerFired("resend"))
    assert resends(net, 0) == [("C", None), ("PP", None)]
    assert any(isinstance(a.msg.body, PrePrepare) for a in net.emitted(ev.Broadcast, by=0))


def test_execution_votes_wait_for_quiet_before_the_timed_resend():
    """The timed re-send of an uncertified execution vote waits while peers' votes keep
    coming (slow, not lost), and goes out once they stop."""
    net = Network.build(4, **CONFIG)
    replica = net.replicas[0]
    net.step(0, ev.BlockExecuted(1, bytes(32), b"h" * 32))
    assert "exec_resend" in net.timers[0]
    net.now_ms += 600
    net.inject(0, net.sign_as(1, Executed(1, b"h" * 32)))
    net.now_ms += 400
    net.fire(0, "exec_resend")
    assert replica.stats["execution_vote_resent"] == 0
    assert "exec_resend" in net.timers[0]  # re-armed, not given up
    net.now_ms += 1_000
    net.fire(0, "exec_resend")
    assert replica.stats["execution_vote_resent"] == 1
