"""The Byzantine behaviours: one class per lie, run by the live node and by the simulator.

A Byzantine replica still runs the honest `Replica` (so it follows the protocol well
enough to be dangerous) and passes every message it sends through its behaviour, which
may drop it, corrupt it, or replace it per destination with another message signed with
its own key — exactly what a compromised validator can do. Nothing here can forge
another replica's signature: the host only signs as its own index.

Both hosts call the same hooks: the simulator's `Host` (ipchain/sim/host.py) and the
node's fault engine (node/faults.py, through its `NodeHost` adapter). So a name means
one lie everywhere: in scenario files (configs/faults/*.toml), sim plans
(ipchain/sim/faults.py), reports and metrics (`byz_<name>` counters).

Every behaviour takes the same knobs: `audience` (peers that hear the lie; None: its
default), `kinds` (message kinds it lies about; None: all), `probability` (per
destination). The randomness is a seeded `random.Random` passed in.
"""

from __future__ import annotations

import collections
import hashlib
import random
from typing import Protocol

from consensus.messages import Commit, PrePrepare, Prepare, Signed, ViewChange

Outbound = list[tuple[int, Signed]]
Blocks = tuple[tuple[Signed, tuple[Signed, ...]], ...]
"""Committed blocks served to a peer that catches up: (pre-prepare, commit certificate)."""

MAX_ALT_CACHE = 4096
"""Alternative digests an equivocating replica remembers, keyed by (view, seq, digest):
its prepare and commit for one slot then cost one batch hash, not two. Oldest go first."""


class ByzantineHost(Protocol):
    """What a behaviour may use of the replica it corrupts."""

    index: int
    n: int
    replica: object
    """The honest `consensus.replica.Replica` underneath (its view, slots, checkpoints)."""

    def sign(self, body) -> Signed: ...

    def digest(self, timestamp_ms: int, txs: tuple[bytes, ...]) -> bytes: ...


class Behaviour:
    """Honest by default; subclasses override `lie` (and `serve`, `on_tick`)."""

    name = "honest"
    speaks = True
    """Relays client transactions and serves blocks to peers that catch up."""
    tick_ms: int | None = None
    """If set, `on_tick` runs this often (spontaneous messages, e.g. view-change spam)."""
    probability = 1.0

    def __init__(self, rng: random.Random | None = None, audience: frozenset[int] | None = None,
                 kinds: frozenset[str] | None = None, probability: float | None = None,
                 tick_ms: int | None = None) -> None:
        self.rng = rng or random.Random(0)
        self.audience = audience
        self.kinds = kinds
        if probability is not None:
            self.probability = probability
        if tick_ms is not None and self.tick_ms is not None:
            self.tick_ms = tick_ms
        self.lies_told = 0

    def default_audience(self, host: ByzantineHost) -> frozenset[int]:
        return frozenset(i for i in range(host.n) if i != host.index)

    def outbound(self, host: ByzantineHost, msg: Signed, dsts: list[int]) -> Outbound:
        """What each destination receives instead of `msg` (a missing pair: nothing)."""
        if (self.name == "honest" or msg.sender != host.index
                or (self.kinds is not None and msg.body.KIND not in self.kinds)):
            return [(dst, msg) for dst in dsts]
        audience = self.audience if self.audience is not None else self.default_audience(host)
        out: Outbound = []
        told: list[Signed | None] = []
        for dst in dsts:
            if dst not in audience or self.rng.random() >= self.probability:
                out.append((dst, msg))
                continue
            if not told:
                told.append(self.lie(host, msg))
            if told[0] is not None:
                out.append((dst, told[0]))
            self.lies_told += 1
        return out

    def lie(self, host: ByzantineHost, msg: Signed) -> Signed | None:
        """The message told instead of `msg` (None: say nothing; `msg`: the truth)."""
        return msg

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

    def lie(self, host: ByzantineHost, msg: Signed) -> Signed | None:
        return None


class BadSignature(Behaviour):
    """Half of what it sends (by default) carries a corrupted signature: receivers must
    drop it as forged, and fetching peers must refuse its served certificates."""

    name = "bad_signature"
    probability = 0.5

    def lie(self, host: ByzantineHost, msg: Signed) -> Signed | None:
        return corrupt_signature(msg)

    def serve(self, host: ByzantineHost, blocks: Blocks) -> Blocks:
        return tuple((pp, tuple(corrupt_signature(vote) for vote in cert)) for pp, cert in blocks)


