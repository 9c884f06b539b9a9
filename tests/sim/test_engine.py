"""The engine under the simulator: one glue for node and simulator, so the seeds test it.

- the same seeds on the in-memory store and on SQLite files give identical chains;
- a bug planted in the engine's glue (send before persist; a WAL prune that drops an
  unsettled vote) is reported by the simulator — before the engine, the simulator host
  had its own copy of the glue, so a bug in the node's copy went unseen;
- the error policy: a replica or executor exception is fail-stop, with its reason.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from consensus import events as ev
from consensus.messages import Prepare
from consensus.replica import Replica
from ipchain.sim.faults import MIXES
from ipchain.sim.run import SimConfig, Simulation, run_seed
from node import chain as node_chain
from node import engine as node_engine
from node.storage import Storage

CFG = SimConfig(blocks=30, mix=MIXES["full"])
STORE_SEEDS = (1, 11, 14)
"""Full-mix seeds with crashes, torn crashes and restarts among them (asserted below)."""
PLANT_SEEDS = (0, 1, 2, 4)
"""Full-mix seeds the correct engine passes and each planted bug below fails."""


def _chain_of(storage) -> list:
    top = storage.last_height()
    return [(storage.block(h), storage.receipts_at(h)) for h in range(1, top + 1)]


def test_the_same_seeds_give_identical_chains_on_the_memory_and_the_sqlite_store(
        tmp_path: Path) -> None:
    restarts = 0
    for seed in STORE_SEEDS:
        memory = Simulation(seed, CFG)
        on_memory = memory.run()
        opened: list[Storage] = []

        def sqlite_file(i: int, seed: int = seed) -> Storage:
            opened.append(Storage(tmp_path / f"seed{seed}" / f"replica{i}.sqlite"))
            return opened[-1]

        sqlite = Simulation(seed, CFG, make_storage=sqlite_file)
        try:
            on_sqlite = sqlite.run()
            assert on_memory.ok and on_sqlite.ok, on_memory.describe() + on_sqlite.describe()
            assert on_memory.fingerprint == on_sqlite.fingerprint
            for a, b in zip(memory.hosts, sqlite.hosts):
                chain = _chain_of(a.storage)
                # Not a trivial chain: at least half the safety phase's transactions
                # (after a view change the backlog is ordered in fewer, larger blocks).
                assert sum(len(receipts) for _, receipts in chain) >= \
                    CFG.blocks * CFG.txs_per_block // 2
                assert chain == _chain_of(b.storage)  # hashes, headers, roots, blocks, receipts
                assert a.storage.state_items() == b.storage.state_items()
                assert a.storage.wal() == b.storage.wal()
                assert a.storage.get_meta("stable_checkpoint") == \
                    b.storage.get_meta("stable_checkpoint")
        finally:
            for storage in opened:
                storage.close()
        restarts += on_sqlite.stats["restarts"]
    assert restarts > 0, "some replica restarted from its SQLite store"


# -- planted bugs in the engine's glue --------------------------------------------------------
def _send_before_persist(self: node_engine.Engine, actions: list[ev.Action]) -> None:
    """The planted bug: the sends go out first, the WAL is written after them."""
    if self.failure is not None:
        return
    for action in actions:
        self._handlers[type(action)](action)
    records = [node_engine.wal_record(a.msg) for a in actions if type(a) is ev.Persist]
    if records:
        self.storage.append_wal(records)


def _drops_unsettled_votes(stable_seq: int, view: int):
    """The planted bug: an off-by-a-window prune, dropping the next interval's votes."""
    def settled(record_view: int, seq: int, kind: str) -> bool:
        if kind in node_engine.VOTE_KINDS:
            return seq <= stable_seq + CFG.checkpoint_interval_blocks
        return kind in node_engine.VIEW_KINDS and record_view < view
    return settled


def _findings(seeds: tuple[int, ...], cfg: SimConfig = CFG) -> list[str]:
    return [f"seed {r.seed}: [{v.invariant}] {v.message}"
            for r in (run_seed(s, cfg) for s in seeds) for v in r.violations]


