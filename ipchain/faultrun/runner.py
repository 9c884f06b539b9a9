"""`ipchain faults run`: one scenario on a fresh cluster of real node processes.

The run reads as its recipe:
1. create a fresh cluster in OUT/cluster on free loopback ports and wait until it
   commits (the cluster's probe transaction is recorded);
2. offer client load to every node, recording each submission and its outcome, while
   the schedule applies its faults and a poller samples every node's height and view;
3. heal at `heal_at_s` (processes resumed and restarted, every rule cleared), then
   submit fresh transactions until one commits: the recovery time;
4. stop the load, wait (up to the settle bound) until the honest nodes agree on one
   height, state root and view with none in a view change, ask the nodes about every
   unknown outcome;
5. read every node's chain and balances, stop the cluster, run the checks, and write
   report.json, summary.txt and timeline.svg.
The cluster is stopped whatever happens (Ctrl-C and SIGTERM included).
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import aiohttp

from consensus.quorum import quorum
from ipchain.checks import Block, History, Liveness, ReplicaRecord, run_checks
from ipchain.sdk import client
from ipchain.cluster.manager import Cluster, ClusterError
from ipchain.faultrun import report as report_mod
from ipchain.faultrun.control import Controller
from ipchain.faultrun.load import LoadGenerator, wall_ms
from ipchain.faultrun.scenario import Scenario
from ipchain.cluster.procs import find_free_base_port, is_port_free
from node.proofs import valid_commit_signers

POLL_S = 0.5
PROGRESS_S = 2.0
FETCH_CONCURRENCY = 16
PROBE_TIMEOUT_MS = 2000


@dataclass
class Sample:
    t: float
    node: int
    up: bool
    height: int = 0
    view: int = 0
    primary: int | None = None


@dataclass
class RunData:
    """Everything the report and the picture need besides the History."""

    wall0_ms: int = 0
    samples: list[Sample] = field(default_factory=list)
    heal_t: float | None = None
    load_end_t: float | None = None
    end_t: float | None = None
    diagnostics: dict[str, Any] = field(default_factory=dict)
    """Per node: final /v1/status, fault counters, replica stats, runtime counters."""


class Clock:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self) -> float:
        return time.monotonic() - self.t0


class Poller:
    """Samples /v1/status of every node and prints a progress line now and then."""

    def __init__(self, urls: list[str], session: Any, clock: Clock, data: RunData,
                 log: Callable[[str], None], describe: Callable[[], str],
                 progress: Callable[[float, str], None] | None = None) -> None:
        self.urls, self.session, self.clock, self.data = urls, session, clock, data
        self.log, self.describe, self.progress = log, describe, progress
        self.latest: dict[int, Sample] = {}

    async def sample(self, i: int) -> Sample:
        """An answer is dated when it arrives (a paused node answers only once resumed);
        a failure when the request was sent."""
        t = self.clock()
        try:
            _, status = await client.request(self.session, "GET", f"{self.urls[i]}/v1/status",
                                             timeout=_timeout(1.0))
            return Sample(self.clock(), i, True, status["height"], status["view"],
                          status.get("primary"))
        except (client.ApiError, KeyError, TypeError):
            return Sample(t, i, False)

    async def run(self, stop: asyncio.Event) -> None:
        last_print = -PROGRESS_S
        while not stop.is_set():
            samples = await asyncio.gather(*(self.sample(i) for i in range(len(self.urls))))
            self.data.samples.extend(samples)
            self.latest = {s.node: s for s in samples}
            if self.progress is not None:
                self.progress(self.clock(), self.progress_line())
            elif self.clock() - last_print >= PROGRESS_S:
                last_print = self.clock()
                self.log(self.progress_line())
            try:
                await asyncio.wait_for(stop.wait(), POLL_S)
            except asyncio.TimeoutError:
                pass

    def progress_line(self) -> str:
        cells = " ".join(f"{s.height}/v{s.view}" if s.up else "down"
                         for _, s in sorted(self.latest.items()))
        return f"[{self.clock():6.1f}s] height/view: {cells} | {self.describe()}"


# -- the run ------------------------------------------------------------------------------
def run_scenario(scenario: Scenario, out_dir: Path, log: Callable[[str], None],
                 base_port: int | None = None,
                 progress: Callable[[float, str], None] | None = None,
                 log_level: str = "warning") -> dict[str, Any]:
    """Run one scenario end to end; returns the report (also written to `out_dir`).

    `base_port`: node i on base_port + i (default: a free range); `progress(t, line)` is
    called on every poll (default: `log` a progress line every PROGRESS_S); `log_level`
    is the nodes' (their logs are OUT/cluster/node<i>/node.log)."""
    n = scenario.nodes
    if base_port is not None:
        check_ports_free(base_port, n)
    out_dir = out_dir.resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    base_port = find_free_base_port(n) if base_port is None else base_port
    log(f"scenario {scenario.name}: {n} nodes (f={scenario.f}), seed {scenario.seed}, "
        f"ports {base_port}..{base_port + n - 1}, output {out_dir}")
    cluster = Cluster.create(out_dir / "cluster", n, base_port, scenario.load.clients,
                             fresh=True, consensus=scenario.consensus or None,
                             log_level=log_level)
    started = time.monotonic()
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        cluster.start()
        probe = cluster.wait_ready(60.0)
        log(f"cluster is up (probe tx committed at height "
            f"{((probe or {}).get('receipt') or {}).get('height', '?')})")
        history, data, controller = asyncio.run(_drive(scenario, cluster, probe, log,
                                                       progress))
    finally:
        signal.signal(signal.SIGTERM, previous)
        cluster.stop()
    violations, held = run_checks(history)
    report = report_mod.build_report(scenario, history, data, controller, violations, held,
                                     out_dir, time.monotonic() - started)
    report_mod.write_outputs(report, history, data, controller, out_dir)
    return report


