"""The normal case and checkpoints, section by section (Castro & Liskov, OSDI'99 / TOCS'02).

Named after the paper's sections in the manner of etcd's raft_paper_test.go. Each test
drives real replicas through the in-memory network of net.py (or hands one replica
crafted messages) and checks, besides its own point, that every replica delivered the
same blocks in the same order. The harness also checks on every step that votes are
persisted before they are sent and that deliveries are consecutive and certified.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from consensus import events as ev
from consensus.messages import Checkpoint, Commit, PrePrepare, Prepare, Signed, ViewChange
from consensus.quorum import max_faulty
from tests.consensus.net import Network, digest_batch, is_kind


def payloads(count: int, tag: str = "tx") -> list[bytes]:
    return [f"{tag}-{i}".encode() for i in range(count)]


def bodies(actions: list, kind: type) -> list:
    """Bodies of the messages of `kind` broadcast in `actions`."""
    return [a.msg.body for a in actions
            if isinstance(a, (ev.Broadcast, ev.Send)) and isinstance(a.msg.body, kind)]


def make_preprepare(net: Network, seq: int, txs: tuple[bytes, ...], view: int = 0,
                    sender: int | None = None, timestamp_ms: int | None = None) -> Signed:
    timestamp_ms = net.now_ms if timestamp_ms is None else timestamp_ms
    body = PrePrepare(view, seq, digest_batch(timestamp_ms, txs), timestamp_ms, txs)
    return net.sign_as(view % net.n if sender is None else sender, body)


NORMAL_CASE_MS = 4_000
"""How long a run may last: less than the 5 s request timeout, so that everything a
test expects happens in the normal case, never through a view change."""


def settle(net: Network) -> None:
    """Run until quiet (or NORMAL_CASE_MS of simulated time) and check no view changed."""
    net.run(for_ms=NORMAL_CASE_MS)
    assert [(r.view, r.in_view_change) for i, r in enumerate(net.replicas)
            if i not in net.down] == [(0, False)] * (net.n - len(net.down))


def delivered_txs(net: Network, i: int) -> list[bytes]:
    return [tx for block in net.delivered[i] for tx in block.txs]


# -- §4.2 the normal case ----------------------------------------------------------------
def test_4_2_primary_assigns_sequence_numbers_and_replicas_prepare():
    """Reference: Castro & Liskov §4.2 — the primary assigns a sequence number n to each
    batch in PRE-PREPARE(v, n, d); each backup that accepts it multicasts PREPARE(v, n, d);
    the primary itself does not send a PREPARE."""
    net = Network.build(4, max_batch_txs=2)
    out = net.submit(0, payloads(6))
    proposals = bodies(out, PrePrepare)
    assert [(pp.view, pp.seq) for pp in proposals] == [(0, 1), (0, 2), (0, 3)]
    assert [pp.txs for pp in proposals] == [tuple(payloads(6)[i:i + 2]) for i in (0, 2, 4)]
    assert not bodies(out, Prepare)

    settle(net)
    for backup in (1, 2, 3):
        prepares = [m.body for m in net.broadcasts(Prepare, by=backup)]
        assert prepares == [Prepare(0, pp.seq, pp.digest) for pp in proposals]
    assert net.broadcasts(Prepare, by=0) == []
    net.assert_agreement(height=3)
    assert delivered_txs(net, 3) == payloads(6)


def test_4_2_backup_keeps_a_request_until_the_primary_orders_it():
    """Reference: Castro & Liskov §4.2 (client requests reach backups too) — a backup never
    proposes; it keeps the request pending (its timer running) until a pre-prepare
    carries it, then forgets it."""
    net = Network.build(4)
    out = net.submit(1, [b"only-at-backup"])
    assert not bodies(out, PrePrepare)
    assert list(net.replicas[1].pending.values()) == [b"only-at-backup"]
    assert ev.SetTimer("view", net.replicas[1].cfg.request_timeout_ms) in out

    net.submit(0, [b"only-at-backup"])
    settle(net)
    net.assert_agreement(height=1)
    assert net.replicas[1].pending == {}


@pytest.mark.parametrize("n", [4, 7])
def test_4_2_backup_commits_once_prepared_by_2f_matching_prepares(n):
    """Reference: Castro & Liskov §4.2 — prepared(m, v, n, i) holds once i has the
    pre-prepare and 2f matching PREPAREs from different backups (its own included); only
    then does it multicast COMMIT. A primary's PREPARE and a PREPARE for another digest
    do not count."""
    net, f = Network.build(n), max_faulty(n)
    pp = make_preprepare(net, 1, (b"a",))
    digest = pp.body.digest
    assert bodies(net.inject(1, pp), Prepare) == [Prepare(0, 1, digest)]

    assert not bodies(net.inject(1, net.sign_as(0, Prepare(0, 1, digest))), Commit)
    wrong = hashlib.sha256(b"other").digest()
    assert not bodies(net.inject(1, net.sign_as(n - 1, Prepare(0, 1, wrong))), Commit)
    others = list(range(2, n - 1))
    for j in others[:2 * f - 2]:  # with our own: 2f - 1 matching prepares
        assert not bodies(net.inject(1, net.sign_as(j, Prepare(0, 1, digest))), Commit)
    assert not net.replicas[1].slots[1].prepared

    out = net.inject(1, net.sign_as(others[2 * f - 2], Prepare(0, 1, digest)))
    assert bodies(out, Commit) == [Commit(0, 1, digest)]
    assert net.replicas[1].slots[1].prepared


@pytest.mark.parametrize("n", [4, 7])
def test_4_2_committed_at_2f_plus_1_commits_and_delivered_in_order(n):
    """Reference: Castro & Liskov §4.2 — committed-local(m, v, n, i) holds once i is
    prepared and has 2f+1 matching COMMITs (its own included); requests execute in
    sequence-number order, so a block committed early waits for its predecessor."""
    net, f = Network.build(n), max_faulty(n)
    proposals = [make_preprepare(net, seq, (f"b{seq}".encode(),)) for seq in (1, 2)]
    backups = list(range(2, n))
    for pp in proposals:
        net.inject(1, pp)
        for j in backups[:2 * f - 1]:
            net.inject(1, net.sign_as(j, Prepare(0, pp.body.seq, pp.body.digest)))
    assert [net.replicas[1].slots[s].commit_sent for s in (1, 2)] == [True, True]

    voters = [0, *backups]
    second = proposals[1].body
    for j in voters[:2 * f - 1]:  # with our own: 2f commits
        assert not net.emitted(ev.Deliver)
        net.inject(1, net.sign_as(j, Commit(0, 2, second.digest)))
    assert net.replicas[1].slots[2].certificate is None
    out = net.inject(1, net.sign_as(voters[2 * f - 1], Commit(0, 2, second.digest)))
    assert net.replicas[1].slots[2].certificate is not None
    assert not [a for a in out if isinstance(a, ev.Deliver)], "block 2 overtook block 1"

    first = proposals[0].body
    for j in voters[:2 * f]:
        out = net.inject(1, net.sign_as(j, Commit(0, 1, first.digest)))
    assert [a.seq for a in out if isinstance(a, ev.Deliver)] == [1, 2]
    assert net.digests(1) == [pp.body.digest for pp in proposals]
    assert [len(d.certificate) for d in net.delivered[1]] == [2 * f + 1, 2 * f + 1]


def test_4_2_commits_alone_deliver_only_over_the_matching_preprepare():
    """Reference: Castro & Liskov §4.2. Without the pre-prepare, 2f+1 COMMITs show the
    block committed but not its content: the replica plans a fetch. With the matching
    pre-prepare they are a full commit certificate (the proof a fetched block carries):
    f+1 honest committers prepared it, so the replica delivers even though it saw no
    PREPARE itself — the paper's committed-local, relaxed safely."""
    net = Network.build(4)
    pp = make_preprepare(net, 1, (b"a",))
    for j in (0, 1, 2):
        out = net.inject(3, net.sign_as(j, Commit(0, 1, pp.body.digest)))
        assert not [a for a in out if isinstance(a, ev.Deliver)]
    assert "fetch" in net.timers[3], "a quorum committed what it lacks: it must plan a fetch"

    out = net.inject(3, pp)
    assert [a.seq for a in out if isinstance(a, ev.Deliver)] == [1]
    assert net.digests(3) == [pp.body.digest]
    assert not net.replicas[3].slots[1].prepared


