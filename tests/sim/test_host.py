"""The simulated host: restart from the WAL, pause and crash semantics, the executor."""

from __future__ import annotations

import random
from dataclasses import replace

from consensus import events as ev
from consensus import messages as wire
from consensus.messages import Commit, PrePrepare, Prepare, Signed
from consensus.replica import Replica
from contracts import codec
from contracts.tx import sign_tx
from node.chain import Executor, digest_batch
from node.memory_storage import MemoryStorage
from ipchain.sim.faults import MIXES
from ipchain.sim.host import certificate_problem
from ipchain.sim.run import SimConfig, Simulation
from ipchain.sim.witness import record_signature
from ipchain.sim.workload import (Client, build_genesis, client_key, client_org, make_bursts,
                               trusted_signatures)

CFG = SimConfig(blocks=12, liveness_blocks=2, mix=MIXES["none"])


def finished_sim() -> Simulation:
    sim = Simulation(1, CFG)
    sim.run()
    return sim


def test_restart_restores_from_the_wal_when_the_replica_can() -> None:
    sim = finished_sim()
    host = sim.hosts[2]
    calls = []

    class Recording(Replica):
        def restore(self, wal, executed_height, stable_proof=()):
            calls.append((list(wal), executed_height, stable_proof))
            return super().restore(wal, executed_height, stable_proof)

    original = host.make_replica
    host.make_replica = lambda: Recording(*original.args)
    wal = list(host.wal)
    host.crash()
    assert host.replica is None and not host.up
    host.restart()
    assert calls == [(wal, host.chain.height, host.stable_proof)] and wal
    assert host.stable_proof, "the host kept the last stable checkpoint's proof"
    assert host.replica.stable_proof == host.stable_proof
    assert host.stats["restored_from_wal"] == 1
    assert host.replica.last_delivered == host.chain.height


def test_nested_crashes_restart_only_when_the_last_one_ends() -> None:
    host = finished_sim().hosts[3]
    host.crash()
    host.crash()
    host.restart()
    assert not host.up and host.replica is None
    host.restart()
    assert host.up and host.replica is not None and host.stats["crashes"] == 1


def test_wal_holds_only_own_signed_messages_and_is_pruned_at_stable_checkpoints() -> None:
    sim = Simulation(2, replace(CFG, blocks=25, checkpoint_interval_blocks=5))
    sim.run()
    host = sim.hosts[1]
    assert host.wal and all(m.sender == 1 for m in host.wal)
    low = host.replica.low_mark
    assert low >= 5
    assert all(m.body.seq > low for m in host.wal if isinstance(m.body, (PrePrepare, Prepare, Commit)))


def test_torn_crash_keeps_the_wal_write_and_loses_the_sends_after_the_cut() -> None:
    sim = finished_sim()
    host = sim.hosts[2]
    sent = []
    host._send = lambda msg, dsts: sent.append(msg)
    host.rng.randint = lambda a, b: 1  # the cut: one action survives
    signed = host.replica.sign(Prepare(0, 99, b"d" * 32))
    host.crash(torn=True)
    assert host.up  # waits for a step that writes the WAL
    host.carry_out([ev.Persist(signed), ev.Broadcast(signed), ev.Send(1, signed), ev.SetTimer("x", 5)])
    assert host.wal[-1] == signed and sent == [signed] and not host.up
    assert host.stats["torn_actions_lost"] == 2
    host.restart()
    assert host.up and host.stats["restored_from_wal"] == 1


def test_a_torn_crash_that_never_happened_is_undone_by_its_restart() -> None:
    host = finished_sim().hosts[1]
    host.crash(torn=True)
    host.restart()
    assert host.up and host.torn_crash_pending == 0 and host.stats["crashes"] == 0


def test_a_paused_host_replays_what_arrived_in_order_and_a_crashed_one_drops_it() -> None:
    host = finished_sim().hosts[2]
    seen = []
    host.step = lambda event: seen.append(event)
    host.pause()
    for i in range(3):
        host.on_packet(0, ("msg", f"m{i}"))
    assert seen == []
    host.unpause()
    assert [e.msg for e in seen] == ["m0", "m1", "m2"]
    host.crash()
    host.on_packet(0, ("msg", "lost"))
    assert len(seen) == 3


def _deliver(commit_views: list[int], pp_view: int = 1) -> ev.Deliver:
    pp = PrePrepare(pp_view, 5, b"d" * 32, 1, ())
    votes = tuple(Signed(Commit(v, 5, b"d" * 32), i, b"s" * 64) for i, v in enumerate(commit_views))
    return ev.Deliver(Signed(pp, pp_view % 4, b"s" * 64), votes)


