"""Normal-case operation (Castro & Liskov §4.2): batching, PRE-PREPARE, PREPARE, COMMIT.

The primary batches pending requests (full by count or bytes, or when the batch delay
expires) and keeps up to `window_blocks` sequence numbers in flight, so throughput is
not bound to one round trip. A block is delivered for execution only in strict
sequence order, once 2f+1 matching COMMITs form its certificate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from consensus import events as ev
from consensus.messages import Commit, PreparedProof, PrePrepare, Prepare, Signed, request_id
from consensus.state import by_sender

if TYPE_CHECKING:
    from consensus.replica import Replica, Slot

PARTIAL_IN_FLIGHT = 2
"""Blocks in flight beyond which only full batches are proposed (`may_propose_partial`)."""


class NormalCase:
    """Methods only: their fields are declared, with who writes them, in consensus/state.py."""

    # -- requests and batching ------------------------------------------------------------
    def on_requests(self: "Replica", txs: tuple[tuple[bytes, bytes], ...]) -> None:
        for tx_id, raw in txs:
            if tx_id in self.pending or tx_id in self.seen:
                continue
            if len(raw) > self.cfg.max_batch_bytes:  # no backup would accept its batch
                self.stats["dropped_oversized_request"] += 1
                continue
            self.pending[tx_id] = raw
            self.pending_bytes += len(raw)
        if self.pending:
            self.arm_request_timer()
            if self.is_primary and not self.in_view_change:
                self.propose(force=False)
                if self.pending:
                    self.set_timer("batch", self.cfg.batch_delay_ms)

    def on_batch_timer(self: "Replica") -> None:
        self.batch_due = True
        self.propose(force=True)

    def can_propose(self: "Replica") -> bool:
        return (self.is_primary and not self.in_view_change
                and self.next_seq <= self.last_delivered + self.cfg.window_blocks
                and self.in_watermarks(self.next_seq))

    def propose(self: "Replica", force: bool) -> None:
        """Send pre-prepares while the window has room and a batch is full (or due)."""
        while self.pending and self.can_propose():
            full = (len(self.pending) >= self.cfg.max_batch_txs
                    or self.pending_bytes >= self.cfg.max_batch_bytes)
            due = force or self.batch_due or self.pipeline_idle()
            if not (full or (due and self.may_propose_partial())):
                return
            self.send_preprepare(self.take_batch())
        if not self.pending:
            self.batch_due = False
            self.cancel_timer("batch")

    def pipeline_idle(self: "Replica") -> bool:
        """Nothing of ours is in flight: waiting out the batch delay would only add
        latency, since no delivery is coming to clock the next batch. While blocks are in
        flight requests batch up behind them (Nagle's rule), so load still fills blocks."""
        return self.next_seq == self.last_delivered + 1

    def may_propose_partial(self: "Replica") -> bool:
        """A batch that is not full goes out only while fewer than PARTIAL_IN_FLIGHT
        blocks are in flight; later ones wait for a delivery and grow meanwhile. Every
        block costs each replica a fixed part (votes to sign and check, one storage
        transaction) besides its transactions: on a CPU-bound cluster, eight small blocks
        in flight bought no throughput and cost a third more CPU per transaction."""
        return self.next_seq - self.last_delivered - 1 < PARTIAL_IN_FLIGHT

    def take_batch(self: "Replica") -> tuple[bytes, ...]:
        batch: list[bytes] = []
        size = 0
        for tx_id, raw in self.pending.items():
            if len(batch) >= self.cfg.max_batch_txs or (batch and size + len(raw) > self.cfg.max_batch_bytes):
                break
            batch.append(raw)
            size += len(raw)
        return tuple(batch)

    def send_preprepare(self: "Replica", txs: tuple[bytes, ...]) -> None:
        timestamp_ms = max(self.now_ms, self.last_timestamp_ms + 1)
        digest = self.digest_batch(timestamp_ms, txs)
        signed = self.sign(PrePrepare(self.view, self.next_seq, digest, timestamp_ms, txs))
        self.next_seq += 1
        self.emit(ev.Persist(signed))
        self.emit(ev.Broadcast(signed))
        self.accept_preprepare(signed)
        self.check_prepared(self.slot(signed.body.seq))  # with f = 0 no PREPARE will come

    # -- PRE-PREPARE ----------------------------------------------------------------------
    def on_preprepare(self: "Replica", msg: Signed) -> None:
        pp: PrePrepare = msg.body
        if not self.is_current_view(msg):
            return
        if msg.sender != self.primary_of(pp.view):
            self.stats["ignored_preprepare_not_primary"] += 1
            return
        if not self.in_watermarks(pp.seq):
            self.note_claim(msg.sender, pp.seq)
            return
        if pp.seq <= self.last_delivered:
            return  # a retransmission of something already settled here
        slot = self.slot(pp.seq)
        if slot.preprepare is not None and slot.preprepare.body.view == pp.view:
            if (slot.preprepare.body.digest == pp.digest and self.lacks_batch(slot.preprepare.body)
                    and not self.lacks_batch(pp) and self.is_valid_batch(pp)):
                self.fill_batch(slot, msg)  # a NEW-VIEW header's batch, now in full
            elif slot.preprepare.body.digest != pp.digest:
                # Two pre-prepares signed by the primary prove its fault to anyone:
                # relay both so every honest replica can check it and vote it out.
                self.record_evidence("conflicting-preprepare", slot.preprepare, msg)
                self.emit(ev.Broadcast(slot.preprepare))
                self.emit(ev.Broadcast(msg))
                self.suspect_primary("equivocation")
            return
        if self.voted_otherwise(slot.prepares, pp.view, pp.digest):
            self.stats["ignored_preprepare_contradicts_wal"] += 1
            return
        if not self.is_valid_batch(pp):
            return
        self.accept_preprepare(msg)
        self.note_view_progress()
        if not self.is_primary:
            self.send_vote(Prepare(pp.view, pp.seq, pp.digest), slot.prepares)
        self.check_prepared(slot)
        self.check_committed(slot)  # the commits may have come first

    def is_valid_batch(self: "Replica", pp: PrePrepare) -> bool:
        if len(pp.txs) > self.cfg.max_batch_txs or sum(map(len, pp.txs)) > self.cfg.max_batch_bytes:
            self.stats["rejected_preprepare_size"] += 1
            return False
        if abs(pp.timestamp_ms - self.now_ms) > self.cfg.max_clock_skew_ms:
            self.stats["rejected_preprepare_clock"] += 1
            return False
        if self.digest_batch(pp.timestamp_ms, pp.txs) != pp.digest:
            # The signature covers the header, not the transactions: anyone can replay a
            # real PRE-PREPARE with other transactions, so a mismatch proves nothing
            # about the primary. Drop it: the genuine one follows, and a slot still open
            # after a few resend periods fetches the committed block (`on_resend_timer`).
            self.stats["dropped_preprepare_txs_mismatch"] += 1
            return False
        return True

    def fill_batch(self: "Replica", slot: "Slot", msg: Signed) -> None:
        slot.preprepare = msg
        if slot.prepared_proof is not None:
            slot.prepared_proof = PreparedProof(msg, slot.prepared_proof.prepares)
        self.accept_preprepare(msg)
        self.check_committed(slot)

    def accept_preprepare(self: "Replica", msg: Signed) -> None:
        pp: PrePrepare = msg.body
        slot = self.slot(pp.seq)
        slot.preprepare = msg
        self.last_timestamp_ms = max(self.last_timestamp_ms, pp.timestamp_ms)
        for raw in pp.txs:
            tx_id = request_id(raw)
            self.seen[tx_id] = pp.seq
            if self.pending.pop(tx_id, None) is not None:
                self.pending_bytes -= len(raw)

    def send_vote(self: "Replica", body: Prepare | Commit,
                  votes: dict[tuple[int, bytes], dict[int, Signed]]) -> None:
        signed = self.sign(body)
        self.emit(ev.Persist(signed))
        self.emit(ev.Broadcast(signed))
        votes.setdefault((body.view, body.digest), {})[self.cfg.index] = signed

    # -- PREPARE and COMMIT -----------------------------------------------------------------
    def on_prepare(self: "Replica", msg: Signed) -> None:
        if msg.sender == self.primary_of(msg.body.view):
            self.stats["ignored_prepare_from_primary"] += 1
            return
        slot = self.vote_slot(msg)
        if slot is not None and self.add_vote(slot.prepares, msg, "conflicting-prepare"):
            self.check_prepared(slot)

    def on_commit(self: "Replica", msg: Signed) -> None:
        slot = self.vote_slot(msg)
        if slot is not None and self.add_vote(slot.commits, msg, "conflicting-commit"):
            self.check_committed(slot)

    def is_current_view(self: "Replica", msg: Signed) -> bool:
        """Normal-case traffic counts only in an installed view; a later view's waits."""
        view = msg.body.view
        if view > self.view or (view == self.view and self.in_view_change):
            self.buffer_future(msg)
            return False
        if view < self.view:
            self.stats["ignored_old_view"] += 1
            self.note_claim(msg.sender, msg.body.seq)
            return False
        return True

    def note_gap(self: "Replica") -> None:
        """Later blocks are certified but the next one is missing: fetch instead of stalling."""
        if not self.has_slots_above_delivered():
            return
        certified = [seq for seq, s in self.slots.items()
                     if seq > self.last_delivered and s.certified]
        if certified:
            self.note_future(max(certified))

    def voted_otherwise(self: "Replica", votes: dict[tuple[int, bytes], dict[int, Signed]],
                        view: int, digest: bytes) -> bool:
        """True if this replica already signed a vote for another digest in `view`."""
        me = self.cfg.index
        for (v, d), voters in votes.items():
            if v == view and d != digest and me in voters:
                return True
        return False

    def vote_slot(self: "Replica", msg: Signed) -> "Slot | None":
        body = msg.body
        if not self.is_current_view(msg):
            return None
        if not self.in_watermarks(body.seq):
            self.note_claim(msg.sender, body.seq)
            return None
        if body.seq <= self.last_delivered:
            return None
        return self.slot(body.seq)

    def add_vote(self: "Replica", votes: dict[tuple[int, bytes], dict[int, Signed]],
                 msg: Signed, conflict_kind: str) -> bool:
        body, sender = msg.body, msg.sender
        key = (body.view, body.digest)
        for (view, digest), voters in votes.items():
            if view == key[0] and digest != key[1] and sender in voters:
                self.record_evidence(conflict_kind, voters[sender], msg)
                return False
        voters = votes.get(key)
        if voters is None:
            votes[key] = {sender: msg}
            return True
        if sender in voters:
            return False
        voters[sender] = msg
        return True

    def check_prepared(self: "Replica", slot: "Slot") -> None:
        if slot.preprepare is None or slot.phase.prepared:
            return
        pp: PrePrepare = slot.preprepare.body
        voters = slot.prepares.get((pp.view, pp.digest), {})
        if len(voters) < self.quorum - 1:  # + the pre-prepare
            return
        slot.update_phase(prepared=True)
        primary = self.primary_of(pp.view)
        slot.prepared_proof = PreparedProof(slot.preprepare, tuple(
            [voters[i] for i in sorted(voters) if i != primary][:self.quorum - 1]))
        if not slot.phase.commit_sent and not self.voted_otherwise(slot.commits, pp.view, pp.digest):
            slot.update_phase(commit_sent=True)
            self.send_vote(Commit(pp.view, pp.seq, pp.digest), slot.commits)
        self.check_committed(slot)

    def check_committed(self: "Replica", slot: "Slot") -> None:
        if slot.phase.certified:
            return
        for (view, digest), voters in slot.commits.items():
            if len(voters) < self.quorum:
                continue
            pp = slot.preprepare.body if slot.preprepare is not None else None
            # 2f+1 commits over exactly our pre-prepare prove the block committed (the
            # same proof a fetched block carries), even if we missed some prepares.
            if pp is not None and (pp.view, pp.digest) == (view, digest) and not self.lacks_batch(pp):
                slot.certificate = by_sender(voters)
                slot.certified_preprepare = slot.preprepare
                slot.update_phase(certified=True)
                self.deliver_ready()
            else:
                self.note_future(slot.seq)  # committed elsewhere; we lack the batch
            return

    # -- delivery ---------------------------------------------------------------------------
    def deliver_ready(self: "Replica") -> None:
        while True:
            slot = self.slots.get(self.last_delivered + 1)
            if slot is None or not slot.phase.certified:
                self.note_gap()
                break
            pp: PrePrepare = slot.certified_preprepare.body
            self.emit(ev.Deliver(slot.certified_preprepare, slot.certificate))
            self.last_delivered = pp.seq
            self.next_seq = max(self.next_seq, pp.seq + 1)
            self.failed_views = 0
            self.stats["delivered"] += 1
            if not slot.phase.fetched:
                self.measure_commit(slot.opened_ms)
                self.note_view_progress()
            else:  # proven by its certificate; nothing of ours to keep for views
                del self.slots[pp.seq]
            self.note_deliveries_done()
        self.on_progress()
        if self.is_primary and self.pending:
            self.propose(force=False)

    def on_progress(self: "Replica") -> None:
        """Requests are moving: the view-change timer restarts for what is left."""
        if self.in_view_change:
            return
        self.cancel_timer("view")
        if self.pending or self.has_undelivered():
            self.arm_request_timer()

    def on_resend_timer(self: "Replica") -> None:
        """Re-broadcast our own pre-prepare, prepare and commit for slots open too long."""
        if self.in_view_change:
            return
        stale = self.now_ms - self.resend_after_ms()
        open_slots = [(seq, slot) for seq, slot in sorted(self.slots.items())
                      if seq > self.last_delivered]
        for seq, slot in open_slots:
            if slot.opened_ms > stale:
                continue
            if slot.opened_ms <= stale - 2 * self.cfg.resend_timeout_ms:
                self.note_future(seq)  # peers may have settled it: fetch the block
            pp = slot.preprepare
            if pp is None or pp.body.view != self.view or slot.certified:
                continue
            key = (pp.body.view, pp.body.digest)
            for mine in (pp if pp.sender == self.cfg.index else None,
                         slot.prepares.get(key, {}).get(self.cfg.index),
                         slot.commits.get(key, {}).get(self.cfg.index)):
                if mine is not None:
                    self.emit(ev.Broadcast(mine))
                    self.stats["resent"] += 1
        if open_slots:  # even a slot we only heard votes for: keep trying to fetch it
            self.set_timer("resend", self.cfg.resend_timeout_ms)

    def has_undelivered(self: "Replica") -> bool:
        return self.has_slots_above_delivered() and any(
            seq > self.last_delivered and s.preprepare is not None for seq, s in self.slots.items())

    def has_slots_above_delivered(self: "Replica") -> bool:
        """Delivered slots stay in the log until the next stable checkpoint, and mostly no
        slot is above them: max() over the keys says so without a Python loop."""
        return max(self.slots, default=0) > self.last_delivered