def test_4_2_commits_for_another_digest_do_not_deliver_our_preprepare():
    """2f+1 COMMITs for digest B never certify the pre-prepare we hold for digest A."""
    net = Network.build(4)
    pp = make_preprepare(net, 1, (b"a",))
    other = make_preprepare(net, 1, (b"b",))
    net.inject(3, pp)
    for j in (0, 1, 2):
        out = net.inject(3, net.sign_as(j, Commit(0, 1, other.body.digest)))
        assert not [a for a in out if isinstance(a, ev.Deliver)]
    assert net.digests(3) == []


def test_4_2_batching_by_count_and_by_delay():
    """Reference: Castro & Liskov TOCS'02 §5.1.4 (request batching) — with nothing in
    flight the primary proposes at once (waiting would only add latency); while a block
    is in flight it batches, proposing as soon as a batch is full, and otherwise when the
    batch delay expires."""
    net = Network.build(4, max_batch_txs=3, batch_delay_ms=20)
    tx = payloads(9)
    out = net.submit(0, tx[:1])
    assert [pp.txs for pp in bodies(out, PrePrepare)] == [(tx[0],)]

    out = net.submit(0, tx[1:2])  # seq 1 is in flight: batch up
    assert not bodies(out, PrePrepare)
    assert ev.SetTimer("batch", 20) in out

    out = net.submit(0, tx[2:4])
    assert [pp.txs for pp in bodies(out, PrePrepare)] == [tuple(tx[1:4])]
    assert ev.CancelTimer("batch") in out

    out = net.submit(0, tx[4:9])
    assert [pp.txs for pp in bodies(out, PrePrepare)] == [tuple(tx[4:7])]
    assert "batch" in net.timers[0]
    out = net.fire(0, "batch")  # three blocks in flight: a partial batch waits...
    assert not bodies(out, PrePrepare)
    settle(net)  # ...for a delivery, then goes out
    assert [(pp.seq, pp.txs) for pp in bodies(
        [a for i, a in net.actions if i == 0], PrePrepare)][-1] == (4, tuple(tx[7:9]))
    net.assert_agreement(height=4)
    assert delivered_txs(net, 2) == tx


