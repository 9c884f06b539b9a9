"""One simulated validator: the node's own engine over a simulated bus, clock and store.

The host is the simulator's adapter over `node.engine.Engine`, exactly as
`node.runtime.Runtime` is the node's: the engine (not the host) carries out the
replica's actions, writes and prunes the WAL, restores after a restart, executes
blocks with the real contracts and applies the fail-stop error policy. The host only
supplies the outside: messages go into the simulated network (through the replica's
Byzantine behaviour, if any), timers into the event queue, storage is a
`MemoryStorage` with the SQLite store's semantics, and an executed block's
`BlockExecuted` comes back after a modelled execution time. What survives a crash is
the store (chain, state, WAL, stable checkpoint proof); the engine, replica, timers and
queued blocks are lost, and a restart builds a new engine over the same store.

The host also watches the engine's effects (`ipchain.sim.witness`), with no copy of
its logic: an honest replica's vote sent before it is durable, two different votes for
one slot, or a WAL that lost an unsettled vote are anomalies (the agreement checker).
"""

from __future__ import annotations

import functools
import random
from typing import Any, Callable, Protocol

from consensus import events as ev
from consensus import messages as wire
from consensus.messages import Commit
from consensus.quorum import quorum
from consensus.replica import Replica
from contracts.runtime import Receipt
from contracts.tx import Transaction
from node.byzantine import HONEST, Behaviour
from node.chain import DUPLICATE, Header, digest_batch, read_certificate
from node.engine import Engine, Storage
from node.memory_storage import MemoryStorage
from ipchain.sim.clock import US_PER_MS, EventQueue
from ipchain.sim.execshare import HostRuns, SharedExecution
from ipchain.sim.network import Network, over_the_wire
from ipchain.sim.witness import ChainRecord, Witness, WitnessedStorage
from ipchain.sim.workload import ClientTx

EXEC_BASE_US = 300
EXEC_PER_TX_US = 60
"""Modelled execution time of a block: when its BlockExecuted reaches the replica."""
TORN_WAIT_MS = 100
"""How long a torn crash waits for a step that writes the WAL before crashing cleanly."""


class FailStop(Exception):
    """A host's engine stopped on a replica or executor exception: a finding."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"replica {index} fail-stopped: {reason}")
        self.reason = reason


class _TornCut(BaseException):
    """The process dies here, part-way through carrying out a step's actions (a
    BaseException: the engine's error policy must not mistake a crash for a bug)."""


def certificate_problem(block: ev.Deliver, needed: int) -> str:
    """Why a delivered block's certificate would not convince a peer, or "" if it would.

    Structure only (the signatures were made by this process): 2f+1 COMMITs from distinct
    replicas for exactly the (view, seq, digest) of the pre-prepare delivered with them —
    what `is_valid_certificate` demands of a fetched block and a tx proof shows a client.
    """
    pp = block.preprepare.body
    voters = {vote.sender for vote in block.certificate if isinstance(vote.body, Commit)
              and (vote.body.view, vote.body.seq, vote.body.digest) == (pp.view, pp.seq, pp.digest)}
    if len(voters) >= needed:
        return ""
    views = sorted({getattr(v.body, "view", -1) for v in block.certificate})
    return (f"with a certificate of {len(voters)} matching commits (need {needed}): "
            f"pre-prepare view {pp.view}, commit views {views}")


class HostEnv(Protocol):
    """What a host needs from the simulation around it."""

    n: int
    queue: EventQueue
    network: Network

    def now_ms(self, index: int) -> int: ...

    def on_receipt(self, host: int, tx_id: str, height: int, ok: bool, code: str) -> None: ...


EFFECT_ACTIONS = (ev.Send, ev.Broadcast, ev.SetTimer, ev.CancelTimer, ev.FetchBlocks)