def check_ports_free(base_port: int, n: int) -> None:
    """A chosen --base-port: all of the cluster's ports free before anything is written."""
    if not 1 <= base_port <= 65535 - n + 1:
        raise ClusterError(f"--base-port {base_port} leaves no room for {n} nodes (1-65535)")
    busy = [base_port + i for i in range(n) if not is_port_free(base_port + i)]
    if busy:
        raise ClusterError(f"ports {busy} on 127.0.0.1 are in use by another process; choose "
                           f"another --base-port (or leave it out for a free range)")


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


async def _drive(scenario: Scenario, cluster: Cluster, probe: dict[str, Any] | None,
                 log: Callable[[str], None], progress: Callable[[float, str], None] | None
                 ) -> tuple[History, RunData, Controller]:
    timeout_s = scenario.load.commit_timeout_ms / 1000 + 5
    async with client.open_session(total_timeout_s=timeout_s,
                                   limit=scenario.load.max_inflight + 64) as session:
        clock, data = Clock(), RunData(wall0_ms=wall_ms())
        rng = random.Random(scenario.seed)
        controller = Controller(cluster, session, clock, scenario.seed, log)
        planned = scenario.duration_s + scenario.liveness_bound_s
        load = LoadGenerator(cluster, session, scenario.load, rng, clock, planned)
        poller = Poller(cluster.urls, session, clock, data, log,
                        lambda: _describe(load, controller), progress)
        stop = asyncio.Event()
        polling = asyncio.create_task(poller.run(stop))
        try:
            loading = asyncio.create_task(load.run(scenario.duration_s))
            await _schedule(scenario, controller, clock)
            data.heal_t = clock()
            log(f"[{data.heal_t:6.1f}s] healed; waiting for a new transaction to commit "
                f"(bound {scenario.liveness_bound_s:g}s)")
            await _recovery(scenario, load, controller, clock)
            await loading
            await load.drain()
            data.load_end_t = clock()
            _, converge_s, detail = await _converge(scenario, cluster, session,
                                                            controller, clock, log)
            await load.resolve_unknown(cluster.urls)
            data.diagnostics = await _diagnostics(cluster, session, controller)
            history = await _collect(scenario, cluster, session, controller, load, probe,
                                     Liveness(scenario.liveness_bound_s, data.heal_t,
                                              converge_s=converge_s, detail=detail))
        finally:
            stop.set()
            await polling
            await controller.release()
        data.end_t = clock()
    return history, data, controller


def _honest(scenario: Scenario, controller: Controller) -> list[int]:
    """The nodes judged by the checks: never made Byzantine during this run."""
    return [i for i in range(scenario.nodes) if i not in controller.ever_byzantine]


def _describe(load: LoadGenerator, controller: Controller) -> str:
    outcomes = {"acknowledged": 0, "rejected": 0, "unknown": 0}
    for sub in load.submissions.values():
        if sub.t_done is not None:
            outcomes[sub.outcome] += 1
    open_faults = [w.label for w in controller.windows if w.end is None]
    return (f"acked {outcomes['acknowledged']} rejected {outcomes['rejected']} "
            f"unknown {outcomes['unknown']} in-flight {load.inflight}"
            + (f" | faults: {'; '.join(open_faults)}" if open_faults else ""))


