"""An in-memory network that links replicas, h11-style: the test drives every delivery.

Messages are queued, not delivered at once, so a test can drop, hold, reorder or
partition them and look at the state between steps. Signing uses the fast keyring by
default (`keyring="ed25519"` for real signatures); the Ed25519 path is also tested on
its own in test_messages.py.

The harness checks two host-facing promises of `Replica.step` on every step, so every
test that drives a network checks them too:
- a signed PRE-PREPARE / PREPARE / COMMIT is `Persist`ed before it is sent;
- `Deliver`s come in strictly consecutive sequence order, each with a valid certificate.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable

import nacl.signing

from consensus import events as ev
from consensus.crypto import Ed25519Keyring, FastKeyring
from consensus.messages import (Body, Commit, NewView, PrePrepare, Prepare, Signed,
                                compute_digest, decode, encode)
from consensus.replica import Replica, ReplicaConfig

CHAIN_ID = "test"
Link = tuple[int, int, Signed]
"""(source, destination, message) as it sits in the queue."""


def digest_batch(timestamp_ms: int, txs: tuple[bytes, ...]) -> bytes:
    root = hashlib.sha256(b"".join(hashlib.sha256(t).digest() for t in txs)).digest()
    return compute_digest(timestamp_ms, root)


def is_kind(kind: type, src: int | None = None, dst: int | None = None,
            seq: int | None = None) -> Callable[[int, int, Signed], bool]:
    """A link predicate: messages of `kind`, optionally only from src / to dst / at seq."""
    def match(s: int, d: int, msg: Signed) -> bool:
        return (isinstance(msg.body, kind) and (src is None or s == src)
                and (dst is None or d == dst)
                and (seq is None or getattr(msg.body, "seq", None) == seq))
    return match


@dataclass
class Network:
    n: int
    replicas: list[Replica] = field(default_factory=list)
    queue: list[Link] = field(default_factory=list)
    delivered: dict[int, list[ev.Deliver]] = field(default_factory=dict)
    delivered_at_ms: dict[int, list[int]] = field(default_factory=dict)
    timers: dict[int, dict[str, int]] = field(default_factory=dict)
    roots: dict[int, dict[int, bytes]] = field(default_factory=dict)
    actions: list[tuple[int, object]] = field(default_factory=list)
    """Every action every replica emitted, in order: what a test inspects."""
    drop: Callable[[int, int, Signed], bool] = lambda src, dst, msg: False
    dropped: list[Link] = field(default_factory=list)
    held: list[Link] = field(default_factory=list)
    hold: Callable[[int, int, Signed], bool] = lambda src, dst, msg: False
    pick: Callable[[list[Link]], int] = lambda queue: 0
    """Which queued message goes next: FIFO unless a test reorders."""
    now_ms: int = 1_000_000
    down: set[int] = field(default_factory=set)
    wal: dict[int, set[bytes]] = field(default_factory=dict)
    """Signatures of what each replica persisted, across steps (a resend was persisted
    when first sent)."""
    execute: bool = True
    """Answer each Deliver with BlockExecuted at once, as a host that executes inline."""

    @classmethod
    def build(cls, n: int, keyring: str = "fast", **config) -> "Network":
        net = cls(n)
        if keyring == "ed25519":
            signing = [nacl.signing.SigningKey(bytes([i + 1]) * 32) for i in range(n)]
            public = [bytes(k.verify_key) for k in signing]
            keys = [Ed25519Keyring(i, signing[i], public) for i in range(n)]
        else:
            secrets = [bytes([i]) * 32 for i in range(n)]
            keys = [FastKeyring(i, secrets) for i in range(n)]
        for i in range(n):
            cfg = ReplicaConfig(n=n, index=i, chain_id=CHAIN_ID, **config)
            net.replicas.append(Replica(cfg, keys[i], digest_batch))
            net.delivered[i], net.delivered_at_ms[i] = [], []
            net.timers[i], net.roots[i] = {}, {}
        return net

    # -- driving replicas ------------------------------------------------------------------
    def step(self, i: int, event) -> list:
        actions = self.replicas[i].step(event, self.now_ms)
        check_persist_before_send(actions, i, self.wal.setdefault(i, set()))
        for action in actions:
            self.actions.append((i, action))
            self.apply(i, action)
        return actions

    def inject(self, dst: int, msg: Signed) -> list:
        """Hand `msg` straight to replica `dst`, bypassing the queue."""
        return self.step(dst, ev.MessageArrived(msg))

    def sign_as(self, i: int, body: Body) -> Signed:
        return self.replicas[i].sign(body)

    def apply(self, i: int, action) -> None:
        if isinstance(action, ev.Broadcast):
            for j in range(self.n):
                if j != i:
                    self.queue.append((i, j, decode(encode(action.msg))))
        elif isinstance(action, ev.Send):
            self.queue.append((i, action.to, decode(encode(action.msg))))
        elif isinstance(action, ev.Deliver):
            self.on_deliver(i, action)
        elif isinstance(action, ev.SetTimer):
            self.timers[i][action.name] = self.now_ms + action.delay_ms
        elif isinstance(action, ev.CancelTimer):
            self.timers[i].pop(action.name, None)
        elif isinstance(action, ev.FetchBlocks):
            self.serve_fetch(i, action)

    def on_deliver(self, i: int, action: ev.Deliver) -> None:
        expected = len(self.delivered[i]) + 1
        assert action.seq == expected, f"replica {i} delivered {action.seq}, expected {expected}"
        assert is_valid_certificate(self.replicas[i], action), f"replica {i}: bad certificate"
        self.delivered[i].append(action)
        self.delivered_at_ms[i].append(self.now_ms)
        root = hashlib.sha256(self.roots[i].get(action.seq - 1, b"") + action.digest).digest()
        self.roots[i][action.seq] = root
        if self.execute:
            self.step(i, ev.BlockExecuted(action.seq, root))

    def serve_fetch(self, i: int, action: ev.FetchBlocks) -> None:
        """Answer from the first live peer that delivered the blocks (like the host does)."""
        for j in range(self.n):
            if j == i or j in self.down:
                continue
            blocks = {d.seq: d for d in self.delivered[j]}
            if action.first in blocks:
                for seq in range(action.first, action.last + 1):
                    if seq not in blocks:
                        break
                    d = blocks[seq]
                    self.step(i, ev.BlockFetched(d.preprepare, d.certificate))
                return

    def submit(self, i: int, payloads: list[bytes]) -> list:
        return self.step(i, ev.RequestsArrived(
            tuple((hashlib.sha256(p).digest(), p) for p in payloads)))

    def fire(self, i: int, name: str) -> list:
        """Fire replica i's timer `name` now, as if its delay had passed."""
        assert name in self.timers[i], f"replica {i} has no {name!r} timer armed"
        del self.timers[i][name]
        return self.step(i, ev.TimerFired(name))

    # -- faults ------------------------------------------------------------------------------
    def drop_first(self, match: Callable[[int, int, Signed], bool], count: int = 1) -> None:
        """Lose the first `count` messages that match (see `dropped` for what was lost)."""
        left = [count]

        def drop(src: int, dst: int, msg: Signed) -> bool:
            if left[0] > 0 and match(src, dst, msg):
                left[0] -= 1
                return True
            return False
        self.drop = drop

    def partition(self, *groups: set[int]) -> None:
        """Only replicas in the same group hear each other; replicas in no group hear all."""
        where = {i: g for g, members in enumerate(groups) for i in members}
        self.drop = lambda src, dst, msg: (src in where and dst in where
                                           and where[src] != where[dst])

    def heal(self) -> None:
        self.drop = lambda src, dst, msg: False
        self.hold = lambda src, dst, msg: False
        self.release()

    def release(self) -> None:
        """Put held messages back in the queue, in the order they were held."""
        self.queue.extend(self.held)
        self.held = []

    # -- running -----------------------------------------------------------------------------
    def deliver_next(self) -> None:
        src, dst, msg = self.queue.pop(self.pick(self.queue))
        if dst in self.down or src in self.down:
            return
        if self.drop(src, dst, msg):
            self.dropped.append((src, dst, msg))
        elif self.hold(src, dst, msg):
            self.held.append((src, dst, msg))
        else:
            self.step(dst, ev.MessageArrived(msg))

    def run(self, max_steps: int = 100_000, for_ms: int | None = None) -> None:
        """Deliver queued messages and fire due timers (earliest first) until quiet.

        With `for_ms`, timers due later than that much simulated time from now stay
        armed and the run ends there: a replica that keeps retrying (a lone view
        change, a fetch nobody can serve) then ends the run instead of spinning.
        """
        deadline_ms = None if for_ms is None else self.now_ms + for_ms
        for _ in range(max_steps):
            if self.queue:
                self.deliver_next()
                continue
            due = [(t, i, name) for i, names in self.timers.items() if i not in self.down
                   for name, t in names.items()]
            if not due or (deadline_ms is not None and min(due)[0] > deadline_ms):
                return
            t, i, name = min(due)
            self.now_ms = max(self.now_ms, t)
            del self.timers[i][name]
            self.step(i, ev.TimerFired(name))
        raise AssertionError("network did not go quiet")

    # -- looking -----------------------------------------------------------------------------
    def heights(self) -> list[int]:
        return [len(self.delivered[i]) for i in range(self.n)]

    def digests(self, i: int) -> list[bytes]:
        return [d.digest for d in self.delivered[i]]

    def emitted(self, kind: type, by: int | None = None) -> list:
        """Actions of type `kind` emitted so far, optionally only by replica `by`."""
        return [a for i, a in self.actions if isinstance(a, kind) and (by is None or i == by)]

    def broadcasts(self, body: type, by: int | None = None) -> list[Signed]:
        return [a.msg for a in self.emitted(ev.Broadcast, by) if isinstance(a.msg.body, body)]

    def assert_agreement(self, height: int | None = None,
                         replicas: list[int] | None = None) -> None:
        """Same blocks (same digests, same order) on every replica, optionally at `height`."""
        who = list(range(self.n)) if replicas is None else replicas
        first = self.digests(who[0])
        for i in who:
            assert self.digests(i) == first, f"replica {i} delivered other blocks than {who[0]}"
            assert [d.seq for d in self.delivered[i]] == list(range(1, len(first) + 1))
        if height is not None:
            assert len(first) == height, f"height {len(first)}, expected {height}"


