"""Checkpoints and garbage collection (Castro & Liskov §4.3).

Every `checkpoint_interval_blocks` each replica signs CHECKPOINT(n, state_root) after
executing block n. With 2f+1 matching votes the checkpoint is stable: the log at or
below it is dropped and the watermarks move up, which bounds memory and bounds how
far ahead a (possibly faulty) primary can run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from consensus import events as ev
from consensus.messages import Checkpoint, Signed

if TYPE_CHECKING:
    from consensus.replica import Replica


class Checkpoints:
    """Methods only: their fields are declared, with who writes them, in consensus/state.py."""

    def resume(self: "Replica", height: int) -> None:
        """Start from the host's executed height after a restart.

        The low watermark goes to the checkpoint at or below it; the stable proof is
        re-learned from peers' next checkpoint messages.
        """
        self.last_delivered = self.last_executed = height
        self.next_seq = height + 1
        self.low_mark = height - height % self.cfg.checkpoint_interval_blocks

    def on_executed(self: "Replica", seq: int, state_root: bytes) -> None:
        self.last_executed = max(self.last_executed, seq)
        if seq % self.cfg.checkpoint_interval_blocks or seq <= self.low_mark:
            return
        self.executed_roots[seq] = state_root
        signed = self.sign(Checkpoint(seq, state_root))
        self.emit(ev.Broadcast(signed))
        self.add_checkpoint_vote(signed)
        self.check_stable(seq)

    def on_checkpoint(self: "Replica", msg: Signed) -> None:
        cp: Checkpoint = msg.body
        if cp.seq <= self.low_mark or cp.seq % self.cfg.checkpoint_interval_blocks:
            return
        if cp.seq > self.last_executed + 64 * self.cfg.log_window_blocks:
            self.stats["ignored_checkpoint_far"] += 1
            return
        if self.add_checkpoint_vote(msg):
            self.check_stable(cp.seq)

    def add_checkpoint_vote(self: "Replica", msg: Signed) -> bool:
        cp: Checkpoint = msg.body
        by_root = self.checkpoint_votes.setdefault(cp.seq, {})
        for root, voters in by_root.items():
            if root != cp.state_root and msg.sender in voters:
                self.record_evidence("conflicting-checkpoint", voters[msg.sender], msg)
                return False
        voters = by_root.setdefault(cp.state_root, {})
        if msg.sender in voters:
            return False
        voters[msg.sender] = msg
        return True

    def check_stable(self: "Replica", seq: int) -> None:
        for root, voters in self.checkpoint_votes.get(seq, {}).items():
            if len(voters) >= self.weak_quorum and self.last_executed < seq:
                self.note_future(seq)  # at least one honest replica is ahead of us
            if len(voters) < self.quorum or self.last_executed < seq:
                continue
            if self.executed_roots.get(seq) != root:
                self.stats["state_divergence"] += 1
                return
            self.stabilise(seq, root, tuple(voters[i] for i in sorted(voters)))
            return

    def stabilise(self: "Replica", seq: int, root: bytes, proof: tuple[Signed, ...]) -> None:
        self.low_mark, self.stable_root, self.stable_proof = seq, root, proof
        self.stats["stable_checkpoints"] += 1
        self.emit(ev.CheckpointStable(seq, proof))
        for table in (self.slots, self.checkpoint_votes, self.executed_roots):
            for old in [s for s in table if s <= seq]:
                del table[old]
        # Keep one interval of request ids so a late duplicate is still recognised; the
        # host's transaction index covers anything older.
        horizon = seq - self.cfg.checkpoint_interval_blocks
        for request in [r for r, s in self.seen.items() if s <= horizon]:
            del self.seen[request]
        if self.is_primary and self.pending:
            self.propose(force=self.batch_due)
