"""A block executed once per seed (ipchain/sim/execshare.py): a replica replays another's
result only when every input of the execution is the same as its own, and no seed's
outcome depends on whether blocks are shared."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Callable

import pytest

from consensus import events as ev
from consensus.messages import PrePrepare, Signed
from contracts.state import State
from contracts.tx import Transaction, sign_tx
from node.chain import BlockRun, Executor, digest_batch
from node.memory_storage import MemoryStorage
from ipchain.sim.execshare import ReplayedRun, SharedExecution
from ipchain.sim.faults import MIXES
from ipchain.sim.run import SimConfig, Simulation
from ipchain.sim.witness import WitnessedStorage
from ipchain.sim.workload import (build_genesis, client_key, client_org, make_bursts,
                                  trusted_signatures)

CHAIN = "c"
BURSTS = make_bursts(random.Random(7), CHAIN, 3, 2, 3)
GENESIS = build_genesis(CHAIN, 4, 3)
VERIFIED = trusted_signatures(BURSTS)


def known(_id: bytes) -> None:
    return None


def block(seq: int, txs: tuple[bytes, ...], timestamp_ms: int = 2_000) -> ev.Deliver:
    pp = PrePrepare(0, seq, digest_batch(timestamp_ms, txs), timestamp_ms, txs)
    return ev.Deliver(Signed(pp, 0, b"s" * 64), ())


class Replica:
    """One executor with its store and its hook into the shared blocks."""

    def __init__(self, shared: SharedExecution) -> None:
        self.storage = WitnessedStorage(MemoryStorage())
        self.executor = Executor(self.storage, GENESIS)
        self.runs = shared.runs_for(lambda: self.storage.saved_changes)
        self.executor.shared_runs = self.runs

    def execute(self, deliver: ev.Deliver, max_txs: int | None = None,
                verified: Callable[[Transaction], bool] = VERIFIED) -> tuple[BlockRun, list]:
        run = self.executor.begin(deliver, known, verified)
        steps = [run.advance(max_txs)]
        while not steps[-1]:
            steps.append(run.advance(max_txs))
        header, receipts = self.executor.commit(run)
        self.runs.on_executed(deliver, header, receipts)
        return run, steps

    def run_block(self, deliver: ev.Deliver, verified: Callable[[Transaction], bool]) -> None:
        self.execute(deliver, verified=verified)


def raws(burst: int) -> tuple[bytes, ...]:
    return tuple(c.raw for c in BURSTS[burst])


def stored(replica: Replica, height: int) -> tuple:
    return (replica.storage.block(height), replica.storage.state_items(),
            sorted(replica.storage.txs.items()), replica.executor.state.root())


def test_a_replica_with_the_same_inputs_replays_and_stores_what_executing_stores() -> None:
    shared = SharedExecution()
    first, second, alone = Replica(shared), Replica(shared), Replica(SharedExecution())
    one = block(1, raws(0) + raws(0)[:1])  # with a duplicate: a receipt not stored
    run_1, steps_1 = first.execute(one, max_txs=2)
    run_2, steps_2 = second.execute(one, max_txs=2)
    run_3, steps_3 = alone.execute(one, max_txs=2)
    assert type(run_1) is not ReplayedRun and type(run_3) is not ReplayedRun
    assert type(run_2) is ReplayedRun and second.runs.replayed == 1
    assert steps_1 == steps_2 == steps_3 == [False, False, True]  # the same chunks
    assert run_2.receipts == run_3.receipts
    assert stored(second, 1) == stored(alone, 1) == stored(first, 1)
    assert second.executor.head.hash == alone.executor.head.hash
    # the next block builds on the replayed state exactly as on an executed one
    two = block(2, raws(1), timestamp_ms=3_000)
    run_3b, _ = alone.execute(two)
    second.execute(two)
    assert shared.replayed == 1 and second.runs.executed == 1
    assert stored(second, 2) == stored(alone, 2)
    assert second.executor.state.root() == second.executor.head.state_root
    # the replayed state's deferred leaves and tree agree with a state built afresh
    fresh = State(second.executor.state.raw_items())
    assert fresh.root() == second.executor.state.root()
    assert fresh.sorted_leaves() == second.executor.state.sorted_leaves()


def test_different_state_history_or_batch_gets_no_shared_result() -> None:
    shared = SharedExecution()
    source, corrupt, seen, later = (Replica(shared) for _ in range(4))
    one = block(1, raws(0))
    source.execute(one)
    # a state that differs in one entry (a corruption, a bug): its own execution
    corrupt.executor.state.put("zz-corrupt", 1)
    run, _ = corrupt.execute(one)
    assert type(run) is not ReplayedRun and corrupt.runs.replayed == 0
    assert corrupt.executor.head.hash != source.executor.head.hash
    # a store that already holds one of the batch's transactions (they turn duplicate)
    first_id = BURSTS[0][0].id_bytes
    seen.storage.inner.txs[first_id] = (0, 0, b"")
    run, _ = seen.execute(one)
    assert type(run) is not ReplayedRun
    assert run.receipts[0].code == "DuplicateTransaction"
    # another timestamp, or another batch at the same height, is another block
    for other in (block(1, raws(0), timestamp_ms=2_001), block(1, raws(0)[:2])):
        probe = Replica(shared)
        run, _ = probe.execute(other)
        assert type(run) is not ReplayedRun
    # and the same block, once more, is replayed
    run, _ = later.execute(one)
    assert type(run) is ReplayedRun and stored(later, 1) == stored(source, 1)


def test_a_write_rolled_back_there_leaves_the_replaying_state_whole() -> None:
    """A sender's first transaction that fails inserts its nonce record and rolls it
    back: the write set says "absent" for a key the replaying state never had. Its
    next root, after a block of in-place updates only, must still be computed right."""
    def transfer(sender: int, nonce: int, amount: int) -> bytes:
        return sign_tx(client_key(sender), CHAIN, nonce, "token.transfer",
                       {"amount": amount, "to": client_org(2)}).to_bytes()

    shared = SharedExecution()
    source, replaying = Replica(shared), Replica(shared)
    blocks = [block(1, (transfer(1, 0, 5),)), block(2, (transfer(0, 0, 10**12),), 3_000)]
    replaying.run_block(blocks[0], Transaction.signature_ok)  # its own: its tree is current
    source.run_block(blocks[0], Transaction.signature_ok)
    source.run_block(blocks[1], Transaction.signature_ok)
    replaying.run_block(blocks[1], Transaction.signature_ok)
    assert replaying.runs.replayed == 1 and source.runs.replayed == 1
    assert source.storage.saved_changes == {f"nonce/{client_key(0).verify_key.encode().hex()}": None}
    own = block(3, (transfer(1, 1, 7),), 4_000)  # updates in place: no key moves
    alone = Replica(SharedExecution())
    for deliver in blocks + [own]:
        alone.run_block(deliver, Transaction.signature_ok)
    replaying.runs = SharedExecution().runs_for(lambda: replaying.storage.saved_changes)
    replaying.executor.shared_runs = replaying.runs
    replaying.run_block(own, Transaction.signature_ok)
    assert replaying.runs.executed == 1
    assert stored(replaying, 3) == stored(alone, 3)
    assert State(replaying.executor.state.raw_items()).root() == replaying.executor.state.root()


def test_a_replica_with_a_planted_fault_neither_takes_nor_offers_a_result() -> None:
    shared = SharedExecution()
    source, planted, after = Replica(shared), Replica(shared), Replica(shared)
    planted.executor.planted_fault = lambda: 42
    one = block(1, raws(0))
    planted.execute(one)  # first: had it offered its result, `after` would take it
    source.execute(one)
    assert planted.runs.executed == planted.runs.replayed == 0
    assert planted.executor.head.hash != source.executor.head.hash
    run, _ = after.execute(one)
    assert type(run) is ReplayedRun and after.executor.head.hash == source.executor.head.hash


CASES = [(SimConfig(blocks=20, mix=MIXES["full"]), seed) for seed in (1, 2, 5)] + \
        [(SimConfig(nodes=7, blocks=15, mix=replace(MIXES["full"], faulty=2)), 3),
         (SimConfig(blocks=12, liveness_blocks=3, nondeterministic_replica=2,
                    mix=MIXES["none"]), 4)]


@pytest.mark.parametrize("cfg,seed", CASES, ids=[f"n{c.nodes}-seed{s}" for c, s in CASES])
def test_outcomes_are_the_same_with_and_without_sharing(cfg: SimConfig, seed: int) -> None:
    shared_sim = Simulation(seed, cfg)
    shared = shared_sim.run()
    alone = Simulation(seed, replace(cfg, share_execution=False)).run()
    assert shared_sim.shared_execution.replayed > 0
    assert shared.digests == alone.digests and shared.finals == alone.finals
    assert shared.fingerprint == alone.fingerprint
    assert shared.violations == alone.violations


def test_a_replica_whose_state_was_corrupted_executes_alone_and_is_caught() -> None:
    sim = Simulation(1, SimConfig(blocks=12, liveness_blocks=2, mix=MIXES["none"]))
    odd = sim.hosts[3]
    odd.engine.executor.state.put("zz-corrupt", 1)  # in memory only: not in its store
    sim.run()
    assert odd.execution_runs.replayed == 0 and odd.execution_runs.executed >= 1
    assert odd.diverged is not None and odd.diverged["reason"] == "execution"
    others = [h for h in sim.hosts if h is not odd]
    assert all(h.diverged is None for h in others)
    assert sum(h.execution_runs.replayed for h in others) > 0


def test_the_cli_can_turn_sharing_off_and_keeps_it_on_by_default() -> None:
    """`ipchain sim --no-shared-execution`: every replica executes every block, as a
    node does (to rule sharing out while chasing a finding); it is no replay flag, as no
    outcome depends on it."""
    from scripts import sim as sim_cli

    off = sim_cli.build_parser().parse_args(["--no-shared-execution", "--seeds", "2"])
    on = sim_cli.build_parser().parse_args(["--seeds", "2"])
    assert sim_cli.config_from(off).share_execution is False
    assert sim_cli.config_from(on).share_execution is True
    assert "shared" not in sim_cli.config_from(off).cli_flags
    sim = Simulation(1, replace(sim_cli.config_from(off), blocks=6, liveness_blocks=2))
    assert sim.shared_execution is None and sim.run().ok