def test_4_2_batching_by_bytes():
    """Reference: Castro & Liskov TOCS'02 §5.1.4 — a batch is also full by size; no
    proposal exceeds `max_batch_bytes`, which backups enforce."""
    net = Network.build(4, max_batch_bytes=100)
    first = b"\xff" * 10
    assert [pp.txs for pp in bodies(net.submit(0, [first]), PrePrepare)] == [(first,)]
    tx = [bytes([i]) * 40 for i in range(3)]
    assert not bodies(net.submit(0, tx[:2]), PrePrepare)  # a block in flight: batch up
    out = net.submit(0, tx[2:])
    assert [pp.txs for pp in bodies(out, PrePrepare)] == [tuple(tx[:2])]
    assert not bodies(net.fire(0, "batch"), PrePrepare)  # two in flight: wait a delivery
    settle(net)
    assert [pp.txs for pp in bodies([a for i, a in net.actions if i == 0],
                                    PrePrepare)][-1] == (tx[2],)
    net.assert_agreement(height=3)
    assert all(sum(map(len, block.txs)) <= 100 for block in net.delivered[1])


def test_4_2_request_larger_than_any_batch_is_never_proposed():
    """Reference: Castro & Liskov TOCS'02 §5.1.4 — a request that cannot fit in a batch
    backups would accept must not be proposed (alone): every backup would refuse the
    pre-prepare, and each primary holding the request would stall its view in turn."""
    net = Network.build(4, max_batch_bytes=100)
    huge, small = b"h" * 150, b"s" * 10
    net.submit(0, [huge, small])  # nothing in flight: proposed at once, without `huge`
    settle(net)
    net.assert_agreement(height=1)
    assert delivered_txs(net, 1) == [small]
    assert all(huge not in pp.txs for pp in (m.body for m in net.broadcasts(PrePrepare)))
    assert all(not r.pending for r in net.replicas)


