"""The replica: one PBFT participant as a pure state machine.

`Replica.step(event, now_ms) -> list[Action]` is the whole interface (etcd raft's
Ready, h11's events). The protocol is split by phase into mixins — normal case,
checkpoints, catch-up, view change, pacemaker, execution — over one set of fields,
declared with their writers in `consensus/state.py`. Time is only
the number passed in; timers are names and durations handed back as actions.
"""

from __future__ import annotations

from typing import Any, Callable
from dataclasses import dataclass

from consensus import events as ev
from consensus.catchup import CatchUp
from consensus.checkpoints import Checkpoints
from consensus.crypto import Keyring
from consensus.execution import Execution
from consensus.messages import (Checkpoint, Commit, Executed, NewView, PrePrepare, Prepare, Signed,
                                Suspect, ViewChange, signing_bytes)
from consensus.normal import NormalCase
from consensus.pacemaker import Pacemaker
from consensus.state import ReplicaState, Slot  # noqa: F401  (Slot: the phases' type hints)
from consensus.viewchange import ViewChanges


@dataclass(frozen=True, slots=True)  # slots: read on every step (see ReplicaState)
class ReplicaConfig:
    n: int
    index: int
    chain_id: str
    max_batch_txs: int = 1000
    max_batch_bytes: int = 2 * 1024 * 1024
    batch_delay_ms: int = 20
    window_blocks: int = 8
    """Sequence numbers the primary keeps in flight beyond the last delivered block."""
    checkpoint_interval_blocks: int = 64
    log_window_blocks: int = 256
    """High watermark = stable checkpoint + this; at least twice the checkpoint interval."""
    request_timeout_ms: int = 5000
    """The longest a request waits for progress before this replica suspects the view;
    the pacemaker uses less once it has measured commit latency."""
    min_view_timeout_ms: int = 800
    """The floor of the adaptive request timeout (pacemaker.py)."""
    resend_timeout_ms: int = 400
    """A replica re-sends what it signed for a slot still open this long: PBFT assumes
    messages may be lost, and without this a lossy link only heals by view change."""
    fetch_timeout_ms: int = 300
    fetch_chunk_blocks: int = 256
    max_clock_skew_ms: int = 120_000
    max_evidence: int = 256

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.n:
            raise ValueError("replica index out of range")
        if self.log_window_blocks < 2 * self.checkpoint_interval_blocks:
            raise ValueError("log window must hold two checkpoint intervals")
        if self.window_blocks < 1 or self.max_batch_txs < 1:
            raise ValueError("window and batch size must be positive")


RECEIVED_STAT = {kind: f"received_{kind.__name__}" for kind in
                 (PrePrepare, Prepare, Commit, Checkpoint, ViewChange, NewView, Suspect, Executed)}
"""The counter each message kind bumps on arrival, named once rather than formatted
for every message (the hot path of a node and of every simulated replica)."""

DigestFn = Callable[[int, tuple[bytes, ...]], bytes]
"""(timestamp_ms, txs) -> 32-byte batch digest; the host's Merkle tree over tx ids."""


