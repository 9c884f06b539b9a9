"""The fault plan: everything that goes wrong in one run, drawn up front from the seed.

A plan is a list of timed episodes (crash, pause, partition, one-way block, link loss,
delay storm, duplication), each with a start and an end inside the safety phase, plus
the replicas that are Byzantine for the whole run and how they lie. Generating the plan
before the run (instead of rolling dice as it goes) is what makes it printable: a
failing seed comes with the story of what was done to the cluster.

Which faults are allowed is a `FaultMix`. The "normal" mix keeps to what the normal
case survives without a view change (the view-0 primary is never faulty); the "full"
mix adds primary faults and arbitrary splits for when the view change is in; "collude"
is the negative control: f+1 Byzantine replicas that fork the honest ones.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from consensus.quorum import max_faulty
from node.byzantine import BEHAVIOURS
from ipchain.sim.network import LinkCondition, all_links, links_between, links_touching

REPLICA_KINDS = ("crash", "pause", "partition", "oneway", "loss")
"""Episodes that hit chosen faulty replicas only."""
NETWORK_KINDS = ("delay", "duplicate")
"""Episodes that hit every link but lose nothing, so they count against no replica."""
SPLIT_KIND = "split"
"""A random bipartition of the whole cluster: more than f replicas cut off (full mix)."""
BACKUP_BEHAVIOURS = tuple(name for name in BEHAVIOURS if name != "collude")
"""The behaviours of node/byzantine.py a lone liar uses; `collude` needs f+1 of them."""


@dataclass(frozen=True)
class FaultMix:
    name: str
    kinds: tuple[str, ...] = REPLICA_KINDS + NETWORK_KINDS
    behaviours: tuple[str, ...] = ()
    byzantine_probability: float = 0.0
    """Chance that each faulty replica is Byzantine (for the whole run)."""
    faulty: int | None = None
    """How many replicas the plan may fault; None means f = (n - 1) // 3."""
    primary_faults: bool = False
    """May the view-0 primary be faulty? Needs a working view change to stay live."""
    max_episodes: int = 6

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(REPLICA_KINDS + NETWORK_KINDS + (SPLIT_KIND,))
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}")
        strange = sorted(set(self.behaviours) - set(BEHAVIOURS))
        if strange:
            raise ValueError(f"unknown Byzantine behaviours {strange}; "
                             f"known: {', '.join(BEHAVIOURS)}")


MIXES: dict[str, FaultMix] = {
    "none": FaultMix("none", kinds=(), faulty=0, max_episodes=0),
    "normal": FaultMix("normal", behaviours=BACKUP_BEHAVIOURS, byzantine_probability=0.25),
    "full": FaultMix("full", kinds=REPLICA_KINDS + NETWORK_KINDS + (SPLIT_KIND,),
                     behaviours=BACKUP_BEHAVIOURS, byzantine_probability=0.25,
                     primary_faults=True),
    "collude": FaultMix("collude", kinds=NETWORK_KINDS, behaviours=("collude",),
                        byzantine_probability=1.0, primary_faults=True, max_episodes=2),
}
"""`collude` leaves `faulty` to the caller's f+1 (see `negative_control_mix`)."""


def negative_control_mix(n: int) -> FaultMix:
    return replace(MIXES["collude"], faulty=max_faulty(n) + 1)


@dataclass(frozen=True)
class Episode:
    start_ms: int
    end_ms: int
    kind: str
    targets: tuple[int, ...] = ()
    rate: float = 0.0
    """Loss or duplication probability; for `delay` the extra jitter is `jitter_us`."""
    jitter_us: int = 0
    direction: str = ""
    """For `oneway`: "out" (targets cannot send) or "in" (targets cannot hear)."""
    torn: bool = False
    """For `crash`: die in the middle of the next step's actions — after its WAL write,
    before some of its sends and executions — instead of between steps."""

    def describe(self) -> str:
        what = {"loss": f" p={self.rate:.2f}", "duplicate": f" p={self.rate:.2f}",
                "delay": f" +jitter {self.jitter_us // 1000}ms", "oneway": f" {self.direction}",
                "crash": " torn (mid-step)" if self.torn else ""}
        return (f"{self.start_ms:>6}..{self.end_ms:<6}ms {self.kind:<9}"
                f"{list(self.targets) if self.targets else 'all links'}{what.get(self.kind, '')}")

    def to_value(self) -> dict[str, Any]:
        return {"start_ms": self.start_ms, "end_ms": self.end_ms, "kind": self.kind,
                "targets": list(self.targets), "rate": round(self.rate, 4),
                "jitter_us": self.jitter_us, "direction": self.direction, "torn": self.torn}


@dataclass(frozen=True)
class FaultPlan:
    seed: int
    mix: str
    faulty: tuple[int, ...]
    byzantine: dict[int, str] = field(default_factory=dict)
    episodes: tuple[Episode, ...] = ()

    def is_honest(self, index: int) -> bool:
        """The checkers trust every replica that is not Byzantine; a crash is honest."""
        return index not in self.byzantine

    def describe(self) -> str:
        lines = [f"fault plan (seed {self.seed}, mix {self.mix}): faulty replicas "
                 f"{list(self.faulty)}"]
        for index in sorted(self.byzantine):
            lines.append(f"  byzantine replica {index}: {self.byzantine[index]}")
        lines += [f"  {e.describe()}" for e in self.episodes] or ["  (no timed episodes)"]
        return "\n".join(lines)

    def to_value(self) -> dict[str, Any]:
        return {"seed": self.seed, "mix": self.mix, "faulty": list(self.faulty),
                "byzantine": {str(k): v for k, v in sorted(self.byzantine.items())},
                "episodes": [e.to_value() for e in self.episodes]}


