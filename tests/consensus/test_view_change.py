"""View change, durability and state transfer, named after Castro & Liskov (TOCS 2002).

Each test drives real replicas through the in-memory network in net.py and checks the
two promises: agreement (every replica delivers the same blocks in the same order) and
progress (requests submitted to correct replicas commit once faults stop).
"""

from __future__ import annotations

from consensus import events as ev
from consensus.messages import NewView, PreparedProof, PrePrepare, Prepare, ViewChange, encode
from consensus.viewchange import header_only
from consensus.replica import Replica
from net import Network, digest_batch, is_kind

TIMEOUT_MS = 1_000
FAST = dict(batch_delay_ms=5, max_batch_txs=10, request_timeout_ms=TIMEOUT_MS)


def payloads(tag: str, count: int) -> list[bytes]:
    return [f"{tag}-{i}".encode() for i in range(count)]


def submit_all(net: Network, items: list[bytes], replicas: list[int]) -> None:
    """Clients relay to every node, as the real mempool does."""
    for i in replicas:
        net.submit(i, items)


def restart(net: Network, i: int) -> Replica:
    """Crash replica i and bring it back from what it persisted (its WAL) and its height."""
    old = net.replicas[i]
    wal = [a.msg for who, a in net.actions if who == i and isinstance(a, ev.Persist)]
    fresh = Replica(old.cfg, old.keys, old.digest_batch)
    net.replicas[i], net.timers[i] = fresh, {}
    net.down.discard(i)
    for action in fresh.restore(wal, len(net.delivered[i])) or []:
        net.apply(i, action)
    return fresh


def test_4_4_crashed_primary_is_replaced_and_requests_commit():
    """Reference: §4.4 — backups time out on a pending request and install view 1."""
    net = Network.build(4, **FAST)
    net.down.add(0)
    submit_all(net, payloads("a", 25), [1, 2, 3])
    net.run(for_ms=10 * TIMEOUT_MS)
    assert [net.replicas[i].view for i in (1, 2, 3)] == [1, 1, 1]
    assert not any(net.replicas[i].in_view_change for i in (1, 2, 3))
    net.assert_agreement(height=3, replicas=[1, 2, 3])
    assert net.replicas[1].stats["new_views_sent"] == 1


def test_4_4_mute_primary_is_replaced_and_rejoins_the_new_view():
    """A primary that receives but never sends is as good as crashed; once it speaks
    again it learns the new view from the NEW-VIEW its peers send it."""
    net = Network.build(4, **FAST)
    net.drop = lambda src, dst, msg: src == 0
    submit_all(net, payloads("m", 12), [0, 1, 2, 3])
    net.run(for_ms=6 * TIMEOUT_MS)
    assert [r.view for r in net.replicas[1:]] == [1, 1, 1]
    net.heal()
    submit_all(net, payloads("after", 5), [0, 1, 2, 3])
    net.run(for_ms=20 * TIMEOUT_MS)
    assert net.replicas[0].view == 1 and not net.replicas[0].in_view_change
    net.assert_agreement()
    assert net.heights()[0] >= 2


def test_4_4_equivocating_primary_is_caught_and_replaced():
    """The primary sends digest A to replica 1 and digest B to replicas 2 and 3, and
    both to replica 3: no digest gathers a commit quorum in view 0, replica 3 keeps the
    two signed pre-prepares as evidence, and view 1 settles one batch for everyone."""
    net = Network.build(4, **FAST)
    honest = payloads("h", 3)
    forged = net.sign_as(0, PrePrepare(0, 1, digest_batch(net.now_ms, (b"evil",)),
                                       net.now_ms, (b"evil",)))

    def tamper(src: int, dst: int, msg) -> bool:
        if (is_kind(PrePrepare, src=0)(src, dst, msg) and msg.body.seq == 1 and dst in (2, 3)
                and msg is not forged):
            net.queue.append((0, dst, forged))
            return dst == 2  # replica 3 gets both; replica 2 only the forged one
        return False

    net.drop = tamper
    submit_all(net, honest, [0, 1, 2, 3])
    net.run(for_ms=10 * TIMEOUT_MS)
    assert net.replicas[3].stats["evidence"] >= 1
    assert any(e.kind == "conflicting-preprepare" for e in net.replicas[3].evidence)
    assert all(r.view >= 1 for r in net.replicas[1:])
    net.assert_agreement(replicas=[1, 2, 3])
    assert min(net.heights()[1:]) >= 1


