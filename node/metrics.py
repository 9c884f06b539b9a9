"""GET /metrics: Prometheus text format from a per-node registry.

Several nodes may run in one process (tests, the simulator), so nothing is registered
in prometheus_client's global registry. Almost everything is read at scrape time from
what the node already counts — `runtime.counters`, `replica.stats`, `replica.status()`,
the MQTT and SSE figures — by a custom collector, so the hot path pays nothing extra.
Only two things are recorded as blocks execute: the per-status transaction results
and the commit latency (admission -> executed) histogram.

Rates are left to Prometheus: blocks_total and txs_total are counters, so
rate(ipchain_txs_total[1m]) is transactions per second.
"""

from __future__ import annotations

import collections
import functools
import itertools
import operator
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest

from contracts.runtime import Receipt
from contracts.tx import Transaction
from node.chain import Header
from node.histograms import BlockHistogram
from node.memory import MemoryCollector
from node.runtime import SIGNATURE_VERIFICATIONS, Runtime

Source = Callable[[], Iterable[Metric]]
MAX_TRACKED_TXS = 100_000
"""Admission times kept for the latency histogram; the oldest go first (a tx that never
commits must not grow memory for ever)."""
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The classic text format every Prometheus reads (generate_latest writes it with plain
names; newer prometheus-client only labels it 1.0.0)."""
_OUTCOME, _TX_ID = operator.attrgetter("ok", "code"), operator.attrgetter("tx_id")
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# runtime.counters keys "<name>:<label>" -> (metric, label name); replica.stats likewise
PEER_COUNTERS = {"sent": "ipchain_messages_sent", "send_retry": "ipchain_send_retries"}
DROP_PREFIX = "dropped_"
FAULT_PREFIX = "fault_"
NAMED = ("blocks_executed", "txs_executed", SIGNATURE_VERIFICATIONS)
"""runtime.counters exported under a name of their own (ipchain_blocks_total, ...)."""
DROP_REASONS = ("queue_full", "refused", "unreachable")
"""Closed label sets, exported at 0 from the start: a series that appears only once
something goes wrong cannot be graphed or alerted on before it does."""
ADMISSION_CODES = ("BadArguments", "BadSignature", "BadTransaction", "MempoolFull",
                   "NonCanonical", "NonceUsed", "UnknownAccount", "UnknownOp", "WrongChain")

# -- the closed set of series ---------------------------------------------------------------
# Every label value a node can export is named here; docs/metrics.md is generated from
# these tables (`python -m scripts.metrics_doc`) and tests/scripts/test_metrics_doc.py
# fails when a live node exports anything else. A counter key nobody named yet is
# exported as event="other" (and the source scan in that test names it), never as a new
# open-ended value.
OTHER = "other"

NODE_EVENTS = {
    "client_requests_shed": "Client submissions refused (503) while the mempool was over "
                            "its admission threshold.",
    "consensus_message_refused": "A peer refused a single consensus message (4xx) for good: "
                                 "an alarm, see the log line of the same name.",
    "fetch_skipped_queued": "Block fetches skipped: the blocks were already queued from a "
                            "fetch moments ago.",
    "fetched_blocks": "Blocks received from peers by state transfer.",
    "fetched_block_malformed": "Fetched blocks that did not decode or verify.",
    "peer_message_malformed": "Peer messages that did not decode.",
    "peer_stream_frame_refused": "Peer stream frames refused (bad MAC or not an array of "
                                 "byte strings): an alarm, see the log line of the same name.",
    "peer_stream_frames_received": "Frames received on peer streams (each a batch of "
                                   "consensus messages or relayed transactions).",
    "peer_streams_opened": "WebSocket streams this node opened to its peers "
                           "(node/peer_stream.py); a POST carries traffic while none is open.",
    "refused_batch_split": "Refused message batches split to find the message a peer refuses.",
    "relayed_tx_malformed": "Transactions relayed by a peer that did not decode.",
    "replica_step_failed": "The replica raised while stepping; the node stops (fail-stop).",
    "resynced_from_peers": "Damaged data set aside and the chain fetched again from peers.",
    "state_rebuilt": "State rebuilt from this node's own blocks at start-up.",
    "tls_refused": "TLS handshakes with a peer that failed.",
}
"""runtime.counters keys (before the ':') not exported under a name of their own."""

REPLICA_EVENTS = {
    "delivered": "Slots committed and handed to execution, in order.",
    "dropped_bad_signature": "Peer messages dropped for a bad signature.",
    "dropped_future_message": "Messages for a later view dropped: the per-sender buffer "
                              "was full.",
    "dropped_oversized_request": "Client requests too large for any batch.",
    "dropped_preprepare_txs_mismatch": "PRE-PREPAREs whose transactions did not match the "
                                       "signed digest (a replay; the genuine one follows).",
    "evidence": "Equivocation evidence recorded.",
    "execution_certified": "Blocks whose execution result a quorum signed.",
    "execution_diverged": "Blocks whose execution result a quorum signed differently.",
    "execution_vote_resent": "Execution votes resent for blocks still uncertified.",
    "fetch_deferred_single_claim": "Fetches not started: fewer than f+1 peers claimed to be "
                                   "ahead.",
    "fetch_gave_up": "Block fetches abandoned after the attempt limit.",
    "fetch_requests": "Block fetch requests sent.",
    "ignored_after_divergence": "Messages ignored once this replica diverged.",
    "ignored_checkpoint_far": "Checkpoints too far ahead to hold.",
    "ignored_execution_vote_far": "Execution votes too far ahead to hold.",
    "ignored_fetched_far": "Fetched blocks too far ahead to hold.",
    "ignored_old_view": "Messages of an earlier view ignored.",
    "ignored_own_message": "This replica's own messages relayed back (e.g. as evidence).",
    "ignored_prepare_from_primary": "PREPAREs sent by the primary (not part of the protocol).",
    "ignored_preprepare_contradicts_wal": "PRE-PREPAREs contradicting a vote in the WAL.",
    "ignored_preprepare_not_primary": "PRE-PREPAREs from a replica that is not the primary.",
    "new_view_conflicts_committed": "NEW-VIEWs contradicting a committed slot (impossible "
                                    "with at most f faulty).",
    "new_views_sent": "NEW-VIEW messages this replica sent as the new primary.",
    "rejected_fetched_block": "Fetched blocks refused (bad certificate or digest).",
    "rejected_new_view": "NEW-VIEW messages refused as invalid.",
    "rejected_preprepare_clock": "PRE-PREPAREs refused: timestamp beyond the allowed skew.",
    "rejected_preprepare_size": "PRE-PREPAREs refused: batch over the size limits.",
    "rejected_view_change": "VIEW-CHANGE messages refused as invalid.",
    "resent": "Own PREPARE/COMMIT votes resent for a slot still open.",
    "stable_checkpoints": "Checkpoints that became stable.",
    "state_divergence": "Checkpoints or results where this replica's state differs from a "
                        "quorum's.",
    "suspected_primary": "Times this replica suspected the primary on evidence (the reason "
                         "is in the view-change log line).",
    "suspect_quorums": "2f+1 SUSPECTs gathered: a view change starts.",
    "suspects_sent": "SUSPECT messages sent.",
    "view_changes_started": "View changes this replica started.",
    "view_timeouts": "Request or view-change timers that expired.",
    "views_installed": "New views installed.",
}
"""replica.stats keys (before the ':') other than received_<type>."""

ENGINE_EVENTS = {
    "blocks_certified": "Execution certificates stored with their blocks.",
    "execution_diverged": "This node's result differed from the one a quorum signed; "
                          "it stops (fail-stop).",
    "executor_failed": "Block execution raised; the node stops (fail-stop).",
    "redelivered": "Blocks delivered again that were already executed (ignored).",
    "replica_step_failed": "The replica raised while stepping; the node stops (fail-stop).",
    "restored_from_wal": "Times the replica was restored from the write-ahead log at start.",
}
"""engine.stats keys: the glue between replica, executor and storage (node/engine.py)."""

FAULT_DIRECTIONS = ("in", "out")


def fault_names() -> tuple[str, ...]:
    """What the fault injector counts as fault_<name>: its rule actions, partitions and
    Byzantine behaviours (byz_<mode>)."""
    from node.byzantine import BEHAVIOURS
    from node.faults import ACTIONS
    return tuple(sorted({*ACTIONS, "partition", *(f"byz_{mode}" for mode in BEHAVIOURS)}))


def message_types() -> tuple[str, ...]:
    from consensus.messages import KINDS
    return tuple(sorted(cls.__name__ for cls in KINDS.values()))


@functools.cache
def receipt_codes() -> tuple[str, ...]:
    """Every code a receipt can carry: ok, each contract error's class name, and the
    executor's own refusals."""
    from contracts import errors
    from contracts.runtime import get_ops
    from node.chain import DUPLICATE
    get_ops()  # imports every contract module, so each one's errors are subclasses
    found, stack = set(), [errors.ContractError]
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        found.add(cls.__name__)
    found.discard("ContractError")
    return tuple(sorted(found | {"ok", "InternalError", DUPLICATE}))


