"""An in-memory network that links replicas, h11-style: the test drives every delivery.

Messages are queued, not delivered at once, so a test can drop, delay or reorder them
and look at the state between steps. Signing uses the fast keyring; the Ed25519 path
is tested separately.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Callable

from consensus import events as ev
from consensus.crypto import FastKeyring
from consensus.messages import Signed, compute_digest, encode, decode
from consensus.replica import Replica, ReplicaConfig


def digest_batch(timestamp_ms: int, txs: tuple[bytes, ...]) -> bytes:
    root = hashlib.sha256(b"".join(hashlib.sha256(t).digest() for t in txs)).digest()
    return compute_digest(timestamp_ms, root)


@dataclass
class Network:
    n: int
    replicas: list[Replica] = field(default_factory=list)
    queue: list[tuple[int, int, Signed]] = field(default_factory=list)
    delivered: dict[int, list[ev.Deliver]] = field(default_factory=dict)
    timers: dict[int, dict[str, int]] = field(default_factory=dict)
    roots: dict[int, dict[int, bytes]] = field(default_factory=dict)
    drop: Callable[[int, int, Signed], bool] = lambda src, dst, msg: False
    now_ms: int = 1_000_000
    down: set[int] = field(default_factory=set)

    @classmethod
    def build(cls, n: int, **config) -> "Network":
        net = cls(n)
        secrets = [bytes([i]) * 32 for i in range(n)]
        for i in range(n):
            cfg = ReplicaConfig(n=n, index=i, chain_id="test", **config)
            net.replicas.append(Replica(cfg, FastKeyring(i, secrets), digest_batch))
            net.delivered[i], net.timers[i], net.roots[i] = [], {}, {}
        return net

    def step(self, i: int, event) -> None:
        for action in self.replicas[i].step(event, self.now_ms):
            self.apply(i, action)

    def apply(self, i: int, action) -> None:
        if isinstance(action, ev.Broadcast):
            for j in range(self.n):
                if j != i:
                    self.queue.append((i, j, decode(encode(action.msg))))
        elif isinstance(action, ev.Send):
            self.queue.append((i, action.to, action.msg))
        elif isinstance(action, ev.Deliver):
            self.delivered[i].append(action)
            root = hashlib.sha256(self.roots[i].get(action.seq - 1, b"") + action.digest).digest()
            self.roots[i][action.seq] = root
            self.step(i, ev.BlockExecuted(action.seq, root))
        elif isinstance(action, ev.SetTimer):
            self.timers[i][action.name] = self.now_ms + action.delay_ms
        elif isinstance(action, ev.CancelTimer):
            self.timers[i].pop(action.name, None)
        elif isinstance(action, ev.FetchBlocks):
            self.serve_fetch(i, action)

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

    def submit(self, i: int, payloads: list[bytes]) -> None:
        self.step(i, ev.RequestsArrived(tuple((hashlib.sha256(p).digest(), p) for p in payloads)))

    def run(self, max_steps: int = 100_000) -> None:
        """Deliver queued messages (FIFO) and fire due timers until quiet."""
        for _ in range(max_steps):
            if self.queue:
                src, dst, msg = self.queue.pop(0)
                if dst not in self.down and src not in self.down and not self.drop(src, dst, msg):
                    self.step(dst, ev.MessageArrived(msg))
                continue
            due = [(t, i, name) for i, names in self.timers.items() if i not in self.down
                   for name, t in names.items()]
            if not due:
                return
            t, i, name = min(due)
            self.now_ms = max(self.now_ms, t)
            del self.timers[i][name]
            self.step(i, ev.TimerFired(name))
            if name == "view" and not self.queue and all(
                    not r.pending for r in self.replicas):
                continue
        raise AssertionError("network did not go quiet")

    def heights(self) -> list[int]:
        return [len(self.delivered[i]) for i in range(self.n)]
