"""docs/metrics.md is the closed set of series: generated, up to date, and what live nodes export.

Three ways it could go wrong, one test each: the committed doc is stale; a live node
exports a family, series or label value the doc does not list; a counter key in the
source has no name in node/metrics.py's tables (it would be exported as event="other").
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from node import metrics
from scripts.metrics_doc import Family, render_markdown, specimen_families
from tests.node.conftest import LocalCluster

ROOT = Path(__file__).resolve().parents[2]


def test_docs_metrics_md_is_generated_from_the_registry() -> None:
    committed = (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    assert committed == render_markdown(specimen_families()), \
        "docs/metrics.md is stale: run `python -m scripts.metrics_doc > docs/metrics.md`"


def undocumented(text: str, families: list[Family], config: dict[str, set[str]]) -> list[str]:
    """Each sample of a /metrics text the documented families do not allow, as a line.

    `config` holds the allowed values of the labels fixed by the node's configuration."""
    by_series = {series: family for family in families for series in family.series}
    problems = []
    for parsed in text_string_to_metric_families(text):
        for sample in parsed.samples:
            family = by_series.get(sample.name)
            if family is None:
                problems.append(f"{sample.name}: not in docs/metrics.md")
                continue
            allowed = {label.name: set(label.values) or config[label.name]
                       for label in family.labels}
            if sample.name.endswith("_bucket"):
                allowed["le"] = None
            for name, value in sample.labels.items():
                if name not in allowed:
                    problems.append(f"{sample.name}: label {name} not documented")
                elif allowed[name] is not None and value not in allowed[name]:
                    problems.append(f"{sample.name}: {name}={value!r} not documented")
            missing = set(allowed) - set(sample.labels) - {"le"}
            if missing and sample.labels:
                problems.append(f"{sample.name}: labels {sorted(missing)} missing")
    return problems


def node_config_labels(cluster: LocalCluster, i: int) -> dict[str, set[str]]:
    return {"node": {f"node{i}"}, "chain": {cluster.genesis["chain_id"]}, "index": {str(i)},
            "peer": {f"node{j}" for j in range(cluster.n) if j != i}}


async def test_live_nodes_export_only_documented_series(local_cluster) -> None:
    cluster = await local_cluster(4, mqtt={0: "mqtt://127.0.0.1:1"})  # nobody listens: fine
    txs = cluster.transfers(40)
    await cluster.submit(txs, node=1)
    forged = dataclasses.replace(cluster.transfers(1)[0], sig=bytes(64), encoded=b"")
    assert cluster.session is not None
    async with cluster.session.post(cluster.url(0) + "/v1/txs",
                                    json={"txs": [forged.to_json()]}) as resp:
        assert (await resp.json())["rejected"]  # counted as txs_refused{code="BadSignature"}
    await cluster.wait_committed(txs)
    families = specimen_families()
    seen = set()
    for i in range(4):
        text = await cluster.get_text(i, "/metrics")
        assert undocumented(text, families, node_config_labels(cluster, i)) == []
        seen |= {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    assert {"ipchain_tx_results_total", "ipchain_mqtt_connect_failures_total",
            "ipchain_replica_events_total", "process_open_fds"} <= seen


def test_the_check_catches_a_new_series_and_a_new_label_value() -> None:
    families = specimen_families()
    config = {"peer": {"node1"}}
    good = ('# TYPE ipchain_replica_events_total counter\n'
            'ipchain_replica_events_total{event="delivered"} 3\n')
    assert undocumented(good, families, config) == []
    new_value = good.replace("delivered", "brand_new_counter")
    assert undocumented(new_value, families, config) == [
        "ipchain_replica_events_total: event='brand_new_counter' not documented"]
    new_series = "# TYPE ipchain_brand_new gauge\nipchain_brand_new 1\n"
    assert undocumented(new_series, families, config) == [
        "ipchain_brand_new: not in docs/metrics.md"]
    wrong_peer = ('# TYPE ipchain_send_retries_total counter\n'
                  'ipchain_send_retries_total{peer="node9"} 1\n')
    assert len(undocumented(wrong_peer, families, config)) == 1


COUNTER_KEY = re.compile(r"""(?:\bstats|\bcounters)\[f?"([a-z_]+)""")


def source_counter_keys() -> set[str]:
    """Each runtime.counters / replica.stats key written in node/ and consensus/ (an
    f-string key by its literal head: `dropped_refused_{status}` -> dropped_refused_)."""
    keys = set()
    for folder in ("node", "consensus"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.name in ("metrics.py", "limits.py", "faults.py"):
                continue  # the collector itself; the guard's and injector's own tables
            keys |= set(COUNTER_KEY.findall(path.read_text(encoding="utf-8")))
    return keys


def test_every_counter_in_the_source_has_a_name_in_the_tables() -> None:
    handled_prefixes = ("received_", metrics.DROP_PREFIX, metrics.FAULT_PREFIX)
    named = (set(metrics.NODE_EVENTS) | set(metrics.REPLICA_EVENTS) | set(metrics.ENGINE_EVENTS)
             | set(metrics.NAMED)
             | set(metrics.PEER_COUNTERS) | {"tx_refused"})
    keys = source_counter_keys()
    assert {"delivered", "view_timeouts", "fetched_blocks", "tls_refused"} <= keys
    unnamed = sorted(k for k in keys if k not in named and not k.startswith(handled_prefixes))
    assert unnamed == [], ("counters exported as event=\"other\": name them in "
                           "node/metrics.py (NODE_EVENTS / REPLICA_EVENTS) and regenerate "
                           "docs/metrics.md")