def test_4_4_view_change_during_view_change_doubles_the_timeout():
    """With 7 replicas (f = 2) the primaries of views 0 and 1 are both down: view 1
    never completes, the replicas move to view 2 after twice the timeout, and commit."""
    net = Network.build(7, **FAST)
    net.down.update({0, 1})
    submit_all(net, payloads("vv", 8), [2, 3, 4, 5, 6])
    net.run(for_ms=30 * TIMEOUT_MS)
    live = [2, 3, 4, 5, 6]
    assert {net.replicas[i].view for i in live} == {2}
    net.assert_agreement(replicas=live)
    assert min(net.heights()[i] for i in live) >= 1
    starts = [(a.msg.body.new_view, t) for t, (who, a) in enumerate(net.actions)
              if who == 2 and isinstance(a, ev.Broadcast) and isinstance(a.msg.body, ViewChange)]
    assert [v for v, _ in starts][:2] == [1, 2]


def test_4_5_2_a_single_liar_cannot_push_the_view_up():
    """One replica sending VIEW-CHANGE for view 9 moves nobody: f+1 are needed."""
    net = Network.build(4, **FAST)
    liar = net.replicas[3]
    spam = liar.sign(ViewChange(9, 0, bytes(32), (), ()))
    for j in (0, 1, 2):
        net.inject(j, spam)
    assert [r.view for r in net.replicas[:3]] == [0, 0, 0]
    submit_all(net, payloads("ok", 4), [0, 1, 2, 3])
    net.run(for_ms=3 * TIMEOUT_MS)
    net.assert_agreement(height=1)