async def _schedule(scenario: Scenario, controller: Controller, clock: Clock) -> None:
    for event in sorted(scenario.events, key=lambda e: (e.at_s, e.index)):
        await asyncio.sleep(max(0.0, event.at_s - clock()))
        await controller.apply(event)
    await asyncio.sleep(max(0.0, scenario.heal_at_s - clock()))
    await controller.heal()


async def _recovery(scenario: Scenario, load: LoadGenerator, controller: Controller,
                    clock: Clock) -> float | None:
    """Submit fresh transactions to the honest nodes until one commits; its commit time."""
    honest = _honest(scenario, controller)
    urls = [load.cluster.urls[i] for i in honest]
    deadline = clock() + scenario.liveness_bound_s
    k = 0
    while clock() < deadline:
        tx, sender, nonce = load.make_tx()
        remaining_ms = int((deadline - clock()) * 1000)
        sub = await load.submit(tx, sender, nonce, "liveness", first=k, urls=urls,
                                timeout_ms=max(100, min(PROBE_TIMEOUT_MS, remaining_ms)),
                                retries=0)
        k += 1
        if sub.outcome == "acknowledged":
            return sub.t_done
        await asyncio.sleep(0.05)
    return None


async def _statuses(cluster: Cluster, session: Any, nodes: list[int]) -> dict[int, dict | None]:
    async def one(i: int) -> dict | None:
        try:
            return (await client.request(session, "GET", f"{cluster.urls[i]}/v1/status",
                                         timeout=_timeout(2.0)))[1]
        except client.ApiError:
            return None
    return dict(zip(nodes, await asyncio.gather(*(one(i) for i in nodes))))


async def _diagnostics(cluster: Cluster, session: Any, controller: Controller) -> dict[str, Any]:
    found = await controller.diagnostics()
    statuses = await _statuses(cluster, session, list(range(cluster.n)))
    for i, status in statuses.items():
        found.setdefault(str(i), {})["status"] = status
    return found


async def _converge(scenario: Scenario, cluster: Cluster, session: Any, controller: Controller,
                    clock: Clock, log: Callable[[str], None]) -> tuple[bool, float | None, str]:
    """Wait (up to the settle bound) until every honest node reports the same height,
    state root and view, and none is in a view change: the state the checks then judge."""
    honest = _honest(scenario, controller)
    start = clock()
    deadline = start + scenario.liveness_bound_s
    detail = ""
    while True:
        statuses = await _statuses(cluster, session, honest)
        seen = {(s["height"], s["state_root"], s["view"]) for s in statuses.values() if s}
        if (all(statuses.values()) and len(seen) == 1
                and not any(s["in_view_change"] for s in statuses.values())):
            height, _, view = next(iter(seen))
            log(f"[{clock():6.1f}s] converged: honest nodes {honest} at height {height}, "
                f"view {view}")
            return True, clock() - start, ""
        detail = "; ".join(f"node{i}: " + (f"height {s['height']} root {s['state_root'][:12]} "
                                           f"view {s['view']}"
                                           + (" (in view change)" if s["in_view_change"] else "")
                                           if s else "unreachable")
                           for i, s in statuses.items())
        if clock() >= deadline:
            log(f"[{clock():6.1f}s] NOT converged: {detail}")
            return False, None, detail
        await asyncio.sleep(0.25)


async def _collect(scenario: Scenario, cluster: Cluster, session: Any, controller: Controller,
                   load: LoadGenerator, probe: dict[str, Any] | None,
                   liveness: Liveness) -> History:
    honest = _honest(scenario, controller)
    statuses = await _statuses(cluster, session, list(range(scenario.nodes)))
    gate = asyncio.Semaphore(FETCH_CONCURRENCY)
    orgs = [org["id"] for org in cluster.genesis["organisations"]]
    replicas = []
    for i, status in statuses.items():
        record = ReplicaRecord(i, honest=i in honest, up=status is not None)
        await _chain(cluster, i, session, status["height"] if status else 0, gate, record)
        await _final(cluster.urls[i], session, status, orgs, record)
        await _refused_repeats(cluster.urls[i], session, record)
        replicas.append(record)
    chains = {r.index: r.blocks for r in replicas}
    probe_ids = {probe["id"]} if probe and probe.get("id") else set()
    probe_ids |= await _find_probe_retries(cluster, session, chains, honest, load, probe_ids)
    return History(replicas=replicas, submissions=load.submissions, liveness=liveness,
                   genesis_supply_bpc=sum(o["bpc"] for o in cluster.genesis["organisations"]),
                   probe_ids=probe_ids)


