"""Fault injection between transport and replica (the admin API in node/admin.py drives it).

A rule table (drop / delay / duplicate / reorder by peer, direction and message kind,
each with a probability drawn from one seeded RNG), network partitions as groups of
replicas, and Byzantine behaviours of this node (equivocation, wrong digests, bad
signatures, muteness, view-change spam: the lies themselves are the classes of
node/byzantine.py, which the simulator runs too). Everything hangs off the two hooks the
runtime offers — `transport.outbound_filter(peer, wire_bytes)` and
`runtime.inbound_filter(signed)` — and both hooks are reset to None whenever nothing
is installed, so a node without faults pays one `if` per message and nothing else.

Delayed and reordered messages are re-injected past the filters (outbound straight
into the peer's link queue, inbound straight into the replica's event queue) with
`loop.call_later`, so a delay never blocks the replica and is never applied twice.

What a partition cuts: replica messages in both directions at both ends (every node is
told the same groups). Transaction relay and block fetches still pass: clients'
transactions keep spreading, and a cut-off replica only learns it is behind once
messages flow again.

Byzantine tampering re-signs with the node's own key (`runtime.replica.sign`): the
point is a replica that is faulty yet authentic, which honest peers cannot simply
drop as forged (except under `bad_signature`, which tests exactly that).
"""

from __future__ import annotations

import asyncio
import collections
import random
from dataclasses import dataclass
from typing import Any, Callable

from consensus import events as ev
from consensus import messages as wire
from node.byzantine import BEHAVIOURS, HONEST, Behaviour, make_behaviour
from node.chain import digest_batch

KINDS = frozenset(wire.KINDS)
ACTIONS = ("drop", "delay", "duplicate", "reorder")
DIRECTIONS = ("out", "in", "both")
DISTRIBUTIONS = ("fixed", "uniform", "normal", "exponential")
BYZANTINE_MODES = tuple(BEHAVIOURS)
MAX_DELAY_MS = 60_000


class FaultSpecError(ValueError):
    """An admin request that cannot be installed; the message names the field."""


# -- specs --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    id: int
    action: str
    direction: str = "out"
    peers: frozenset[int] | None = None
    """Peer indices the rule applies to (None: every peer)."""
    kinds: frozenset[str] | None = None
    """Message kinds PP, P, C, CP, VC, NV (None: every kind)."""
    probability: float = 1.0
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    distribution: str = "fixed"
    copies: int = 1
    """duplicate: extra copies sent."""
    window: int = 4
    """reorder: messages held before they are released in shuffled order..."""
    window_ms: float = 50.0
    """...or when this much time has passed since the first was held."""

    def matches(self, direction: str, peer: int, kind: str | None) -> bool:
        return ((self.direction == "both" or self.direction == direction)
                and (self.peers is None or peer in self.peers)
                and (self.kinds is None or kind in self.kinds))



@dataclass(frozen=True)
class Byzantine:
    """Which behaviour of node/byzantine.py this node runs, and its knobs (None: the
    behaviour's own default, the same as in the simulator)."""

    mode: str
    targets: frozenset[int] | None = None
    kinds: frozenset[str] | None = None
    probability: float | None = None
    interval_ms: int | None = None


def as_json(spec: Rule | Byzantine) -> dict[str, Any]:
    return {k: sorted(v) if isinstance(v, frozenset) else v for k, v in vars(spec).items()}


def _field(spec: dict[str, Any], name: str, kinds: tuple[type, ...], default: Any,
           where: str) -> Any:
    value = spec.get(name, default)
    if value is default:
        return value
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise FaultSpecError(f"{where}.{name} must be {'/'.join(k.__name__ for k in kinds)}")
    return value


def _number(spec: dict[str, Any], name: str, default: float, where: str,
            low: float = 0.0, high: float = float(MAX_DELAY_MS)) -> float:
    value = float(_field(spec, name, (int, float), default, where))
    if not low <= value <= high:
        raise FaultSpecError(f"{where}.{name} must be between {low:g} and {high:g}")
    return value


def _optional(spec: dict[str, Any], name: str, where: str, low: float, high: float,
              kind: type = float) -> Any:
    if spec.get(name) is None:
        return None
    return kind(_number(spec, name, 0.0, where, low, high))


