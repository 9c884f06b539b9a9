"""One seed, start to finish: build the cluster, run the safety and liveness phases, check.

The safety phase submits `blocks` bursts of client transactions, one every
`block_interval_ms`, while the fault plan plays out. At its end every fault heals:
crashed replicas restart (restored from their WAL, as a real node is), paused ones
resume, the network is whole again; Byzantine replicas stay Byzantine. The liveness
phase submits a few more bursts and runs until all of them are sent, every request is
acknowledged and the honest replicas agree on one height and one view with none in a
view change, or until the bound passes (the settle bound of view convergence). Then
ipchain.checks judges the recorded history (ipchain/sim/record.py). Everything is a function of the seed, so
`run_seed(seed, config)` twice gives the same deliveries, roots and verdicts.
"""

from __future__ import annotations

import functools
import hashlib
import operator
import random
import time
import traceback
from dataclasses import dataclass, field, fields, replace
from typing import Any, Callable

import nacl.signing

from consensus.crypto import Ed25519Keyring, FastKeyring
from consensus.quorum import max_faulty
from consensus.replica import Replica, ReplicaConfig
from contracts.genesis import init_state
from contracts.tx import Transaction
from node.byzantine import HONEST, Behaviour, make_behaviour
from node.chain import BatchHashes
from node.engine import Storage
from ipchain.checks import History, Violation, run_checks
from ipchain.sim.clock import US_PER_MS, EventQueue, SimClock
from ipchain.sim.faults import (MIXES, FaultMix, FaultPlan, end_episode, generate_plan,
                             start_episode)
from ipchain.sim.execshare import SharedExecution
from ipchain.sim.host import FailStop, Host
from ipchain.sim.record import history_of
from ipchain.sim.network import LatencyModel, LinkCondition, Network
from ipchain.sim.rewrite import UnsignedRewriter
from ipchain.sim.memo import SharedVerdicts, SharingKeyring
from ipchain.sim.workload import (FAST_TX_SIGNATURES, GENESIS_TIME_MS, Ack, Client, ClientTx,
                               build_genesis, make_bursts, trusted_signatures, validator_seed)

CLIENT_LATENCY_US = 1_000


@dataclass(frozen=True)
class SimConfig:
    nodes: int = 4
    blocks: int = 50
    """Client bursts in the safety phase; each normally becomes one block."""
    txs_per_block: int = 4
    clients: int = 8
    block_interval_ms: int = 50
    liveness_blocks: int = 5
    liveness_bound_ms: int = 30_000
    """After healing, new requests must commit (and replicas converge) within this."""
    retry_ms: int = 1_000
    mix: FaultMix = MIXES["normal"]
    ed25519: bool = False
    """Real Ed25519 for replica messages and transaction checks; else the fast labelled path."""
    request_timeout_ms: int = 1_000
    checkpoint_interval_blocks: int = 10
    batch_delay_ms: int = 20
    max_clock_offset_ms: int = 50
    latency: LatencyModel = LatencyModel()
    max_events: int | None = None
    rewrite_rate: float = 0.0
    """Share of packets a keyless adversary also delivers, ahead of the genuine one, with
    their unsigned parts rewritten (`ipchain.sim.rewrite`); it must change nothing."""
    chain_id: str = "ipchain-sim"
    nondeterministic_replica: int = -1
    """A replica whose contract execution is non-deterministic (a simulator fault the
    execution certificates must catch), or -1 for none."""
    share_execution: bool = True
    """A block is executed once per seed and replayed by each replica whose inputs are
    the same (ipchain/sim/execshare.py); off, every replica executes every block. No
    outcome depends on it: only the CPU a seed costs."""
    cli_flags: str = ""
    """The `ipchain sim` flags this config came from, so a failure prints its replay line."""

    @property
    def keyring_label(self) -> str:
        return "ed25519" if self.ed25519 else FastKeyring.label

    def event_budget(self) -> int:
        """Generous: a normal block costs ~3 n^2 events; beyond this it is a livelock."""
        blocks = self.blocks + self.liveness_blocks
        return self.max_events or 400 * self.nodes ** 2 * blocks + 200_000

    def summary(self) -> dict[str, Any]:
        return {"nodes": self.nodes, "blocks": self.blocks, "txs_per_block": self.txs_per_block,
                "mix": self.mix.name, "faulty": self.mix.faulty,
                "behaviours": list(self.mix.behaviours),
                "keyring": self.keyring_label,
                "tx_signatures": "ed25519" if self.ed25519 else FAST_TX_SIGNATURES}


