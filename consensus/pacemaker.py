"""When to give up on a view: adaptive timeouts and SUSPECT votes (issue 16).

Timeouts follow what the cluster measures, like a HotStuff pacemaker: the request
timer is a multiple of the recent commit latency (time from first hearing of a slot
to delivering it), never below a floor nor above `request_timeout_ms`, and doubles
per failed view after the first. On loopback that turns a 5 s view change into about a second; on a
slow or lossy network the latency, and with it the timeout, grows by itself.

A request timeout does not start a view change: it broadcasts SUSPECT(v), which
promises nothing. A replica moves to VIEW-CHANGE(v+1) only once it holds 2f+1
SUSPECT(v) — at least f+1 of them honest — and that set is a transferable proof: it
re-broadcasts it while its view change is stuck, and every replica that receives it
joins. So a replica that was paused or cut off alone never leaves the quorum's view
(it suspects alone and catches up by fetching), and a view change some honest
replica starts is one every honest replica joins. Safety is untouched: SUSPECT is
not a vote in any quorum of the normal case or of the view change (docs/viewchange.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from consensus import events as ev
from consensus.messages import Signed, Suspect

if TYPE_CHECKING:
    from consensus.replica import Replica

LATENCY_MULTIPLE = 10
"""Request timeout = this many times the smoothed commit latency (then clamped)."""
LATENCY_SAMPLES = 8
"""Commit latency is an EWMA with weight 1/LATENCY_SAMPLES; until that many blocks were
measured the timeout stays at `request_timeout_ms` (nothing is known yet)."""
MAX_BACKOFF_DOUBLINGS = 6
RESEND_LATENCY_MULTIPLE = 2


class Pacemaker:
    """Methods only: their fields are declared, with who writes them, in consensus/state.py."""

    # -- timeouts ---------------------------------------------------------------------------
    def view_timeout_ms(self: "Replica") -> int:
        """The first view change gets one base timeout to finish, each later failed view
        twice the one before (the view change itself is now small and quick)."""
        doublings = min(max(self.failed_views - 1, 0), MAX_BACKOFF_DOUBLINGS)
        return self.base_timeout_ms() * 2 ** doublings

    def base_timeout_ms(self: "Replica") -> int:
        if self.commit_latency_ms is None or self.latency_samples < LATENCY_SAMPLES:
            return self.cfg.request_timeout_ms
        adaptive = LATENCY_MULTIPLE * self.commit_latency_ms
        return max(self.cfg.min_view_timeout_ms, min(self.cfg.request_timeout_ms, adaptive))

    def resend_after_ms(self: "Replica") -> int:
        """A slot's messages are re-sent once it has been open twice as long as blocks
        take to commit here lately, at least `resend_timeout_ms`, and always before the
        request timer could fire. A fixed 400 ms was shorter than every slot's life under
        load: each replica re-sent all its votes to everyone, and every peer checked each
        signature again (half the signature checks at 7 nodes were such repeats)."""
        if self.commit_latency_ms is None or self.latency_samples < LATENCY_SAMPLES:
            return self.cfg.resend_timeout_ms
        return max(self.cfg.resend_timeout_ms, min(RESEND_LATENCY_MULTIPLE * self.commit_latency_ms,
                                                   self.base_timeout_ms() // 2))

    def measure_commit(self: "Replica", opened_ms: int) -> None:
        """One block delivered: its latency, and the gap since the previous delivery
        while work waited (under saturation blocks come seldom even if each is quick)
        feed the estimate, so a slow, busy cluster gets a longer timeout."""
        sample = max(0, self.now_ms - opened_ms)
        if self.busy_since_delivery_ms is not None:  # work was waiting all along
            sample = max(sample, min(self.now_ms - self.busy_since_delivery_ms,
                                     self.cfg.request_timeout_ms))
        if self.commit_latency_ms is None:
            self.commit_latency_ms = sample
        else:  # integer EWMA, weight 1/LATENCY_SAMPLES
            self.commit_latency_ms += (sample - self.commit_latency_ms) // LATENCY_SAMPLES
        self.latency_samples += 1

    # -- SUSPECT ------------------------------------------------------------------------------
    def suspect_view(self: "Replica") -> None:
        """Our request timer expired in this view: say so, and leave only with a quorum."""
        signed = self.sign(Suspect(self.view))
        self.stats["suspects_sent"] += 1
        self.emit(ev.Broadcast(signed))
        self.add_suspect(signed)
        if not self.in_view_change:
            self.set_timer("view", self.view_timeout_ms())

    def on_suspect(self: "Replica", msg: Signed) -> None:
        view = msg.body.view
        if view < self.view:
            self.send_new_view_to(msg.sender)  # behind us: show it the view we are in
        elif view == self.view and not self.in_view_change:
            self.add_suspect(msg)
        # Else a view we have not installed: its NEW-VIEW or VIEW-CHANGEs will bring us.

    def add_suspect(self: "Replica", msg: Signed) -> None:
        view = msg.body.view
        votes = self.suspects.setdefault(view, {})
        if msg.sender in votes:
            return
        votes[msg.sender] = msg
        if (self.cfg.index not in votes and len(votes) >= self.weak_quorum
                and view == self.view and not self.in_view_change
                and self.now_ms - self.last_progress_ms >= self.base_timeout_ms() // 2):
            # f+1 suspect (one honest at least) and the view has not moved for us
            # either: a replica that merely has nothing pending endorses them (PreVote).
            self.suspect_view()
            return
        if len(votes) >= self.quorum and view == self.view and not self.in_view_change:
            self.suspect_proof = tuple(votes[i] for i in sorted(votes))
            self.stats["suspect_quorums"] += 1
            self.start_view_change(view + 1)

    def note_deliveries_done(self: "Replica") -> None:
        busy = bool(self.pending) or self.has_undelivered()
        self.busy_since_delivery_ms = self.now_ms if busy else None

    def note_view_progress(self: "Replica") -> None:
        self.last_progress_ms = self.now_ms

    def forget_suspects(self: "Replica") -> None:
        self.suspects = {v: s for v, s in self.suspects.items() if v >= self.view}

    def resend_suspect_proof(self: "Replica") -> None:
        """Our view change is stuck: the others may have missed the SUSPECTs we saw."""
        for msg in self.suspect_proof:
            if msg.body.view == self.view - 1:
                self.emit(ev.Broadcast(msg))
