"""The replica host, written once: everything between `Replica` and the outside world.

TigerBeetle's shape: the replica is generic over bus, storage and time, and the
simulator swaps only those. The engine carries out a step's actions in order (the WAL
write, one storage transaction, durable before any send that follows), prunes the WAL
by one rule, restores after a restart (WAL, stable checkpoint proof, executed height),
executes delivered blocks with the real contracts (`node.chain.Executor`), keeps
evidence and stable checkpoints, and applies ONE error policy: an exception in the
replica or the executor is fail-stop. The engine records why (`failure`), steps and
executes nothing more, and its adapter makes that visible — the node exits non-zero
and says why in its log and /v1/status, the simulator reports a finding.

Adapters: `node.runtime.Runtime` (asyncio, SQLite, HTTP) and `ipchain.sim.host.Host`
(simulated network and clock, `node.memory_storage.MemoryStorage`). Neither interprets
an action itself. Everything here is synchronous; execution is split into chunks
(`execute`) so the asyncio adapter can yield between them and the simulator can
model execution time.
"""

from __future__ import annotations

import collections
import logging
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from consensus import events as ev
from consensus import messages as wire
from consensus.messages import compute_digest
from consensus.replica import Replica
from contracts.runtime import Receipt
from contracts.tx import Transaction
from node.chain import BatchHashes, BlockRun, Executor, Header, wire_certificate
from node.logs import Event

log = logging.getLogger("ipchain.engine")

VOTE_KINDS = frozenset({"PP", "P", "C"})
REVOTE_BLOCKS = 8
"""After a restart, our last blocks without an execution certificate are voted on again."""
VIEW_KINDS = frozenset({"VC", "NV"})


# -- what the engine needs from its adapter ---------------------------------------------------
class Storage(Protocol):
    """The durable store: `node.storage.Storage` (SQLite) or `MemoryStorage` (simulator)."""

    def init_state(self, items: dict[str, bytes]) -> None: ...
    def state_items(self) -> dict[str, bytes]: ...
    def last_height(self) -> int: ...
    def block(self, height: int) -> tuple[bytes, bytes, bytes, bytes, bytes] | None: ...
    def known_tx_ids(self, ids: list[bytes]) -> set[bytes]: ...
    def save_block(self, height: int, block_hash: bytes, header: bytes, result_root: bytes,
                   preprepare: bytes, certificate: bytes, receipts: Any,
                   state_changes: dict[str, bytes | None]) -> None: ...
    def append_wal(self, records: list[tuple[int, int, str, bytes]]) -> None: ...
    def wal(self) -> list[bytes]: ...
    def prune_wal(self, settled: Callable[[int, int, str], bool]) -> None: ...
    def add_evidence(self, kind: str, sender: int, first: bytes, second: bytes) -> None: ...
    def get_meta(self, key: str) -> Any: ...
    def set_meta(self, key: str, value: Any) -> None: ...
    def save_exec_cert(self, height: int, block_hash: bytes, votes: bytes) -> None: ...
    def exec_cert(self, height: int) -> tuple[bytes, bytes] | None: ...
    def quick_check(self) -> str: ...


class Bus(Protocol):
    """Outbound messages. Inbound ones come back through `Engine.step`."""

    def send(self, to: int, msg: wire.Signed) -> None: ...
    def broadcast(self, msg: wire.Signed) -> None: ...
    def fetch(self, first: int, last: int) -> None:
        """Ask a peer for committed blocks; they come back as `BlockFetched` events."""


class Timers(Protocol):
    """A fired timer comes back as `TimerFired(name)` through `Engine.step`."""

    def set_timer(self, name: str, delay_ms: int) -> None: ...
    def cancel_timer(self, name: str) -> None: ...


class Clock(Protocol):
    def now_ms(self) -> int: ...


Observer = Callable[[ev.Deliver, Header, list[Receipt]], None]


@dataclass(frozen=True)
class Executed:
    """A block the engine has applied and stored; `event` goes back to the replica when
    the adapter says execution is over (at once on the node, after modelled time in sim)."""

    block: ev.Deliver
    header: Header
    receipts: list[Receipt]
    state_root: bytes
    """After this block (the next header's `state_root`)."""

    @property
    def event(self) -> ev.BlockExecuted:
        """With the header hash: the replica signs it in its execution vote."""
        return ev.BlockExecuted(self.header.height, self.state_root, self.header.hash)