@dataclass(frozen=True)
class Label:
    """One label of a family: its closed set of values, or (for values fixed by the
    node's configuration: its id, its peers) what they are."""
    name: str
    values: tuple[str, ...] = ()
    from_config: str = ""


def family_labels() -> dict[str, tuple[Label, ...]]:
    """Family name -> its labels; a family not listed here has none."""
    peer = Label("peer", from_config="each configured peer's node id")
    closed = lambda name, values: Label(name, (*values, OTHER))  # noqa: E731
    return {
        "ipchain_node_info": (Label("node", from_config="this node's id"),
                              Label("chain", from_config="the chain id"),
                              Label("index", from_config="this node's validator index")),
        "ipchain_tx_results": (Label("status", ("committed", "rejected")),
                               closed("code", receipt_codes())),
        "ipchain_messages_sent": (peer,),
        "ipchain_send_retries": (peer,),
        "ipchain_messages_dropped": (peer, closed("reason", DROP_REASONS)),
        "ipchain_txs_refused": (closed("code", ADMISSION_CODES),),
        "ipchain_messages_received": (closed("type", message_types()),),
        "ipchain_node_events": (closed("event", sorted(NODE_EVENTS)),),
        "ipchain_replica_events": (closed("event", sorted(REPLICA_EVENTS)),),
        "ipchain_engine_events": (closed("event", sorted(ENGINE_EVENTS)),),
        "ipchain_faults_injected": (closed("fault", fault_names()),
                                    Label("direction", FAULT_DIRECTIONS)),
    }