class Replica(NormalCase, Checkpoints, CatchUp, ViewChanges, Pacemaker, Execution,
              ReplicaState):
    """The phases' methods over the fields declared in `consensus/state.py`."""

    def __init__(self, config: ReplicaConfig, keys: Keyring, digest_batch: DigestFn) -> None:
        if keys.index != config.index:
            raise ValueError("keyring belongs to another replica")
        ReplicaState.__init__(self, config, keys, digest_batch)

    # -- the interface ------------------------------------------------------------------
    def step(self, event: ev.Event, now_ms: int) -> list[ev.Action]:
        if now_ms > self.now_ms:  # never goes back
            self.now_ms = now_ms
        if self.diverged is not None:
            self.stats["ignored_after_divergence"] += 1
            return []  # fail-stop: nothing we would sign can be trusted any more
        if isinstance(event, ev.MessageArrived):
            self.on_message(event.msg)
        elif isinstance(event, ev.RequestsArrived):
            self.on_requests(event.txs)
        elif isinstance(event, ev.TimerFired):
            self._timers.discard(event.name)
            self.on_timer(event.name)
        elif isinstance(event, ev.BlockExecuted):
            if event.block_hash:
                self.on_block_executed(event.seq, event.block_hash)
            if self.diverged is None:  # no checkpoint vote for a root a quorum refuted
                self.on_executed(event.seq, event.state_root)
        elif isinstance(event, ev.BlockFetched):
            self.on_fetched(event.preprepare, event.certificate)
        out, self._out = self._out, []
        return out

    def on_message(self, msg: Signed) -> None:
        if msg.sender == self.cfg.index:
            self.stats["ignored_own_message"] += 1  # e.g. our pre-prepare relayed as evidence
            return
        if not self.is_authentic(msg):
            self.stats["dropped_bad_signature"] += 1
            return
        handler, counter = HANDLERS[type(msg.body)]
        self.stats[counter] += 1
        handler(self, msg)

    def on_timer(self, name: str) -> None:
        if name == "batch":
            self.on_batch_timer()
        elif name == "fetch":
            self.on_fetch_timer()
        elif name == "view":
            self.on_view_timer()
        elif name == "resend":
            self.on_resend_timer()
        elif name == "exec_resend":
            self.on_exec_resend_timer()

    def restore(self, wal: list[Signed], executed_height: int,
                stable_proof: tuple[Signed, ...] = ()) -> list[ev.Action]:
        """Rebuild after a crash from what this replica signed (its WAL) and the host's height.

        Only our own messages matter: they fix the view we reached and the votes we
        must never contradict (a prepare or commit for another digest at the same
        view and sequence). The rest is re-learned from peers. Returns the actions to
        carry out (re-sending a pending VIEW-CHANGE, arming timers), as `step` does.
        """
        self.resume(executed_height)
        self.restore_checkpoint(stable_proof)
        self.probe_for_blocks()
        latest_vc: Signed | None = None
        for msg in wal:
            body = msg.body
            if msg.sender != self.cfg.index:
                continue
            if isinstance(body, ViewChange):
                self.view = max(self.view, body.new_view)
                latest_vc = msg if latest_vc is None or body.new_view >= latest_vc.body.new_view else latest_vc
                continue
            self.view = max(self.view, body.view)
            if isinstance(body, NewView):
                self.last_new_view = msg
                for pp in body.preprepares:  # signed by us too: never number under them
                    if pp.body.seq > self.last_delivered:
                        self.restore_vote(pp)
            elif body.seq > self.last_delivered:
                self.restore_vote(msg)
        if latest_vc is not None:
            self.view_changes[self.cfg.index] = latest_vc
            self.in_view_change = latest_vc.body.new_view == self.view and not any(
                getattr(m.body, "view", -1) == self.view for m in wal if m.sender == self.cfg.index)
        if self.in_view_change:
            self.emit(ev.Broadcast(latest_vc))
            self.set_timer("view", self.view_timeout_ms())
        elif self.pending or self.has_undelivered():
            self.arm_request_timer()
        out, self._out = self._out, []
        return out

    def restore_checkpoint(self, proof: tuple[Signed, ...]) -> None:
        """Take back the last stable checkpoint the host kept, if it checks out: without
        its proof, our VIEW-CHANGEs would name a checkpoint nobody can verify."""
        seqs = {m.body.seq for m in proof if isinstance(m.body, Checkpoint)}
        if len(seqs) != 1:
            return  # none kept (or unreadable): the next stable checkpoint brings one
        (seq,) = seqs
        root = next(m.body.state_root for m in proof if isinstance(m.body, Checkpoint))
        if seq <= self.last_executed and self.is_checkpoint_proof(seq, root, proof):
            self.low_mark, self.stable_root, self.stable_proof = seq, root, tuple(proof)

    def restore_vote(self, msg: Signed) -> None:
        body = msg.body
        slot = self.slot(body.seq)
        if isinstance(body, PrePrepare):
            slot.preprepare = msg
            self.accept_preprepare(msg)
            self.next_seq = max(self.next_seq, body.seq + 1)
        elif isinstance(body, (Prepare, Commit)):
            votes = slot.prepares if isinstance(body, Prepare) else slot.commits
            votes.setdefault((body.view, body.digest), {})[self.cfg.index] = msg
            if isinstance(body, Commit):
                slot.update_phase(commit_sent=True)

    # -- helpers shared by the phases ---------------------------------------------------
    def primary_of(self, view: int) -> int:
        return view % self.n

    @property
    def primary(self) -> int:
        return self.primary_of(self.view)

    @property
    def is_primary(self) -> bool:
        return self.primary == self.cfg.index

    def is_authentic(self, msg: Signed) -> bool:
        return (0 <= msg.sender < self.n
                and self.keys.verify(msg.sender, msg.signing_bytes(self.cfg.chain_id), msg.sig))

    def sign(self, body) -> Signed:
        return Signed(body, self.cfg.index, self.keys.sign(signing_bytes(body, self.cfg.chain_id)))

    def emit(self, action: ev.Action) -> None:
        self._out.append(action)

    def set_timer(self, name: str, delay_ms: int) -> None:
        """Arm `name` unless it is already running (timers are not restarted by repeats)."""
        if name not in self._timers:
            self._timers.add(name)
            self.emit(ev.SetTimer(name, delay_ms))

    def cancel_timer(self, name: str) -> None:
        if name in self._timers:
            self._timers.discard(name)
            self.emit(ev.CancelTimer(name))

    def slot(self, seq: int) -> Slot:
        found = self.slots.get(seq)
        if found is None:
            found = self.slots[seq] = Slot(seq, opened_ms=self.now_ms)
            self.set_timer("resend", self.cfg.resend_timeout_ms)
        return found

    def in_watermarks(self, seq: int) -> bool:
        return self.low_mark < seq <= self.low_mark + self.cfg.log_window_blocks

    def record_evidence(self, kind: str, first: Signed, second: Signed) -> None:
        self.stats["evidence"] += 1
        if len(self.evidence) < self.cfg.max_evidence:
            found = ev.Evidence(kind, first, second)
            self.evidence.append(found)
            self.emit(found)

    def status(self) -> dict[str, Any]:
        return {"view": self.view, "primary": self.primary, "last_delivered": self.last_delivered,
                "last_executed": self.last_executed, "stable_checkpoint": self.low_mark,
                "pending": len(self.pending), "in_view_change": self.in_view_change,
                "evidence": len(self.evidence),
                "diverged": None if self.diverged is None else {
                    "height": self.diverged[0], "mine": self.diverged[1].hex(),
                    "quorum": self.diverged[2].hex()}}


HANDLERS: dict[type, tuple[Callable[[Replica, Signed], None], str]] = {
    kind: (handler, RECEIVED_STAT[kind]) for kind, handler in (
        (PrePrepare, Replica.on_preprepare), (Prepare, Replica.on_prepare),
        (Commit, Replica.on_commit), (Checkpoint, Replica.on_checkpoint),
        (ViewChange, Replica.on_view_change), (NewView, Replica.on_new_view),
        (Suspect, Replica.on_suspect), (Executed, Replica.on_executed_vote))}
"""Message body type -> (its handler, its arrival counter), for `Replica.on_message`.
Functions of the class, not bound methods of each replica: a table of bound methods
would make every replica reference itself, so a finished one (the simulator builds
four per seed) would wait for a garbage collection instead of being freed at once."""