@dataclass
class RunResult:
    seed: int
    config: SimConfig
    plan: FaultPlan
    violations: list[Violation]
    stats: dict[str, Any] = field(default_factory=dict)
    digests: dict[int, list[str]] = field(default_factory=dict)
    """Per replica, the hex digests it delivered in sequence order (for replay checks)."""
    fingerprint: str = ""
    finals: list[dict[str, Any]] = field(default_factory=list)
    """Per replica at the end: up, height, view, in_view_change (what view_convergence judged)."""

    @property
    def ok(self) -> bool:
        return not self.violations

    def describe(self) -> str:
        verdict = "OK" if self.ok else f"{len(self.violations)} VIOLATION(S)"
        lines = [f"seed {self.seed}: {verdict}  ({self.config.nodes} replicas, "
                 f"{self.config.blocks} blocks, mix {self.config.mix.name}, "
                 f"keyring {self.config.keyring_label})", self.plan.describe()]
        lines.append("outcome: " + ", ".join(f"{k}={v}" for k, v in sorted(self.stats.items())))
        lines.append("final: " + ", ".join(
            f"replica {f['replica']} h={f['height']} v={f['view']}"
            + (" (in view change)" if f["in_view_change"] else "") + ("" if f["up"] else " down")
            for f in self.finals))
        lines += [f"  {v.describe()}" for v in self.violations]
        if not self.ok:
            lines.append(f"replay: {replay_hint(self.seed, self.config)}")
        return "\n".join(lines)

    def to_value(self) -> dict[str, Any]:
        return {"seed": self.seed, "ok": self.ok, "config": self.config.summary(),
                "plan": self.plan.to_value(), "violations": [v.to_json() for v in self.violations],
                "stats": self.stats, "finals": self.finals, "fingerprint": self.fingerprint}


def replay_hint(seed: int, cfg: SimConfig) -> str:
    if cfg.cli_flags:
        return f"ipchain sim --seed {seed} {cfg.cli_flags}"
    return f"ipchain.sim.run.run_seed({seed}, {cfg!r})"


