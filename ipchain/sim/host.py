"""One simulated validator: a real `Replica`, its contract state, a WAL, and nothing else.

The host does for one replica what `node.runtime.Runtime` does for a real one, in the
same order (persist, then send, then execute), but synchronously and on simulated time:
messages go into the simulated network, timers into the event queue, and a delivered
block is applied at once with the real contracts (`apply_transaction`), its
`BlockExecuted` coming back after a modelled execution time. What survives a crash is
what a real node keeps on disk: the chain (blocks, receipts, state) and the WAL of
persisted messages. Everything else — the replica, its timers, the mempool — is lost.
"""

from __future__ import annotations

import hashlib
import random
from typing import Any, Callable, Protocol

from consensus import events as ev
from consensus import messages as wire
from consensus.messages import Commit, PrePrepare, Prepare
from consensus.quorum import quorum
from consensus.replica import Replica
from contracts.runtime import BlockContext, Receipt
from contracts.state import State
from contracts.tx import Transaction
from node.chain import (DUPLICATE, block_time_ms, digest_batch, genesis_header,
                        iter_receipts, seal_header)
from ipchain.sim.byzantine import HONEST, Behaviour
from ipchain.sim.clock import US_PER_MS, EventQueue
from ipchain.sim.network import Network
from ipchain.sim.workload import ClientTx

EXEC_BASE_US = 300
EXEC_PER_TX_US = 60
"""Modelled execution time of a block: when its BlockExecuted reaches the replica."""
TORN_WAIT_MS = 100
"""How long a torn crash waits for a step that writes the WAL before crashing cleanly."""


class SimChain:
    """The executor and its durable store: `node.chain.Executor` without SQLite or asyncio."""

    def __init__(self, chain_id: str, genesis_state: State, genesis_time_ms: int,
                 signature_ok: Callable[[Transaction], bool],
                 tx_cache: dict[bytes, Transaction]) -> None:
        self.chain_id = chain_id
        self.state = State(genesis_state.raw_items())
        self.head = genesis_header(genesis_state, genesis_time_ms)
        self.height = 0
        self.nondeterminism: random.Random | None = None
        """Set (a simulator fault): this replica's execution writes a random value each
        block, as a non-deterministic contract would; its results must be caught."""
        self.hashes: list[bytes] = [self.head.hash]
        """hashes[h]: the header hash of block h, what the execution vote signs."""
        self.certificates: dict[int, tuple[wire.Signed, ...]] = {}
        self.signature_ok = signature_ok
        self.tx_cache = tx_cache
        """Decoded transactions shared by all hosts (they are immutable): the mempool's role."""
        self.blocks: list[ev.Deliver | None] = [None]
        self.roots: list[bytes] = [self.state.root()]
        """roots[h]: the state root after executing block h (roots[0]: genesis)."""
        self.receipts: list[list[Receipt]] = [[]]
        self.tx_index: dict[str, tuple[int, bool, str]] = {}
        """tx id (hex) -> (height, ok, code) of its one effective execution."""

    def execute(self, block: ev.Deliver) -> list[Receipt]:
        if block.seq != self.height + 1:
            raise RuntimeError(f"block {block.seq} delivered after {self.height}")
        ctx = BlockContext(self.chain_id, block.seq, block_time_ms(self.head, block))
        ids = [hashlib.sha256(raw).digest() for raw in block.txs]
        committed = {i for i in ids if i.hex() in self.tx_index}
        receipts = list(iter_receipts(self.state, ctx, block.txs, ids, committed,
                                      self.tx_cache.get, self.signature_ok))
        for receipt in receipts:
            if receipt.code != DUPLICATE:
                self.tx_index[receipt.tx_id] = (block.seq, receipt.ok, receipt.code)
        if self.nondeterminism is not None:
            self.state.put("zz-nondeterminism", self.nondeterminism.getrandbits(32))
        header = seal_header(self.head, block, self.state, receipts)
        self.hashes.append(header.hash)
        self.state.take_dirty()
        self.height, self.head = block.seq, header
        self.blocks.append(block)
        self.roots.append(self.state.root())
        self.receipts.append(receipts)
        return receipts

    def certified_votes(self, first: int, last: int) -> tuple[wire.Signed, ...]:
        return tuple(vote for h in range(max(first, 1), min(last, self.height) + 1)
                     for vote in self.certificates.get(h, ()))

    def serve(self, first: int, last: int) -> tuple[tuple[wire.Signed, tuple[wire.Signed, ...]], ...]:
        blocks = self.blocks[max(first, 1):min(last, self.height) + 1]
        return tuple((b.preprepare, b.certificate) for b in blocks if b is not None)


