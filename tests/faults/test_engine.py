"""The fault engine between transport and replica, on a stand-in runtime around a real
Replica and real Ed25519 keys: rules, partitions and Byzantine behaviours do what they
say, tampered messages are validly re-signed, and with nothing installed the hooks are
gone (the message path is one `if`)."""

from __future__ import annotations

import asyncio
import collections
from types import SimpleNamespace

import nacl.signing
import pytest

from consensus import events as ev
from consensus import messages as wire
from consensus.crypto import Ed25519Keyring
from consensus.messages import Checkpoint, Commit, PrePrepare, Prepare
from consensus.replica import Replica, ReplicaConfig
from node.chain import digest_batch
from node.config import Peer
from node.byzantine import alternative_preprepare
from node.faults import FaultEngine, FaultSpecError

N = 4
CHAIN = "ipchain-test"
SEEDS = [bytes([i + 1]) * 32 for i in range(N)]
PUBLIC = [bytes(nacl.signing.SigningKey(s).verify_key) for s in SEEDS]
TXS = (b"tx-one", b"tx-two")


class FakeLink:
    def __init__(self) -> None:
        self.messages: collections.deque[bytes] = collections.deque()

    def put(self, queue: collections.deque, item: bytes) -> None:
        queue.append(item)


async def until(condition, deadline_s: float = 2.0) -> None:
    """Wait for a condition with a deadline (never a bare sleep-and-hope)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while not condition():
        assert loop.time() < end, "condition not met before the deadline"
        await asyncio.sleep(0.005)


def keyring(i: int) -> Ed25519Keyring:
    return Ed25519Keyring(i, nacl.signing.SigningKey(SEEDS[i]), PUBLIC)


def make_runtime(index: int = 0) -> SimpleNamespace:
    replica = Replica(ReplicaConfig(n=N, index=index, chain_id=CHAIN), keyring(index),
                      digest_batch)
    peers = tuple(Peer(f"node{j}", j, f"http://127.0.0.1:{9000 + j}") for j in range(N)
                  if j != index)
    return SimpleNamespace(
        cfg=SimpleNamespace(index=index, peers=peers, admin_token="t" * 32),
        transport=SimpleNamespace(outbound_filter=None, links={p.index: FakeLink() for p in peers}),
        inbound_filter=None, events=asyncio.Queue(), counters=collections.Counter(),
        replica=replica)


def preprepare(seq: int = 1, view: int = 0, signer: int = 0) -> wire.Signed:
    body = PrePrepare(view, seq, digest_batch(1_000, TXS), 1_000, TXS)
    return Replica(ReplicaConfig(n=N, index=signer, chain_id=CHAIN), keyring(signer),
                   digest_batch).sign(body)


def verifies(msg: wire.Signed) -> bool:
    return keyring(0).verify(msg.sender, msg.signing_bytes(CHAIN), msg.sig)


async def test_no_faults_means_no_hooks() -> None:
    runtime = make_runtime()
    engine = FaultEngine(runtime)
    assert runtime.transport.outbound_filter is None and runtime.inbound_filter is None
    engine.install({"rules": [{"action": "drop"}]})
    assert runtime.transport.outbound_filter == engine.on_outbound
    assert runtime.inbound_filter == engine.on_inbound
    engine.clear()
    assert runtime.transport.outbound_filter is None and runtime.inbound_filter is None


async def test_drop_by_peer_and_kind() -> None:
    engine = FaultEngine(make_runtime())
    engine.install({"rules": [{"action": "drop", "peers": [2], "kinds": ["PP"]}]})
    pp = wire.encode(preprepare())
    assert engine.on_outbound(1, pp) == [pp]
    assert engine.on_outbound(2, pp) == []
    prepare = wire.encode(Replica(ReplicaConfig(n=N, index=0, chain_id=CHAIN), keyring(0),
                                  digest_batch).sign(Prepare(0, 1, bytes(32))))
    assert engine.on_outbound(2, prepare) == [prepare]
    assert engine.counters["drop:out:PP"] == 1


async def test_drop_probability_is_seeded_and_about_right() -> None:
    def run(seed: int) -> list[int]:
        engine = FaultEngine(make_runtime())
        engine.install({"seed": seed, "rules": [{"action": "drop", "probability": 0.3}]})
        return [len(engine.on_outbound(1, b"m")) for _ in range(2_000)]
    first = run(42)
    assert first == run(42) and first != run(43)
    assert 0.25 < first.count(0) / len(first) < 0.35


async def test_duplicate_sends_extra_copies() -> None:
    engine = FaultEngine(make_runtime())
    engine.install({"rules": [{"action": "duplicate", "copies": 2}]})
    assert engine.on_outbound(1, b"m") == [b"m", b"m", b"m"]


async def test_delay_reinjects_past_the_filter() -> None:
    runtime = make_runtime()
    engine = FaultEngine(runtime)
    engine.install({"rules": [{"action": "delay", "delay_ms": 30, "direction": "both"}]})
    assert engine.on_outbound(1, b"late") == []
    msg = preprepare(signer=1)
    assert engine.on_inbound(msg) == []
    assert not runtime.transport.links[1].messages and runtime.events.empty()
    started = asyncio.get_running_loop().time()
    await until(lambda: runtime.transport.links[1].messages and not runtime.events.empty())
    assert asyncio.get_running_loop().time() - started >= 0.02
    assert list(runtime.transport.links[1].messages) == [b"late"]
    assert runtime.events.get_nowait() == ev.MessageArrived(msg)


async def test_reorder_releases_a_shuffled_window() -> None:
    runtime = make_runtime()
    engine = FaultEngine(runtime, seed=3)
    engine.install({"rules": [{"action": "reorder", "window": 5, "window_ms": 1000}]})
    for k in range(5):
        assert engine.on_outbound(1, bytes([k])) == []
    released = list(runtime.transport.links[1].messages)
    assert sorted(released) == [bytes([k]) for k in range(5)]
    assert released != sorted(released)  # seed 3 shuffles this window


async def test_reorder_flushes_after_its_time_window() -> None:
    runtime = make_runtime()
    engine = FaultEngine(runtime)
    engine.install({"rules": [{"action": "reorder", "window": 10, "window_ms": 20}]})
    engine.on_outbound(1, b"a")
    assert not runtime.transport.links[1].messages
    await until(lambda: runtime.transport.links[1].messages)
    assert list(runtime.transport.links[1].messages) == [b"a"]


async def test_partition_cuts_both_directions_across_groups() -> None:
    engine = FaultEngine(make_runtime(index=0))
    engine.install({"partition": [[0, 1], [2, 3]]})
    assert engine.on_outbound(1, b"m") == [b"m"] and engine.on_outbound(2, b"m") == []
    assert engine.on_inbound(preprepare(signer=1)) != []
    assert engine.on_inbound(preprepare(signer=3)) == []
    engine.install({"partition": []})
    assert engine.on_outbound(2, b"m") == [b"m"]


async def test_equivocating_primary_tells_targets_another_valid_story() -> None:
    engine = FaultEngine(make_runtime(index=0))
    engine.install({"byzantine": {"mode": "equivocate", "targets": [3]}})
    original = preprepare()
    data = wire.encode(original)
    assert engine.on_outbound(1, data) == [data]
    (other,) = engine.on_outbound(3, data)
    lie = wire.decode(other)
    assert lie.body.txs == TXS[:-1] and lie.body.seq == 1 and lie.body.view == 0
    assert lie.body.digest != original.body.digest
    assert lie.body.digest == digest_batch(lie.body.timestamp_ms, lie.body.txs)
    assert verifies(lie)  # authentic: honest replicas cannot drop it as forged


async def test_colluding_backup_votes_for_the_primarys_second_story() -> None:
    runtime = make_runtime(index=1)
    engine = FaultEngine(runtime)
    engine.install({"byzantine": {"mode": "equivocate", "targets": [3]}})
    pp = preprepare()
    runtime.replica.slot(1).preprepare = pp
    vote = runtime.replica.sign(Commit(0, 1, pp.body.digest))
    assert engine.on_outbound(2, wire.encode(vote)) == [wire.encode(vote)]
    (other,) = engine.on_outbound(3, wire.encode(vote))
    lie = wire.decode(other)
    assert lie.body.digest == alternative_preprepare(engine.host, pp.body).digest
    assert isinstance(lie.body, Commit) and verifies(lie)


async def test_wrong_digest_bad_signature_and_mute() -> None:
    runtime = make_runtime(index=0)
    engine = FaultEngine(runtime)
    data = wire.encode(preprepare())
    engine.install({"byzantine": {"mode": "wrong_digest"}})
    (wrong,) = engine.on_outbound(1, data)
    msg = wire.decode(wrong)
    assert verifies(msg) and msg.body.digest != digest_batch(msg.body.timestamp_ms, TXS)
    engine.install({"byzantine": {"mode": "bad_signature", "kinds": ["PP"],
                                  "probability": 1.0}})
    (bad,) = engine.on_outbound(2, data)
    assert not verifies(wire.decode(bad))
    checkpoint = wire.encode(runtime.replica.sign(Checkpoint(64, bytes(32))))
    assert engine.on_outbound(2, checkpoint) == [checkpoint]  # kinds limit the mode
    engine.install({"byzantine": {"mode": "mute", "targets": [1]}})
    assert engine.on_outbound(1, data) == [] and engine.on_outbound(2, data) == [data]
    engine.install({"byzantine": {"mode": "none"}})
    assert runtime.transport.outbound_filter is None


async def test_view_change_spam_sends_signed_view_changes() -> None:
    runtime = make_runtime(index=2)
    engine = FaultEngine(runtime)
    engine.install({"byzantine": {"mode": "view_change_spam", "interval_ms": 10}})
    await until(lambda: len(runtime.transport.links[0].messages) >= 4)
    engine.clear()
    sent = [wire.decode(m) for m in runtime.transport.links[0].messages]
    assert len(sent) >= 3
    assert all(m.body.KIND == "VC" and m.sender == 2 and verifies(m) for m in sent)
    assert {m.body.new_view for m in sent} >= {1, 2}
    count = len(runtime.transport.links[0].messages)
    await asyncio.sleep(0.04)
    assert len(runtime.transport.links[0].messages) == count  # clear stopped the spam


@pytest.mark.parametrize("spec,field", [
    ({"rules": [{"action": "explode"}]}, "rules[0].action"),
    ({"rules": [{"action": "drop", "probability": 2}]}, "rules[0].probability"),
    ({"rules": [{"action": "drop", "kinds": ["XX"]}]}, "rules[0].kinds"),
    ({"rules": [{"action": "drop", "peers": "all"}]}, "rules[0].peers"),
    ({"rules": [{"action": "drop", "color": "red"}]}, "rules[0]: unknown field"),
    ({"partition": [[0, 1], [1, 2]]}, "two groups"),
    ({"byzantine": {"mode": "evil"}}, "byzantine.mode"),
    ({"chaos": True}, "unknown field"),
])
async def test_bad_specs_are_refused_whole(spec: dict, field: str) -> None:
    runtime = make_runtime()
    engine = FaultEngine(runtime)
    with pytest.raises(FaultSpecError, match=field.replace("[", r"\[").replace("]", r"\]")):
        engine.install({"rules": [{"action": "drop"}], **spec} if "rules" not in spec else spec)
    assert engine.rules == [] and runtime.transport.outbound_filter is None