class Simulation:
    """The whole cluster for one seed; also the `HostEnv` and `FaultTarget` of its parts."""

    def __init__(self, seed: int, cfg: SimConfig, plan: FaultPlan | None = None,
                 make_storage: Callable[[int], Storage] | None = None) -> None:
        self.seed, self.cfg, self.n = seed, cfg, cfg.nodes
        self.make_storage = make_storage
        """Replica index -> its store; None: in memory (a test passes SQLite files)."""
        if self.n < 1:
            raise ValueError("a cluster needs at least one replica")
        self.queue = EventQueue()
        self.safety_ms = cfg.blocks * cfg.block_interval_ms
        self.plan = plan or generate_plan(seed, self.n, cfg.mix, self.safety_ms)
        clock_rng = self._rng("clock")
        offsets = [clock_rng.randint(0, cfg.max_clock_offset_ms) for _ in range(self.n)]
        self.clock = SimClock(self.queue, GENESIS_TIME_MS + 1_000, offsets)
        self.now_ms = self.clock.now_ms  # type: ignore[method-assign]
        """`now_ms` below without its Python frame (every replica step reads it)."""
        self.network = Network(self.n, self._rng("network"), self.queue, self._deliver, cfg.latency)
        if cfg.rewrite_rate:
            self.network.rewriter = UnsignedRewriter(self._rng("rewrite"), self.n)
            self.network.rewrite_rate = cfg.rewrite_rate
        self.bursts = make_bursts(self._rng("workload"), cfg.chain_id, cfg.clients,
                                  cfg.blocks + cfg.liveness_blocks, cfg.txs_per_block)
        self.client = Client(self._rng("client"), self.n, cfg.retry_ms, self._client_send,
                             self.plan.is_honest, self.clock.sim_ms)
        self.on_receipt = self.client.on_receipt  # type: ignore[method-assign]
        """`on_receipt` below without its Python frame (every receipt of every replica)."""
        self.hosts = self._build_hosts()
        self.phase = "safety"
        self.heal_ms = self.safety_ms
        self.bursts_unsent = len(self.bursts)
        """The run may not end before the last liveness burst is sent: else a cluster that
        is quiet right after healing ends it with "new requests commit" judged on none."""

    def _rng(self, purpose: str) -> random.Random:
        return random.Random(f"ipchain-sim/{self.seed}/{purpose}")

    def _build_hosts(self) -> list[Host]:
        cfg = self.cfg
        genesis = self.genesis = build_genesis(cfg.chain_id, self.n, cfg.clients)
        genesis_state = init_state(genesis)
        self.genesis_supply_bpc = genesis_state.get("supply/BPC", 0)
        signature_ok = Transaction.signature_ok if cfg.ed25519 else trusted_signatures(self.bursts)
        tx_cache = {c.id_bytes: c.tx for burst in self.bursts for c in burst}
        keyring = _keyring_factory(self.n, cfg.ed25519)
        colluders = sorted(i for i, b in self.plan.byzantine.items() if b == "collude")
        fooled = _collusion_audience(self._rng("conspiracy"), colluders, self.n)
        self.shared_execution = SharedExecution() if cfg.share_execution else None
        # One for all replicas and their executors: the simulated wire hands one decoded
        # batch to every receiver, and its ids and root are a pure function of its bytes
        # (by content: the primary's own proposal and that copy are hashed once, not
        # twice); kept across simulated restarts.
        hashes = BatchHashes(keep_batches=64 * self.n, by_content=True)
        hosts = []
        for i in range(self.n):
            rcfg = ReplicaConfig(n=self.n, index=i, chain_id=cfg.chain_id,
                                 batch_delay_ms=cfg.batch_delay_ms,
                                 checkpoint_interval_blocks=cfg.checkpoint_interval_blocks,
                                 log_window_blocks=4 * cfg.checkpoint_interval_blocks,
                                 request_timeout_ms=cfg.request_timeout_ms)
            behaviour = (_behaviour(self.plan.byzantine[i], i, self.n,
                                    self._rng(f"byzantine/{i}"), fooled)
                         if i in self.plan.byzantine else HONEST)
            make = functools.partial(Replica, rcfg, keyring(i), hashes.digest_batch)
            storage = self.make_storage(i) if self.make_storage else None
            hosts.append(Host(i, self, make, genesis, signature_ok, tx_cache, behaviour,
                              self._rng(f"host/{i}"), storage, self.shared_execution))
            if i == cfg.nondeterministic_replica:
                hosts[-1].plant_nondeterminism(self._rng(f"nondeterminism/{i}"))
        return hosts

    # -- HostEnv -----------------------------------------------------------------------------
    def now_ms(self, index: int) -> int:
        return self.clock.now_ms(index)

    def on_receipt(self, host: int, tx_id: str, height: int, ok: bool, code: str) -> None:
        self.client.on_receipt(host, tx_id, height, ok, code)

    def _deliver(self, dst: int, src: int, packet: tuple[Any, ...]) -> None:
        self.hosts[dst].on_packet(src, packet)

    def _client_send(self, host: int, txs: list[ClientTx]) -> None:
        self.queue.after(CLIENT_LATENCY_US, self.hosts[host].admit, tuple(txs), True)

    # -- FaultTarget -----------------------------------------------------------------------------
    def crash(self, index: int, torn: bool = False) -> None:
        self.hosts[index].crash(torn)

    def restart(self, index: int) -> None:
        self.hosts[index].restart()

    def pause(self, index: int) -> None:
        self.hosts[index].pause()

    def unpause(self, index: int) -> None:
        self.hosts[index].unpause()

    def set_link_condition(self, name: str, condition: LinkCondition | None) -> None:
        if condition is None:
            self.network.remove_condition(name)
        else:
            self.network.add_condition(name, condition)

    # -- the run -----------------------------------------------------------------------------
    def _schedule(self) -> None:
        cfg, at = self.cfg, self.queue.at
        for i, burst in enumerate(self.bursts[:cfg.blocks]):
            at(i * cfg.block_interval_ms * US_PER_MS, self._submit, burst, "safety")
        for number, episode in enumerate(self.plan.episodes):
            at(episode.start_ms * US_PER_MS, start_episode, self, number, episode)
            at(episode.end_ms * US_PER_MS, end_episode, self, number, episode)
        at(self.safety_ms * US_PER_MS, self._heal)
        for j, burst in enumerate(self.bursts[cfg.blocks:]):
            at((self.safety_ms + j * cfg.block_interval_ms) * US_PER_MS, self._submit,
               burst, "liveness")
        self._retry_tick()

    def _submit(self, burst: list[ClientTx], phase: str) -> None:
        self.bursts_unsent -= 1
        self.client.submit(burst, phase)

    def _retry_tick(self) -> None:
        self.client.retry_due()
        self.queue.after(self.cfg.retry_ms * US_PER_MS // 2, self._retry_tick)

    def _heal(self) -> None:
        """End of the safety phase: every fault stops; Byzantine replicas stay Byzantine."""
        self.phase, self.heal_ms = "liveness", self.clock.sim_ms()
        self.network.heal()
        for host in self.hosts:
            host.heal()

    def _is_done(self) -> bool:
        if self.phase != "liveness" or self.bursts_unsent or self.client.unacked():
            return False
        live = [h for h in self.hosts
                if h.honest and h.up and h.replica is not None and h.diverged is None]
        top = max((a.height for a in self.client.acked.values()), default=0)
        return (all(h.chain.height >= top for h in live) and len({h.chain.height for h in live}) <= 1
                and len({h.replica.view for h in live}) <= 1
                and not any(h.replica.in_view_change for h in live))

    def run(self) -> RunResult:
        started = time.perf_counter()
        self._schedule()
        end_us = (self.safety_ms + self.cfg.liveness_bound_ms) * US_PER_MS
        violations: list[Violation] = []
        try:
            if not self.queue.run_until(end_us, self._is_done, self.cfg.event_budget()):
                violations.append(Violation(
                    "budget", f"event budget {self.cfg.event_budget()} spent by "
                              f"{self.clock.sim_ms()} ms: a message storm or livelock",
                    seed=self.seed))
        except FailStop as exc:  # the engine's error policy: fail-stop, with the reason
            violations.append(Violation(
                "exception", f"{exc} at {self.clock.sim_ms()} ms", seed=self.seed))
        except Exception as exc:  # a crash of the code under test is a finding, not a test error
            where = traceback.extract_tb(exc.__traceback__)[-1]
            violations.append(Violation(
                "exception", f"{exc!r} at {where.filename}:{where.lineno} ({where.name}) "
                             f"at {self.clock.sim_ms()} ms", seed=self.seed))
        history = self.history()
        violations += run_checks(history, self.seed)[0]
        result = self._result(violations, time.perf_counter() - started)
        result.finals = [{"replica": r.index, "up": r.up, "height": r.height, "view": r.view,
                          "in_view_change": r.in_view_change} for r in history.replicas]
        return result

    def release(self) -> None:
        """Drop the run's objects once it is over. They form cycles (the hosts and this
        simulation, engines and their hosts, the queue's callbacks), so otherwise only a
        garbage collection frees them, which must first trace every one of them (~3 %
        of a seed); broken, reference counting frees them at once and the collection
        after a seed (`sweep.run_one`) finds almost nothing left. Nothing may use the
        simulation afterwards (`run_seed` keeps it to itself)."""
        for host in self.hosts:
            host.release()
        vars(self).clear()

    # -- results -----------------------------------------------------------------------------
    def history(self) -> History:
        return history_of(self.hosts, self.client, self.genesis["genesis_time_ms"],
                          self.genesis_supply_bpc, self.heal_ms, self.cfg.liveness_bound_ms,
                          max_faulty(self.n) if self.plan.byzantine else 0)

    def _result(self, violations: list[Violation], wall_s: float) -> RunResult:
        digests = {h.index: [b.digest.hex() for b in h.chain.blocks[1:]] for h in self.hosts}
        honest = [h for h in self.hosts if h.honest]
        views = [h.replica.view for h in honest if h.replica is not None]
        stats: dict[str, Any] = {
            "height_max": max((h.chain.height for h in honest), default=0),
            "height_min": min((h.chain.height for h in honest), default=0),
            "txs_submitted": len(self.client.submissions), "txs_acked": len(self.client.acked),
            "max_view": max(views, default=0), "sim_ms": self.clock.sim_ms(),
            "events": self.queue.events_run, "wall_s": round(wall_s, 3),
            "evidence": sum(len(h.evidence) for h in honest),
            "view_changes": sum(h.replica.stats["view_changes_started"] for h in honest
                                if h.replica is not None),
            **{f"net_{k}": v for k, v in sorted(self.network.stats.items())},
        }
        per_host = [h.stats for h in self.hosts]
        for key in sorted({key for host_stats in per_host for key in host_stats}):
            stats[key] = sum(host_stats.get(key, 0) for host_stats in per_host)
        fingerprint = hashlib.sha256(repr((sorted(digests.items()),
                                           [h.chain.roots[-1].hex() for h in self.hosts],
                                           sorted((k, _plain(v)) for k, v in self.client.acked.items()),
                                           [v.to_json() for v in violations],
                                           {k: v for k, v in stats.items() if k != "wall_s"}
                                           )).encode()).hexdigest()
        return RunResult(self.seed, self.cfg, self.plan, violations, stats, digests, fingerprint)


_ACK_FIELDS = tuple(f.name for f in fields(Ack))
_ack_values = operator.attrgetter(*_ACK_FIELDS)


def _plain(ack: Ack) -> dict[str, Any]:
    """`dataclasses.asdict(ack)` (same keys, order and values: all scalars), without its
    deep copy: the fingerprint takes one per acknowledged transaction."""
    return dict(zip(_ACK_FIELDS, _ack_values(ack)))


def _collusion_audience(rng: random.Random, colluders: list[int], n: int) -> frozenset[int]:
    """The honest replicas every colluder tells the second story (the rest hear the first)."""
    honest = [i for i in range(n) if i not in colluders]
    rng.shuffle(honest)
    return frozenset(honest[len(honest) // 2:])


def _behaviour(name: str, index: int, n: int, rng: random.Random,
               fooled: frozenset[int]) -> Behaviour:
    """A lone equivocator lies to a random half of its peers; colluders share theirs."""
    if name == "collude":
        return make_behaviour(name, rng, audience=fooled)
    if name == "equivocate":
        peers = [i for i in range(n) if i != index]
        return make_behaviour(name, rng, audience=frozenset(rng.sample(peers, len(peers) // 2)))
    return make_behaviour(name, rng)


def _keyring_factory(n: int, ed25519: bool):
    """Each replica's keyring; all of one run share their good verdicts (memo.py)."""
    verdicts = SharedVerdicts()
    if ed25519:
        keys = [nacl.signing.SigningKey(validator_seed(i)) for i in range(n)]
        public = [bytes(k.verify_key) for k in keys]
        return lambda i: SharingKeyring(Ed25519Keyring(i, keys[i], public), verdicts)
    # FastKeyring is labelled "fast-insecure-sim": forgeable by anyone holding the table.
    secrets = [hashlib.sha256(f"ipchain-sim/replica-secret/{i}".encode()).digest() for i in range(n)]
    return lambda i: SharingKeyring(FastKeyring(i, secrets), verdicts)


def run_seed(seed: int, cfg: SimConfig = SimConfig(), plan: FaultPlan | None = None) -> RunResult:
    sim = Simulation(seed, cfg, plan)
    try:
        return sim.run()
    finally:
        sim.release()


# -- choosing the fault mix ---------------------------------------------------------------------
def resolve_mix(name: str) -> FaultMix:
    """A named mix; never a silent fallback (a broken view change must fail `full`)."""
    if name == "collude":
        raise ValueError("use negative_control_mix(n) or --byzantine collude --faulty F")
    return MIXES[name]


def mix_with(base: FaultMix, faulty: int | None, behaviours: tuple[str, ...] | None,
             n: int) -> FaultMix:
    """The CLI's overrides: how many replicas are faulty, and which lies they tell."""
    mix = base if faulty is None else replace(base, faulty=faulty)
    if behaviours and tuple(behaviours) != base.behaviours:
        mix = replace(mix, name=f"{base.name}+{'+'.join(behaviours)}", behaviours=tuple(behaviours),
                      byzantine_probability=1.0,
                      primary_faults=mix.primary_faults or "collude" in behaviours)
    if mix.faulty is not None and mix.faulty > max_faulty(n):
        mix = replace(mix, name=f"{mix.name}+over-f")
    return mix