def _index_set(spec: dict[str, Any], name: str, where: str) -> frozenset[int] | None:
    value = spec.get(name)
    if value is not None and (not isinstance(value, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)):
        raise FaultSpecError(f"{where}.{name} must be a list of replica indices")
    return None if value is None else frozenset(value)


def _kind_set(spec: dict[str, Any], where: str) -> frozenset[str] | None:
    value = spec.get("kinds")
    if value is not None and (not isinstance(value, list) or not set(value) <= KINDS):
        raise FaultSpecError(f"{where}.kinds must be a list drawn from {sorted(KINDS)}")
    return None if value is None else frozenset(value)


def _choice(spec: dict[str, Any], name: str, options: tuple[str, ...], default: str | None,
            where: str) -> str:
    value = spec.get(name, default)
    if value not in options:
        raise FaultSpecError(f"{where}.{name} must be one of {list(options)}, not {value!r}")
    return value


def _no_unknown(spec: Any, known: set[str], where: str) -> None:
    if not isinstance(spec, dict):
        raise FaultSpecError(f"{where} must be an object")
    unknown = sorted(set(spec) - known)
    if unknown:
        raise FaultSpecError(f"{where}: unknown field(s) {unknown}")


RULE_FIELDS = {"action", "direction", "peers", "kinds", "probability", "delay_ms",
               "jitter_ms", "distribution", "copies", "window", "window_ms"}


def parse_rule(spec: Any, rule_id: int, where: str = "rule") -> Rule:
    _no_unknown(spec, RULE_FIELDS, where)
    copies = _field(spec, "copies", (int,), 1, where)
    window = _field(spec, "window", (int,), 4, where)
    if not 1 <= copies <= 10 or not 2 <= window <= 1000:
        raise FaultSpecError(f"{where}: copies must be 1..10 and window 2..1000")
    return Rule(id=rule_id, action=_choice(spec, "action", ACTIONS, None, where),
                direction=_choice(spec, "direction", DIRECTIONS, "out", where),
                peers=_index_set(spec, "peers", where), kinds=_kind_set(spec, where),
                probability=_number(spec, "probability", 1.0, where, high=1.0),
                delay_ms=_number(spec, "delay_ms", 0.0, where),
                jitter_ms=_number(spec, "jitter_ms", 0.0, where),
                distribution=_choice(spec, "distribution", DISTRIBUTIONS, "fixed", where),
                copies=copies, window=window,
                window_ms=_number(spec, "window_ms", 50.0, where, low=1.0))


def parse_byzantine(spec: Any, where: str = "byzantine") -> Byzantine | None:
    _no_unknown(spec, {"mode", "targets", "kinds", "probability", "interval_ms"}, where)
    if spec.get("mode") in (None, "none", "honest"):
        return None
    return Byzantine(mode=_choice(spec, "mode", BYZANTINE_MODES, None, where),
                     targets=_index_set(spec, "targets", where), kinds=_kind_set(spec, where),
                     probability=_optional(spec, "probability", where, 0.0, 1.0),
                     interval_ms=_optional(spec, "interval_ms", where, 10.0, MAX_DELAY_MS, int))


def parse_partition(spec: Any) -> list[frozenset[int]]:
    if not isinstance(spec, list) or not all(isinstance(g, list) for g in spec):
        raise FaultSpecError("partition must be a list of groups (lists of replica indices)")
    groups = [_index_set({"group": g}, "group", "partition") or frozenset() for g in spec]
    seen: set[int] = set()
    for group in groups:
        if seen & group:
            raise FaultSpecError(f"partition: replicas {sorted(seen & group)} are in two groups")
        seen |= group
    return groups