class NodeMetrics:
    def __init__(self, runtime: Runtime, sources: list[Source]) -> None:
        self.runtime = runtime
        self.registry = CollectorRegistry(auto_describe=False)
        self.commit_latency = BlockHistogram(  # one call per block (node/histograms.py)
            "ipchain_commit_latency_seconds",
            "Time from a transaction's admission on this node to its execution.",
            LATENCY_BUCKETS_S, self.registry)
        self.tx_results = Counter("ipchain_tx_results", "Executed transactions by outcome.",
                                  ["status", "code"], registry=self.registry)
        self.block_interval = Histogram(
            "ipchain_block_interval_seconds",
            "Wall-clock time between two blocks executed on this node.",
            buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self.last_block_s: float | None = None
        ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, RSS, open fds
        self.registry.register(MemoryCollector())  # what the RSS is made of (node/memory.py)
        self.registry.register(_NodeCollector(runtime, sources))
        self.admitted_s: collections.OrderedDict[str, float] = collections.OrderedDict()

    # -- recording ------------------------------------------------------------------------
    def attach(self) -> None:
        """Listen to admissions (start of the latency clock) and executed blocks."""
        self.runtime.listeners.append(self.on_block)
        self.runtime.admission_listeners.append(self.note_admitted)

    def detach(self) -> None:
        if self.on_block in self.runtime.listeners:
            self.runtime.listeners.remove(self.on_block)
        if self.note_admitted in self.runtime.admission_listeners:
            self.runtime.admission_listeners.remove(self.note_admitted)

    def note_admitted(self, txs: list[Transaction]) -> None:
        now = time.monotonic()
        admitted = self.admitted_s
        for tx in txs:
            admitted.setdefault(tx.id, now)  # a resubmission keeps the first time
        while len(admitted) > MAX_TRACKED_TXS:
            admitted.popitem(last=False)

    def on_block(self, header: Header, receipts: list[Receipt]) -> None:
        now = time.monotonic()
        if self.last_block_s is not None:
            self.block_interval.observe(now - self.last_block_s)
        self.last_block_s = now
        # per block, not per transaction: the outcomes counted and the latencies binned
        # in C loops, one histogram update and one counter increment per outcome
        outcomes = collections.Counter(map(_OUTCOME, receipts))
        admitted = map(self.admitted_s.pop, map(_TX_ID, receipts), itertools.repeat(None))
        self.commit_latency.observe_all([now - at for at in admitted if at is not None])
        codes = receipt_codes()
        for (ok, code), count in outcomes.items():
            self.tx_results.labels("committed" if ok else "rejected",
                                   code if code in codes else OTHER).inc(count)

    # -- serving --------------------------------------------------------------------------
    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def handle(self, request: web.Request) -> web.Response:
        return web.Response(body=self.render(), headers={"Content-Type": CONTENT_TYPE})


class _NodeCollector:
    """Reads the node's own counters at scrape time."""

    def __init__(self, runtime: Runtime, sources: list[Source]) -> None:
        self.runtime = runtime
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        yield from self._gauges()
        yield from self._totals()
        yield from self._messages()
        yield from self._generic()
        for source in self.sources:
            yield from source()

    def _gauges(self) -> Iterator[Metric]:
        runtime = self.runtime
        status = runtime.replica.status()
        info = GaugeMetricFamily("ipchain_node_info", "Constant 1, labelled with the node.",
                                 labels=["node", "chain", "index"])
        info.add_metric([runtime.cfg.node_id, runtime.cfg.chain_id, str(runtime.cfg.index)], 1)
        yield info
        for name, help_text, value in (
                ("ipchain_height", "Last committed and executed block height.",
                 runtime.executor.height),
                ("ipchain_view", "Current PBFT view.", status["view"]),
                ("ipchain_primary", "Index of the primary of the current view.",
                 status["primary"]),
                ("ipchain_in_view_change", "1 while a view change is under way.",
                 int(bool(status["in_view_change"]))),
                ("ipchain_stable_checkpoint", "Height of the last stable checkpoint.",
                 status["stable_checkpoint"]),
                ("ipchain_mempool_txs", "Admitted transactions not yet executed.",
                 len(runtime.mempool)),
                ("ipchain_pending_requests", "Requests the replica has not yet ordered.",
                 status["pending"]),
                ("ipchain_evidence_held", "Conflicting-message evidence held in memory.",
                 status["evidence"]),
                ("ipchain_last_block_time_seconds", "Agreed timestamp of the last executed "
                 "block (Unix seconds); time() minus it is how stale the chain is.",
                 runtime.executor.head.timestamp_ms / 1000),
                ("ipchain_peers", "Peers this node is configured with.", len(runtime.cfg.peers)),
                ("ipchain_peers_reachable", "Peers whose last delivery attempt succeeded.",
                 runtime.transport.reachable_peers()),
                ("ipchain_diverged", "1 once this node's results differ from a quorum's "
                 "(or its data at rest is damaged): it has stopped.",
                 int(runtime.diverged is not None))):
            yield GaugeMetricFamily(name, help_text, value=value)

    def _totals(self) -> Iterator[Metric]:
        counters, stats = self.runtime.counters, self.runtime.replica.stats
        for name, help_text, value in (
                ("ipchain_blocks", "Blocks executed (rate() = blocks per second).",
                 counters["blocks_executed"]),
                ("ipchain_txs", "Transactions executed (rate() = tx per second).",
                 counters["txs_executed"]),
                ("ipchain_view_changes", "New views installed by this replica.",
                 stats["views_installed"]),
                ("ipchain_view_changes_started", "View changes this replica started.",
                 stats["view_changes_started"]),
                ("ipchain_signature_failures", "Peer messages dropped for a bad signature.",
                 stats["dropped_bad_signature"]),
                ("ipchain_evidence", "Equivocation evidence recorded.", stats["evidence"]),
                ("ipchain_tx_signature_verifications", "Ed25519 verifications of transaction "
                 "signatures: one per distinct transaction admitted, relayed or ordered.",
                 counters[SIGNATURE_VERIFICATIONS])):
            yield CounterMetricFamily(name, help_text, value=value)

    def _messages(self) -> Iterator[Metric]:
        counters, stats = self.runtime.counters, self.runtime.replica.stats
        by_peer = {key: CounterMetricFamily(name, f"Consensus messages: {key} by peer.",
                                            labels=["peer"]) for key, name in PEER_COUNTERS.items()}
        dropped = CounterMetricFamily("ipchain_messages_dropped",
                                      "Outbound messages dropped, by peer and reason.",
                                      labels=["peer", "reason"])
        refused = CounterMetricFamily("ipchain_txs_refused", "Transactions refused at admission.",
                                      labels=["code"])
        drops = {(peer.id, reason): 0 for peer in self.runtime.cfg.peers for reason in DROP_REASONS}
        refusals = dict.fromkeys(ADMISSION_CODES, 0)
        for key, value in sorted(counters.items()):
            name, _, label = key.partition(":")
            if name in by_peer and label:
                by_peer[name].add_metric([label], value)
            elif name.startswith(DROP_PREFIX) and label:
                reason = name[len(DROP_PREFIX):]
                reason = "refused" if reason.startswith("refused") else reason
                reason = reason if reason in DROP_REASONS else OTHER
                drops[label, reason] = drops.get((label, reason), 0) + value
            elif name == "tx_refused" and label:
                code = label if label in refusals else OTHER
                refusals[code] = refusals.get(code, 0) + value
        for (peer, reason), value in sorted(drops.items()):
            dropped.add_metric([peer, reason], value)
        for code, value in sorted(refusals.items()):
            refused.add_metric([code], value)
        received = CounterMetricFamily("ipchain_messages_received",
                                       "Authentic peer messages received, by type.",
                                       labels=["type"])
        types = dict.fromkeys(message_types(), 0)
        for key, value in stats.items():
            if key.startswith("received_"):
                kind = key[len("received_"):]
                kind = kind if kind in types else OTHER
                types[kind] = types.get(kind, 0) + value
        for kind, value in sorted(types.items()):
            received.add_metric([kind], value)
        yield from (*by_peer.values(), dropped, refused, received)

    def _generic(self) -> Iterator[Metric]:
        """The remaining counters, by name from the closed tables above (at 0 from the
        start); one nobody named yet counts as event="other"."""
        node = dict.fromkeys(NODE_EVENTS, 0)
        faults: collections.Counter[tuple[str, str]] = collections.Counter()
        known_faults = fault_names()
        for key, value in self.runtime.counters.items():
            name, _, label = key.partition(":")
            if name.startswith(FAULT_PREFIX):
                fault = name[len(FAULT_PREFIX):]
                faults[fault if fault in known_faults else OTHER,
                       label if label in FAULT_DIRECTIONS else OTHER] += value
            elif not (name in PEER_COUNTERS or name.startswith(DROP_PREFIX) or name in NAMED
                      or name == "tx_refused"):
                event = name if name in NODE_EVENTS else OTHER
                node[event] = node.get(event, 0) + value
        replica = dict.fromkeys(REPLICA_EVENTS, 0)
        for key, value in self.runtime.replica.stats.items():
            name = key.partition(":")[0]
            if not name.startswith("received_"):
                event = name if name in REPLICA_EVENTS else OTHER
                replica[event] = replica.get(event, 0) + value
        engine = dict.fromkeys(ENGINE_EVENTS, 0)
        for key, value in self.runtime.engine.stats.items():
            event = key if key in ENGINE_EVENTS else OTHER
            engine[event] = engine.get(event, 0) + value
        for family, help_text, values in (
                ("ipchain_node_events", "Other node counters, by event (docs/metrics.md).", node),
                ("ipchain_replica_events", "Other replica counters, by event (docs/metrics.md).",
                 replica),
                ("ipchain_engine_events", "Engine counters, by event (docs/metrics.md).",
                 engine)):
            metric = CounterMetricFamily(family, help_text, labels=["event"])
            for event, value in sorted(values.items()):
                metric.add_metric([event], value)
            yield metric
        injected = CounterMetricFamily("ipchain_faults_injected",
                                       "Faults the injector applied (test clusters only).",
                                       labels=["fault", "direction"])
        for (fault, direction), value in sorted(faults.items()):
            injected.add_metric([fault, direction], value)
        yield injected
