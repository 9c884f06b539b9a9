"""The replica's state is declared in one place, and a slot moves only as the table says.

`consensus/state.py` claims, for every field of `Replica`, which modules write it and
which only read it; these tests read the phase modules' source and hold it to that
claim, run simulations and find no attribute it does not declare, and try every
phase change against `TRANSITIONS`.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
from pathlib import Path

import pytest

from consensus import state
from consensus.replica import Replica
from consensus.state import (FACTS, MODULES, TRANSITIONS, IllegalSlotTransition, Phase,
                             ReplicaState, Slot, advance)
from ipchain.sim.faults import MIXES, Episode, FaultPlan
from ipchain.sim.run import SimConfig, Simulation

ROOT = Path(__file__).resolve().parents[2]
MIXINS = {"Replica", "NormalCase", "Checkpoints", "CatchUp", "ViewChanges", "Pacemaker",
          "Execution"}
MUTATORS = frozenset({"add", "append", "clear", "discard", "extend", "pop", "popitem", "remove",
                      "setdefault", "update"})
DECLARED = {f.name: f for f in dataclasses.fields(ReplicaState)}


# -- the transition table ---------------------------------------------------------------------
@pytest.mark.parametrize("current", list(Phase), ids=lambda p: p.name)
def test_advance_allows_exactly_the_table_and_names_every_refusal(current: Phase) -> None:
    for wanted in Phase:
        slot = Slot(7, phase=current)
        if wanted in TRANSITIONS[current]:
            advance(slot, wanted)
            assert slot.phase is wanted
        else:
            with pytest.raises(IllegalSlotTransition, match=f"slot 7: {current.name} -> "):
                advance(slot, wanted)
            assert slot.phase is current, "a refused change leaves the slot as it was"


def test_every_phase_has_a_row_and_is_reachable_from_idle() -> None:
    assert set(TRANSITIONS) == set(Phase)
    reached, frontier = {Phase.IDLE}, [Phase.IDLE]
    while frontier:
        for nxt in TRANSITIONS[frontier.pop()] - reached:
            reached.add(nxt)
            frontier.append(nxt)
    assert reached == set(Phase)


def test_a_committed_block_stays_committed_and_no_transition_is_a_no_op() -> None:
    for current, allowed in TRANSITIONS.items():
        assert current not in allowed
        for wanted in allowed:
            assert wanted.certified >= current.certified, (current, wanted)
            assert wanted.fetched >= current.fetched, (current, wanted)
            assert wanted.certified or not wanted.fetched


def test_only_the_wal_gives_a_commit_without_a_prepare() -> None:
    """A live replica commits only after it prepared; a restored one may hold its commit
    first, and then only from a fresh slot."""
    into = {(a, b) for a, allowed in TRANSITIONS.items() for b in allowed
            if b.commit_sent and not b.prepared and not (a.commit_sent and not a.prepared)}
    assert into == {(Phase.IDLE, Phase.COMMIT_RESTORED)}


def test_update_phase_changes_facts_through_the_table() -> None:
    slot = Slot(3)
    slot.update_phase(prepared=True)
    slot.update_phase(commit_sent=True)
    slot.update_phase(commit_sent=True)  # already so: nothing changes
    assert slot.phase is Phase.COMMIT_SENT and slot.prepared and slot.commit_sent
    slot.update_phase(certified=True)
    assert slot.phase is Phase.CERTIFIED and slot.certified and not slot.fetched
    slot.update_phase(prepared=False, commit_sent=False)  # a NEW-VIEW re-proposes it
    assert slot.phase is Phase.CERTIFIED_UNPREPARED
    with pytest.raises(IllegalSlotTransition, match="CERTIFIED_UNPREPARED"):
        slot.update_phase(certified=False)  # a certificate is never taken back
    with pytest.raises(IllegalSlotTransition):
        Slot(4).update_phase(fetched=True)  # fetched without a certificate: no such phase
    with pytest.raises(IllegalSlotTransition):
        Slot(5, phase=Phase.PREPARED).update_phase(prepared=False, commit_sent=True)
    with pytest.raises(TypeError, match="delivered"):
        Slot(6).update_phase(delivered=True)
    assert FACTS == ("prepared", "commit_sent", "certified", "fetched")


# -- the field table against the source -------------------------------------------------------
def written_names(fn: ast.AST) -> set[int]:
    """ids of the `self.x` nodes `fn` writes through: x[k] = / del x[k], x.pop(...) and
    the like, and `for table in (self.a, self.b)` (that loop prunes the tables)."""
    targets: set[int] = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, (ast.Store, ast.Del)):
            targets.add(id(node.value))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in MUTATORS):
            targets.add(id(node.func.value))
        elif isinstance(node, ast.For) and isinstance(node.iter, ast.Tuple):
            targets.update(id(elt) for elt in node.iter.elts)
    return targets


def field_use(source: str) -> dict[str, dict[str, set[str]]]:
    """field -> {"writes", "reads"} -> {method names} over the replica classes in `source`
    (`Replica.__init__` excepted: construction is not a write)."""
    use: dict[str, dict[str, set[str]]] = {}
    for cls in ast.parse(source).body:
        if not (isinstance(cls, ast.ClassDef) and cls.name in MIXINS):
            continue
        for fn in cls.body:
            if not isinstance(fn, ast.FunctionDef) or (cls.name, fn.name) == ("Replica", "__init__"):
                continue
            through = written_names(fn)
            for node in ast.walk(fn):
                if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                        and node.value.id == "self"):
                    kind = ("writes" if isinstance(node.ctx, (ast.Store, ast.Del))
                            or id(node) in through else "reads")
                    use.setdefault(node.attr, {"writes": set(), "reads": set()})[kind].add(fn.name)
    return use


@functools.cache
def actual_table() -> dict[str, dict[str, set[str]]]:
    table: dict[str, dict[str, set[str]]] = {}
    for module in MODULES:
        for name, use in field_use((ROOT / "consensus" / f"{module}.py").read_text()).items():
            row = table.setdefault(name, {"writes": set(), "reads": set()})
            for kind, methods in use.items():
                if methods:
                    row[kind].add(module)
    return table


def test_every_attribute_the_phases_assign_is_declared() -> None:
    undeclared = sorted(name for name, row in actual_table().items()
                        if row["writes"] and name not in DECLARED)
    assert not undeclared, f"declare these in consensus/state.py ReplicaState: {undeclared}"


@pytest.mark.parametrize("name", sorted(DECLARED))
def test_the_table_names_exactly_the_modules_that_write_and_read_each_field(name: str) -> None:
    row = actual_table().get(name, {"writes": set(), "reads": set()})
    meta = DECLARED[name].metadata
    assert meta["doc"], f"{name}: say what it means"
    assert set(meta["writes"]) == row["writes"], (
        f"{name}: written by {sorted(row['writes'])}; fix writes= in consensus/state.py")
    assert set(meta["reads"]) == row["reads"] - row["writes"], (
        f"{name}: only read by {sorted(row['reads'] - row['writes'])}; fix reads= in "
        "consensus/state.py")


def test_the_phases_initialise_nothing() -> None:
    for module in MODULES:
        tree = ast.parse((ROOT / "consensus" / f"{module}.py").read_text())
        for cls in tree.body:
            if isinstance(cls, ast.ClassDef) and cls.name in MIXINS - {"Replica"}:
                assert not [s for s in cls.body if isinstance(s, (ast.AnnAssign, ast.Assign))], cls.name
                assert "__init__" not in {f.name for f in cls.body
                                          if isinstance(f, ast.FunctionDef)}, cls.name


def test_the_source_check_sees_writes_through_containers_and_loops() -> None:
    """The checker itself, on a small snippet, so a green table means something."""
    use = field_use(
        "class NormalCase:\n"
        "    def m(self):\n"
        "        self.a = 1\n"
        "        self.b[1] = 2\n"
        "        self.c.setdefault(1, {})[2] = 3\n"
        "        for t in (self.d,):\n"
        "            del t[0]\n"
        "        self.e, self.f = self.g, self.h.get(1)\n"
        "        return self.i\n")
    writes = {n for n, row in use.items() if row["writes"]}
    reads = {n for n, row in use.items() if row["reads"] and not row["writes"]}
    assert writes == {"a", "b", "c", "d", "e", "f"} and reads == {"g", "h", "i"}


# -- the declaration against a live replica ---------------------------------------------------
PLANS = [  # a crashed primary (view change), a backup restarting from its WAL, a liar
    FaultPlan(1, "explicit", (0,), {}, (Episode(300, 2_300, "crash", (0,)),)),
    FaultPlan(1, "explicit", (2,), {}, (Episode(200, 1_200, "crash", (2,)),)),
    FaultPlan(1, "explicit", (0,), {0: "equivocate"}),
]


@pytest.mark.parametrize("plan", PLANS, ids=["primary-crash", "backup-restart", "equivocate"])
def test_a_replica_after_a_simulated_run_has_only_declared_attributes(plan: FaultPlan) -> None:
    sim = Simulation(1, SimConfig(blocks=30, mix=MIXES["none"]), plan)
    result = sim.run()
    assert result.ok, result.describe()
    replicas = [h.replica for h in sim.hosts if h.replica is not None]
    assert replicas and all(isinstance(r, Replica) for r in replicas)
    for replica in replicas:
        extra = sorted(set(vars(replica)) - set(DECLARED))
        assert not extra, f"declare these in consensus/state.py ReplicaState: {extra}"
        for slot in replica.slots.values():
            assert slot.certified == (slot.certificate is not None) == (
                slot.certified_preprepare is not None), (slot.seq, slot.phase)


def test_the_declaration_is_one_class_in_one_module() -> None:
    assert [c for c in Replica.__mro__ if "__dataclass_fields__" in vars(c)] == [ReplicaState]
    assert ReplicaState.__module__ == state.__name__ == "consensus.state"