def wal_settled(stable_seq: int, view: int) -> Callable[[int, int, str], bool]:
    """THE WAL pruning rule: votes at or below a stable checkpoint, and view changes of
    past views, can never be needed again by a restarted replica. Every store applies
    this predicate; none has its own copy of the rule."""

    def settled(record_view: int, seq: int, kind: str) -> bool:
        if kind in VOTE_KINDS:
            return seq <= stable_seq
        return kind in VIEW_KINDS and record_view < view
    return settled


def superseded_view_changes(view: int) -> Callable[[int, int, str], bool]:
    """A VIEW-CHANGE or NEW-VIEW supersedes this replica's earlier ones: only the latest
    fixes the view it reached, so a run of failed views keeps one record (and a long
    outage cannot grow the WAL by a view change per timeout)."""

    def settled(record_view: int, seq: int, kind: str) -> bool:
        return kind in VIEW_KINDS and record_view < view
    return settled


def wal_record(msg: wire.Signed) -> tuple[int, int, str, bytes]:
    body = msg.body
    return wire.view_of(body), getattr(body, "seq", 0), body.KIND, wire.encode(msg)


def describe_exception(exc: BaseException) -> str:
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    at = f" at {where.filename}:{where.lineno} ({where.name})" if where else ""
    return f"{exc!r}{at}"