def check_persist_before_send(actions: list, signer: int, wal: set[bytes]) -> None:
    """What a replica signs as a protocol vote is in its write-ahead log before it leaves.

    Only its own signatures count: relaying a primary's two conflicting pre-prepares
    as evidence is not a vote."""
    for action in actions:
        if isinstance(action, ev.Persist):
            wal.add(action.msg.sig)
            if isinstance(action.msg.body, NewView):  # its pre-prepares are in the WAL with it
                wal.update(pp.sig for pp in action.msg.body.preprepares)
        elif isinstance(action, (ev.Broadcast, ev.Send)):
            if action.msg.sender == signer and isinstance(action.msg.body,
                                                          (PrePrepare, Prepare, Commit)):
                assert action.msg.sig in wal, f"sent before persisted: {action.msg.body}"


def is_valid_certificate(replica: Replica, block: ev.Deliver) -> bool:
    """Independent of catchup.py: 2f+1 distinct authentic COMMITs for exactly this block."""
    voters = {vote.sender for vote in block.certificate
              if isinstance(vote.body, Commit)
              and (vote.body.view, vote.body.seq, vote.body.digest)
              == (block.view, block.seq, block.digest)
              and replica.keys.verify(vote.sender, vote.signing_bytes(CHAIN_ID), vote.sig)}
    return len(voters) >= replica.quorum