def test_4_2_window_keeps_several_sequence_numbers_in_flight():
    """Reference: Castro & Liskov TOCS'02 §5.1.4 — the primary keeps up to a window of
    sequence numbers in flight instead of waiting a round trip per batch, and no more."""
    net = Network.build(4, max_batch_txs=1, window_blocks=3)
    net.hold = lambda src, dst, msg: True
    out = net.submit(0, payloads(10))
    assert [pp.seq for pp in bodies(out, PrePrepare)] == [1, 2, 3]
    assert len(net.replicas[0].pending) == 7

    net.hold = lambda src, dst, msg: False
    net.release()
    settle(net)
    net.assert_agreement(height=10)
    in_flight, delivered = [], 0
    for i, action in net.actions:
        if i == 0 and isinstance(action, ev.Deliver):
            delivered += 1
        elif (i == 0 and isinstance(action, ev.Broadcast)
              and isinstance(action.msg.body, PrePrepare)):
            in_flight.append(action.msg.body.seq - delivered)
    assert max(in_flight) == 3


def test_4_2_duplicate_requests_are_ordered_once():
    """Reference: Castro & Liskov §4.2 (the primary orders each request once) — a request
    already pending or already in an accepted pre-prepare is not proposed again."""
    net = Network.build(4, max_batch_txs=2)
    net.submit(0, [b"a", b"a", b"b"])
    settle(net)
    net.submit(0, [b"a", b"c"])
    settle(net)
    net.assert_agreement()
    assert sorted(delivered_txs(net, 0)) == [b"a", b"b", b"c"]


def byzantine_preprepares(net: Network) -> dict[str, Signed]:
    """Pre-prepares a backup must refuse, each paired with the counter that says why."""
    pp = make_preprepare(net, 1, (b"a",))
    wrong_digest = dataclasses.replace(pp.body, digest=hashlib.sha256(b"x").digest())
    return {
        "wrong digest": net.sign_as(0, wrong_digest),
        "from a non-primary": make_preprepare(net, 1, (b"a",), sender=1),
        "above the high watermark": make_preprepare(net, 257, (b"a",)),
        "at the low watermark": make_preprepare(net, 0, (b"a",)),
        "bad signature": Signed(pp.body, 0, bytes(64)),
        "another view": make_preprepare(net, 1, (b"a",), view=1),
        "clock too far ahead": make_preprepare(net, 1, (b"a",), timestamp_ms=net.now_ms + 120_001),
        "too many txs": make_preprepare(net, 1, (b"a", b"b", b"c")),
        "too many bytes": make_preprepare(net, 1, (b"a" * 60, b"b" * 60)),
    }


REJECTIONS = [
    ("wrong digest", "dropped_preprepare_txs_mismatch"),
    ("from a non-primary", "ignored_preprepare_not_primary"),
    ("above the high watermark", None),
    ("at the low watermark", None),
    ("bad signature", "dropped_bad_signature"),
    ("another view", None),
    ("clock too far ahead", "rejected_preprepare_clock"),
    ("too many txs", "rejected_preprepare_size"),
    ("too many bytes", "rejected_preprepare_size"),
]


@pytest.mark.parametrize("case, counter", REJECTIONS, ids=[c for c, _ in REJECTIONS])
def test_4_2_backup_rejects_preprepare(case, counter):
    """Reference: Castro & Liskov §4.2 — a backup accepts PRE-PREPARE(v, n, d, m) only if
    it is signed by the primary of v, it is in view v, d is the digest of m, and
    h < n <= H; otherwise it sends no PREPARE. (Batch size and clock bounds are
    ipchain's.)"""
    net = Network.build(4, max_batch_txs=2, max_batch_bytes=100, log_window_blocks=256)
    msg = byzantine_preprepares(net)[case]
    out = net.inject(2, msg)
    assert not bodies(out, Prepare)
    slot = net.replicas[2].slots.get(msg.body.seq)
    assert slot is None or slot.preprepare is None
    if counter is not None:
        assert net.replicas[2].stats[counter] == 1
    # Control: a replica of the same network does prepare a well-formed proposal.
    assert bodies(net.inject(1, make_preprepare(net, 1, (b"ok",))), Prepare)


def test_4_2_tampered_transactions_keep_the_signature_but_fail_the_digest():
    """Reference: Castro & Liskov §4.2 — the pre-prepare signs the digest, not the
    requests; whoever swaps the requests in transit is caught by the digest check."""
    net = Network.build(4)
    pp = make_preprepare(net, 1, (b"pay alice",))
    tampered = Signed(dataclasses.replace(pp.body, txs=(b"pay mallory",)), 0, pp.sig)
    assert net.replicas[1].is_authentic(tampered)
    assert not bodies(net.inject(1, tampered), Prepare)
    assert net.replicas[1].stats["dropped_preprepare_txs_mismatch"] == 1