class SharedSigned(wire.Signed):
    """A message as the simulated wire delivers it to its receivers: one object for all.

    Every receiver checks the signature over the same bytes; computing them once per
    message instead of once per receiver is a pure memo (the bytes are a function of
    the frozen body) and takes a quarter off a 100-replica run. Nothing else differs.
    """

    def signing_bytes(self, chain_id: str) -> bytes:
        memo = self.__dict__.get("_signing_memo")
        if memo is None or memo[0] != chain_id:
            memo = (chain_id, wire.signing_bytes(self.body, chain_id))
            object.__setattr__(self, "_signing_memo", memo)
        return memo[1]


def over_the_wire(msg: wire.Signed) -> SharedSigned:
    """Encode and decode, as a real link would: a codec bug shows up as a finding."""
    decoded = wire.decode(wire.encode(msg))
    return SharedSigned(decoded.body, decoded.sender, decoded.sig)


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


class Host:
    def __init__(self, index: int, env: HostEnv, make_replica: Callable[[], Replica],
                 chain: SimChain, behaviour: Behaviour = HONEST,
                 rng: random.Random | None = None) -> None:
        self.index = index
        self.n = env.n
        self.env = env
        self.make_replica = make_replica
        self.chain = chain
        self.behaviour = behaviour
        self.rng = rng or random.Random(index)
        self.wal: list[wire.Signed] = []
        """Every message the replica asked to persist, across incarnations (durable)."""
        self.stable_proof: tuple[wire.Signed, ...] = ()
        """The last stable checkpoint's proof, durable like the node's (restored with the WAL)."""
        self.replica: Replica | None = make_replica()
        self.epoch = 0
        """Bumped by each crash; callbacks scheduled by an earlier incarnation are void."""
        self.down_count = self.pause_count = 0
        self.backlog: list[tuple[Callable[..., None], tuple[Any, ...]]] = []
        self.timers: dict[str, int] = {}
        self._timer_serial = 0
        self.exec_free_us = 0
        self.evidence: list[tuple[str, int]] = []
        self.anomalies: list[str] = []
        """Deliveries out of order or contradicting an earlier one (never, if correct)."""
        self.bad_certificates: list[str] = []
        self.diverged: tuple[int, bytes, bytes] | None = None
        """Set when the replica fail-stopped: (height, our hash, the quorum's hash)."""
        self.stats = {"crashes": 0, "restarts": 0, "restored_from_wal": 0, "fetches": 0,
                      "redelivered": 0, "torn_crashes": 0, "torn_actions_lost": 0}
        self.torn_crash_pending = 0
        self.peers = [i for i in range(self.n) if i != index]
        self.quorum = quorum(self.n)
        self._start_ticking()

    # -- what Byzantine behaviours may use ----------------------------------------------------
    def sign(self, body) -> wire.Signed:
        return self.replica.sign(body)

    def digest(self, timestamp_ms: int, txs: tuple[bytes, ...]) -> bytes:
        return digest_batch(timestamp_ms, txs)

    def view(self) -> int:
        return self.replica.view

    @property
    def up(self) -> bool:
        return self.down_count == 0

    @property
    def honest(self) -> bool:
        return self.behaviour is HONEST

    # -- entry points -----------------------------------------------------------------------------
    def _runs_now(self, fn: Callable[..., None], *args: Any) -> bool:
        """False if the host cannot act now: dropped when down, queued while paused."""
        if self.down_count:
            return False
        if self.pause_count:
            self.backlog.append((fn, args))
            return False
        return True

    def step(self, event: ev.Event) -> None:
        if self.down_count:  # a torn crash earlier in this same callback
            return
        self.carry_out(self.replica.step(event, self.env.now_ms(self.index)))

    def on_packet(self, src: int, packet: tuple[Any, ...]) -> None:
        if not self._runs_now(self.on_packet, src, packet):
            return
        kind = packet[0]
        if kind == "msg":
            self.step(ev.MessageArrived(packet[1]))
        elif kind == "txs":
            self.admit(packet[1], relay=False)
        elif kind == "fetch":
            if self.behaviour.speaks:
                blocks = self.behaviour.serve(self, self.chain.serve(packet[1], packet[2]))
                if blocks:
                    self.env.network.send(self.index, src, ("blocks", blocks))
                    votes = self.chain.certified_votes(packet[1], packet[2])
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
        if not self._runs_now(self.admit, txs, relay):
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
        if not self._runs_now(self._on_timer, name, serial, epoch):
            return
        del self.timers[name]
        self.step(ev.TimerFired(name))

    def _on_block_done(self, seq: int, root: bytes, receipts: list[Receipt], epoch: int) -> None:
        if epoch != self.epoch or not self._runs_now(self._on_block_done, seq, root, receipts, epoch):
            return
        for r in receipts:
            if r.code != DUPLICATE:
                self.env.on_receipt(self.index, r.tx_id, r.height, r.ok, r.code)
        self.step(ev.BlockExecuted(seq, root, self.chain.hashes[seq]))

    # -- carrying out actions, in order ----------------------------------------------------------
    def carry_out(self, actions: list[ev.Action]) -> None:
        if self.torn_crash_pending and any(type(a) is ev.Persist for a in actions):
            self._carry_out_torn(actions)
            return
        for action in actions:
            kind = type(action)
            if kind is ev.Persist:
                self.wal.append(action.msg)  # durable before the sends that follow
            elif kind is ev.Broadcast:
                self._send(action.msg, self.peers)
            elif kind is ev.Send:
                self._send(action.msg, [action.to])
            elif kind is ev.Deliver:
                self._execute(action)
            elif kind is ev.SetTimer:
                self._timer_serial += 1
                self.timers[action.name] = self._timer_serial
                self.env.queue.after(action.delay_ms * US_PER_MS, self._on_timer, action.name,
                                     self._timer_serial, self.epoch)
            elif kind is ev.CancelTimer:
                self.timers.pop(action.name, None)
            elif kind is ev.FetchBlocks:
                self.stats["fetches"] += 1
                self.env.network.send(self.index, self.rng.choice(self.peers),
                                      ("fetch", action.first, action.last))
            elif kind is ev.Evidence:
                self.evidence.append((action.kind, action.first.sender))
            elif kind is ev.ExecutionCertified:
                if self.chain.hashes[action.height] != action.block_hash:
                    self.anomalies.append(f"replica {self.index} certified block {action.height}"
                                          " with a hash it did not compute")
                self.chain.certificates[action.height] = action.votes
                self.stats["blocks_certified"] = self.stats.get("blocks_certified", 0) + 1
            elif kind is ev.Diverged:
                self.diverged = (action.height, action.mine, action.quorum)
                self.stats["diverged"] = self.stats.get("diverged", 0) + 1
            elif kind is ev.CheckpointStable:
                self._prune_wal(action.seq)
                self.stable_proof = action.proof  # kept on "disk", as the node's meta
            else:  # a new action type: the host needs teaching; show it in the outcome
                name = f"unhandled_{kind.__name__}"
                self.stats[name] = self.stats.get(name, 0) + 1

    def _prune_wal(self, stable_seq: int) -> None:
        """What `node.storage.Storage.prune_wal` drops: settled votes, past views' changes."""
        view = self.replica.view

        def is_settled(body) -> bool:
            if isinstance(body, (PrePrepare, Prepare, Commit)):
                return body.seq <= stable_seq
            return wire.view_of(body) < view

        self.wal = [m for m in self.wal if not is_settled(m.body)]

    def _send(self, msg: wire.Signed, dsts: list[int]) -> None:
        """Through the behaviour, then the wire codec (once per distinct message)."""
        network = self.env.network
        if self.behaviour is HONEST:
            network.send_many(self.index, dsts, ("msg", over_the_wire(msg)))
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

    def _execute(self, block: ev.Deliver) -> None:
        chain = self.chain
        if block.seq <= chain.height:
            self.stats["redelivered"] += 1
            if chain.blocks[block.seq].digest != block.digest:
                self.anomalies.append(f"replica {self.index} delivered seq {block.seq} twice "
                                      f"with different digests")
            return
        if block.seq != chain.height + 1:
            self.anomalies.append(f"replica {self.index} delivered seq {block.seq} "
                                  f"after {chain.height} (gap)")
            return
        problem = certificate_problem(block, self.quorum)
        if problem:
            self.bad_certificates.append(f"replica {self.index} delivered seq {block.seq} {problem}")
        receipts = chain.execute(block)
        now_us = self.env.queue.now_us
        self.exec_free_us = (max(now_us, self.exec_free_us) + EXEC_BASE_US
                             + EXEC_PER_TX_US * len(block.txs))
        self.env.queue.at(self.exec_free_us, self._on_block_done, block.seq,
                          chain.roots[block.seq], receipts, self.epoch)

    def _carry_out_torn(self, actions: list[ev.Action]) -> None:
        """Die part-way: the WAL write (one transaction, first, as in `node.runtime`)
        happened, then only the first k of the other actions, then nothing."""
        self.torn_crash_pending -= 1
        self.wal.extend(a.msg for a in actions if type(a) is ev.Persist)
        rest = [a for a in actions if type(a) is not ev.Persist]
        cut = self.rng.randint(0, len(rest))
        self.stats["torn_crashes"] += 1
        self.stats["torn_actions_lost"] += len(rest) - cut
        self.carry_out(rest[:cut])
        self._crash_now()

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
            self.stats["crashes"] += 1
            self.epoch += 1
            self.replica = None
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
        self.stats["restarts"] += 1
        self.exec_free_us = 0
        self.replica = self.make_replica()
        self.stats["restored_from_wal"] += 1  # as node.runtime.Runtime does on every start
        self.carry_out(self.replica.restore(list(self.wal), self.chain.height,
                                            self.stable_proof))
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
