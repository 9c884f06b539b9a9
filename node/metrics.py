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
import time
from typing import Callable, Iterable, Iterator

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest

from contracts.runtime import Receipt
from contracts.tx import Transaction
from node.chain import Header
from node.runtime import SIGNATURE_VERIFICATIONS, Runtime

Source = Callable[[], Iterable[Metric]]
MAX_TRACKED_TXS = 100_000
"""Admission times kept for the latency histogram; the oldest go first (a tx that never
commits must not grow memory for ever)."""
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The classic text format every Prometheus reads (generate_latest writes it with plain
names; newer prometheus-client only labels it 1.0.0)."""
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# runtime.counters keys "<name>:<label>" -> (metric, label name); replica.stats likewise
PEER_COUNTERS = {"sent": "ipchain_messages_sent", "send_retry": "ipchain_send_retries"}
DROP_PREFIX = "dropped_"
DROP_REASONS = ("queue_full", "refused", "unreachable")
"""Closed label sets, exported at 0 from the start: a series that appears only once
something goes wrong cannot be graphed or alerted on before it does."""
ADMISSION_CODES = ("BadArguments", "BadSignature", "BadTransaction", "MempoolFull",
                   "NonCanonical", "NonceUsed", "UnknownAccount", "UnknownOp", "WrongChain")


class NodeMetrics:
    def __init__(self, runtime: Runtime, sources: list[Source]) -> None:
        self.runtime = runtime
        self.registry = CollectorRegistry(auto_describe=False)
        self.commit_latency = Histogram(
            "ipchain_commit_latency_seconds",
            "Time from a transaction's admission on this node to its execution.",
            buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self.tx_results = Counter("ipchain_tx_results", "Executed transactions by outcome.",
                                  ["status", "code"], registry=self.registry)
        self.block_interval = Histogram(
            "ipchain_block_interval_seconds",
            "Wall-clock time between two blocks executed on this node.",
            buckets=LATENCY_BUCKETS_S, registry=self.registry)
        self.last_block_s: float | None = None
        ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, RSS, open fds
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
        outcomes: collections.Counter[tuple[str, str]] = collections.Counter()
        for receipt in receipts:
            outcomes["committed" if receipt.ok else "rejected", receipt.code] += 1
            admitted = self.admitted_s.pop(receipt.tx_id, None)
            if admitted is not None:
                self.commit_latency.observe(now - admitted)
        for (status, code), count in outcomes.items():
            self.tx_results.labels(status, code).inc(count)

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
                drops[label, reason] = drops.get((label, reason), 0) + value
            elif name == "tx_refused" and label:
                refusals[label] = refusals.get(label, 0) + value
        for (peer, reason), value in sorted(drops.items()):
            dropped.add_metric([peer, reason], value)
        for code, value in sorted(refusals.items()):
            refused.add_metric([code], value)
        received = CounterMetricFamily("ipchain_messages_received",
                                       "Authentic peer messages received, by type.",
                                       labels=["type"])
        for key, value in sorted(stats.items()):
            if key.startswith("received_"):
                received.add_metric([key[len("received_"):]], value)
        yield from (*by_peer.values(), dropped, refused, received)

    def _generic(self) -> Iterator[Metric]:
        """Every other counter, so a new one shows up without touching this file."""
        node = CounterMetricFamily("ipchain_node_events", "Other node counters.",
                                   labels=["event", "detail"])
        for key, value in sorted(self.runtime.counters.items()):
            name, _, label = key.partition(":")
            if not (name in PEER_COUNTERS or name.startswith(DROP_PREFIX) or name == "tx_refused"
                    or name in ("blocks_executed", "txs_executed", SIGNATURE_VERIFICATIONS)):
                node.add_metric([name, label], value)
        replica = CounterMetricFamily("ipchain_replica_events", "Other replica counters.",
                                      labels=["event", "detail"])
        for key, value in sorted(self.runtime.replica.stats.items()):
            name, _, label = key.partition(":")
            if not name.startswith("received_"):
                replica.add_metric([name, label], value)
        yield node
        yield replica
