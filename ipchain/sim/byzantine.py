"""Byzantine replicas: a real replica underneath, lies added on the way out.

A Byzantine host still runs the honest `Replica` (so it follows the protocol well
enough to be dangerous) and passes every outgoing message through its behaviour,
which may drop it, corrupt it, or replace it per destination with a different message
that it signs with its own key — exactly what a compromised validator can do. Nothing
here can forge another replica's signature: the keyring only signs as its own index.

`collude` is the negative control: f+1 colluding replicas (the primary among them)
fork the honest replicas into two groups and lead each to commit a different batch at
the same sequence number. With f+1 of them the checkers must see it; with f they must
not be able to do it.
"""

from __future__ import annotations

import random
from typing import Protocol

from consensus.messages import Commit, PrePrepare, Prepare, Signed, ViewChange

Outbound = list[tuple[int, Signed]]
Blocks = tuple[tuple[Signed, tuple[Signed, ...]], ...]
"""Committed blocks served to a peer that catches up: (pre-prepare, commit certificate)."""


class ByzantineHost(Protocol):
    index: int
    n: int

    def sign(self, body) -> Signed: ...

    def digest(self, timestamp_ms: int, txs: tuple[bytes, ...]) -> bytes: ...

    def view(self) -> int: ...


class Behaviour:
    """Honest by default; subclasses override what they lie about."""

    name = "honest"
    speaks = True
    """Relays client transactions and serves blocks to peers that catch up."""
    tick_ms: int | None = None
    """If set, `on_tick` runs this often (spontaneous messages, e.g. view-change spam)."""

    def outbound(self, host: ByzantineHost, msg: Signed, dsts: list[int]) -> Outbound:
        return [(dst, msg) for dst in dsts]

    def on_tick(self, host: ByzantineHost) -> Outbound:
        return []

    def serve(self, host: ByzantineHost, blocks: Blocks) -> Blocks:
        """What it answers a peer's block fetch with (the peer checks certificates)."""
        return blocks


HONEST = Behaviour()


class Mute(Behaviour):
    """Says nothing at all: no votes, no relays, no blocks served."""

    name = "mute"
    speaks = False

    def outbound(self, host: ByzantineHost, msg: Signed, dsts: list[int]) -> Outbound:
        return []


class BadSignature(Behaviour):
    """Half of what it sends carries a corrupted signature (receivers must drop it)."""

    name = "bad_signature"

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def outbound(self, host: ByzantineHost, msg: Signed, dsts: list[int]) -> Outbound:
        return [(dst, _corrupt(msg) if self.rng.random() < 0.5 else msg) for dst in dsts]

    def serve(self, host: ByzantineHost, blocks: Blocks) -> Blocks:
        return tuple((pp, tuple(_corrupt(vote) for vote in cert)) for pp, cert in blocks)


class WrongDigest(Behaviour):
    """Proposes and votes for digests that match no batch (validly signed)."""

    name = "wrong_digest"

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def outbound(self, host: ByzantineHost, msg: Signed, dsts: list[int]) -> Outbound:
        body = msg.body
        if isinstance(body, (PrePrepare, Prepare, Commit)):
            msg = host.sign(_with_digest(body, self.rng.randbytes(32)))
        return [(dst, msg) for dst in dsts]

    def serve(self, host: ByzantineHost, blocks: Blocks) -> Blocks:
        """The real certificate, but a batch with one tx dropped (the digest no longer fits)."""
        out = []
        for pp, cert in blocks:
            body = pp.body
            txs = body.txs[:-1] if body.txs else (b"made-up",)
            out.append((Signed(PrePrepare(body.view, body.seq, body.digest, body.timestamp_ms, txs),
                               pp.sender, pp.sig), cert))
        return tuple(out)