def test_4_2_tampered_transactions_are_no_evidence_against_the_primary():
    """Issue 17 B2: the signature leaves out the transactions, so anyone can replay a
    real PRE-PREPARE with others. That proves nothing about the primary: the backup
    drops it, starts no view change, keeps no evidence, and still prepares the
    genuine pre-prepare when it arrives after the forgery."""
    net = Network.build(4)
    pp = make_preprepare(net, 1, (b"pay alice",))
    for swapped in [(b"pay mallory",), (), (b"pay alice", b"pay mallory")]:
        tampered = Signed(dataclasses.replace(pp.body, txs=swapped), 0, pp.sig)
        out = net.inject(1, tampered)
        assert not bodies(out, ViewChange) and not bodies(out, Prepare)
    replica = net.replicas[1]
    assert replica.view == 0 and not replica.in_view_change and not replica.evidence
    assert bodies(net.inject(1, pp), Prepare)


def test_4_2_conflicting_preprepare_is_kept_as_evidence():
    """Reference: Castro & Liskov §4.2 — a backup accepts at most one pre-prepare per
    (v, n); a second one with another digest, validly signed by the primary, is proof
    of its fault and is kept (and reported) as evidence."""
    net = Network.build(4)
    first = make_preprepare(net, 1, (b"a",))
    second = make_preprepare(net, 1, (b"b",))
    assert bodies(net.inject(1, first), Prepare)
    assert net.inject(1, first) == [], "a plain duplicate is neither evidence nor a vote"
    out = net.inject(1, second)
    assert not bodies(out, Prepare)
    assert ev.Evidence("conflicting-preprepare", first, second) in out
    assert net.replicas[1].evidence == [ev.Evidence("conflicting-preprepare", first, second)]
    assert net.replicas[1].slots[1].preprepare == first


@pytest.mark.parametrize("kind, name", [(Prepare, "conflicting-prepare"),
                                        (Commit, "conflicting-commit")])
def test_4_2_conflicting_votes_are_kept_as_evidence(kind, name):
    """Reference: Castro & Liskov §4.2 — an honest replica votes for one digest per
    (v, n); two validly signed votes from one replica for different digests are evidence,
    and the second one is not counted."""
    net = Network.build(4)
    a, b = (hashlib.sha256(x).digest() for x in (b"a", b"b"))
    first, second = net.sign_as(2, kind(0, 1, a)), net.sign_as(2, kind(0, 1, b))
    net.inject(1, first)
    out = net.inject(1, second)
    assert ev.Evidence(name, first, second) in out
    votes = getattr(net.replicas[1].slots[1], "prepares" if kind is Prepare else "commits")
    assert 2 not in votes.get((0, b), {})


@pytest.mark.parametrize("n, down", [(4, {3}), (5, {4}), (6, {5}), (7, {5, 6})])
def test_4_2_commits_with_f_replicas_down(n, down):
    """Reference: Castro & Liskov §4.2 — the normal case needs only the n - f replicas
    that are up, for any n (not just n = 3f + 1)."""
    net = Network.build(n, max_batch_txs=2)
    net.down = set(down)
    net.submit(0, payloads(5))
    settle(net)
    net.assert_agreement(height=3, replicas=[i for i in range(n) if i not in down])


def test_4_2_runs_with_real_ed25519_signatures():
    """Reference: Castro & Liskov §4.2 (all messages signed) — the same run with Ed25519
    keys instead of the simulator's keyed hashes."""
    net = Network.build(4, keyring="ed25519", max_batch_txs=2)
    net.submit(0, payloads(4))
    settle(net)
    net.assert_agreement(height=2)
    assert net.replicas[1].keys.label == "ed25519"