class Engine:
    """One replica and everything around it, for one incarnation of the process."""

    def __init__(self, storage: Storage, genesis: dict[str, Any], replica: Replica,
                 bus: Bus, timers: Timers, clock: Clock,
                 decoded: Callable[[bytes], Transaction | None] = lambda _id: None,
                 verified: Callable[[Transaction], bool] = Transaction.signature_ok,
                 state: Any = None) -> None:
        self.storage = storage
        self.executor = Executor(storage, genesis, state)
        self.replica = replica
        hashes = getattr(replica.digest_batch, "__self__", None)
        if isinstance(hashes, BatchHashes):  # the replica's digest checks hashed each batch
            self.executor.batch_hashes = hashes
        self.bus, self.timers, self.clock = bus, timers, clock
        self.decoded, self.verified = decoded, verified
        """How the executor finds a decoded transaction (the mempool) and checks a signature."""
        self.stats: collections.Counter[str] = collections.Counter()
        """restored_from_wal, redelivered, replica_step_failed, executor_failed."""
        self.observers: list[Observer] = []
        """Called after each block is stored (receipts, SSE, MQTT, metrics, sim records).
        An observer's exception is logged and ignored: it is not the chain's fault."""
        self.delivered: collections.deque[ev.Deliver] = collections.deque()
        """Committed blocks waiting for the executor, in sequence order."""
        self.current: BlockRun | None = None
        self.failure: str | None = None
        """Why the engine stopped (fail-stop), or None while it runs."""
        self.diverged: dict[str, Any] | None = (storage.get_meta("diverged")
                                                 or check_at_rest(storage, self.executor,
                                                                  sqlite_check=state is None))
        """Set once this replica's results cannot be trusted: a quorum certified another
        header hash (`ev.Diverged`), or its data at rest fails the start-up check. It then
        votes, executes and serves state no more, and the adapter says why."""
        self._handlers: dict[type, Callable[[Any], None]] = {
            ev.Broadcast: lambda a: self.bus.broadcast(a.msg),
            ev.Send: lambda a: self.bus.send(a.to, a.msg),
            ev.Deliver: self.delivered.append,
            ev.SetTimer: lambda a: self.timers.set_timer(a.name, a.delay_ms),
            ev.CancelTimer: lambda a: self.timers.cancel_timer(a.name),
            ev.FetchBlocks: self._on_fetch,
            ev.CheckpointStable: self._on_stable, ev.Evidence: self._on_evidence,
            ev.ExecutionCertified: self._on_certified, ev.Diverged: self._on_diverged,
            ev.Persist: lambda a: None}  # written first, for the whole batch: carry_out
        self.watch = ReplicaWatch(replica, clock)

    # -- restore --------------------------------------------------------------------------
    def restore(self) -> None:
        """Rebuild the replica from what survived: its WAL, the last stable checkpoint's
        proof and the executed height; carry out what it asks (re-sends, timers)."""
        if self.diverged is not None:
            log.critical(Event("refusing_to_run", reason=self.diverged["reason"],
                               height=self.diverged["height"]))
            return  # neither vote nor execute: our state is not the chain's
        wal = []
        for raw in self.storage.wal():
            try:
                wal.append(wire.decode(raw))
            except wire.WireError:
                log.error("event=wal_record_unreadable")
        self.stats["restored_from_wal"] += 1
        actions = self._decide(lambda: self.replica.restore(wal, self.executor.height,
                                                            self.stable_proof()), "restore")
        self.carry_out(actions or [])
        log.info(Event("restored", height=self.executor.height, view=self.replica.view,
                       wal_records=len(wal), stable_checkpoint=self.replica.low_mark))
        self.watch.observe()
        self._revote_uncertified()

    def _revote_uncertified(self) -> None:
        """Vote again on our last blocks that have no execution certificate here: the
        votes died with the old process, and peers that certified them answer a late
        vote with theirs, so these blocks get certificates (and proofs) without waiting
        for new traffic."""
        top = self.executor.height
        for height in range(max(1, top - REVOTE_BLOCKS + 1), top + 1):
            row = self.storage.block(height)
            if row is not None and self.storage.exec_cert(height) is None:  # None: pruned
                header = Header.decode(row[1])
                self.step(ev.BlockExecuted(height, header.state_root, header.hash))

    def stable_proof(self) -> tuple[wire.Signed, ...]:
        stored = self.storage.get_meta("stable_checkpoint")
        try:
            return tuple(wire.decode(raw) for raw in stored[1]) if stored else ()
        except wire.WireError:
            log.error("event=stable_checkpoint_unreadable")
            return ()

    # -- stepping ---------------------------------------------------------------------------
    def step(self, event: ev.Event) -> None:
        self.step_many([event])

    def step_many(self, events: list[ev.Event]) -> None:
        """Step the replica with each event, then carry out all their actions at once
        (one WAL transaction for the batch). Nothing happens once the engine has failed."""
        self.step_until(events, lambda: False)

    def step_until(self, events: list[ev.Event], over: Callable[[], bool]) -> int:
        """`step_many` for the events up to the one after which `over()` says the
        adapter's time slice is spent (at least one); how many were taken, all of them
        once the engine has failed (they are dropped, as `step_many` drops them). The
        asyncio adapter steps a catch-up's thousands of events in turns this way."""
        if self.failure is not None or self.diverged is not None:
            return len(events)
        actions: list[ev.Action] = []
        taken = 0
        for event in events:
            if log.isEnabledFor(logging.DEBUG):
                log.debug(Event("step", kind=describe_event(event)))
            taken += 1
            out = self.decide(event)
            if out is None:
                taken = len(events)
                break
            actions.extend(out)
            if over():
                break
        self.carry_out(actions)
        self.watch.observe()
        return taken

    def decide(self, event: ev.Event) -> list[ev.Action] | None:
        """The replica's actions for one event, or None if it failed (the engine stops)."""
        if self.failure is not None:
            return None
        try:  # _decide's policy, without a closure per event (the simulator's hot path)
            return self.replica.step(event, self.clock.now_ms())
        except Exception as exc:
            return self._failed(f"replica failed on {type(event).__name__}", exc)

    def _decide(self, call: Callable[[], list[ev.Action]], what: str) -> list[ev.Action] | None:
        try:
            actions = call()
        except Exception as exc:
            return self._failed(f"replica failed on {what}", exc)
        return actions

    def _failed(self, what: str, exc: Exception) -> None:
        self.stats["replica_step_failed"] += 1
        self.fail(f"{what}: {describe_exception(exc)}", exc)

    def carry_out(self, actions: list[ev.Action]) -> None:
        """In order; every Persist of the batch first, in one storage transaction, so it
        is durable before anything that follows is sent."""
        if self.failure is not None:
            return
        try:
            records = [wal_record(a.msg) for a in actions if type(a) is ev.Persist]
            if records:
                self.storage.append_wal(records)
                views = [view for view, _, kind, _ in records if kind in VIEW_KINDS]
                if views:  # durable first: the older ones go only once the new one is in
                    self.storage.prune_wal(superseded_view_changes(max(views)))
            handlers = self._handlers
            for action in actions:
                kind = type(action)
                if kind is not ev.Persist:  # written above, for the whole batch
                    handlers[kind](action)
        except Exception as exc:  # e.g. the WAL write failed: nothing after it may go out
            self.fail(f"carrying out actions failed: {describe_exception(exc)}", exc)

    def _on_fetch(self, action: ev.FetchBlocks) -> None:
        log.info(Event("fetch_requested", first=action.first, last=action.last,
                       height=self.executor.height))
        self.bus.fetch(action.first, action.last)

    def _on_stable(self, action: ev.CheckpointStable) -> None:
        log.info(Event("checkpoint_stable", seq=action.seq, height=self.executor.height))
        self.storage.prune_wal(wal_settled(action.seq, self.replica.view))
        self.storage.set_meta("stable_checkpoint",
                              [action.seq, [wire.encode(m) for m in action.proof]])

    def _on_certified(self, action: ev.ExecutionCertified) -> None:
        self.storage.save_exec_cert(action.height, action.block_hash,
                                    wire_certificate(action.votes))
        self.stats["blocks_certified"] += 1

    def _on_diverged(self, action: ev.Diverged) -> None:
        """Our header hash differs from one 2f+1 replicas signed: stop, keep the evidence."""
        self.diverged = {"height": action.height, "mine": action.mine.hex(),
                         "quorum": action.quorum.hex(), "reason": "execution"}
        self.stats["execution_diverged"] += 1
        self.delivered.clear()
        self.storage.set_meta("diverged", self.diverged)  # a restart must not resume voting
        other = next(v for v in action.votes if v.sender != action.own.sender)
        self.storage.add_evidence("execution-diverged", action.own.sender,
                                  wire.encode(action.own), wire.encode(other))
        log.critical(Event("execution_diverged", height=action.height, mine=action.mine.hex(),
                           quorum=action.quorum.hex(),
                           signers=",".join(str(v.sender) for v in action.votes)))

    def _on_evidence(self, action: ev.Evidence) -> None:
        log.warning(Event("evidence", kind=action.kind, sender=action.first.sender,
                          view=self.replica.view))
        self.storage.add_evidence(action.kind, action.first.sender,
                                  wire.encode(action.first), wire.encode(action.second))

    # -- execution ------------------------------------------------------------------------
    @property
    def has_blocks(self) -> bool:
        """A block is being executed or waits for the executor."""
        return (self.failure is None and self.diverged is None
                and (self.current is not None or bool(self.delivered)))

    def execute(self, max_txs: int | None = None) -> Executed | None:
        """Apply up to `max_txs` transactions of the next block (all, if None).

        Returns the block once it is stored, else None (mid-block, nothing to do, or
        failed: see `failure`). A redelivered block is skipped if it is the one stored
        at that height; a different one, or a gap, is a fail-stop."""
        if self.diverged is not None:
            return None
        try:
            if self.current is None and not self._start_next():
                return None
            run = self.current
            if not run.advance(max_txs):
                return None
            self.current = None
            header, receipts = self.executor.commit(run)
        except Exception as exc:
            self.current = None
            self.stats["executor_failed"] += 1
            self.fail(f"executor failed at height {self.executor.height + 1}: "
                      f"{describe_exception(exc)}", exc)
            return None
        done = Executed(run.block, header, receipts, self.executor.state.root())
        if log.isEnabledFor(logging.INFO):  # quiet by default: not even the line's fields
            log.info(Event("block", height=header.height, txs=len(receipts),
                           view=run.block.view,
                           ms_since_proposal=self.clock.now_ms() - run.block.timestamp_ms))
        for observer in self.observers:
            try:
                observer(run.block, header, receipts)
            except Exception:
                log.exception("event=listener_failed")
        return done

    def _start_next(self) -> bool:
        while self.failure is None and self.delivered:
            block = self.delivered.popleft()
            if block.seq > self.executor.height:
                self.current = self.executor.begin(block, self.decoded, self.verified)
                return True
            self.stats["redelivered"] += 1
            stored = Header.decode(self.storage.block(block.seq)[1])
            if compute_digest(stored.proposal_timestamp_ms, stored.tx_root) != block.digest:
                raise RuntimeError(f"seq {block.seq} delivered twice with different digests")
        return False

    # -- the error policy -----------------------------------------------------------------
    def fail(self, reason: str, exc: BaseException | None = None) -> None:
        """Fail-stop: a replica that cannot step, or a node that cannot apply a committed
        block, must not go on voting as if it could. Peers carry on; after a restart it
        restores and catches up. The first reason is kept."""
        if self.failure is not None:
            return
        self.failure = reason
        self.delivered.clear()
        log.critical(Event("fail_stop", reason=reason),
                     exc_info=(type(exc), exc, exc.__traceback__) if exc else None)