def test_4_4_new_view_that_drops_a_prepared_batch_is_rejected():
    """Backups recompute NEW-VIEW from its VIEW-CHANGEs: a primary that leaves out a
    prepared batch (replacing it with a null batch) is refused."""
    net = Network.build(4, **FAST)
    net.drop = lambda src, dst, msg: isinstance(msg.body, (ev.Signed, )) and False
    submit_all(net, payloads("p", 3), [0, 1, 2, 3])
    # Let everything prepare but lose every COMMIT, so seq 1 is prepared, not committed.
    net.drop = lambda src, dst, msg: type(msg.body).__name__ == "Commit"
    net.run(for_ms=TIMEOUT_MS // 2)
    assert all(r.slots[1].prepared for r in net.replicas)
    def headers(proof: PreparedProof) -> PreparedProof:
        return PreparedProof(header_only(proof.preprepare), proof.prepares)

    vcs = tuple(net.replicas[i].sign(ViewChange(1, 0, bytes(32), (), (headers(
        net.replicas[i].slots[1].prepared_proof),))) for i in (1, 2, 3))
    assert all(net.replicas[2].is_valid_view_change(vc) for vc in vcs)  # only NEW-VIEW lies
    null = net.sign_as(1, PrePrepare(1, 1, digest_batch(0, ()), 0, ()))
    forged = net.sign_as(1, NewView(1, vcs, (null,)))
    net.replicas[2].start_view_change(1)
    net.inject(2, forged)
    assert net.replicas[2].stats["rejected_new_view"] == 1
    assert net.replicas[2].in_view_change


def test_4_4_committed_batches_survive_the_view_change():
    """A batch committed at three replicas before the primary dies is delivered by the
    fourth with the same digest after the view change."""
    net = Network.build(4, **FAST)
    net.drop = lambda src, dst, msg: dst == 3 and type(msg.body).__name__ in ("Commit",)
    submit_all(net, payloads("c", 3), [0, 1, 2, 3])
    net.run(for_ms=TIMEOUT_MS // 2)
    assert net.heights()[:3] == [1, 1, 1] and net.heights()[3] == 0
    committed = net.digests(0)[0]
    net.heal()
    net.down.add(0)
    submit_all(net, payloads("d", 3), [1, 2, 3])
    net.run(for_ms=10 * TIMEOUT_MS)
    assert net.digests(3)[0] == committed
    net.assert_agreement(replicas=[1, 2, 3])


def test_durability_restarted_replica_never_contradicts_what_it_signed():
    """Reference: §4.2 and the WAL rule of DESIGN.md — after a crash a replica that
    prepared digest A at (view 0, seq 1) refuses a pre-prepare for digest B there."""
    net = Network.build(4, **FAST)
    net.drop = lambda src, dst, msg: type(msg.body).__name__ == "Commit"
    submit_all(net, payloads("w", 2), [0, 1, 2, 3])
    net.run(for_ms=TIMEOUT_MS // 2)
    signed_digests = {m.body.digest for m in net.broadcasts(Prepare, by=1) if m.body.seq == 1}
    assert len(signed_digests) == 1  # re-sent maybe, but only ever one digest
    fresh = restart(net, 1)
    other = net.sign_as(0, PrePrepare(0, 1, digest_batch(net.now_ms, (b"B",)), net.now_ms, (b"B",)))
    actions = net.inject(1, other)
    assert not [a for a in actions if isinstance(a, ev.Broadcast) and isinstance(a.msg.body, Prepare)]
    assert fresh.stats["ignored_preprepare_contradicts_wal"] == 1


def test_durability_restarted_primary_catches_up_and_rejoins():
    """The old primary restarts from its WAL after the others moved to view 1 and on;
    it joins view 1 (f+1 peers are there) and fetches the blocks it missed."""
    net = Network.build(4, **FAST)
    submit_all(net, payloads("r", 10), [0, 1, 2, 3])
    net.run(for_ms=TIMEOUT_MS // 2)
    net.down.add(0)
    submit_all(net, payloads("s", 30), [1, 2, 3])
    net.run(for_ms=10 * TIMEOUT_MS)
    restart(net, 0)
    submit_all(net, payloads("t", 10), [0, 1, 2, 3])
    net.run(for_ms=20 * TIMEOUT_MS)
    assert net.replicas[0].view == net.replicas[1].view == 1
    net.assert_agreement()
    assert net.heights()[0] == net.heights()[1] >= 5


def test_5_3_state_transfer_replica_10000_blocks_behind_catches_up():
    """Reference: §5.3 — a replica down for 10 000 blocks fetches them in chunks with
    their commit certificates, checks each, and ends on the same stable checkpoint."""
    net = Network.build(4, batch_delay_ms=1, max_batch_txs=1, request_timeout_ms=60_000,
                        checkpoint_interval_blocks=100, log_window_blocks=400,
                        window_blocks=32)
    net.down.add(3)
    submit_all(net, payloads("x", 10_000), [0, 1, 2])
    net.run(max_steps=5_000_000, for_ms=10_000_000)
    assert net.heights()[:3] == [10_000] * 3
    net.down.discard(3)
    submit_all(net, payloads("y", 1), [0, 1, 2, 3])  # fresh traffic shows replica 3 the gap
    net.run(max_steps=5_000_000, for_ms=100_000)
    assert net.heights()[3] == net.heights()[0] == 10_001
    net.assert_agreement()
    assert net.replicas[3].stats["fetch_requests"] >= 10_000 // 256
    assert len(net.replicas[3].slots) < 500  # fetched blocks are not kept in the log


def test_4_2_lost_messages_are_resent_so_a_lossy_network_needs_no_view_change():
    """With 30 % of all replica messages lost, each replica re-sends what it signed for
    slots left open: every request commits in view 0, the same on all replicas."""
    import random

    rng = random.Random(7)
    net = Network.build(4, batch_delay_ms=5, max_batch_txs=10, request_timeout_ms=60_000,
                        resend_timeout_ms=200)
    net.drop = lambda src, dst, msg: rng.random() < 0.3
    submit_all(net, payloads("lossy", 100), [0, 1, 2, 3])
    net.run(for_ms=30_000)
    assert all(r.view == 0 for r in net.replicas)
    assert sum(r.stats["resent"] for r in net.replicas) > 0
    net.heal()
    net.run(for_ms=5_000)
    net.assert_agreement(height=10)


def test_4_5_2_stale_view_changes_get_the_new_view_but_cannot_make_us_amplify():
    """A replica left in an old view is sent the NEW-VIEW that installed ours; the same
    stale VIEW-CHANGE repeated gets no second copy until half a request timeout passed."""
    net = Network.build(4, **FAST)
    net.down.add(0)
    submit_all(net, payloads("nv", 3), [1, 2, 3])
    net.run(for_ms=10 * TIMEOUT_MS)
    assert net.replicas[2].view == 1 and net.replicas[2].last_new_view is not None
    stale = net.replicas[0].sign(ViewChange(1, 0, bytes(32), (), ()))

    def new_views_sent(actions) -> int:
        return sum(1 for a in actions if isinstance(a, ev.Send) and isinstance(a.msg.body, NewView))

    assert new_views_sent(net.inject(2, stale)) == 1
    assert sum(new_views_sent(net.inject(2, stale)) for _ in range(50)) == 0
    net.now_ms += TIMEOUT_MS // 2
    assert new_views_sent(net.inject(2, stale)) == 1


def test_durability_restart_keeps_the_stable_checkpoint_proof_for_view_changes():
    """A replica restarted with the stable checkpoint its host kept names it, with its
    proof, in the VIEW-CHANGE it sends; peers accept that VIEW-CHANGE."""
    net = Network.build(4, batch_delay_ms=5, max_batch_txs=1, request_timeout_ms=TIMEOUT_MS,
                        checkpoint_interval_blocks=4, log_window_blocks=16)
    submit_all(net, payloads("cp", 10), [0, 1, 2, 3])
    net.run(for_ms=TIMEOUT_MS // 2)
    old = net.replicas[1]
    assert old.low_mark == 8 and len(old.stable_proof) >= 3
    fresh = Replica(old.cfg, old.keys, old.digest_batch)
    wal = [a.msg for who, a in net.actions if who == 1 and isinstance(a, ev.Persist)]
    fresh.restore(wal, len(net.delivered[1]), old.stable_proof)
    assert (fresh.low_mark, fresh.stable_root) == (8, old.stable_root)
    fresh.start_view_change(1)
    (vc,) = [m for m in fresh._out if isinstance(m, ev.Broadcast)
             and isinstance(m.msg.body, ViewChange)] or [None]
    assert vc is not None and vc.msg.body.stable_seq == 8
    assert net.replicas[2].is_valid_view_change(vc.msg)


def test_4_4_one_sender_cannot_fill_the_future_message_buffer():
    """Messages for a view not yet installed wait in a buffer; each sender gets an equal
    share of it, so a flood from one replica leaves room for the others."""
    from consensus import viewchange

    net = Network.build(4, **FAST)
    waiting = net.replicas[3]
    share = viewchange.MAX_FUTURE_MESSAGES // 4
    for seq in range(1, share + 50):
        net.inject(3, net.sign_as(2, Prepare(5, seq, bytes(32))))
    assert waiting.stats["dropped_future_message"] == 49
    net.inject(3, net.sign_as(0, Prepare(5, 1, bytes(32))))  # (replica 1 leads view 5)
    assert waiting.future[-1].sender == 0


def prepare_then_lose_the_primary(net: Network, items: list[bytes]) -> None:
    """Every batch prepares, no COMMIT arrives, then the primary dies: only the view
    change can settle them, and the prepared batches must survive it."""
    net.drop = lambda src, dst, msg: type(msg.body).__name__ == "Commit"
    submit_all(net, items, [0, 1, 2, 3])
    net.run(for_ms=TIMEOUT_MS // 2)
    net.drop = lambda src, dst, msg: type(msg.body).__name__ == "Commit" and msg.body.view == 0
    net.down.add(0)


def test_4_4_view_change_carries_digests_so_its_size_does_not_grow_with_the_batches():
    """Issue 17 B1: 60 KB transactions made VIEW-CHANGE carry 36 MB and NEW-VIEW 144 MB.
    Both carry headers and signed votes only: their size is bounded by n and the log
    window, whatever the clients put into transactions; the batches still commit."""
    net = Network.build(4, **FAST)
    big = [bytes([i]) * 60_000 + f"-{i}".encode() for i in range(30)]
    prepare_then_lose_the_primary(net, big)
    assert sum(1 for s in net.replicas[1].slots.values() if s.prepared) == 3
    net.run(for_ms=10 * TIMEOUT_MS)
    net.assert_agreement(height=3, replicas=[1, 2, 3])
    assert sorted(t for d in net.delivered[1] for t in d.txs) == sorted(big)
    vc_sizes = [len(encode(m)) for m in net.broadcasts(ViewChange)]
    nv_sizes = [len(encode(m)) for m in net.broadcasts(NewView)]
    assert vc_sizes and nv_sizes
    assert max(vc_sizes) < 4_000 and max(nv_sizes) < 12_000, (vc_sizes, nv_sizes)


def test_4_4_replica_without_a_reproposed_batch_fetches_the_committed_block():
    """A backup that never saw a prepared batch still votes for its digest in the new
    view (a quorum checked the batch when it prepared) and fetches the block, with its
    certificate, once it commits."""
    net = Network.build(4, **FAST)
    net.drop = lambda src, dst, msg: dst == 3 and isinstance(msg.body, PrePrepare)
    submit_all(net, payloads("x", 3), [0, 1, 2])
    net.drop = lambda src, dst, msg: (type(msg.body).__name__ == "Commit"
                                      or (dst == 3 and isinstance(msg.body, PrePrepare)))
    net.run(for_ms=TIMEOUT_MS // 2)
    assert net.replicas[3].slots.get(1) is None or net.replicas[3].slots[1].preprepare is None
    net.heal()
    net.down.add(0)
    net.run(for_ms=10 * TIMEOUT_MS)
    net.assert_agreement(height=1, replicas=[1, 2, 3])
    assert net.replicas[3].stats["fetch_requests"] >= 1
    assert net.delivered[3][0].txs == tuple(payloads("x", 3))


def test_5_3_restarted_replica_behind_catches_up_without_any_traffic():
    """Issue 17: a restarted node stayed at its old height until traffic arrived. Now it
    asks for the blocks after its own at once, and keeps going while chunks come back."""
    net = Network.build(4, batch_delay_ms=1, max_batch_txs=1, request_timeout_ms=60_000,
                        window_blocks=32, fetch_chunk_blocks=16)
    net.down.add(3)
    submit_all(net, payloads("q", 100), [0, 1, 2])
    net.run(max_steps=500_000, for_ms=1_000_000)
    assert net.heights()[:3] == [100] * 3 and net.heights()[3] == 0
    restart(net, 3)  # no new requests: nothing else would name a later block
    net.run(max_steps=500_000, for_ms=10_000)
    assert net.heights()[3] == 100
    net.assert_agreement()


def test_fetch_beyond_the_watermarks_only_on_f_plus_1_claims():
    """Issue 16 item 5: one replica naming a far sequence number (one signed message)
    does not make us fetch; the same claim from f+1 distinct replicas does."""
    net = Network.build(4, **FAST)
    far = 1 + net.replicas[3].cfg.log_window_blocks + 50
    out = net.inject(3, net.sign_as(1, Prepare(0, far, digest_batch(1, (b"z",)))))
    net.run(for_ms=5 * TIMEOUT_MS)
    assert not net.emitted(ev.FetchBlocks, by=3)
    assert net.replicas[3].stats["fetch_deferred_single_claim"] == 1
    net.inject(3, net.sign_as(2, Prepare(0, far, digest_batch(1, (b"z",)))))
    net.run(for_ms=TIMEOUT_MS)
    assert net.emitted(ev.FetchBlocks, by=3)
    assert out == [] or not any(isinstance(a, ev.FetchBlocks) for a in out)