def test_4_2_equivocating_primary_cannot_split_six_replicas():
    """Reference: Castro & Liskov §4.2 (quorum intersection) — with n = 6 (f = 1), a
    primary that sends one batch to two backups and another to the other three, and
    commits both, must not get two different blocks committed at the same sequence
    number. Quorums of 2f+1 = 3 out of 6 do not intersect in an honest replica; 4 do.
    Replicas 1 and 2 then hold no quorum for anything and wait for a view change (not
    run here), so agreement is checked on what was delivered."""
    net = Network.build(6)
    net.down = {0}  # the Byzantine primary acts only through what the test injects
    left = make_preprepare(net, 1, (b"left",))
    right = make_preprepare(net, 1, (b"right",))
    for i in (1, 2):
        net.inject(i, left)
        net.inject(i, net.sign_as(0, Commit(0, 1, left.body.digest)))
    for i in (3, 4, 5):
        net.inject(i, right)
        net.inject(i, net.sign_as(0, Commit(0, 1, right.body.digest)))
    settle(net)
    at_one = {net.delivered[i][0].digest for i in range(1, 6) if net.delivered[i]}
    assert len(at_one) <= 1, "two blocks committed at sequence number 1"
    assert at_one == {right.body.digest}, "the majority side should still commit"


# -- lost messages (issue: normal case under loss) -------------------------------------------
@pytest.mark.parametrize("n", [4, 7])
def test_4_2_quorum_forms_with_f_prepares_lost(n):
    """Reference: Castro & Liskov §4.2 — 2f matching PREPAREs out of 3f backups: f of
    them can be lost and the replica still prepares, without fetching anything."""
    net = Network.build(n, max_batch_txs=2)
    net.drop_first(is_kind(Prepare, dst=2), count=max_faulty(n))
    net.submit(0, payloads(4))
    settle(net)
    assert len(net.dropped) == max_faulty(n)
    net.assert_agreement(height=2)
    assert net.emitted(ev.FetchBlocks) == []


@pytest.mark.parametrize("n", [4, 7])
def test_4_2_quorum_forms_with_f_commits_lost(n):
    """Reference: Castro & Liskov §4.2 — 2f+1 matching COMMITs out of 3f+1: f of them
    can be lost and the replica still commits, without fetching anything."""
    net = Network.build(n, max_batch_txs=2)
    net.drop_first(is_kind(Commit, dst=2), count=max_faulty(n))
    net.submit(0, payloads(4))
    settle(net)
    assert len(net.dropped) == max_faulty(n)
    net.assert_agreement(height=2)
    assert net.emitted(ev.FetchBlocks) == []


def test_4_2_missed_preprepare_is_recovered_by_fetching_the_committed_block():
    """Reference: Castro & Liskov TOCS'02 §6.2 (state transfer) — a replica that lost a
    PRE-PREPARE sees the others commit it and fetches the block with its commit
    certificate instead of stalling until a view change; the blocks after it, which it
    did commit itself, are then delivered in order."""
    net = Network.build(4, max_batch_txs=1)
    net.drop_first(is_kind(PrePrepare, dst=3, seq=2))
    start_ms = net.now_ms
    net.submit(0, payloads(3))
    settle(net)
    assert [(s, d, m.body.seq) for s, d, m in net.dropped] == [(0, 3, 2)]
    assert [f.first for f in net.emitted(ev.FetchBlocks, by=3)] == [2]
    net.assert_agreement(height=3)
    assert max(net.delivered_at_ms[3]) - start_ms < net.replicas[3].cfg.request_timeout_ms
    assert [m.body.seq for m in net.broadcasts(Commit, by=3)] == [1, 3]


def test_4_2_replica_cut_off_for_several_blocks_fetches_the_gap():
    """Reference: Castro & Liskov TOCS'02 §6.2 — a replica that heard nothing about some
    blocks (partitioned) and then commits a later one must fetch the gap, not wait
    for a view change."""
    net = Network.build(4, max_batch_txs=1)
    net.partition({0, 1, 2}, {3})
    net.submit(0, payloads(3, "cut"))
    settle(net)
    assert net.heights() == [3, 3, 3, 0]
    net.heal()
    net.submit(0, [b"after-heal"])
    settle(net)
    assert net.emitted(ev.FetchBlocks, by=3)
    net.assert_agreement(height=4)


