"""A block executed once per seed: replicas with identical inputs replay one result.

In a healthy run every replica of a seed executes the same blocks on the same state:
n times the same deterministic contract code over the same bytes. Like the shared
signature verdicts (ipchain/sim/memo.py), `SharedExecution` remembers each result
under a key made of everything the execution reads, and a replica whose inputs equal
that key replays the result (its write set applied to its own state, the same
receipts) instead of running the contracts again. The key:

- the chain id, the block's height and the previous header's hash (which fixes the
  previous block time, hence the agreed time `block_time_ms` derives);
- the primary's timestamp and the batch itself (the very bytes, not a digest a
  Byzantine primary could have got wrong);
- the state root before the block, as this replica's own state computes it (a replica
  whose state differs in one byte — crashed half-way, corrupted, non-deterministic —
  has another root, so another key);
- which of the batch's tx ids this replica's store already holds (duplicates);
- the functions that find a decoded transaction and check a signature.

A replica with a planted fault (`Executor.planted_fault`, a non-deterministic contract)
neither offers nor takes a result: it must compute its own, different, one. Only a
block whose execution finished and was stored is offered, so an executor failure is
met by each replica itself. A replay takes the result whole: receipts, write set,
the state root after it (`State.replay`: its own leaves and tree are hashed when it
next computes a root) and the sealed header and receipt bytes, every field of which
the key fixes. Storing the block in its own store, voting and the rest stay its own
work. Simulator only: a node executes every block it commits.

The hooks are `Executor.shared_runs` and `BlockRun.seal` (node/chain.py): the host's
`SharedExecution.runs_for(...)` makes each block's run, a `SealedRun` (executed here,
offered once stored) on a miss, a `ReplayedRun` on a hit.
"""

from __future__ import annotations

from typing import Any, Callable

from consensus import events as ev
from contracts.runtime import Receipt
from contracts.tx import Transaction
from node.chain import BlockRun, Executor, Header

Key = tuple[Any, ...]


class Result:
    """One block's execution as the executor stored it: its receipts, its write set
    (key -> raw bytes, None where the key is absent after the block), the stored
    receipts' rows (tx id, index, record bytes) and the header (whose state root is
    the root after it)."""

    __slots__ = ("receipts", "changes", "rows", "header")

    def __init__(self, receipts: list[Receipt], changes: dict[str, bytes | None],
                 rows: list[tuple[bytes, int, bytes]], header: Header) -> None:
        self.receipts = tuple(receipts)
        self.changes = changes
        self.rows = rows
        self.header = header


class SharedExecution:
    """One seed's executed blocks, by key; shared by all of its hosts."""

    def __init__(self, keep_blocks: int = 1024) -> None:
        self.keep_blocks = keep_blocks
        self.results: dict[Key, Result] = {}
        self.executed = 0
        """Blocks some replica ran the contracts for (misses)."""
        self.replayed = 0
        """Blocks a replica took from another's result (hits)."""

    def runs_for(self, changes_of: Callable[[], dict[str, bytes | None]]) -> "HostRuns":
        """The hook for one host's executor. `changes_of()`: the write set its store
        saved last (ipchain/sim/witness.py's WitnessedStorage records it)."""
        return HostRuns(self, changes_of)

    def offer(self, key: Key, result: Result) -> None:
        results = self.results
        if key in results:
            return
        if len(results) >= self.keep_blocks:
            del results[next(iter(results))]  # the oldest: dicts keep insertion order
        results[key] = result


def execution_key(executor: Executor, block: ev.Deliver, ids: tuple[bytes, ...],
                  known: Callable[[bytes], Transaction | None],
                  verified: Callable[[Transaction], bool]) -> Key:
    """Everything `BlockRun` reads to produce receipts and writes (see module doc)."""
    proposal = block.preprepare.body
    return (executor.chain_id, proposal.seq, executor.head.hash, proposal.timestamp_ms,
            proposal.txs, executor.state.root(),
            frozenset(executor.storage.known_tx_ids(ids)), known, verified)


class HostRuns:
    """`Executor.shared_runs` for one host: replay on a hit, else run and offer."""

    def __init__(self, shared: SharedExecution, changes_of: Callable[[], dict]) -> None:
        self.shared = shared
        self.changes_of = changes_of
        self.pending: tuple[Key, SealedRun] | None = None
        """The key of the block this host is running itself, offered once it is stored."""
        self.executed = self.replayed = 0

    def __call__(self, executor: Executor, block: ev.Deliver,
                 known: Callable[[bytes], Transaction | None],
                 verified: Callable[[Transaction], bool]) -> BlockRun:
        self.pending = None
        if executor.planted_fault is not None:
            return BlockRun(executor, block, known, verified)
        ids, tx_root = executor.batch_hashes.ids_and_root(block.txs)
        key = execution_key(executor, block, ids, known, verified)
        result = self.shared.results.get(key)
        if result is None:
            self.shared.executed += 1
            self.executed += 1
            run = SealedRun(executor, block, known, verified)
            self.pending = (key, run)
            return run
        self.shared.replayed += 1
        self.replayed += 1
        return ReplayedRun(executor, block, ids, tx_root, result)

    def on_executed(self, block: ev.Deliver, header: Header, receipts: list[Receipt]) -> None:
        """The engine's observer: the block this host ran itself is stored; offer it."""
        pending, self.pending = self.pending, None
        if pending is not None and pending[1].block is block and pending[1].sealed:
            rows, sealed_header = pending[1].sealed
            if sealed_header is header:
                self.shared.offer(pending[0], Result(receipts, self.changes_of(), rows, header))


class SealedRun(BlockRun):
    """A `BlockRun` that keeps what it sealed, for the replicas that replay it."""

    sealed: tuple[list[tuple[bytes, int, bytes]], Header] | None = None

    def seal(self, executor: Executor) -> tuple[list[tuple[bytes, int, bytes]], Header]:
        self.sealed = super().seal(executor)
        return self.sealed


class ReplayedRun(BlockRun):
    """A `BlockRun` whose receipts and writes come from an identical execution: the
    same chunks and return values as running it (`Executor.commit` cannot tell)."""

    def __init__(self, executor: Executor, block: ev.Deliver, ids: tuple[bytes, ...],
                 tx_root: bytes, result: Result) -> None:
        self.block = block
        self.ids, self.tx_root = ids, tx_root
        self.receipts: list[Receipt] = []
        self._state = executor.state
        self._result = result
        self._written = False

    def advance(self, max_txs: int | None = None) -> bool:
        if not self._written:
            self._written = True
            self._state.replay(self._result.changes, self._result.header.state_root)
        shared, before = self._result.receipts, len(self.receipts)
        end = len(shared) if max_txs is None else min(len(shared), before + max_txs)
        self.receipts.extend(shared[before:end])
        return max_txs is None or end - before < max_txs

    def seal(self, executor: Executor) -> tuple[list[tuple[bytes, int, bytes]], Header]:
        """The same header and receipt rows: every field is fixed by the key (the
        previous header, the batch, the receipts, and the root and size of a state that
        equals the executing replica's)."""
        if executor.planted_fault is not None:  # planted after the run began: its own
            return super().seal(executor)
        return self._result.rows, self._result.header
