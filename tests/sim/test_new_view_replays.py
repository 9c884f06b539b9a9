"""Replays and oracle checks for a new primary's numbering (two PRE-PREPAREs for one
view and seq): the simulator seed that found it, and the witness that must see it."""

from __future__ import annotations

from consensus import messages as wire
from consensus.messages import NewView, PrePrepare, Signed
from node.engine import wal_record
from node.memory_storage import MemoryStorage
from ipchain.sim.faults import MIXES
from ipchain.sim.run import SimConfig, run_seed
from ipchain.sim.witness import Witness, WitnessedStorage


def test_seed_403_full_mix_new_primary_signs_one_preprepare_per_seq() -> None:
    """Replica 1 (crash-only) became primary of view 1, adopted a checkpoint while
    installing its NEW-VIEW and signed two PRE-PREPAREs for view 1 seq 20; the backups
    took it for equivocation (evidence) and changed view again."""
    result = run_seed(403, SimConfig(mix=MIXES["full"]))
    assert result.plan.byzantine == {}  # nobody may lie in this plan: no evidence is due
    assert result.violations == [], result.describe()
    assert result.stats["evidence"] == 0


def sent(witness: Witness, storage: WitnessedStorage, msg: Signed) -> None:
    """As the engine does: durable first, then on the wire."""
    storage.append_wal([wal_record(msg)])
    witness.on_send(msg, wire.encode(msg))


def test_witness_sees_a_preprepare_that_contradicts_our_new_view() -> None:
    """A NEW-VIEW's pre-prepares are signed votes too; the witness used to skip them,
    so a restarted primary numbering a new batch under them went unseen."""
    storage, anomalies = WitnessedStorage(MemoryStorage()), []
    witness = Witness(1, storage, anomalies)
    header = Signed(PrePrepare(1, 3, b"a" * 32, 7, ()), 1, b"s" * 64)
    sent(witness, storage, Signed(NewView(1, (), (header,)), 1, b"n" * 64))
    again = Signed(PrePrepare(1, 3, b"a" * 32, 7, (b"tx",)), 1, b"s" * 64)
    witness.on_send(again, wire.encode(again))  # the same vote, with its batch: fine
    sent(witness, storage, Signed(PrePrepare(1, 4, b"c" * 32, 8, (b"tx",)), 1, b"t" * 64))
    assert anomalies == []
    sent(witness, storage, Signed(PrePrepare(1, 3, b"b" * 32, 9, (b"other",)), 1, b"u" * 64))
    assert anomalies == ["replica 1 signed a PrePrepare for view 1 seq 3 unlike its NEW-VIEW's"]


def test_witness_sees_a_new_view_that_contradicts_our_preprepare() -> None:
    storage, anomalies = WitnessedStorage(MemoryStorage()), []
    witness = Witness(1, storage, anomalies)
    sent(witness, storage, Signed(PrePrepare(1, 3, b"a" * 32, 7, (b"tx",)), 1, b"s" * 64))
    header = Signed(PrePrepare(1, 3, b"b" * 32, 7, ()), 1, b"t" * 64)
    sent(witness, storage, Signed(NewView(1, (), (header,)), 1, b"n" * 64))
    assert anomalies == ["replica 1 signed a NEW-VIEW pre-prepare for view 1 seq 3 "
                         "unlike its earlier one"]