def generate_plan(seed: int, n: int, mix: FaultMix, duration_ms: int) -> FaultPlan:
    """Draw the whole plan from the seed: who is faulty, who lies, what happens when."""
    rng = random.Random(f"ipchain-sim/{seed}/faults")
    faulty = _choose_faulty(rng, n, mix)
    byzantine: dict[int, str] = {}
    for index in faulty:
        if mix.behaviours and rng.random() < mix.byzantine_probability:
            byzantine[index] = rng.choice(mix.behaviours)
    episodes = []
    count = rng.randint(1, mix.max_episodes) if mix.max_episodes and mix.kinds else 0
    for _ in range(count):
        episode = _episode(rng, n, mix, faulty, duration_ms)
        if episode is not None:
            episodes.append(episode)
    episodes.sort(key=lambda e: (e.start_ms, e.end_ms, e.kind, e.targets))
    return FaultPlan(seed, mix.name, tuple(faulty), byzantine, tuple(episodes))


def _choose_faulty(rng: random.Random, n: int, mix: FaultMix) -> list[int]:
    count = max_faulty(n) if mix.faulty is None else mix.faulty
    count = max(0, min(count, n))
    if "collude" in mix.behaviours and count:
        # The fork needs the primary that proposes: replica 0 leads view 0.
        return sorted([0] + rng.sample(range(1, n), min(count - 1, n - 1)))
    candidates = list(range(n)) if mix.primary_faults else list(range(1, n))
    return sorted(rng.sample(candidates, min(count, len(candidates))))


def _episode(rng: random.Random, n: int, mix: FaultMix, faulty: list[int],
             duration_ms: int) -> Episode | None:
    kind = rng.choice(mix.kinds)
    start = rng.randrange(0, max(1, duration_ms * 4 // 5))
    length = rng.randint(max(1, duration_ms // 20), max(2, duration_ms * 2 // 5))
    end = min(start + length, duration_ms)
    if kind in NETWORK_KINDS:
        if kind == "delay":
            return Episode(start, end, kind, jitter_us=rng.randint(5_000, 60_000))
        return Episode(start, end, kind, rate=rng.uniform(0.05, 0.4))
    if kind == SPLIT_KIND:
        side = sorted(rng.sample(range(n), rng.randint(1, n - 1)))
        return Episode(start, end, kind, tuple(side))
    if not faulty:
        return None
    targets = tuple(sorted(rng.sample(faulty, rng.randint(1, len(faulty)))))
    if kind == "loss":
        return Episode(start, end, kind, targets, rate=rng.uniform(0.1, 0.9))
    if kind == "oneway":
        return Episode(start, end, kind, targets, direction=rng.choice(("out", "in")))
    if kind == "crash":
        return Episode(start, end, kind, targets, torn=rng.random() < 0.5)
    return Episode(start, end, kind, targets)


# -- applying a plan -------------------------------------------------------------------------
class FaultTarget(Protocol):
    """What the simulation exposes to the injector."""

    n: int

    def crash(self, index: int, torn: bool = False) -> None: ...

    def restart(self, index: int) -> None: ...

    def pause(self, index: int) -> None: ...

    def unpause(self, index: int) -> None: ...

    def set_link_condition(self, name: str, condition: LinkCondition | None) -> None: ...


def link_condition(episode: Episode, n: int) -> LinkCondition | None:
    """The network side of an episode; None for crash and pause."""
    targets, others = episode.targets, [i for i in range(n) if i not in episode.targets]
    if episode.kind in ("partition", SPLIT_KIND):
        return LinkCondition(links_between(targets, others), blocked=True)
    if episode.kind == "oneway":
        src, dst = (targets, others) if episode.direction == "out" else (others, targets)
        return LinkCondition(links_between(src, dst, both_ways=False), blocked=True)
    if episode.kind == "loss":
        return LinkCondition(links_touching(targets, n), loss=episode.rate)
    if episode.kind == "delay":
        return LinkCondition(all_links(n), extra_jitter_us=episode.jitter_us)
    if episode.kind == "duplicate":
        return LinkCondition(all_links(n), duplicate=episode.rate)
    return None


def start_episode(target: FaultTarget, number: int, episode: Episode) -> None:
    if episode.kind == "crash":
        for index in episode.targets:
            target.crash(index, episode.torn)
    elif episode.kind == "pause":
        for index in episode.targets:
            target.pause(index)
    else:
        target.set_link_condition(f"episode-{number}", link_condition(episode, target.n))


def end_episode(target: FaultTarget, number: int, episode: Episode) -> None:
    if episode.kind == "crash":
        for index in episode.targets:
            target.restart(index)
    elif episode.kind == "pause":
        for index in episode.targets:
            target.unpause(index)
    else:
        target.set_link_condition(f"episode-{number}", None)
