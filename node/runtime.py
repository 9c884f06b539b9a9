"""The node's asyncio adapter over `node.engine.Engine`: queues, timers, HTTP, SQLite.

One task feeds the engine batches of events (the engine steps the replica and carries
out the actions: WAL first, then sends); a second task executes delivered blocks in
chunks, yielding to the event loop between them, so ordering later blocks overlaps with
applying earlier ones. If the engine fail-stops (a replica or executor exception) the
node stops voting, says why in its log and /v1/status, and exits non-zero.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from consensus import events as ev
from consensus import messages as wire
from consensus.crypto import Ed25519Keyring
from consensus.replica import Replica, ReplicaConfig
from contracts import errors
from contracts.runtime import Receipt, check_args, check_nonce, get_ops, org_of_key
from contracts.tx import Transaction
from node import tls
from node.chain import EXECUTE_CHUNK_TXS, BatchHashes, Executor, Header
from node.config import NodeConfig
from node.engine import Engine, Executed
from node.fetching import BlockFetcher
from node.repair import replay_state
from node.seen_ids import CommittedIds
from node.snapshot_service import SnapshotService, open_store
from node.snapshot_sync import StateSync, StateSyncFailed
from node.peer_auth import pair_keys, peer_link_signers, peer_request_signer
from node.logs import Event
from node.offload import PreverifiedKeyring, Turn, Turns, WalCheckpointer
from node.storage import ALL_TX_IDS, Storage
from node.transport import Transport

log = logging.getLogger("ipchain.runtime")
MAX_EVENTS_PER_STEP = 1000
PLANTED_FAULT_ENV = "IPCHAIN_PLANTED_EXECUTION_FAULT"
"""Test hook: set to 1 and this node's contract execution differs from every other's
(one extra state write per block), so the divergence fail-stop can be shown live."""
MAX_FETCHED_PER_STEP = 4
"""A fetched block costs a certificate check and a delivery (several ms on a loaded
core): a catch-up step takes at most this many, then yields, so /v1/status answers
while a node catches up (asyncio's slow-callback log showed 25-60 ms steps at 16)."""
CHECKED_AHEAD = (wire.Executed, wire.Checkpoint)
"""Peer messages whose signatures are checked ahead (node/offload.py) before the replica sees them.
They come in floods (a catching-up peer's execution vote per block, the votes that come
with a fetched range) and nothing in ordering waits for them; PRE-PREPARE, PREPARE,
COMMIT and view changes go straight to the replica, as before."""
MAX_BULK_PER_STEP = 64
"""Execution and checkpoint votes, and executed blocks, per replica step: a fetched
range brings 3 votes per block at once, and one step taking all 768 of a chunk held
the loop for 60-180 ms even with their signatures checked ahead."""
MAX_CHECKING_AHEAD = 8192
"""Messages waiting to be checked ahead at most; beyond that the replica checks them
itself (in one step, never lost)."""


class ShuttingDown(Exception):
    """The node is stopping; a client waiting for a commit should ask another node."""


class MempoolFull(errors.ContractError):
    """The node holds as many pending transactions as it is configured to; retry later."""


@dataclass(frozen=True)
class _Timer:
    name: str
    generation: int


def refuse_unknown_sender(state: Any, tx: Transaction) -> None:
    """A permissioned chain orders only its members' transactions: a key that belongs to
    no organisation is refused at admission (4xx), so outsiders cannot fill blocks."""
    if org_of_key(state, tx.sender_hex) is None:
        raise errors.UnknownAccount("sender key belongs to no organisation")


DAMAGE_AT_REST = ("sqlite:", "state at rest", "last block does not match")
"""The start-up check's verdicts (node.engine.check_at_rest) that mean damaged data."""

SIGNATURE_VERIFICATIONS = "tx_signature_verifications"
"""runtime.counters key: exported as ipchain_tx_signature_verifications_total."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Runtime:
    def __init__(self, cfg: NodeConfig) -> None:
        self.cfg = cfg
        self.counters: collections.Counter[str] = collections.Counter()
        self.storage = Storage(cfg.data_dir / "db.sqlite")
        self.turns = Turns()
        """Catch-up work takes turns with the API for the loop (node/offload.py)."""
        self.keyring = PreverifiedKeyring(  # re-sent, nested and fetched votes: one check each
            Ed25519Keyring(cfg.index, cfg.signing_key, cfg.validator_keys), cfg.chain_id,
            self.turns)
        replica = Replica(ReplicaConfig(n=len(cfg.validator_keys), index=cfg.index,
                                        chain_id=cfg.chain_id, **cfg.consensus),
                          self.keyring, BatchHashes().digest_batch)
        self.transport = Transport(
            cfg.peers, self.counters, signer=peer_request_signer(cfg),
            ssl_context=tls.client_context(cfg.tls) if cfg.tls else None,
            link_signers=peer_link_signers(cfg),
            stream_keys=pair_keys(cfg.signing_key, cfg.index, cfg.validator_keys, cfg.chain_id))
        self.events: asyncio.Queue[Any] = asyncio.Queue()
        self.mempool: dict[bytes, Transaction] = {}
        self.committed_ids = CommittedIds()
        """A Bloom filter of the chain's tx ids: admission's first, cheap, duplicate check."""
        self.engine = Engine(self.storage, cfg.genesis, replica, self, self, self,
                             decoded=self.mempool.get, verified=self._is_verified)
        if self._rebuilt_damaged_state() or self._moved_damaged_data_aside():
            self.engine = Engine(self.storage, cfg.genesis, replica, self, self, self,
                                 decoded=self.mempool.get, verified=self._is_verified)
        self.engine.observers.append(self._after_block)
        self.snapshots = open_store(cfg)
        self.snapshot_service: SnapshotService | None = None
        self.state_sync: dict[str, Any] | None = self.storage.get_meta("state_sync")
        """What the last restore from a snapshot fetched (node/snapshot_sync.py), or None."""
        if os.environ.get(PLANTED_FAULT_ENV) == "1":
            self.executor.planted_fault = lambda: "planted"
        self.waiters: dict[bytes, list[asyncio.Future]] = {}
        self.listeners: list[Callable[[Header, list[Receipt]], None]] = []
        """Called after each block is stored: SSE, MQTT and metrics hang off this."""
        self.admission_listeners: list[Callable[[list[Transaction]], None]] = []
        """Called with the transactions newly admitted to the mempool (commit latency)."""
        self.inbound_filter: Callable[[wire.Signed], list[wire.Signed]] | None = None
        self._background: set[asyncio.Task] = set()
        self.fatal = asyncio.Event()
        """Set when the engine fail-stops (see `failure`): the process exits non-zero."""
        self._blocks_ready = asyncio.Event()
        self._timers: dict[str, tuple[int, asyncio.TimerHandle]] = {}
        self._generation = 0
        self._tasks: list[asyncio.Task] = []
        self._checking_ahead = 0
        self.fetcher = BlockFetcher(self)
        self.checkpointer: WalCheckpointer | None = None

    def _rebuilt_damaged_state(self) -> bool:
        """A state that fails the start-up check is rebuilt from our own certified
        blocks when they reproduce every stored hash (node/repair.py); else we refuse."""
        found = self.engine.diverged
        if found is None or not found["reason"].startswith("state at rest"):
            return False
        log.critical("event=state_damaged height=%s mine=%s expected=%s; rebuilding",
                     found["height"], found["mine"], found["quorum"])
        why_not = replay_state(self.storage, self.cfg.genesis)
        if why_not is not None:
            log.critical(Event("state_rebuild_failed", reason=why_not))
            found["reason"] += f"; rebuilding it from our blocks failed: {why_not}"
            return False
        self.counters["state_rebuilt"] += 1
        return True

    def _moved_damaged_data_aside(self) -> bool:
        """Damage our own blocks cannot repair: keep the database aside for forensics and
        start from genesis, so state transfer refetches every block and checks each one
        against its certificates. Only our WAL (what we signed) comes along: a replica
        that forgot its votes could contradict them. A divergence from a quorum's results
        is not damage at rest, and stays refused: refetching would diverge again."""
        found = self.engine.diverged
        if found is None or not found["reason"].startswith(DAMAGE_AT_REST):
            return False
        path = self.cfg.data_dir / "db.sqlite"
        aside = path.with_name(f"db.sqlite.damaged-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
        self.storage.close()
        for suffix in ("", "-wal", "-shm"):
            if Path(f"{path}{suffix}").exists():
                Path(f"{path}{suffix}").rename(f"{aside}{suffix}")
        self.storage = Storage(path)
        kept = self.storage.copy_wal_from(aside)
        log.critical(Event("resync_from_peers", height=found["height"], reason=found["reason"],
                           moved_aside=str(aside), wal_records_kept=kept))
        self.counters["resynced_from_peers"] += 1
        return True

    @property
    def replica(self) -> Replica:
        return self.engine.replica

    @property
    def executor(self) -> Executor:
        return self.engine.executor

    @property
    def diverged(self) -> dict[str, Any] | None:
        """{height, mine, quorum, reason} once this node's results cannot be trusted
        (a quorum certified another block hash, or its data at rest is damaged)."""
        return self.engine.diverged

    @property
    def failure(self) -> str | None:
        """Why the node stopped voting (fail-stop), or None."""
        return self.engine.failure

    # -- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        await self.transport.start()
        await self._sync_state()
        self.snapshot_service = SnapshotService(self)
        self.snapshot_service.attach(self.engine)
        loop = asyncio.get_running_loop()

        def checkpoint_failed(why: str) -> None:  # called in the checkpoint thread
            if not loop.is_closed():
                loop.call_soon_threadsafe(self._storage_failed, why)

        self.checkpointer = WalCheckpointer(self.storage.db, self.cfg.data_dir / "db.sqlite",
                                            checkpoint_failed)
        self.committed_ids = CommittedIds(complete=False)
        self.storage.screen_ids_with(self.committed_ids)  # each commit adds its ids
        self.spawn(self._load_committed_ids())
        self.engine.restore()
        self._after_engine()
        self._tasks = [asyncio.create_task(self._replica_loop(), name="replica"),
                       asyncio.create_task(self._executor_loop(), name="executor")]

    async def _sync_state(self) -> None:
        """Restore a peer's certified snapshot if we are new or far behind; then the
        engine starts over on the restored store (the replica has not run yet)."""
        if not self.cfg.state_sync or self.engine.diverged is not None or not self.cfg.peers:
            return
        sync = StateSync(self.transport, self.storage, self.snapshots, self.cfg.genesis,
                         self.executor.genesis.hash, self.executor.height)
        try:
            report = await sync.run()
        except StateSyncFailed as exc:
            log.error(Event("state_sync_gave_up", reason=str(exc), height=self.executor.height))
            return
        if report is None:
            return
        self.state_sync = report
        self.engine = Engine(self.storage, self.cfg.genesis, self.replica, self, self, self,
                             decoded=self.mempool.get, verified=self._is_verified,
                             state=sync.state)
        self.engine.observers.append(self._after_block)

    async def stop(self) -> None:
        tasks = [*self._tasks, *self._background]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.snapshots.close()  # waits for a snapshot being written
        for _, handle in self._timers.values():
            handle.cancel()
        await self.transport.stop()
        if self.checkpointer is not None:
            await asyncio.to_thread(self.checkpointer.stop)
        self.storage.close()

    # -- admission ------------------------------------------------------------------------
    def admit(self, txs: list[Transaction], relay: bool) -> list[errors.ContractError | None]:
        """Check and queue client transactions; an already known id is accepted as is.

        The signature is checked before the relay, as a CometBFT mempool runs CheckTx
        before gossip: relaying first overlapped two checks (a weak gain under load), but
        let anyone who knows a member's public key make every validator verify a forgery,
        where today only the node it was sent to does.

        Every node admits every transaction (about three in four relayed by a peer, in
        frames of hundreds), so the checks run in one loop over the slice with what they
        read taken once (`_check_admission`)."""
        ids = [tx.id_bytes for tx in txs]
        results, fresh = self._check_admission(txs, ids, self._committed_among(ids))
        if fresh:
            raws = [tx.encoded or tx.to_bytes() for tx in fresh]
            self.events.put_nowait(ev.RequestsArrived(tuple(zip(
                [tx.id_bytes for tx in fresh], raws))))
            if relay:
                self.transport.relay_txs(raws)
            for listener in self.admission_listeners:
                try:  # an observer's bug must not strand admitted transactions
                    listener(fresh)
                except Exception:
                    log.exception("event=admission_listener_failed")
        return results

    async def _load_committed_ids(self) -> None:
        """The filter of earlier ids is built in a thread from its own connection: on a
        chain of millions of transactions that is seconds of work a starting (or just
        state-synced) node should not wait for; until then the store answers alone."""
        path = self.cfg.data_dir / "db.sqlite"

        def load() -> CommittedIds:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                return CommittedIds(row[0] for row in db.execute(ALL_TX_IDS))
            finally:
                db.close()
        try:
            earlier = await asyncio.to_thread(load)
        except sqlite3.Error as exc:  # the store keeps answering alone: slower, still right
            log.warning(Event("committed_ids_not_loaded", error=str(exc)))
            return
        self.committed_ids.take_in(earlier)

    def _committed_among(self, ids: list[bytes]) -> set[bytes]:
        """Which of `ids` (not pending here) the chain holds: the store asks SQLite only
        about those the committed-id filter cannot rule out (`Storage.screen_ids_with`)."""
        mempool = self.mempool
        return self.storage.known_tx_ids([i for i in ids if i not in mempool])

    def _check_admission(self, txs: list[Transaction], ids: list[bytes], committed: set[bytes]
                         ) -> tuple[list[errors.ContractError | None], list[Transaction]]:
        """Each transaction's verdict in order (None: queued now, or already pending or
        committed) and those queued now. One loop, the checks inline, with what they read
        taken once per slice and the signature checks counted once per slice."""
        counters, mempool, limit = self.counters, self.mempool, self.cfg.max_mempool_txs
        chain, ops, state = self.cfg.chain_id, get_ops(), self.executor.state
        results: list[errors.ContractError | None] = [None] * len(txs)
        fresh: list[Transaction] = []
        verified = 0
        try:
            for at, tx in enumerate(txs):
                tx_id = ids[at]
                if tx_id in mempool or tx_id in committed:
                    continue
                try:
                    if len(mempool) >= limit:
                        raise MempoolFull(f"mempool holds {len(mempool)} transactions")
                    if tx.chain != chain:
                        raise errors.WrongChain(f"transaction is for chain {tx.chain!r}")
                    if tx.op not in ops:
                        raise errors.UnknownOp(f"unknown op {tx.op!r}")
                    verified += 1
                    if not tx.signature_ok():
                        raise errors.BadSignature("signature does not verify")
                    check_args(tx)  # typed op arguments (contracts/schema.py): BadArguments
                    sender_hex = tx.sender_hex
                    if org_of_key(state, sender_hex) is None:  # refuse_unknown_sender
                        raise errors.UnknownAccount("sender key belongs to no organisation")
                    check_nonce(state, sender_hex, tx.nonce)
                except errors.ContractError as exc:
                    counters[f"tx_refused:{exc.code}"] += 1
                    results[at] = exc
                    continue
                mempool[tx_id] = tx
                fresh.append(tx)
        finally:
            counters[SIGNATURE_VERIFICATIONS] += verified
        return results, fresh

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
        ahead: list[wire.Signed] = []
        for raw in raws:
            try:
                msg = wire.decode(raw)
            except wire.WireError:
                self.counters["peer_message_malformed"] += 1
                continue
            for item in (self.inbound_filter(msg) if self.inbound_filter else [msg]):
                if (type(item.body) in CHECKED_AHEAD
                        and self._checking_ahead + len(ahead) < MAX_CHECKING_AHEAD):
                    ahead.append(item)
                else:
                    self.events.put_nowait(ev.MessageArrived(item))
        if ahead:
            self._checking_ahead += len(ahead)
            self.spawn(self._arrive_checked(ahead))

    async def _arrive_checked(self, msgs: list[wire.Signed]) -> None:
        """Hand `msgs` to the replica once their signatures are checked (in slices)."""
        try:
            await self.keyring.check_ahead(msgs)
        finally:
            self._checking_ahead -= len(msgs)
        for msg in msgs:
            self.events.put_nowait(ev.MessageArrived(msg))

    # -- the replica task ------------------------------------------------------------------------
    async def _replica_loop(self) -> None:
        while True:
            batch = [await self.events.get()]
            fetched = bulk = 0
            while not self.events.empty() and len(batch) < MAX_EVENTS_PER_STEP \
                    and fetched < MAX_FETCHED_PER_STEP and bulk < MAX_BULK_PER_STEP:
                batch.append(self.events.get_nowait())
                kind = type(batch[-1])
                fetched += kind is ev.BlockFetched
                bulk += kind is ev.BlockExecuted or (
                    kind is ev.MessageArrived and type(batch[-1].msg.body) in CHECKED_AHEAD)
            events = []
            for item in batch:
                if isinstance(item, _Timer):
                    if self._timers.get(item.name, (None,))[0] != item.generation:
                        continue  # cancelled or re-armed after it fired
                    del self._timers[item.name]
                    item = ev.TimerFired(item.name)
                events.append(item)
            while events:  # in turns: a non-empty queue's get() never yields
                async with self.turns.turn() as turn:
                    taken = self.engine.step_until(events, turn.over)
                    self._after_engine()
                events = events[taken:]

    def _after_engine(self) -> None:
        if self.engine.failure is not None:
            if self.engine.stats["replica_step_failed"]:
                self.counters["replica_step_failed"] += 1
            self.fatal.set()
        elif self.engine.has_blocks:
            self._blocks_ready.set()

    # -- what the engine calls: Bus, Timers, Clock ------------------------------------------
    def broadcast(self, msg: wire.Signed) -> None:
        self.transport.broadcast(wire.encode(msg))

    def send(self, to: int, msg: wire.Signed) -> None:
        self.transport.send(to, wire.encode(msg))

    def fetch(self, first: int, last: int) -> None:
        self.fetcher.fetch(first, last)  # node/fetching.py

    def spawn(self, work: Any) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)  # held until done: the loop keeps only weak references
        task.add_done_callback(self._background.discard)

    def _storage_failed(self, reason: str) -> None:
        """A storage error off the loop (the WAL checkpoint) is a storage error: fail-stop."""
        self.engine.fail(reason)
        self._after_engine()

    def set_timer(self, name: str, delay_ms: int) -> None:
        old = self._timers.pop(name, None)
        if old:
            old[1].cancel()
        self._generation += 1
        timer = _Timer(name, self._generation)
        handle = asyncio.get_running_loop().call_later(
            delay_ms / 1000, self.events.put_nowait, timer)
        self._timers[name] = (timer.generation, handle)

    def cancel_timer(self, name: str) -> None:
        entry = self._timers.pop(name, None)
        if entry:
            entry[1].cancel()

    def now_ms(self) -> int:
        return now_ms()

    # -- the executor task -----------------------------------------------------------------------
    async def _executor_loop(self) -> None:
        while not self.fatal.is_set():
            await self._blocks_ready.wait()
            self._blocks_ready.clear()
            while self.engine.has_blocks:
                async with self.executor.lock:  # readers never see a block half applied
                    while True:
                        async with self.turns.turn() as turn:
                            finished = self._execute_for(turn)
                        for done in finished:
                            self.events.put_nowait(done.event)
                        if self.engine.current is None or not self.engine.has_blocks:
                            break  # at a block's end (or failed, or diverged)
                if self.engine.failure is not None:
                    self.fatal.set()
                    return

    def _execute_for(self, turn: Turn) -> list[Executed]:
        """Execute chunks of delivered blocks until the turn is over (at least one
        chunk): the blocks finished in it. A catch-up's blocks take one transaction
        each, so a turn applies and stores one to a few blocks."""
        finished: list[Executed] = []
        while self.engine.has_blocks:
            done = self.engine.execute(EXECUTE_CHUNK_TXS)
            if done is not None:
                finished.append(done)
            elif self.engine.current is None:
                break  # failed, or nothing after all
            if turn.over():
                break
        return finished

    def _is_verified(self, tx: Transaction) -> bool:
        """The executor's check: a transaction admitted here was verified at admission; one
        ordered by others is verified now and kept in the mempool until its block is stored,
        so a relayed copy arriving meanwhile is known, not verified a second time."""
        tx_id = tx.id_bytes
        if self.mempool.get(tx_id) is tx:
            return True
        if not self._verify_signature(tx):
            return False
        self.mempool.setdefault(tx_id, tx)
        return True

    def _verify_signature(self, tx: Transaction) -> bool:
        """Every Ed25519 check of a transaction in the running node, counted: /metrics
        shows each node verifies each transaction once (admitted, relayed or ordered)."""
        self.counters[SIGNATURE_VERIFICATIONS] += 1
        return tx.signature_ok()

    def _after_block(self, block: ev.Deliver, header: Header, receipts: list[Receipt]) -> None:
        self.counters["blocks_executed"] += 1
        self.counters["txs_executed"] += len(receipts)
        # receipt i is for tx i; the ids were hashed when the block was (a cache hit)
        ids = self.executor.batch_hashes.ids_and_root(block.txs)[0]
        forget = self.mempool.pop
        for tx_id in ids:
            forget(tx_id, None)
        if self.waiters:  # clients waiting for a commit (POST /v1/tx?wait=commit)
            for tx_id, receipt in zip(ids, receipts):
                for future in self.waiters.pop(tx_id, ()):
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
                "consensus": dict(sorted(self.replica.stats.items())),
                "transport": dict(sorted(self.counters.items())),
                "failure": self.engine.failure, "diverged": self.engine.diverged,
                "certified_height": self.storage.last_certified(),
                "lowest_retained_height": self.storage.pruned_below(),
                "state_sync": self.state_sync}
