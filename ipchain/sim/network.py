"""The simulated network between validators: seeded latency, loss, duplication, reordering,
symmetric and one-way partitions.

Every directed link gets its own base latency and jitter from the seed, so some links
are persistently slow (as in a real WAN) and messages on one link overtake each other
whenever the jitter exceeds their spacing (reordering needs no special case). Faults
are layered on top as named, overlapping conditions that each switch on and off; the
effective link state is recomputed from the active ones, so ending one partition never
heals another that is still on. Loss and partitions apply when a message is sent: a
message already in flight when a partition starts still arrives, as on a real network.
A replica message crosses as bytes (`over_the_wire`: encoded and decoded, as a real link
would, once per message for all its receivers).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from math import floor
from typing import Any, Callable, Iterable

from consensus import messages as wire
from ipchain.sim.clock import EventQueue


@dataclass(frozen=True)
class LatencyModel:
    min_base_us: int = 500
    max_base_us: int = 10_000
    """Each directed link's fixed one-way latency is drawn once from this range."""
    max_jitter_us: int = 3_000
    """Per message, a uniform extra delay up to the link's own jitter bound (<= this)."""


@dataclass(frozen=True)
class LinkCondition:
    """One active network fault: which directed links it touches and how."""

    links: tuple[tuple[int, int], ...]
    blocked: bool = False
    loss: float = 0.0
    duplicate: float = 0.0
    extra_jitter_us: int = 0


Deliver = Callable[[int, int, tuple[Any, ...]], None]
"""(dst, src, packet) -> None: hand a packet to the destination host."""