def fetched_block_cases(net: Network, block: ev.Deliver) -> dict[str, tuple[Signed, tuple]]:
    """(pre-prepare, certificate) pairs that must not convince a replica."""
    pp, cert = block.preprepare, block.certificate
    other = hashlib.sha256(b"other").digest()
    return {
        "2f commits": (pp, cert[:2]),
        "one commit repeated": (pp, (cert[0],) * 3),
        "forged signature": (pp, cert[:2] + (Signed(cert[2].body, cert[2].sender, bytes(64)),)),
        "signer out of range": (pp, cert[:2] + (Signed(cert[2].body, 9, cert[2].sig),)),
        "commits for another digest": (pp, tuple(net.sign_as(j, Commit(0, 1, other))
                                                 for j in (0, 1, 2))),
        "commits for another seq": (pp, tuple(net.sign_as(j, Commit(0, 2, block.digest))
                                              for j in (0, 1, 2))),
        "prepares not commits": (pp, tuple(net.sign_as(j, Prepare(0, 1, block.digest))
                                           for j in (0, 1, 2))),
        "pre-prepare from a non-primary": (net.sign_as(1, pp.body), cert),
        "pre-prepare with swapped txs": (Signed(dataclasses.replace(pp.body, txs=(b"evil",)),
                                                pp.sender, pp.sig), cert),
    }


def committed_without_replica_3() -> Network:
    net = Network.build(4, max_batch_txs=1)
    net.down = {3}
    net.submit(0, [b"block-1"])
    settle(net)
    assert net.heights() == [1, 1, 1, 0]
    net.down = set()
    return net


@pytest.mark.parametrize("case", ["2f commits", "one commit repeated", "forged signature",
                                  "signer out of range", "commits for another digest",
                                  "commits for another seq", "prepares not commits",
                                  "pre-prepare from a non-primary",
                                  "pre-prepare with swapped txs"])
def test_4_2_fetched_block_without_a_valid_certificate_is_rejected(case):
    """Reference: Castro & Liskov TOCS'02 §6.2 — a fetched block is only as good as its
    proof: the primary's pre-prepare matching the batch and 2f+1 valid COMMITs from
    distinct replicas for exactly that (v, n, d). A peer cannot feed anything else."""
    net = committed_without_replica_3()
    preprepare, certificate = fetched_block_cases(net, net.delivered[0][0])[case]
    out = net.step(3, ev.BlockFetched(preprepare, certificate))
    assert not [a for a in out if isinstance(a, ev.Deliver)]
    assert net.replicas[3].stats["rejected_fetched_block"] == 1
    assert net.replicas[3].last_delivered == 0

    good = net.delivered[0][0]
    net.step(3, ev.BlockFetched(good.preprepare, good.certificate))
    net.assert_agreement(height=1)


def test_4_2_fetched_block_keeps_only_the_votes_that_prove_it():
    """Reference: Castro & Liskov TOCS'02 §6.2 — the certificate a replica delivers (and
    the host stores and serves in proofs) holds only valid, distinct, matching COMMITs,
    whatever padding the serving peer added."""
    net = committed_without_replica_3()
    good = net.delivered[0][0]
    padded = (Signed(good.certificate[0].body, 3, bytes(64)), *good.certificate,
              good.certificate[0], net.sign_as(3, Prepare(0, 1, good.digest)))
    net.step(3, ev.BlockFetched(good.preprepare, padded))
    net.assert_agreement(height=1)
    assert net.delivered[3][0].certificate == good.certificate


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), loss_pct=st.integers(0, 60),
       sizes=st.lists(st.integers(1, 4), min_size=1, max_size=4))
def test_4_2_deliveries_agree_under_loss_and_reordering_into_one_replica(seed, loss_pct, sizes):
    """Reference: Castro & Liskov §4.2 (safety: the same requests in the same order) and
    TOCS'02 §6.2 — the network reorders everything and loses any share of the messages
    sent to one replica; the other 2f+1 keep committing, and once the loss stops the
    lossy replica catches up to exactly the same chain."""
    rng = random.Random(seed)
    net = Network.build(4, max_batch_txs=2)
    net.pick = lambda queue: rng.randrange(len(queue))
    net.drop = lambda src, dst, msg: dst == 3 and rng.randrange(100) < loss_pct
    for round_no, size in enumerate(sizes):
        net.submit(0, payloads(size, f"r{round_no}"))
        settle(net)
        assert net.digests(3) == net.digests(0)[:len(net.digests(3))]
    net.heal()
    net.submit(0, [b"after-loss"])
    settle(net)
    net.assert_agreement()
    assert delivered_txs(net, 3)[-1] == b"after-loss"


