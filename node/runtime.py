"""The node's heart: one asyncio task owns the replica; everything talks to it by queue.

Per batch of events the loop steps the replica, then carries out the actions in the
order etcd's raftexample uses: persist (WAL, one SQLite transaction), then send, then
hand committed blocks to the executor task. Execution runs beside consensus, so
ordering later blocks overlaps with applying earlier ones.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

from consensus import events as ev
from consensus import messages as wire
from consensus.crypto import Ed25519Keyring
from consensus.replica import Replica, ReplicaConfig
from contracts import errors
from contracts.runtime import Receipt, check_nonce, get_ops
from contracts.tx import Transaction
from node.chain import Executor, Header, digest_batch, read_certificate, wire_certificate
from node.config import NodeConfig
from node.storage import Storage
from node.transport import Transport

log = logging.getLogger("ipchain.runtime")
MAX_EVENTS_PER_STEP = 1000
PLANTED_FAULT_ENV = "IPCHAIN_PLANTED_EXECUTION_FAULT"
"""Test hook: set to 1 and this node's contract execution differs from every other's
(one extra state write per block), so the divergence fail-stop can be shown live."""


class ShuttingDown(Exception):
    """The node is stopping; a client waiting for a commit should ask another node."""


class MempoolFull(errors.ContractError):
    """The node holds as many pending transactions as it is configured to; retry later."""


@dataclass(frozen=True)
class _Timer:
    name: str
    generation: int


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Runtime:
    def __init__(self, cfg: NodeConfig) -> None:
        self.cfg = cfg
        self.counters: collections.Counter[str] = collections.Counter()
        self.storage = Storage(cfg.data_dir / "db.sqlite")
        self.executor = Executor(self.storage, cfg.genesis)
        self.executor.planted_fault = os.environ.get(PLANTED_FAULT_ENV) == "1"
        self.diverged: dict[str, Any] | None = check_at_rest(self.storage, self.executor)
        """Set once this node's results cannot be trusted (a quorum certified another
        block hash, or its data at rest is damaged): it then votes, executes and serves
        state no more, and says why in /v1/status."""
        keys = Ed25519Keyring(cfg.index, cfg.signing_key, cfg.validator_keys)
        self.replica = Replica(ReplicaConfig(n=len(cfg.validator_keys), index=cfg.index,
                                             chain_id=cfg.chain_id, **cfg.consensus),
                               keys, digest_batch)
        self._restored = self.replica.restore(self._read_wal(), self.executor.height,
                                              self._read_stable_proof())
        """Carried out once the loop runs (start), like any step's actions."""
        self.transport = Transport(cfg.peers, self.counters)
        self.events: asyncio.Queue[Any] = asyncio.Queue()
        self.blocks: asyncio.Queue[ev.Deliver] = asyncio.Queue()
        self.mempool: dict[bytes, Transaction] = {}
        self.waiters: dict[bytes, list[asyncio.Future]] = {}
        self.listeners: list[Callable[[Header, list[Receipt]], None]] = []
        """Called after each block is stored: SSE, MQTT and metrics hang off this."""
        self.admission_listeners: list[Callable[[list[Transaction]], None]] = []
        """Called with the transactions newly admitted to the mempool (commit latency)."""
        self.inbound_filter: Callable[[wire.Signed], list[wire.Signed]] | None = None
        self._action_handlers: dict[type, Callable[[Any], None]] = {
            ev.Broadcast: self._on_broadcast, ev.Send: self._on_send,
            ev.Deliver: self.blocks.put_nowait,
            ev.SetTimer: lambda a: self._set_timer(a.name, a.delay_ms),
            ev.CancelTimer: self._on_cancel_timer, ev.FetchBlocks: self._on_fetch,
            ev.CheckpointStable: self._on_stable, ev.Evidence: self._on_evidence,
            ev.ExecutionCertified: self._on_certified, ev.Diverged: self._on_diverged}
        """Persist is handled first, for the whole batch, in _carry_out."""
        self._background: set[asyncio.Task] = set()
        self.fatal = asyncio.Event()
        """Set when the node cannot go on (its executor failed): the process exits."""
        self._timers: dict[str, tuple[int, asyncio.TimerHandle]] = {}
        self._generation = 0
        self._tasks: list[asyncio.Task] = []

    def _read_stable_proof(self) -> tuple[wire.Signed, ...]:
        stored = self.storage.get_meta("stable_checkpoint")
        try:
            return tuple(wire.decode(raw) for raw in stored[1]) if stored else ()
        except wire.WireError:
            log.error("event=stable_checkpoint_unreadable")
            return ()

    def _read_wal(self) -> list[wire.Signed]:
        restored = []
        for raw in self.storage.wal():
            try:
                restored.append(wire.decode(raw))
            except wire.WireError:
                log.error("event=wal_record_unreadable")
        return restored

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        await self.transport.start()
        if self.diverged is not None:
            log.critical("event=refusing_to_run reason=%s height=%s", self.diverged["reason"],
                         self.diverged["height"])
            return  # neither vote nor execute: our state is not the chain's
        self._carry_out(self._restored)
        self._tasks = [asyncio.create_task(self._replica_loop(), name="replica"),
                       asyncio.create_task(self._executor_loop(), name="executor")]

    async def stop(self) -> None:
        tasks = [*self._tasks, *self._background]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for _, handle in self._timers.values():
            handle.cancel()
        await self.transport.stop()
        self.storage.close()

    # -- admission ------------------------------------------------------------------------
    def admit(self, txs: list[Transaction], relay: bool) -> list[errors.ContractError | None]:
        """Check and queue client transactions; an already known id is accepted as is."""
        results: list[errors.ContractError | None] = []
        fresh: list[tuple[bytes, bytes]] = []
        ids = [bytes.fromhex(tx.id) for tx in txs]
        committed = self.storage.known_tx_ids([i for i in ids if i not in self.mempool])
        for tx, tx_id in zip(txs, ids):
            try:
                if tx_id not in self.mempool and tx_id not in committed:
                    self._check_admission(tx)
                    self.mempool[tx_id] = tx
                    fresh.append((tx_id, tx.to_bytes()))
                results.append(None)
            except errors.ContractError as exc:
                self.counters[f"tx_refused:{exc.code}"] += 1
                results.append(exc)
        if fresh:
            self.events.put_nowait(ev.RequestsArrived(tuple(fresh)))
            if relay:
                self.transport.relay_txs([raw for _, raw in fresh])
            admitted = [self.mempool[tx_id] for tx_id, _ in fresh]
            for listener in self.admission_listeners:
                try:  # an observer's bug must not strand admitted transactions
                    listener(admitted)
                except Exception:
                    log.exception("event=admission_listener_failed")
        return results

    def _check_admission(self, tx: Transaction) -> None:
        if len(self.mempool) >= self.cfg.max_mempool_txs:
            raise MempoolFull(f"mempool holds {len(self.mempool)} transactions")
        if tx.chain != self.cfg.chain_id:
            raise errors.WrongChain(f"transaction is for chain {tx.chain!r}")
        if tx.op not in get_ops():
            raise errors.UnknownOp(f"unknown op {tx.op!r}")
        if not tx.signature_ok():
            raise errors.BadSignature("signature does not verify")
        check_nonce(self.executor.state, tx.sender_hex, tx.nonce)

    def release_waiters(self) -> None:
        """Answer every client still waiting for a commit, so a graceful stop is prompt."""
        for futures in self.waiters.values():
            for future in futures:
                if not future.done():
                    future.set_exception(ShuttingDown("node is shutting down; ask another node"))
        self.waiters.clear()

    def wait_for(self, tx_id: bytes) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self.waiters.setdefault(tx_id, []).append(future)
        return future

    def forget_waiter(self, tx_id: bytes, future: asyncio.Future) -> None:
        """A client stopped waiting (timeout, refusal, disconnect): drop its future."""
        waiting = self.waiters.get(tx_id)
        if waiting and future in waiting:
            waiting.remove(future)
            if not waiting:
                del self.waiters[tx_id]

    # -- inbound from peers -------------------------------------------------------------------
    def on_peer_messages(self, raws: list[bytes]) -> None:
        for raw in raws:
            try:
                msg = wire.decode(raw)
            except wire.WireError:
                self.counters["peer_message_malformed"] += 1
                continue
            for item in (self.inbound_filter(msg) if self.inbound_filter else [msg]):
                self.events.put_nowait(ev.MessageArrived(item))

    # -- the replica task ------------------------------------------------------------------------
    async def _replica_loop(self) -> None:
        while True:
            batch = [await self.events.get()]
            while not self.events.empty() and len(batch) < MAX_EVENTS_PER_STEP:
                batch.append(self.events.get_nowait())
            actions: list[ev.Action] = []
            for item in batch:
                if isinstance(item, _Timer):
                    if self._timers.get(item.name, (None,))[0] != item.generation:
                        continue  # cancelled or re-armed after it fired
                    del self._timers[item.name]
                    item = ev.TimerFired(item.name)
                try:
                    actions.extend(self.replica.step(item, now_ms()))
                except Exception:  # a replica bug drops one event, never the whole loop
                    self.counters["replica_step_failed"] += 1
                    log.exception("event=replica_step_failed kind=%s", type(item).__name__)
            try:
                self._carry_out(actions)
            except Exception:  # a bug here must not silently stop consensus
                log.exception("event=carry_out_failed")

    def _carry_out(self, actions: list[ev.Action]) -> None:
        records = [(wire.view_of(a.msg.body), getattr(a.msg.body, "seq", 0), a.msg.body.KIND,
                    wire.encode(a.msg)) for a in actions if isinstance(a, ev.Persist)]
        if records:
            self.storage.append_wal(records)  # durable before anything below is sent
        for action in actions:
            handler = self._action_handlers.get(type(action))
            if handler is not None:
                handler(action)

    def _on_broadcast(self, action: ev.Broadcast) -> None:
        self.transport.broadcast(wire.encode(action.msg))

    def _on_send(self, action: ev.Send) -> None:
        self.transport.send(action.to, wire.encode(action.msg))

    def _on_cancel_timer(self, action: ev.CancelTimer) -> None:
        entry = self._timers.pop(action.name, None)
        if entry:
            entry[1].cancel()

    def _on_fetch(self, action: ev.FetchBlocks) -> None:
        task = asyncio.create_task(self._fetch(action.first, action.last))
        self._background.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._background.discard)

    def _on_stable(self, action: ev.CheckpointStable) -> None:
        self.storage.prune_wal(action.seq, self.replica.view)
        self.storage.set_meta("stable_checkpoint",
                              [action.seq, [wire.encode(m) for m in action.proof]])

    def _on_evidence(self, action: ev.Evidence) -> None:
        self.storage.add_evidence(action.kind, action.first.sender,
                                  wire.encode(action.first), wire.encode(action.second))

    def _on_certified(self, action: ev.ExecutionCertified) -> None:
        self.storage.save_exec_cert(action.height, action.block_hash,
                                    wire_certificate(action.votes))
        self.counters["blocks_certified"] += 1

    def _on_diverged(self, action: ev.Diverged) -> None:
        self.diverged = {"height": action.height, "mine": action.mine.hex(),
                         "quorum": action.quorum.hex(), "reason": "execution"}
        self.counters["execution_diverged"] += 1
        other = next(v for v in action.votes if v.sender != self.cfg.index)
        self.storage.add_evidence("execution-diverged", self.cfg.index,
                                  wire.encode(action.own), wire.encode(other))
        log.critical("event=execution_diverged height=%d mine=%s quorum=%s signers=%s",
                     action.height, action.mine.hex(), action.quorum.hex(),
                     [v.sender for v in action.votes])

    def _set_timer(self, name: str, delay_ms: int) -> None:
        old = self._timers.pop(name, None)
        if old:
            old[1].cancel()
        self._generation += 1
        timer = _Timer(name, self._generation)
        handle = asyncio.get_running_loop().call_later(
            delay_ms / 1000, self.events.put_nowait, timer)
        self._timers[name] = (timer.generation, handle)

    async def _fetch(self, first: int, last: int) -> None:
        async def on_block(preprepare: bytes, certificate: bytes) -> None:
            try:
                event = ev.BlockFetched(wire.decode(preprepare), read_certificate(certificate))
            except (wire.WireError, ValueError):
                self.counters["fetched_block_malformed"] += 1
                return
            self.events.put_nowait(event)

        proof = await self.transport.fetch_blocks(first, last, on_block)
        self.on_peer_messages(proof)  # the server's stable checkpoint votes

    # -- the executor task -----------------------------------------------------------------------
    async def _executor_loop(self) -> None:
        while True:
            block = await self.blocks.get()
            if block.seq <= self.executor.height:
                continue
            if self.diverged is not None:
                return  # fail-stop: later blocks would be built on refuted state
            try:
                header, receipts = await self.executor.execute(block, self.mempool.get,
                                                               self._is_verified)
            except Exception:
                # Fail-stop: a node that cannot apply a committed block must not go on
                # voting as if it had; peers carry on and it catches up after a restart.
                log.critical("event=executor_failed height=%d", block.seq, exc_info=True)
                self.fatal.set()
                return
            # Consensus hears first (checkpoints wait on it); then clients and observers.
            self.events.put_nowait(ev.BlockExecuted(block.seq, header.state_root, header.hash))
            self._after_block(header, receipts)

    def _is_verified(self, tx: Transaction) -> bool:
        return self.mempool.get(bytes.fromhex(tx.id)) is tx or tx.signature_ok()

    def _after_block(self, header: Header, receipts: list[Receipt]) -> None:
        self.counters["blocks_executed"] += 1
        self.counters["txs_executed"] += len(receipts)
        for receipt in receipts:
            tx_id = bytes.fromhex(receipt.tx_id)
            self.mempool.pop(tx_id, None)
            for future in self.waiters.pop(tx_id, []):
                if not future.done():
                    future.set_result(receipt)
        for listener in self.listeners:
            try:
                listener(header, receipts)
            except Exception:
                log.exception("event=listener_failed")

    def status(self) -> dict[str, Any]:
        replica = self.replica.status()
        return {"node_id": self.cfg.node_id, "index": self.cfg.index,
                "chain_id": self.cfg.chain_id, "view": replica["view"],
                "primary": replica["primary"], "height": self.executor.height,
                "state_root": self.executor.state.root().hex(),
                "peers": [p.id for p in self.cfg.peers], "mempool": len(self.mempool),
                "pending": replica["pending"], "stable_checkpoint": replica["stable_checkpoint"],
                "in_view_change": replica["in_view_change"], "evidence": replica["evidence"],
                "diverged": self.diverged,
                "certified_height": self.storage.last_certified(),
                "consensus": dict(sorted(self.replica.stats.items())),
                "transport": dict(sorted(self.counters.items()))}


def check_at_rest(storage: Storage, executor: Executor) -> dict[str, Any] | None:
    """Why this node's stored chain cannot be trusted, or None when it checks out.

    SQLite's quick_check finds a damaged file, but not a flipped bit inside a stored
    value or a WAL cut short after kill -9: those leave a readable database whose state
    no longer matches its last header. So the state root is recomputed and compared
    with that header's (which, once certified, 2f+1 validators signed), and the header
    with its certificate.
    """
    height = executor.height
    verdict = storage.quick_check()
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