class Network:
    def __init__(self, n: int, rng: random.Random, queue: EventQueue, deliver: Deliver,
                 latency: LatencyModel = LatencyModel()) -> None:
        self.n = n
        self.rng = rng
        self.queue = queue
        self.deliver = deliver
        self.base_us = [[rng.randint(latency.min_base_us, latency.max_base_us)
                         for _ in range(n)] for _ in range(n)]
        self.jitter_us = [[rng.randint(0, latency.max_jitter_us) for _ in range(n)]
                          for _ in range(n)]
        self.conditions: dict[str, LinkCondition] = {}
        self.stats = {"sent": 0, "dropped_partition": 0, "dropped_loss": 0, "duplicated": 0}
        self.rewriter: Callable[[int, int, tuple[Any, ...]], tuple[Any, ...] | None] | None = None
        """A keyless adversary (`ipchain.sim.rewrite`): forges copies of some packets."""
        self.rewrite_rate = 0.0
        self._recompute()

    # -- faults ----------------------------------------------------------------------------
    def add_condition(self, name: str, condition: LinkCondition) -> None:
        self.conditions[name] = condition
        self._recompute()

    def remove_condition(self, name: str) -> None:
        if self.conditions.pop(name, None) is not None:
            self._recompute()

    def heal(self) -> None:
        self.conditions.clear()
        self._recompute()

    def _recompute(self) -> None:
        """Fold the active conditions into per-link tables the send path reads directly."""
        n = self.n
        self.blocked = [[False] * n for _ in range(n)]
        self.loss = [[0.0] * n for _ in range(n)]
        self.duplicate = [[0.0] * n for _ in range(n)]
        self.extra_jitter_us = [[0] * n for _ in range(n)]
        self.faulty_links = False
        for name in sorted(self.conditions):
            cond = self.conditions[name]
            for src, dst in cond.links:
                self.faulty_links = True
                self.blocked[src][dst] = self.blocked[src][dst] or cond.blocked
                # Independent losses compose: P(survive) multiplies.
                self.loss[src][dst] = 1 - (1 - self.loss[src][dst]) * (1 - cond.loss)
                self.duplicate[src][dst] = max(self.duplicate[src][dst], cond.duplicate)
                self.extra_jitter_us[src][dst] += cond.extra_jitter_us

    def is_blocked(self, src: int, dst: int) -> bool:
        return self.blocked[src][dst]

    # -- sending -----------------------------------------------------------------------------
    def send(self, src: int, dst: int, packet: tuple[Any, ...]) -> None:
        self.stats["sent"] += 1
        rng = self.rng
        if self.faulty_links:
            if self.blocked[src][dst]:
                self.stats["dropped_partition"] += 1
                return
            loss = self.loss[src][dst]
            if loss and rng.random() < loss:
                self.stats["dropped_loss"] += 1
                return
            dup = self.duplicate[src][dst]
            if dup and rng.random() < dup:
                self.stats["duplicated"] += 1
                self.queue.after(self._delay_us(src, dst), self.deliver, dst, src, packet)
        delay_us = self._delay_us(src, dst)
        if self.rewriter is not None and rng.random() < self.rewrite_rate:
            forged = self.rewriter(src, dst, packet)
            if forged is not None:  # the forgery overtakes the genuine packet
                self.stats["forged"] = self.stats.get("forged", 0) + 1
                self.queue.after(delay_us // 2, self.deliver, dst, src, forged)
        self.queue.after(delay_us, self.deliver, dst, src, packet)

    def send_many(self, src: int, dsts: Iterable[int], packet: tuple[Any, ...]) -> None:
        if self.faulty_links or self.rewriter is not None:
            for dst in dsts:
                self.send(src, dst, packet)
            return
        # A whole link set: `send` for each destination, the same draws in the same order
        # (no loss, duplication, extra jitter or forgery to draw for), one call for all.
        dsts = list(dsts)
        self.stats["sent"] += len(dsts)
        base_us, jitter_us, random = self.base_us[src], self.jitter_us[src], self.rng.random
        self.queue.after_each(self.deliver, [
            (base_us[dst] + floor(random() * jitter_us[dst]), (dst, src, packet)) for dst in dsts])

    def _delay_us(self, src: int, dst: int) -> int:
        """floor, not int(): the same value for a delay (>= 0), and about half the cost."""
        jitter = self.jitter_us[src][dst] + self.extra_jitter_us[src][dst]
        return self.base_us[src][dst] + floor(self.rng.random() * jitter)


def links_between(group_a: Iterable[int], group_b: Iterable[int],
                  both_ways: bool = True) -> tuple[tuple[int, int], ...]:
    """Directed links from a to b (and back when `both_ways`), in a stable order."""
    a, b = sorted(set(group_a)), sorted(set(group_b))
    links = [(s, d) for s in a for d in b if s != d]
    if both_ways:
        links += [(d, s) for s, d in links]
    return tuple(sorted(set(links)))


def links_touching(nodes: Iterable[int], n: int) -> tuple[tuple[int, int], ...]:
    """Every directed link into or out of `nodes`."""
    chosen = set(nodes)
    return tuple((s, d) for s in range(n) for d in range(n)
                 if s != d and (s in chosen or d in chosen))


def all_links(n: int) -> tuple[tuple[int, int], ...]:
    return tuple((s, d) for s in range(n) for d in range(n) if s != d)


class SharedSigned(wire.Signed):
    """A message as the simulated wire delivers it to its receivers: one object for all.

    Every receiver checks the signature over the same bytes; computing them once per
    message instead of once per receiver is a pure memo (the bytes are a function of
    the frozen body) and takes a quarter off a 100-replica run. Nothing else differs.
    """

    def signing_bytes(self, chain_id: str) -> bytes:
        memo = self.__dict__.get("_signing_memo")
        if memo is None or memo[0] != chain_id:
            memo = (chain_id, wire.signing_bytes(self.body, chain_id))
            object.__setattr__(self, "_signing_memo", memo)
        return memo[1]


def over_the_wire(msg: wire.Signed, encoded: bytes | None = None) -> SharedSigned:
    """Encode (unless `encoded` is given) and decode, as a real link would: a codec bug
    shows up as a finding."""
    encoded = encoded if encoded is not None else wire.encode(msg)
    shared = wire.decode(encoded, SharedSigned)
    # Our encoder is deterministic: re-encoding the decoded copy gives these same bytes,
    # so its receivers (WAL records, certificates) need not compute them again.
    shared.__dict__["_encoded"] = encoded
    return shared