async def _refused_repeats(url: str, session: Any, record: ReplicaRecord) -> None:
    """A tx may sit in two blocks (a Byzantine primary re-proposes it, or a view change
    re-orders it); the node executes the first copy and refuses the second as a duplicate,
    storing one receipt. Without per-node receipts the checker would count both, so ask
    the node where it executed each repeated tx: the other copies were refused."""
    heights: dict[str, list[int]] = {}
    for block in record.blocks:
        for tx_id in block.tx_ids:
            heights.setdefault(tx_id, []).append(block.height)
    for tx_id, seen in sorted(heights.items()):
        if len(seen) < 2:
            continue
        try:
            receipt = (await client.get_tx(session, url, tx_id)).get("receipt") or {}
        except client.ApiError:
            continue
        if receipt.get("height") in seen:
            record.refused_repeats.update((tx_id, h) for h in seen if h != receipt["height"])


async def _chain(cluster: Cluster, i: int, session: Any, height: int, gate: asyncio.Semaphore,
                 record: ReplicaRecord) -> None:
    """Fetch node i's blocks 1..height into its record, checking each commit certificate
    (an honest node's only: a Byzantine one may serve anything)."""
    async def one(h: int) -> dict[str, Any] | None:
        async with gate:
            try:
                return await client.get_block(session, cluster.urls[i], h)
            except client.ApiError:
                return None
    for b in await asyncio.gather(*(one(h) for h in range(1, height + 1))):
        if b is None:
            continue
        record.blocks.append(Block(b["height"], b["hash"], b["prev_hash"], b["state_root"],
                                   b.get("result_root", ""), b.get("view", 0), b["timestamp_ms"],
                                   tuple(b["tx_ids"]), b.get("digest", ""), b.get("tx_root", "")))
        problem = certificate_problem(b, cluster.genesis) if record.honest else ""
        if problem:
            record.bad_certificates.append(f"node {i} block {b['height']}: {problem}")


def certificate_problem(block: dict[str, Any], genesis: dict[str, Any]) -> str:
    """Why the block's commits do not certify it ("" when they do)."""
    cert = block.get("certificate") or {}
    if (cert.get("seq"), cert.get("digest")) != (block["height"], block.get("digest")):
        return (f"certificate is for seq {cert.get('seq')} digest "
                f"{str(cert.get('digest'))[:12]}, not this block")
    signatures = [{"replica": c.get("replica"), "sig": c.get("sig", "")}
                  for c in cert.get("commits", [])]
    signers = valid_commit_signers(genesis, cert["view"], cert["seq"],
                                   bytes.fromhex(cert["digest"]), signatures)
    needed = quorum(len(genesis["validators"]))
    return "" if len(signers) >= needed else f"{len(signers)} valid commits, {needed} needed"


async def _final(url: str, session: Any, status: dict | None, orgs: list[str],
                 record: ReplicaRecord) -> None:
    if status is None:
        return
    record.height, record.view = status["height"], status["view"]
    record.state_root, record.in_view_change = status["state_root"], status["in_view_change"]
    if not record.honest:
        return
    try:
        record.supply_bpc = (await client.get_state(session, url, "supply"))["bpc"]
        for org in orgs:
            record.balances_bpc[org] = (await client.get_state(session, url, "balances",
                                                               org))["bpc"]
    except (client.ApiError, KeyError, TypeError):
        record.supply_bpc = None


async def _find_probe_retries(cluster: Cluster, session: Any, chains: dict[int, list[Block]],
                              honest: list[int], load: LoadGenerator,
                              known: set[str]) -> set[str]:
    """The cluster's readiness probe may have committed more than once (it resubmits a
    fresh probe after a timeout). A tx nobody in this run sent is the probe if its
    receipt shows the probe's 1-unit transfer between the probe's two organisations."""
    admin, target = cluster.probe_parties()
    ours = set(load.submissions) | known
    found: set[str] = set()
    for i in honest:
        for block in chains.get(i, []):
            for tx_id in block.tx_ids:
                if tx_id in ours or tx_id in found:
                    continue
                try:
                    answer = await client.get_tx(session, cluster.urls[i], tx_id)
                except client.ApiError:
                    continue  # unclassified: the phantom check will name it
                events = ((answer.get("receipt") or {}).get("events") or [])
                if any(e.get("data", {}).get("source") == admin
                       and e.get("data", {}).get("target") == target
                       and e.get("data", {}).get("amount") == 1
                       for e in events if isinstance(e, dict)):
                    found.add(tx_id)
        break  # one honest chain is enough to classify the probe
    return found


def _timeout(seconds: float) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=seconds)