def test_certificate_problem_names_commits_that_do_not_match_the_preprepare() -> None:
    assert certificate_problem(_deliver([1, 1, 1]), 3) == ""
    assert "commit views [0]" in certificate_problem(_deliver([0, 0, 0]), 3)
    assert "2 matching" in certificate_problem(_deliver([1, 1, 0]), 3)


def test_executor_runs_real_transfers_and_marks_a_repeated_tx_duplicate() -> None:
    bursts = make_bursts(random.Random(1), "c", 3, 1, 2)
    storage = MemoryStorage()
    executor = Executor(storage, build_genesis("c", 4, 3))
    genesis_root = executor.state.root()
    raws = tuple(c.raw for c in bursts[0])
    pp = PrePrepare(0, 1, digest_batch(2_000, raws + raws[:1]), 2_000, raws + raws[:1])
    run = executor.begin(ev.Deliver(Signed(pp, 0, b"s" * 64), ()), lambda _id: None,
                         trusted_signatures(bursts))
    assert run.advance(1) is False and run.advance(None) is True
    _, receipts = executor.commit(run)
    assert [r.code for r in receipts][-1] == "DuplicateTransaction"
    assert all(r.code != "BadSignature" for r in receipts)
    assert storage.block(1)[2] == executor.state.root() != genesis_root and executor.height == 1
    assert set(storage.txs) == {c.id_bytes for c in bursts[0]}


def test_workload_transfers_are_the_bytes_sign_tx_makes() -> None:
    """make_bursts packs its canonical-order maps directly: same bytes as the SDK's path,
    a valid Ed25519 signature, the overdraft amounts included."""
    bursts = make_bursts(random.Random(5), "chain-x", 4, 30, 4)
    for ctx in (c for burst in bursts for c in burst):
        tx = ctx.tx
        again = sign_tx(client_key(client_index(tx.sender)), "chain-x", tx.nonce,
                        "token.transfer", tx.args)
        assert ctx.raw == again.to_bytes() == codec.encode(codec.decode(ctx.raw))
        assert tx.signature_ok() and ctx.id_hex == tx.id == again.id


def client_index(sender: bytes) -> int:
    return next(i for i in range(16) if bytes(client_key(i).verify_key) == sender)


def test_fast_signature_check_trusts_only_what_the_clients_signed() -> None:
    bursts = make_bursts(random.Random(1), "c", 3, 1, 1)
    other = make_bursts(random.Random(2), "c", 3, 1, 1)
    ok = trusted_signatures(bursts)
    assert ok(bursts[0][0].tx) and not ok(other[0][0].tx)


def test_client_takes_receipts_only_from_honest_nodes_it_asked_and_retries_elsewhere() -> None:
    sent: list[tuple[int, int]] = []
    liars: set[int] = set()
    now = [0]
    client = Client(random.Random(3), 4, 1_000, lambda host, txs: sent.append((host, len(txs))),
                    lambda host: host not in liars, lambda: now[0])
    burst = make_bursts(random.Random(1), "c", 3, 1, 2)[0]
    tx = burst[0].id_hex
    client.submit(burst, "safety")
    first = sent[0][0]
    liars.add(first)
    client.on_receipt((first + 1) % 4, tx, 1, True, "ok")  # a node the client never asked
    client.on_receipt(first, tx, 1, True, "ok")  # asked, but Byzantine
    assert client.acked == {} and client.unacked() == [c.id_hex for c in burst]
    now[0] = 999
    client.retry_due()
    assert len(sent) == 1  # not yet due
    while True:  # retries go to random nodes until one is not the liar
        now[0] += 1_000
        client.retry_due()
        if sent[-1][0] != first:
            break
    client.on_receipt(sent[-1][0], tx, 4, True, "ok")
    assert client.acked[tx].height == 4 and client.acked[tx].host == sent[-1][0]
    assert client.unacked() == [burst[1].id_hex] and client_org(7) == "client-007"


def test_witness_reads_a_records_signature_where_the_encoding_puts_it() -> None:
    """Senders past the one-byte fixint range take the decoding path: same answer."""
    for sender in (0, 3, 127, 128, 300):
        for body in (Commit(1, 2, b"d" * 32), PrePrepare(0, 5, b"d" * 32, 7, (b"x" * 100,) * 3)):
            msg = Signed(body, sender, bytes(range(64)))
            assert record_signature(wire.encode(msg)) == msg.sig