def test_the_correct_engine_passes_the_seeds_the_planted_bugs_fail() -> None:
    assert _findings(PLANT_SEEDS) == []


def test_a_send_before_persist_in_the_engine_is_caught_by_the_simulator(monkeypatch) -> None:
    monkeypatch.setattr(node_engine.Engine, "carry_out", _send_before_persist)
    findings = _findings(PLANT_SEEDS)
    assert findings and "before it was durable in its WAL" in findings[0], findings
    assert {f.split(":")[0] for f in findings} == {f"seed {s}" for s in PLANT_SEEDS}


def test_a_wal_prune_that_drops_an_unsettled_vote_is_caught_by_the_simulator(monkeypatch) -> None:
    monkeypatch.setattr(node_engine, "wal_settled", _drops_unsettled_votes)
    findings = _findings(PLANT_SEEDS)
    assert findings and any("WAL lost its unsettled" in f for f in findings), findings


# -- the error policy -------------------------------------------------------------------------
def test_a_replica_exception_is_fail_stop_and_a_finding(monkeypatch) -> None:
    original = Replica.step
    calls = [0]

    def step(self, event, now_ms):
        if self.cfg.index == 2 and isinstance(event, ev.MessageArrived):
            calls[0] += 1
            if calls[0] == 40:
                raise KeyError("planted replica bug")
        return original(self, event, now_ms)

    monkeypatch.setattr(Replica, "step", step)
    result = run_seed(1, replace(CFG, mix=MIXES["none"]))
    (finding,) = [v for v in result.violations if v.invariant == "exception"]
    assert "replica 2 fail-stopped: replica failed on MessageArrived" in finding.message
    assert "planted replica bug" in finding.message


def test_an_executor_exception_is_fail_stop_and_a_finding(monkeypatch) -> None:
    original = node_chain.apply_raw

    def apply_raw(state, ctx, *args):
        if ctx.height == 5:
            raise ZeroDivisionError("planted contract bug")
        return original(state, ctx, *args)

    monkeypatch.setattr(node_chain, "apply_raw", apply_raw)
    result = run_seed(1, replace(CFG, mix=MIXES["none"]))
    (finding,) = [v for v in result.violations if v.invariant == "exception"]
    assert "fail-stopped: executor failed at height 5" in finding.message
    assert "planted contract bug" in finding.message


def test_a_failed_engine_steps_and_executes_nothing_more() -> None:
    sim = Simulation(1, replace(CFG, mix=MIXES["none"]))
    sim.run()
    engine = sim.hosts[0].engine
    height, wal = engine.executor.height, engine.storage.wal()
    engine.fail("planted")
    engine.step(ev.TimerFired("view"))
    engine.carry_out([ev.Persist(engine.replica.sign(Prepare(0, 999, b"d" * 32)))])
    assert engine.failure == "planted" and engine.storage.wal() == wal
    assert engine.execute() is None and engine.executor.height == height


def test_step_until_stops_after_the_event_that_ends_the_turn(monkeypatch) -> None:
    """The node steps a catch-up's events in turns (node/offload.py `Turns`): a batch is
    cut after the event on which the turn ends, the rest is stepped next turn, and a
    failure mid-batch drops the rest (as `step_many` does) instead of looping on it."""
    sim = Simulation(1, replace(CFG, mix=MIXES["none"]))
    sim.run()
    engine = sim.hosts[0].engine
    stepped: list[ev.Event] = []
    original = engine.replica.step

    def step(event, now_ms):
        stepped.append(event)
        if len(stepped) == 7:
            raise KeyError("planted replica bug")
        return original(event, now_ms)

    monkeypatch.setattr(engine.replica, "step", step)
    events = [ev.TimerFired("fetch") for _ in range(5)]
    turn_over = iter([False, True])
    assert engine.step_until(events, lambda: next(turn_over)) == 2 and stepped == events[:2]
    assert engine.step_until(events[2:], lambda: False) == 3 and len(stepped) == 5
    assert engine.step_until(events, lambda: False) == 5 and len(stepped) == 7
    assert "planted replica bug" in engine.failure
    assert engine.step_until(events, lambda: False) == 5 and len(stepped) == 7