def check_at_rest(storage: Storage, executor: Executor,
                  sqlite_check: bool = True) -> dict[str, Any] | None:
    """Why this replica's stored chain cannot be trusted, or None when it checks out.

    SQLite's quick_check finds a damaged file, but not a flipped bit inside a stored
    value or a WAL cut short after kill -9: those leave a readable database whose state
    no longer matches its last header. So the state root is recomputed and compared
    with that header's (which 2f+1 validators signed once certified), and the header
    with the certificate stored for it. `sqlite_check=False` skips quick_check for a
    store this process has just written from checked snapshot chunks (a state handed
    to the Engine by a restore): no crash can have come between, and reading back the
    whole ~1 GB store would cost a joining node seconds.
    """
    height = executor.height
    verdict = storage.quick_check() if sqlite_check else "ok"
    if verdict != "ok":
        return {"height": height, "mine": "", "quorum": "", "reason": f"sqlite: {verdict}"}
    mine = executor.state.root()
    if mine != executor.head.state_root:
        return {"height": height, "mine": mine.hex(), "quorum": executor.head.state_root.hex(),
                "reason": "state at rest does not match the last block's state root"}
    cert = storage.exec_cert(height)
    if cert is not None and cert[0] != executor.head.hash:
        return {"height": height, "mine": executor.head.hash.hex(), "quorum": cert[0].hex(),
                "reason": "last block does not match its execution certificate"}
    return None