# -- the engine ---------------------------------------------------------------------------
class FaultEngine:
    """The installed faults of one node and the two filters that enact them."""

    def __init__(self, runtime: Any, seed: int | None = None) -> None:
        self.runtime = runtime
        self.index: int = runtime.cfg.index
        self.seed = self.index if seed is None else seed
        self.rng = random.Random(self.seed)
        self.rules: list[Rule] = []
        self.partition: list[frozenset[int]] = []
        self.byzantine: Byzantine | None = None
        self.counters: collections.Counter[str] = collections.Counter()
        self._next_id = 1
        self._held: dict[tuple[str, int], list[tuple[Any, Callable[[Any], None]]]] = {}
        self._flushers: dict[tuple[str, int], asyncio.TimerHandle] = {}
        self.host = NodeHost(runtime)
        self.behaviour: Behaviour = HONEST
        self._ticker: asyncio.TimerHandle | None = None

    # -- control ---------------------------------------------------------------------
    def install(self, spec: Any) -> list[int]:
        """Add what `spec` describes (validated in full before anything changes)."""
        _no_unknown(spec, {"seed", "rules", "partition", "byzantine"}, "request")
        rules_spec = spec.get("rules", [])
        if not isinstance(rules_spec, list):
            raise FaultSpecError("rules must be a list")
        seed = _field(spec, "seed", (int,), None, "request")
        rules = [parse_rule(r, self._next_id + k, f"rules[{k}]") for k, r in enumerate(rules_spec)]
        partition = parse_partition(spec["partition"]) if "partition" in spec else None
        byzantine = parse_byzantine(spec["byzantine"]) if "byzantine" in spec else False
        if seed is not None:
            self.seed, self.rng = seed, random.Random(seed)
        self._next_id += len(rules)
        self.rules.extend(rules)
        if partition is not None:
            self.partition = partition
        if byzantine is not False:
            self._set_byzantine(byzantine)
        self._refresh_hooks()
        return [r.id for r in rules]

    def clear(self, rule_id: int | None = None) -> bool:
        """Remove one rule, or everything (rules, partition, Byzantine mode)."""
        if rule_id is not None:
            before = len(self.rules)
            self.rules = [r for r in self.rules if r.id != rule_id]
            found = len(self.rules) < before
        else:
            self.rules, self.partition, found = [], [], True
            self._set_byzantine(None)
        self._flush_all()
        self._refresh_hooks()
        return found

    def describe(self) -> dict[str, Any]:
        return {"node": self.index, "seed": self.seed, "rules": [as_json(r) for r in self.rules],
                "partition": [sorted(g) for g in self.partition],
                "byzantine": as_json(self.byzantine) if self.byzantine else None,
                "active": self.is_active, "held": sum(len(v) for v in self._held.values()),
                "counters": dict(sorted(self.counters.items())),
                "replica_stats": dict(sorted(self.runtime.replica.stats.items())),
                "runtime_counters": dict(sorted(self.runtime.counters.items()))}

    @property
    def is_active(self) -> bool:
        return bool(self.rules or self.partition or self.byzantine)

    def _refresh_hooks(self) -> None:
        """Install the filters only while something is installed: zero cost otherwise."""
        active = self.is_active
        self.runtime.transport.outbound_filter = self.on_outbound if active else None
        self.runtime.inbound_filter = self.on_inbound if active else None

    def _set_byzantine(self, byzantine: Byzantine | None) -> None:
        """Swap in the behaviour the spec names (node/byzantine.py holds every lie)."""
        self.byzantine = byzantine
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        if byzantine is None:
            self.behaviour = HONEST
            return
        self.behaviour = make_behaviour(byzantine.mode, self.rng, byzantine.targets,
                                        byzantine.kinds, byzantine.probability,
                                        byzantine.interval_ms)
        if self.behaviour.tick_ms:
            self._ticker = asyncio.get_running_loop().call_later(
                self.behaviour.tick_ms / 1000, self._tick)

    def _count(self, what: str, direction: str, kind: str | None) -> None:
        self.counters[f"{what}:{direction}:{kind or '*'}"] += 1
        self.runtime.counters[f"fault_{what}:{direction}"] += 1

    # -- the filters -----------------------------------------------------------------
    def is_cut(self, peer: int) -> bool:
        if not self.partition:
            return False
        mine = next((g for g in self.partition if self.index in g), frozenset({self.index}))
        return peer not in mine

    def on_outbound(self, peer: int, data: bytes) -> list[bytes]:
        if self.is_cut(peer):
            self._count("partition", "out", None)
            return []
        msg: wire.Signed | None = None
        if self.byzantine is not None or any(r.kinds is not None for r in self.rules):
            try:
                msg = wire.decode(data)
            except wire.WireError:
                return [data]
        if self.byzantine is not None and msg is not None:
            tampered = self._byzantine_out(peer, msg)
            if tampered is None:
                return []
            if tampered is not msg:
                msg, data = tampered, wire.encode(tampered)
        kind = msg.body.KIND if msg is not None else None
        return self._apply_rules("out", peer, kind, data, lambda item: self._inject_out(peer, item))

    def on_inbound(self, msg: wire.Signed) -> list[wire.Signed]:
        if self.is_cut(msg.sender):
            self._count("partition", "in", msg.body.KIND)
            return []
        return self._apply_rules("in", msg.sender, msg.body.KIND, msg, self._inject_in)

    def _apply_rules(self, direction: str, peer: int, kind: str | None, item: Any,
                     inject: Callable[[Any], None]) -> list[Any]:
        copies, delays, reorder = 1, [], None
        for rule in self.rules:
            if not rule.matches(direction, peer, kind) or self.rng.random() >= rule.probability:
                continue
            self._count(rule.action, direction, kind)
            if rule.action == "drop":
                return []
            if rule.action == "duplicate":
                copies += rule.copies
            elif rule.action == "delay":
                delays.append(rule)
            else:
                reorder = rule
        if not delays and reorder is None:
            return [item] * copies
        loop = asyncio.get_running_loop()
        for _ in range(copies):
            deliver = inject if reorder is None else (
                lambda x, r=reorder: self._hold((direction, peer), r, x, inject))
            delay_ms = sum(self._sample_delay(r) for r in delays)
            if delay_ms > 0:
                loop.call_later(delay_ms / 1000, deliver, item)
            else:
                deliver(item)
        return []

    def _sample_delay(self, rule: Rule) -> float:
        if rule.distribution == "uniform":
            value = self.rng.uniform(rule.delay_ms - rule.jitter_ms, rule.delay_ms + rule.jitter_ms)
        elif rule.distribution == "normal":
            value = self.rng.gauss(rule.delay_ms, rule.jitter_ms)
        elif rule.distribution == "exponential":
            value = self.rng.expovariate(1.0 / rule.delay_ms) if rule.delay_ms > 0 else 0.0
        else:
            value = rule.delay_ms
        return min(max(0.0, value), MAX_DELAY_MS)

    def _hold(self, key: tuple[str, int], rule: Rule, item: Any,
              inject: Callable[[Any], None]) -> None:
        held = self._held.setdefault(key, [])
        held.append((item, inject))
        if len(held) >= rule.window:
            self._flush(key)
        elif key not in self._flushers:
            self._flushers[key] = asyncio.get_running_loop().call_later(
                rule.window_ms / 1000, self._flush, key)

    def _flush(self, key: tuple[str, int]) -> None:
        handle = self._flushers.pop(key, None)
        if handle is not None:
            handle.cancel()
        held = self._held.pop(key, [])
        self.rng.shuffle(held)
        for item, inject in held:
            inject(item)

    def _flush_all(self) -> None:
        for key in list(self._held):
            self._flush(key)

    def _inject_out(self, peer: int, data: bytes) -> None:
        link = self.runtime.transport.links.get(peer)
        if link is not None:
            link.put(link.messages, data)

    def _inject_in(self, msg: wire.Signed) -> None:
        self.runtime.events.put_nowait(ev.MessageArrived(msg))

    # -- Byzantine behaviour -----------------------------------------------------------
    def _byzantine_out(self, peer: int, msg: wire.Signed) -> wire.Signed | None:
        """What a faulty replica sends `peer` instead of `msg` (None: nothing)."""
        out = self.behaviour.outbound(self.host, msg, [peer])
        if not out:
            self._count(f"byz_{self.behaviour.name}", "out", msg.body.KIND)
            return None
        told = out[0][1]
        if told is not msg:
            self._count(f"byz_{self.behaviour.name}", "out", msg.body.KIND)
        return told

    def _tick(self) -> None:
        """The behaviour's spontaneous messages (view-change spam), then the next tick."""
        behaviour = self.behaviour
        if behaviour is HONEST or not behaviour.tick_ms:
            return
        for peer, msg in behaviour.on_tick(self.host):
            self._count(f"byz_{behaviour.name}", "out", msg.body.KIND)
            self._inject_out(peer, wire.encode(msg))
        self._ticker = asyncio.get_running_loop().call_later(behaviour.tick_ms / 1000, self._tick)


class NodeHost:
    """The node seen as a `node.byzantine.ByzantineHost`: its replica, key and batch hash."""

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.index: int = runtime.cfg.index
        self.n: int = len(runtime.cfg.peers) + 1

    @property
    def replica(self) -> Any:
        return self.runtime.replica

    def sign(self, body: Any) -> wire.Signed:
        return self.runtime.replica.sign(body)

    def digest(self, timestamp_ms: int, txs: tuple[bytes, ...]) -> bytes:
        return digest_batch(timestamp_ms, txs)
