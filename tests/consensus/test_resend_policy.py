"""When a replica re-sends what it signed: execution votes on their timer (execution.py
`on_exec_resend_timer`) only once votes have stopped coming. Losing messages must still
heal (test_view_change.py's lossy-network test); these tests pin the economy."""

from __future__ import annotations

from consensus import events as ev
from consensus.messages import Executed
from net import Network

RESEND_MS = 400
CONFIG = dict(batch_delay_ms=5, max_batch_txs=10, request_timeout_ms=60_000,
              resend_timeout_ms=RESEND_MS)


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