class Equivocate(Behaviour):
    """Tells one half of its peers one thing and the other half another.

    As primary it sends two valid but different pre-prepares for one sequence number;
    as a backup it votes for the real digest to one half and a made-up one to the other.
    """

    name = "equivocate"

    def __init__(self, rng: random.Random, index: int, n: int) -> None:
        self.rng = rng
        peers = [i for i in range(n) if i != index]
        self.side_b = frozenset(rng.sample(peers, len(peers) // 2))

    def outbound(self, host: ByzantineHost, msg: Signed, dsts: list[int]) -> Outbound:
        body = msg.body
        if isinstance(body, PrePrepare):
            other = host.sign(alternative_preprepare(host, body))
        elif isinstance(body, (Prepare, Commit)):
            other = host.sign(_with_digest(body, self.rng.randbytes(32)))
        else:
            return [(dst, msg) for dst in dsts]
        return [(dst, other if dst in self.side_b else msg) for dst in dsts]

    def serve(self, host: ByzantineHost, blocks: Blocks) -> Blocks:
        """Its own alternative proposal for each block, with the real certificate."""
        return tuple((host.sign(alternative_preprepare(host, pp.body)), cert) for pp, cert in blocks)


class ViewChangeSpam(Behaviour):
    """Follows the protocol but keeps broadcasting VIEW-CHANGEs for views ahead."""

    name = "vc_spam"
    tick_ms = 150

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def on_tick(self, host: ByzantineHost) -> Outbound:
        body = ViewChange(host.view() + self.rng.randint(1, 3), 0, bytes(32), (), ())
        spam = host.sign(body)
        return [(dst, spam) for dst in range(host.n) if dst != host.index]


class Conspiracy:
    """What the colluders share: who is in which honest group, and the forks made so far."""

    def __init__(self, rng: random.Random, members: list[int], n: int) -> None:
        honest = [i for i in range(n) if i not in members]
        rng.shuffle(honest)
        self.members = frozenset(members)
        self.group_b = frozenset(honest[len(honest) // 2:])
        """Honest replicas that are shown the second story; the rest see the first."""
        self.forks: dict[tuple[int, int], tuple[bytes, bytes]] = {}
        """(view, seq) -> (digest shown to group A, digest shown to group B)."""


class Collude(Behaviour):
    """One of f+1 colluders: keeps each honest group consistent with its own fork."""

    name = "collude"

    def __init__(self, conspiracy: Conspiracy) -> None:
        self.plot = conspiracy

    def outbound(self, host: ByzantineHost, msg: Signed, dsts: list[int]) -> Outbound:
        body = msg.body
        if isinstance(body, PrePrepare):
            alt = alternative_preprepare(host, body)
            self.plot.forks[(body.view, body.seq)] = (body.digest, alt.digest)
            other = host.sign(alt)
        elif isinstance(body, (Prepare, Commit)):
            fork = self.plot.forks.get((body.view, body.seq))
            if fork is None or fork[0] != body.digest:
                return [(dst, msg) for dst in dsts]
            other = host.sign(_with_digest(body, fork[1]))
        else:
            return [(dst, msg) for dst in dsts]
        return [(dst, other if dst in self.plot.group_b else msg) for dst in dsts]


def alternative_preprepare(host: ByzantineHost, pp: PrePrepare) -> PrePrepare:
    """A second, valid proposal for the same (view, seq): later timestamp, one tx fewer."""
    txs = pp.txs[:-1] if len(pp.txs) > 1 else pp.txs
    timestamp_ms = pp.timestamp_ms + 1
    return PrePrepare(pp.view, pp.seq, host.digest(timestamp_ms, txs), timestamp_ms, txs)


def _corrupt(msg: Signed) -> Signed:
    return Signed(msg.body, msg.sender, bytes([msg.sig[0] ^ 0xFF]) + msg.sig[1:])


def _with_digest(body: PrePrepare | Prepare | Commit, digest: bytes):
    if isinstance(body, PrePrepare):
        return PrePrepare(body.view, body.seq, digest, body.timestamp_ms, body.txs)
    return type(body)(body.view, body.seq, digest)


def make_behaviour(name: str, index: int, n: int, rng: random.Random,
                   conspiracy: Conspiracy | None) -> Behaviour:
    if name == "mute":
        return Mute()
    if name == "bad_signature":
        return BadSignature(rng)
    if name == "wrong_digest":
        return WrongDigest(rng)
    if name == "equivocate":
        return Equivocate(rng, index, n)
    if name == "vc_spam":
        return ViewChangeSpam(rng)
    if name == "collude":
        if conspiracy is None:
            raise ValueError("collude needs the shared conspiracy")
        return Collude(conspiracy)
    raise ValueError(f"unknown Byzantine behaviour {name!r}")