def describe_event(event: ev.Event) -> str:
    """For debug lines: the event type, and a message's kind, view, seq and sender."""
    if type(event) is ev.MessageArrived:
        body = event.msg.body
        return (f"{body.KIND} view={wire.view_of(body)} seq={getattr(body, 'seq', 0)} "
                f"from={event.msg.sender}")
    if type(event) is ev.TimerFired:
        return f"timer {event.name}"
    return type(event).__name__


class ReplicaWatch:
    """Logs the replica's view changes and divergence, seen from outside after each step:
    `consensus/` is pure and does not log. Costs two attribute reads and one dict lookup
    per step; the replica's counters are only read when the view actually moves."""

    def __init__(self, replica: Replica, clock: Clock) -> None:
        self.replica, self.clock = replica, clock
        self.view, self.in_view_change = replica.view, replica.in_view_change
        self.installed_view = replica.view
        self.started_ms: int | None = None
        self.divergences = replica.stats["state_divergence"]
        self.reasons = self._reason_counts()

    def _reason_counts(self) -> dict[str, int]:
        return {k: v for k, v in self.replica.stats.items()
                if k == "view_timeouts" or k.startswith("suspected_primary:")}

    def _reason(self) -> str:
        now = self._reason_counts()
        moved = sorted(k for k, v in now.items() if v > self.reasons.get(k, 0))
        self.reasons = now
        suspected = [k.partition(":")[2] for k in moved if k.startswith("suspected_primary:")]
        if suspected:
            return ",".join(suspected)
        return "timeout" if moved else "peers_moved"

    def observe(self) -> None:
        replica = self.replica
        if replica.stats["state_divergence"] != self.divergences:
            self.divergences = replica.stats["state_divergence"]
            log.error(Event("state_divergence", view=replica.view,
                            stable_checkpoint=replica.low_mark, count=self.divergences))
        if replica.view == self.view and replica.in_view_change == self.in_view_change:
            return
        now = self.clock.now_ms()
        if replica.in_view_change:
            if self.started_ms is None:
                self.started_ms = now
            log.info(Event("view_change_started", **{"from": self.installed_view},
                           to=replica.view, reason=self._reason()))
        else:
            log.info(Event("view_installed", **{"from": self.installed_view},
                           to=replica.view, primary=replica.primary,
                           duration_ms=now - self.started_ms if self.started_ms else 0))
            self.installed_view, self.started_ms = replica.view, None
            self.reasons = self._reason_counts()
        self.view, self.in_view_change = replica.view, replica.in_view_change
