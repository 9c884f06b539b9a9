"""View change (Castro & Liskov §4.4, with the liveness rules of §4.5.2).

A replica whose request timer expires, or who catches the primary lying, moves to view
v+1 and broadcasts VIEW-CHANGE with its stable checkpoint proof and every prepared
certificate above it. The primary of v+1 gathers 2f+1 of them and sends NEW-VIEW:
for each sequence number between the highest stable checkpoint and the highest
prepared one it re-proposes the batch prepared in the highest view, or a null batch.
Backups recompute that choice from the same VIEW-CHANGEs and accept NEW-VIEW only if
it matches, so a new primary cannot rewrite what may have committed.

Liveness: timeouts double on consecutive failed views; a request timeout starts a view
change only through 2f+1 SUSPECTs (pacemaker.py), so no replica leaves a working view
alone; a replica joins a higher view only on f+1 VIEW-CHANGEs (so one liar cannot drag
the view up); a replica left behind in an old view is sent the NEW-VIEW that installed
the current one.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from consensus import events as ev
from consensus.messages import (Checkpoint, NewView, PreparedProof, PrePrepare, Prepare, Signed,
                                ViewChange, request_id)

if TYPE_CHECKING:
    from consensus.replica import Replica

MAX_FUTURE_MESSAGES = 20_000
NO_ROOT = bytes(32)


def header_only(pp_msg: Signed) -> Signed:
    """A pre-prepare without its transactions; its signature still verifies."""
    return Signed(replace(pp_msg.body, txs=()), pp_msg.sender, pp_msg.sig)


class ViewChanges:
    """Methods only: their fields are declared, with who writes them, in consensus/state.py."""

    # -- triggers -------------------------------------------------------------------------
    def arm_request_timer(self: "Replica") -> None:
        if not self.in_view_change and "view" not in self._timers:  # else set_timer keeps it
            self.set_timer("view", self.view_timeout_ms())

    def on_view_timer(self: "Replica") -> None:
        """Request timeout: start a view change. View-change timeout: escalate, but only
        once 2f+1 replicas are in this view change (§4.5.2) — a lone replica re-sends its
        VIEW-CHANGE instead of racing through views the others will never join."""
        self.stats["view_timeouts"] += 1
        if not self.in_view_change:
            self.suspect_view()  # a VIEW-CHANGE only once 2f+1 suspect (pacemaker.py)
            return
        joined = sum(1 for m in self.view_changes.values() if m.body.new_view >= self.view)
        if joined >= self.quorum and not self.is_view_installed_elsewhere():
            self.start_view_change(self.view + 1)
            return
        self.emit(ev.Broadcast(self.view_changes[self.cfg.index]))
        self.resend_suspect_proof()
        self.set_timer("view", self.view_timeout_ms())

    def is_view_installed_elsewhere(self: "Replica") -> bool:
        """f+1 peers send normal-case traffic in the view we are changing to: its
        NEW-VIEW exists and we missed it. Re-sending our VIEW-CHANGE makes them send it
        again; escalating would leave us alone in a view nobody else will join."""
        return len(self.working_in.get(self.view, ())) >= self.weak_quorum

    def suspect_primary(self: "Replica", reason: str) -> None:
        self.stats[f"suspected_primary:{reason}"] += 1
        self.start_view_change(self.view + 1)

    def start_view_change(self: "Replica", new_view: int) -> None:
        if new_view <= self.view:
            return
        self.view, self.in_view_change = new_view, True
        self.forget_suspects()
        self.failed_views += 1
        self.batch_due = False
        self.cancel_timer("batch")
        prepared = tuple(PreparedProof(header_only(s.prepared_proof.preprepare),
                                       s.prepared_proof.prepares)
                         for _, s in sorted(self.slots.items())
                         if s.prepared_proof is not None and s.seq > self.low_mark)
        signed = self.sign(ViewChange(new_view, self.low_mark, self.stable_root or NO_ROOT,
                                      self.stable_proof, prepared))
        self.emit(ev.Persist(signed))
        self.emit(ev.Broadcast(signed))
        self.view_changes[self.cfg.index] = signed
        self.stats["view_changes_started"] += 1
        self.cancel_timer("view")
        self.set_timer("view", self.view_timeout_ms())
        self.try_new_view(new_view)

    # -- VIEW-CHANGE ------------------------------------------------------------------------
    def on_view_change(self: "Replica", msg: Signed) -> None:
        vc: ViewChange = msg.body
        if vc.new_view < self.view or (vc.new_view == self.view and not self.in_view_change):
            self.send_new_view_to(msg.sender)  # the sender is behind: show it our view
            return
        earlier = self.view_changes.get(msg.sender)
        if earlier is not None and earlier.body.new_view >= vc.new_view:
            return
        if not self.is_valid_view_change(msg):
            self.stats["rejected_view_change"] += 1
            return
        self.view_changes[msg.sender] = msg
        wanted = sorted((m.body.new_view for s, m in self.view_changes.items()
                         if s != self.cfg.index and m.body.new_view > self.view), reverse=True)
        if len(wanted) >= self.weak_quorum:
            self.start_view_change(wanted[self.weak_quorum - 1])
        self.try_new_view(vc.new_view)

    def send_new_view_to(self: "Replica", replica: int) -> None:
        """At most once per half request timeout per peer: a NEW-VIEW can be megabytes,
        and a faulty peer repeating a stale VIEW-CHANGE must not make us its amplifier."""
        last = self.new_view_sent_ms.get(replica)
        if self.last_new_view is None or (
                last is not None and self.now_ms - last < self.cfg.request_timeout_ms // 2):
            return
        self.new_view_sent_ms[replica] = self.now_ms
        self.emit(ev.Send(replica, self.last_new_view))

    def is_valid_view_change(self: "Replica", msg: Signed) -> bool:
        vc = msg.body
        if not isinstance(vc, ViewChange) or not self.is_authentic(msg):
            return False
        if vc.stable_seq and not self.is_checkpoint_proof(vc.stable_seq, vc.stable_root,
                                                          vc.checkpoint_proof):
            return False
        seqs = [p.preprepare.body.seq for p in vc.prepared if isinstance(p.preprepare.body, PrePrepare)]
        if len(seqs) != len(vc.prepared) or len(set(seqs)) != len(seqs):
            return False
        return all(self.is_prepared_proof(p, vc) for p in vc.prepared)

    def is_checkpoint_proof(self: "Replica", seq: int, root: bytes,
                            proof: tuple[Signed, ...]) -> bool:
        voters = {m.sender for m in proof if isinstance(m.body, Checkpoint)
                  and (m.body.seq, m.body.state_root) == (seq, root) and self.is_authentic(m)}
        return len(voters) >= self.quorum

    def is_prepared_proof(self: "Replica", proof: PreparedProof, vc: ViewChange) -> bool:
        pp: PrePrepare = proof.preprepare.body
        primary = self.primary_of(pp.view)
        if not (pp.view < vc.new_view and vc.stable_seq < pp.seq
                <= vc.stable_seq + self.cfg.log_window_blocks):
            return False
        if proof.preprepare.sender != primary or not self.is_authentic(proof.preprepare):
            return False
        if pp.txs:  # headers only: the batch is bound by the digest its prepares sign
            return False
        voters = {m.sender for m in proof.prepares if isinstance(m.body, Prepare)
                  and (m.body.view, m.body.seq, m.body.digest) == (pp.view, pp.seq, pp.digest)
                  and m.sender != primary and self.is_authentic(m)}
        return len(voters) >= self.quorum - 1

    # -- NEW-VIEW -----------------------------------------------------------------------------
    def try_new_view(self: "Replica", view: int) -> None:
        if not (self.in_view_change and self.view == view
                and self.primary_of(view) == self.cfg.index):
            return
        chosen = [m for _, m in sorted(self.view_changes.items()) if m.body.new_view == view]
        if len(chosen) < self.quorum:
            return
        chosen = chosen[:self.quorum]
        batches = self.compute_new_view_batches(view, [m.body for m in chosen])
        preprepares = tuple(self.sign(PrePrepare(view, seq, digest, ts))
                            for seq, ts, digest in batches)
        signed = self.sign(NewView(view, tuple(chosen), preprepares))
        self.emit(ev.Persist(signed))
        self.emit(ev.Broadcast(signed))
        self.stats["new_views_sent"] += 1
        self.enter_view(signed)

    def compute_new_view_batches(self: "Replica", view: int, vcs: list[ViewChange]
                                 ) -> list[tuple[int, int, bytes]]:
        """(seq, timestamp_ms, digest) for every sequence number the new view must settle.

        Digests, not batches: VIEW-CHANGE and NEW-VIEW carry headers only, so their size
        is bounded by the log window and n, never by what clients put in transactions
        (issue 17 B1). A replica that lacks a chosen batch fetches the committed block."""
        low = max(vc.stable_seq for vc in vcs)
        best: dict[int, PrePrepare] = {}
        for vc in vcs:
            for proof in vc.prepared:
                pp: PrePrepare = proof.preprepare.body
                held = best.get(pp.seq)
                if pp.seq > low and (held is None or (pp.view, pp.digest) > (held.view, held.digest)):
                    best[pp.seq] = pp
        high = max(best, default=low)
        null = self.digest_batch(0, ())
        return [(seq, best[seq].timestamp_ms, best[seq].digest) if seq in best else (seq, 0, null)
                for seq in range(low + 1, high + 1)]

    def on_new_view(self: "Replica", msg: Signed) -> None:
        nv: NewView = msg.body
        if nv.view < self.view or (nv.view == self.view and not self.in_view_change):
            return
        if msg.sender != self.primary_of(nv.view) or not self.is_valid_new_view(msg):
            self.stats["rejected_new_view"] += 1
            return
        self.enter_view(msg)

    def is_valid_new_view(self: "Replica", msg: Signed) -> bool:
        nv: NewView = msg.body
        senders = {m.sender for m in nv.view_changes}
        if len(senders) != len(nv.view_changes) or len(senders) < self.quorum:
            return False
        if not all(isinstance(m.body, ViewChange) and m.body.new_view == nv.view
                   and self.is_valid_view_change(m) for m in nv.view_changes):
            return False
        expected = self.compute_new_view_batches(nv.view, [m.body for m in nv.view_changes])
        if len(expected) != len(nv.preprepares):
            return False
        for (seq, ts, digest), pp in zip(expected, nv.preprepares):
            body = pp.body
            if (not isinstance(body, PrePrepare) or pp.sender != msg.sender
                    or (body.view, body.seq, body.timestamp_ms, body.digest, body.txs)
                    != (nv.view, seq, ts, digest, ()) or not self.is_authentic(pp)):
                return False
        return True

    # -- entering the view ----------------------------------------------------------------------
    def enter_view(self: "Replica", new_view_msg: Signed) -> None:
        nv: NewView = new_view_msg.body
        # Still changing views until the NEW-VIEW's pre-prepares are in and `next_seq`
        # follows them: nothing may be proposed before. A checkpoint adopted below (or a
        # delivery) would propose at a seq the NEW-VIEW then reassigns, so the primary
        # would sign two pre-prepares for one (view, seq) (`ipchain sim --seed 403`).
        self.view, self.in_view_change, self.last_new_view = nv.view, True, new_view_msg
        self.new_view_sent_ms.clear()
        self.forget_suspects()
        self.note_view_progress()
        self.working_in = {v: w for v, w in self.working_in.items() if v > nv.view}
        self.cancel_timer("view")
        self.stats["views_installed"] += 1
        best = max(nv.view_changes, key=lambda m: m.body.stable_seq).body
        if best.stable_seq > self.low_mark:
            self.adopt_checkpoint(best.stable_seq, best.stable_root, best.checkpoint_proof)
        self.requeue_unsettled(nv.view)
        high = self.low_mark
        for pp_msg in nv.preprepares:
            high = max(high, pp_msg.body.seq)
            self.install_preprepare(pp_msg)
        for seq in [s for s in self.slots if s > high and s > self.last_delivered]:
            del self.slots[seq]
        self.next_seq = max(high, self.last_delivered) + 1
        self.in_view_change = False
        replay, self.future = [m for m in self.future if m.body.view == nv.view], []
        self.future_per_sender.clear()
        for msg in replay:
            self.on_message(msg)
        self.on_progress()
        if self.is_primary and self.pending:
            self.propose(force=True)

    def install_preprepare(self: "Replica", pp_msg: Signed) -> None:
        pp: PrePrepare = pp_msg.body
        if pp.seq <= self.last_delivered:
            return
        slot = self.slot(pp.seq)
        if slot.certified and slot.certified_preprepare.body.digest != pp.digest:
            self.stats["new_view_conflicts_committed"] += 1  # impossible with <= f faulty
            return
        # Committed here already: keep that proof for delivery, and still vote in the new
        # view so peers that missed the old commits can finish the batch in this one.
        pp_msg = self.with_known_batch(pp_msg, slot)
        slot.preprepare = pp_msg
        slot.update_phase(prepared=False, commit_sent=False)
        self.accept_preprepare(pp_msg)
        if pp_msg.sender != self.cfg.index:
            self.send_vote(Prepare(pp.view, pp.seq, pp.digest), slot.prepares)
        self.check_prepared(slot)

    def with_known_batch(self: "Replica", pp_msg: Signed, slot) -> Signed:
        """The NEW-VIEW's header with the transactions we already hold for its digest.

        The signature does not cover the transactions, so the filled-in pre-prepare is
        as authentic as the header. Without them the slot still prepares and commits
        (the digest was prepared by a quorum that checked the batch) and the block is
        fetched with its certificate once committed (`check_committed`)."""
        pp: PrePrepare = pp_msg.body
        for known in (slot.certified_preprepare, slot.preprepare,
                      slot.prepared_proof.preprepare if slot.prepared_proof else None):
            if known is not None and known.body.digest == pp.digest and not self.lacks_batch(known.body):
                return Signed(replace(pp, txs=known.body.txs), pp_msg.sender, pp_msg.sig)
        return pp_msg

    def lacks_batch(self: "Replica", pp: PrePrepare) -> bool:
        """A header without its transactions (a null batch is complete as it is)."""
        return not pp.txs and pp.digest != self.digest_batch(pp.timestamp_ms, ())

    def requeue_unsettled(self: "Replica", view: int) -> None:
        """Requests in old-view batches that may not survive go back to pending."""
        for seq, slot in sorted(self.slots.items()):
            if seq <= self.last_delivered or slot.preprepare is None:
                continue
            if slot.preprepare.body.view >= view or slot.certified:
                continue
            for raw in slot.preprepare.body.txs:
                tx = request_id(raw)
                if self.seen.get(tx) == seq:
                    del self.seen[tx]
                if tx not in self.pending:
                    self.pending[tx] = raw
                    self.pending_bytes += len(raw)

    def adopt_checkpoint(self: "Replica", seq: int, root: bytes, proof: tuple[Signed, ...]) -> None:
        """A quorum proved state at `seq`; move the watermarks and fetch what we lack."""
        if self.last_executed >= seq:
            if self.executed_roots.get(seq, root) != root:
                self.stats["state_divergence"] += 1
                return
            self.stabilise(seq, root, proof)
            return
        self.low_mark, self.stable_root, self.stable_proof = seq, root, proof
        for old in [s for s in self.slots if s <= seq and s > self.last_delivered and
                    not self.slots[s].certified]:
            del self.slots[old]
        self.note_future(seq)

    def buffer_future(self: "Replica", msg: Signed) -> None:
        # Each sender gets an equal share, so one faulty replica cannot crowd out the
        # messages the honest ones send ahead of a NEW-VIEW we have not seen yet.
        if self.future_per_sender[msg.sender] < MAX_FUTURE_MESSAGES // self.n:
            self.future_per_sender[msg.sender] += 1
            self.future.append(msg)
        else:
            self.stats["dropped_future_message"] += 1
        if msg.body.view == self.view:  # we are changing to this view; they work in it
            working = self.working_in.setdefault(self.view, set())
            working.add(msg.sender)
            if len(working) == self.weak_quorum:
                self.emit(ev.Broadcast(self.view_changes[self.cfg.index]))
            return
        if msg.body.view < self.view:
            return
        self.ahead[msg.sender] = max(self.ahead.get(msg.sender, 0), msg.body.view)
        if sum(1 for v in self.ahead.values() if v > self.view) >= self.weak_quorum:
            # f+1 replicas work in a later view, so at least one honest one does: ask to
            # join; whoever holds that view's NEW-VIEW answers our VIEW-CHANGE with it.
            self.ahead.clear()
            self.start_view_change(self.view + 1)