# -- §4.3 garbage collection: checkpoints ---------------------------------------------------
def test_4_3_checkpoint_becomes_stable_at_2f_plus_1_matching_votes():
    """Reference: Castro & Liskov §4.3 — a replica multicasts CHECKPOINT(n, d) every K
    blocks; with 2f+1 matching checkpoint messages (its own included) the checkpoint is
    stable and those messages are its proof."""
    net = Network.build(4, max_batch_txs=1, checkpoint_interval_blocks=2, log_window_blocks=4)
    net.hold = is_kind(Checkpoint, dst=3)
    net.submit(0, payloads(2))
    settle(net)
    net.assert_agreement(height=2)
    assert [r.low_mark for r in net.replicas] == [2, 2, 2, 0]
    assert len(net.held) == 3

    replica = net.replicas[3]
    net.inject(3, net.held[0][2])
    assert replica.low_mark == 0, "two votes are not a quorum"
    net.inject(3, net.held[1][2])
    assert replica.low_mark == 2
    proof = replica.stable_proof
    assert len({m.sender for m in proof}) == 3
    assert {m.body for m in proof} == {Checkpoint(2, net.roots[3][2])}
    assert all(replica.is_authentic(m) or m.sender == 3 for m in proof)


def test_4_3_mismatching_checkpoint_votes_do_not_make_it_stable():
    """Reference: Castro & Liskov §4.3 — only 2f+1 votes for the same state digest, the
    one this replica computed, make a checkpoint stable; a replica voting two digests
    for one checkpoint leaves evidence."""
    net = Network.build(4, max_batch_txs=1, checkpoint_interval_blocks=2, log_window_blocks=4)
    net.hold = is_kind(Checkpoint, dst=3)
    net.submit(0, payloads(2))
    settle(net)
    net.assert_agreement(height=2)
    bad_root = hashlib.sha256(b"diverged").digest()
    for j in (0, 1, 2):
        net.inject(3, net.sign_as(j, Checkpoint(2, bad_root)))
    replica = net.replicas[3]
    assert replica.low_mark == 0
    assert replica.stats["state_divergence"] >= 1
    out = net.inject(3, net.held[0][2])
    assert [a.kind for a in out if isinstance(a, ev.Evidence)] == ["conflicting-checkpoint"]
    assert replica.low_mark == 0


def test_4_3_stable_checkpoint_garbage_collects_the_log_and_advances_watermarks():
    """Reference: Castro & Liskov §4.3 — once checkpoint n is stable, every message at or
    below n is discarded, the low watermark h becomes n and the high watermark H = h + L
    moves up with it."""
    net = Network.build(4, max_batch_txs=1, checkpoint_interval_blocks=2, log_window_blocks=4)
    net.submit(0, payloads(5))
    settle(net)
    net.assert_agreement(height=5)
    for replica in net.replicas:
        assert replica.low_mark == 4
        assert sorted(replica.slots) == [5]
        assert all(seq > 4 for seq in replica.checkpoint_votes)
        assert all(seq > 4 for seq in replica.executed_roots)
        assert [replica.in_watermarks(s) for s in (4, 5, 8, 9)] == [False, True, True, False]
        assert {m.body for m in replica.stable_proof} == {Checkpoint(4, net.roots[0][4])}


def test_4_3_primary_stops_at_the_high_watermark_until_a_checkpoint_is_stable():
    """Reference: Castro & Liskov §4.3 — the watermarks bound how far ahead the primary
    may run: nothing above H = h + L is proposed until a checkpoint makes h move."""
    net = Network.build(4, max_batch_txs=1, window_blocks=8,
                        checkpoint_interval_blocks=2, log_window_blocks=4)
    net.hold = is_kind(Checkpoint)
    net.submit(0, payloads(6))
    settle(net)
    net.assert_agreement(height=4)
    assert [m.body.seq for m in net.broadcasts(PrePrepare, by=0)] == [1, 2, 3, 4]
    assert len(net.replicas[0].pending) == 2

    net.heal()
    settle(net)
    net.assert_agreement(height=6)
    assert [r.low_mark for r in net.replicas] == [6, 6, 6, 6]