class Host:
    def __init__(self, index: int, env: HostEnv, make_replica: Callable[[], Replica],
                 genesis: dict[str, Any], signature_ok: Callable[[Transaction], bool],
                 tx_cache: dict[bytes, Transaction], behaviour: Behaviour = HONEST,
                 rng: random.Random | None = None, storage: Storage | None = None,
                 shared_execution: SharedExecution | None = None) -> None:
        self.index = index
        self.n = env.n
        self.env = env
        self.make_replica = make_replica
        self.genesis = genesis
        self.signature_ok = signature_ok
        self.tx_cache = tx_cache
        """Decoded transactions shared by all hosts (they are immutable): the mempool's role."""
        self.behaviour = behaviour
        self.rng = rng or random.Random(index)
        self.anomalies: list[str] = []
        """Deliveries or votes that contradict what this replica did before, and votes
        sent before they were durable (never, if the engine is correct)."""
        self.storage = WitnessedStorage(storage if storage is not None else MemoryStorage())
        """The durable store: survives crashes, as the node's SQLite file does."""
        self.witness = Witness(index, self.storage, self.anomalies)
        self.engine: Engine | None = None
        self.chain: ChainRecord | None = None
        self.epoch = 0
        """Bumped by each crash; callbacks scheduled by an earlier incarnation are void."""
        self.down_count = self.pause_count = 0
        self.backlog: list[tuple[Callable[..., None], tuple[Any, ...]]] = []
        self.timers: dict[str, int] = {}
        self._timer_serial = 0
        self.exec_free_us = 0
        self.bad_certificates: list[str] = []
        self.retired: list[Engine] = []
        """The engines of crashed incarnations, for `release` (nothing else reads them)."""
        self._stats = {"crashes": 0, "restarts": 0, "restored_from_wal": 0, "fetches": 0,
                       "redelivered": 0, "torn_crashes": 0, "torn_actions_lost": 0}
        self._effects_left: int | None = None
        self.torn_crash_pending = 0
        self.peers = [i for i in range(self.n) if i != index]
        self.quorum = quorum(self.n)
        self.now_ms = functools.partial(env.now_ms, index)  # type: ignore[method-assign]
        """`now_ms` below without its Python frame: the engine reads the clock every step."""
        self.nondeterminism: random.Random | None = None
        """Set by `plant_nondeterminism` (a simulator fault): each block also writes a
        random value, as a non-deterministic contract would."""
        self.block_hashes: dict[int, bytes] = {}
        """Header hash of each block this replica executed (what its execution vote signs)."""
        self.headers: dict[int, Header] = {}
        """The headers themselves, for the checkers' records (ipchain/sim/record.py)."""
        self.shared_execution = shared_execution
        """The seed's executed blocks, replayed where this replica's inputs are the same
        (ipchain/sim/execshare.py); None: this replica executes every block itself."""
        self.execution_runs: HostRuns | None = None
        """This incarnation's hook into the shared blocks (counts what it executed and
        what it replayed)."""
        self._start_engine()
        self._start_ticking()

    def _start_engine(self) -> None:
        self.engine = Engine(self.storage, self.genesis, self.make_replica(), self, self, self,
                             decoded=self.tx_cache.get, verified=self.signature_ok)
        if self.chain is None:
            self.chain = ChainRecord(self.engine.executor.state.root())
        self.chain.state = self.engine.executor.state
        self.engine.observers.append(self._on_executed)
        if self.shared_execution is not None:
            runs = self.shared_execution.runs_for(lambda: self.storage.saved_changes)
            self.engine.executor.shared_runs = self.execution_runs = runs
            self.engine.observers.append(runs.on_executed)
        if self.nondeterminism is not None:
            rng = self.nondeterminism
            self.engine.executor.planted_fault = lambda: rng.getrandbits(32)
        self.engine.restore()
        self._after_engine()

    # -- what Byzantine behaviours and the simulation read ------------------------------------
    def sign(self, body) -> wire.Signed:
        return self.replica.sign(body)

    def digest(self, timestamp_ms: int, txs: tuple[bytes, ...]) -> bytes:
        return digest_batch(timestamp_ms, txs)

    def view(self) -> int:
        return self.replica.view

    @property
    def replica(self) -> Replica | None:
        return self.engine.replica if self.engine is not None else None

    def plant_nondeterminism(self, rng: random.Random) -> None:
        self.nondeterminism = rng
        if self.engine is not None:
            self.engine.executor.planted_fault = lambda: rng.getrandbits(32)

    @property
    def diverged(self) -> dict[str, Any] | None:
        """{height, mine, quorum, reason} once the replica fail-stopped on its results."""
        return (self.engine.diverged if self.engine is not None
                else self.storage.get_meta("diverged"))

    def certified_heights(self) -> list[int]:
        return [h for h in range(1, self.chain.height + 1) if self.storage.exec_cert(h)]

    @property
    def up(self) -> bool:
        return self.down_count == 0

    @property
    def honest(self) -> bool:
        return self.behaviour is HONEST

    @property
    def wal(self) -> list[wire.Signed]:
        """The persisted messages the store holds now (what a restart restores from)."""
        return [wire.decode(raw) for raw in self.storage.wal()]

    @property
    def stable_proof(self) -> tuple[wire.Signed, ...]:
        stored = self.storage.get_meta("stable_checkpoint")
        return tuple(wire.decode(raw) for raw in stored[1]) if stored else ()

    @property
    def evidence(self) -> list[tuple[str, int]]:
        return [(kind, sender) for kind, sender, _, _ in self.storage.evidence(1 << 30)]

    @property
    def stats(self) -> dict[str, int]:
        stats = dict(self._stats)
        if self.engine is not None:
            for key, value in self.engine.stats.items():
                if key != "restored_from_wal":
                    stats[key] = stats.get(key, 0) + value
        return stats

    # -- entry points -----------------------------------------------------------------------------
    def _runs_now(self, fn: Callable[..., None], *args: Any) -> bool:
        """False if the host cannot act now: dropped when down, queued while paused.
        (Callers test `down_count or pause_count` first: the call is for those cases.)"""
        if self.down_count:
            return False
        if self.pause_count:
            self.backlog.append((fn, args))
            return False
        return True

    def step(self, event: ev.Event) -> None:
        if self.down_count:  # a torn crash earlier in this same callback
            return
        actions = self.engine.decide(event)
        if actions is None:
            self._after_engine()  # the replica failed: raises FailStop
        elif actions or self.storage.pruned:
            self.carry_out(actions)
        # else nothing to carry out, and nothing changed that the host looks at after a
        # step (no block delivered, no prune): so about half of all steps end here

    def carry_out(self, actions: list[ev.Action]) -> None:
        """The engine carries them out; the host may only tear the process mid-way."""
        if self.torn_crash_pending and any(type(a) is ev.Persist for a in actions):
            self._carry_out_torn(actions)
            return
        self.engine.carry_out(actions)
        # `honest`, without a property call per step; and only after a prune (the
        # witness's own test, without a call per step)
        if self.behaviour is HONEST and self.storage.pruned:
            self.witness.check_wal(after_restart=False)
        engine = self.engine
        if engine.delivered or engine.failure is not None:  # else `_after_engine` is a no-op
            self._after_engine()

    def on_packet(self, src: int, packet: tuple[Any, ...]) -> None:
        if (self.down_count or self.pause_count) and not self._runs_now(self.on_packet, src, packet):
            return
        kind = packet[0]
        if kind == "msg":
            self.step(ev.MessageArrived(packet[1]))
        elif kind == "txs":
            self.admit(packet[1], relay=False)
        elif kind == "fetch":
            if self.behaviour.speaks:
                chain = self.chain
                served = chain.blocks[max(packet[1], 1):min(packet[2], chain.height) + 1]
                blocks = self.behaviour.serve(self, tuple(
                    (b.preprepare, b.certificate) for b in served if b is not None))
                if blocks:
                    self.env.network.send(self.index, src, ("blocks", blocks))
                    votes = tuple(vote for raw in self.storage.exec_certs(packet[1], packet[2])
                                  for vote in read_certificate(raw))
                    if votes:  # as the node's /p2p/blocks: the range's execution certificates
                        self.env.network.send(self.index, src, ("votes", votes))
        elif kind == "blocks":
            for preprepare, certificate in packet[1]:
                self.step(ev.BlockFetched(preprepare, certificate))
        elif kind == "votes":
            for vote in packet[1]:
                self.step(ev.MessageArrived(vote))

    def admit(self, txs: tuple[ClientTx, ...] | list[ClientTx], relay: bool) -> None:
        """A client's (relay=True) or a peer's (relay=False) transactions arrive."""
        if (self.down_count or self.pause_count) and not self._runs_now(self.admit, txs, relay):
            return
        fresh = []
        for ctx in txs:
            known = self.chain.tx_index.get(ctx.id_hex)
            if known is not None:  # the API answers a known id with its receipt
                self.env.on_receipt(self.index, ctx.id_hex, *known)
            else:
                fresh.append(ctx)
        if not fresh:
            return
        self.step(ev.RequestsArrived(tuple((c.id_bytes, c.raw) for c in fresh)))
        if relay and self.behaviour.speaks:
            self.env.network.send_many(self.index, self.peers, ("txs", tuple(fresh)))

    def _on_timer(self, name: str, serial: int, epoch: int) -> None:
        if epoch != self.epoch or self.timers.get(name) != serial:
            return  # cancelled, re-armed, or set by a crashed incarnation
        if (self.down_count or self.pause_count) and not self._runs_now(self._on_timer, name, serial, epoch):
            return
        del self.timers[name]
        self.step(ev.TimerFired(name))

    def _on_block_done(self, event: ev.BlockExecuted, receipts: list[Receipt], epoch: int) -> None:
        if epoch != self.epoch or ((self.down_count or self.pause_count)
                                   and not self._runs_now(self._on_block_done, event, receipts, epoch)):
            return
        for r in receipts:
            if r.code != DUPLICATE:
                self.env.on_receipt(self.index, r.tx_id, r.height, r.ok, r.code)
        self.step(event)

    # -- what the engine calls: Bus, Timers, Clock ----------------------------------------------
    def send(self, to: int, msg: wire.Signed) -> None:
        if self._effects_left is not None:  # a torn crash under way (most steps: no call)
            self._effect()
        self._send(msg, [to])

    def broadcast(self, msg: wire.Signed) -> None:
        if self._effects_left is not None:  # a torn crash under way (most steps: no call)
            self._effect()
        self._send(msg, self.peers)

    def fetch(self, first: int, last: int) -> None:
        if self._effects_left is not None:
            self._effect()
        self._stats["fetches"] += 1
        self.env.network.send(self.index, self.rng.choice(self.peers), ("fetch", first, last))

    def set_timer(self, name: str, delay_ms: int) -> None:
        if self._effects_left is not None:
            self._effect()
        self._timer_serial += 1
        self.timers[name] = self._timer_serial
        self.env.queue.after(delay_ms * US_PER_MS, self._on_timer, name,
                             self._timer_serial, self.epoch)

    def cancel_timer(self, name: str) -> None:
        if self._effects_left is not None:
            self._effect()
        self.timers.pop(name, None)

    def now_ms(self) -> int:
        return self.env.now_ms(self.index)

    def _effect(self) -> None:
        """One effect leaves the process; during a torn crash, the cut may fall here."""
        if self._effects_left is not None:
            if self._effects_left == 0:
                raise _TornCut()
            self._effects_left -= 1

    def _send(self, msg: wire.Signed, dsts: list[int]) -> None:
        """Through the behaviour, then the wire codec (once per distinct message)."""
        network = self.env.network
        if self.behaviour is HONEST:
            encoded = wire.encode(msg)
            self.witness.on_send(msg, encoded)
            network.send_many(self.index, dsts, ("msg", over_the_wire(msg, encoded)))
        else:
            self._send_each(self.behaviour.outbound(self, msg, dsts))

    def _send_each(self, outbound: list[tuple[int, wire.Signed]]) -> None:
        """A behaviour's (destination, message) pairs; each distinct message encoded once.

        Keyed by id(): the messages are alive in `outbound` for the whole loop, and the
        dict is only looked up, never iterated, so ids cannot leak into the schedule."""
        encoded: dict[int, tuple[Any, ...]] = {}
        for dst, out in outbound:
            packet = encoded.get(id(out))
            if packet is None:
                packet = encoded[id(out)] = ("msg", over_the_wire(out))
            self.env.network.send(self.index, dst, packet)

    # -- execution --------------------------------------------------------------------------------
    def _after_engine(self) -> None:
        """Execute what was delivered, at once; the replica hears after modelled time."""
        engine = self.engine
        while engine.has_blocks:
            done = engine.execute()
            if done is None:
                continue
            now_us = self.env.queue.now_us
            self.exec_free_us = (max(now_us, self.exec_free_us) + EXEC_BASE_US
                                 + EXEC_PER_TX_US * len(done.receipts))
            self.env.queue.at(self.exec_free_us, self._on_block_done, done.event,
                              done.receipts, self.epoch)
        if engine.failure is not None:
            raise FailStop(self.index, engine.failure)

    def _on_executed(self, block: ev.Deliver, header: Header, receipts: list[Receipt]) -> None:
        problem = certificate_problem(block, self.quorum)
        if problem:
            self.bad_certificates.append(f"replica {self.index} delivered seq {block.seq} {problem}")
        self.chain.record(block, self.engine.executor.state.root(), receipts)
        self.block_hashes[header.height] = header.hash
        self.headers[header.height] = header

    def _carry_out_torn(self, actions: list[ev.Action]) -> None:
        """Die part-way: the engine writes the WAL (first, one transaction), then only
        the first k of the effects that leave the process happen, then nothing."""
        self.torn_crash_pending -= 1
        effects = sum(1 for a in actions if isinstance(a, EFFECT_ACTIONS))
        cut = self.rng.randint(0, effects)
        self._stats["torn_crashes"] += 1
        self._stats["torn_actions_lost"] += effects - cut
        self._effects_left = cut
        try:
            self.engine.carry_out(actions)
        except _TornCut:
            pass
        finally:
            self._effects_left = None
        self._crash_now()

    def release(self) -> None:
        """Break this host's reference cycles once its run is over (`Simulation.release`):
        the host and its engines point at each other. Nothing may use the host afterwards."""
        for engine in self.retired + [self.engine]:
            if engine is not None:
                vars(engine).clear()
        vars(self).clear()

    # -- faults -----------------------------------------------------------------------------------
    def crash(self, torn: bool = False) -> None:
        """Crash now, or (torn) in the middle of the next step that writes the WAL —
        or cleanly after TORN_WAIT_MS if the replica signs nothing meanwhile."""
        if torn and self.up and not self.pause_count:
            self.torn_crash_pending += 1
            self.env.queue.after(TORN_WAIT_MS * US_PER_MS, self._torn_fallback, self.epoch)
            return
        self._crash_now()

    def _torn_fallback(self, epoch: int) -> None:
        if epoch == self.epoch and self.torn_crash_pending:
            self.torn_crash_pending -= 1
            self._crash_now()

    def _crash_now(self) -> None:
        self.down_count += 1
        if self.down_count == 1:
            self._stats["crashes"] += 1
            self.epoch += 1
            for key, value in self.engine.stats.items():
                if key != "restored_from_wal":
                    self._stats[key] = self._stats.get(key, 0) + value
            self.retired.append(self.engine)
            self.engine = None
            self.timers.clear()
            self.backlog.clear()

    def restart(self) -> None:
        if self.torn_crash_pending:  # the replica never stepped: the crash never happened
            self.torn_crash_pending -= 1
            return
        if self.down_count == 0:
            return
        self.down_count -= 1
        if self.down_count:
            return
        self._stats["restarts"] += 1
        self._stats["restored_from_wal"] += 1  # as node.runtime.Runtime does on every start
        self.exec_free_us = 0
        self.witness.check_wal(after_restart=True)
        self._start_engine()
        self._start_ticking()

    def heal(self) -> None:
        """Every fault on this host ends: no crash left to happen, running, not paused."""
        self.torn_crash_pending = 0
        while self.pause_count:
            self.unpause()
        while self.down_count:
            self.restart()

    def pause(self) -> None:
        self.pause_count += 1

    def unpause(self) -> None:
        if self.pause_count == 0:
            return
        self.pause_count -= 1
        if self.pause_count == 0:
            backlog, self.backlog = self.backlog, []
            for fn, args in backlog:  # what queued up while stopped, in arrival order
                fn(*args)

    def _start_ticking(self) -> None:
        if self.behaviour.tick_ms:
            self.env.queue.after(self.behaviour.tick_ms * US_PER_MS, self._tick, self.epoch)

    def _tick(self, epoch: int) -> None:
        if epoch != self.epoch:
            return
        if self.up and not self.pause_count:
            self._send_each(self.behaviour.on_tick(self))
        self.env.queue.after(self.behaviour.tick_ms * US_PER_MS, self._tick, epoch)