class WrongDigest(Behaviour):
    """Proposes and votes for digests that match no batch (validly signed)."""

    name = "wrong_digest"

    def lie(self, host: ByzantineHost, msg: Signed) -> Signed | None:
        body = msg.body
        if not isinstance(body, (PrePrepare, Prepare, Commit)):
            return msg
        return host.sign(with_digest(body, wrong_digest(body.digest)))

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
    """Tells its audience another story than everyone else, one it can make certifiable.

    As primary it sends the audience a second valid pre-prepare for each sequence number
    (`alternative_preprepare`); as a backup it votes, to the audience, for the alternative
    of the pre-prepare it accepted. A colluding backup derives the same alternative as the
    colluding primary, so several Byzantine replicas tell one consistent lie. The default
    audience is the upper half of its peers."""

    name = "equivocate"

    def __init__(self, rng: random.Random | None = None, audience: frozenset[int] | None = None,
                 kinds: frozenset[str] | None = None, probability: float | None = None,
                 tick_ms: int | None = None) -> None:
        super().__init__(rng, audience, kinds, probability, tick_ms)
        self._alt: collections.OrderedDict[tuple[int, int, bytes], bytes] = collections.OrderedDict()

    def default_audience(self, host: ByzantineHost) -> frozenset[int]:
        peers = [i for i in range(host.n) if i != host.index]
        return frozenset(peers[len(peers) // 2:])

    def lie(self, host: ByzantineHost, msg: Signed) -> Signed | None:
        body = msg.body
        if isinstance(body, PrePrepare):
            return host.sign(alternative_preprepare(host, body))
        if isinstance(body, (Prepare, Commit)):
            alt = self._alternative_digest(host, body.view, body.seq, body.digest)
            return msg if alt is None else host.sign(with_digest(body, alt))
        return msg

    def _alternative_digest(self, host: ByzantineHost, view: int, seq: int,
                            digest: bytes) -> bytes | None:
        key = (view, seq, digest)
        if key not in self._alt:
            slot = host.replica.slots.get(seq)
            pp = slot.preprepare.body if slot is not None and slot.preprepare else None
            if pp is None or (pp.view, pp.digest) != (view, digest):
                return None
            self._alt[key] = alternative_preprepare(host, pp).digest
            while len(self._alt) > MAX_ALT_CACHE:
                self._alt.popitem(last=False)
        return self._alt[key]

    def serve(self, host: ByzantineHost, blocks: Blocks) -> Blocks:
        """Its own alternative proposal for each block, with the real certificate."""
        return tuple((host.sign(alternative_preprepare(host, pp.body)), cert) for pp, cert in blocks)


class Collude(Equivocate):
    """Equivocation towards an audience all colluders share (drawn once for the run), so
    that f+1 of them, the primary among them, fork the honest replicas into two groups
    that each commit a different batch. The negative control: with f it must fail."""

    name = "collude"


class ViewChangeSpam(Behaviour):
    """Follows the protocol but keeps broadcasting VIEW-CHANGEs for views nobody asked for
    (one or two ahead, some for the current view), with its real checkpoint proof."""

    name = "view_change_spam"
    tick_ms = 150
    OFFSETS = (1, 2, 1, 0)

    def on_tick(self, host: ByzantineHost) -> Outbound:
        replica = host.replica
        offset = self.OFFSETS[self.lies_told % len(self.OFFSETS)]
        self.lies_told += 1
        body = ViewChange(replica.view + offset, replica.low_mark,
                          replica.stable_root or bytes(32), tuple(replica.stable_proof), ())
        spam = host.sign(body)
        audience = self.audience if self.audience is not None else self.default_audience(host)
        return [(dst, spam) for dst in sorted(audience)]


BEHAVIOURS: dict[str, type[Behaviour]] = {
    cls.name: cls for cls in (Mute, BadSignature, WrongDigest, Equivocate, Collude, ViewChangeSpam)}
"""Every Byzantine behaviour by name: the one list both tools draw from."""


def make_behaviour(name: str, rng: random.Random, audience: frozenset[int] | None = None,
                   kinds: frozenset[str] | None = None, probability: float | None = None,
                   tick_ms: int | None = None) -> Behaviour:
    if name not in BEHAVIOURS:
        raise ValueError(f"unknown Byzantine behaviour {name!r}; known: {', '.join(BEHAVIOURS)}")
    return BEHAVIOURS[name](rng, audience, kinds, probability, tick_ms)


def alternative_preprepare(host: ByzantineHost, pp: PrePrepare) -> PrePrepare:
    """A second, valid proposal for the same (view, seq): one millisecond later and one tx
    fewer (when it has more than one), so another digest over a batch that still checks."""
    txs = pp.txs[:-1] if len(pp.txs) > 1 else pp.txs
    timestamp_ms = pp.timestamp_ms + 1
    return PrePrepare(pp.view, pp.seq, host.digest(timestamp_ms, txs), timestamp_ms, txs)


def corrupt_signature(msg: Signed) -> Signed:
    return Signed(msg.body, msg.sender, bytes([msg.sig[0] ^ 0xFF]) + msg.sig[1:])


def wrong_digest(digest: bytes) -> bytes:
    return hashlib.sha256(b"ipchain/byzantine/wrong-digest" + digest).digest()


def with_digest(body: PrePrepare | Prepare | Commit, digest: bytes):
    if isinstance(body, PrePrepare):
        return PrePrepare(body.view, body.seq, digest, body.timestamp_ms, body.txs)
    return type(body)(body.view, body.seq, digest)
