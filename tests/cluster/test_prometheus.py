"""The shipped dashboard and alert rules against a real Prometheus scraping a live cluster.

Every dashboard query and every metric an alert rule reads must return data (a typo'd
metric name returns nothing, silently, in Prometheus), and `NodeDown` must fire when a
node is killed. Needs Debian's `prometheus` (installed by .ci/run); skipped without it.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from ipchain.cluster import monitoring
from ipchain.cluster.procs import find_free_base_port
from ipchain.sdk import client

pytestmark = pytest.mark.cluster
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and",
            "or", "unless", "offset", "le", "instance", "job", "code", "reason"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers that are not functions,
    keywords, label matchers, grouping labels, durations or numbers."""
    expr = re.sub(r'"[^"]*"', "", expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", expr):
        following = expr[match.end():].lstrip()[:1]
        if following != "(" and match.group() not in KEYWORDS:
            names.add(match.group())
    return names


def test_metric_names_finds_what_an_expression_reads() -> None:
    assert metric_names('time() - max by (instance) (ipchain_last_block_time_seconds) > 30 '
                        'and on (instance) ipchain_mempool_txs{job="x"} > 0') == {
        "ipchain_last_block_time_seconds", "ipchain_mempool_txs"}
    assert metric_names("histogram_quantile(0.99, sum by (le) (rate(a_bucket[1m])))") == {"a_bucket"}


def _query(port: int, expr: str) -> list:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as answer:
        body = json.load(answer)
    assert body["status"] == "success", body
    return body["data"]["result"]


def _wait(what: str, predicate, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {deadline_s:g} s waiting for {what}")
        time.sleep(0.5)


def _dashboard_queries() -> list[str]:
    dashboard = json.loads(monitoring.DASHBOARD.read_text())
    return [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]


def _alert_rules() -> list[dict]:
    groups = yaml.safe_load(monitoring.RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


async def _load(cluster, count: int) -> None:
    key = cluster.client_key("client-000")
    nonce = cluster.nonces.reserve(client.sender_hex(key), count)
    async with client.open_session() as session:
        for i in range(count):
            tx = client.sign(key, cluster.chain_id, nonce + i, "token.transfer",
                             {"to": "client-001", "amount": 1})
            await client.submit(session, cluster.urls[i % cluster.n], tx, wait=True)


def test_every_dashboard_query_and_alert_returns_data_and_node_down_fires(
        start_cluster, tmp_path: Path) -> None:
    if shutil.which("prometheus") is None:
        pytest.skip("Debian's prometheus is not installed (.ci/run installs it)")
    cluster, _ = start_cluster(4)
    monitoring.write_config(cluster.data_dir, cluster.urls, scrape_interval_s=1)
    port = find_free_base_port(1)
    pid = monitoring.start(cluster.data_dir, port)
    try:
        _wait("Prometheus to scrape all four nodes", lambda: _ready(port), 60)
        asyncio.run(_load(cluster, 30))
        time.sleep(3)  # rate() needs two scrapes after the load: three 1 s intervals
        empty = [q for q in _dashboard_queries() if not _query(port, q)]
        assert empty == [], f"dashboard queries with no data: {empty}"
        rules = _alert_rules()
        unread = sorted({name for rule in rules for name in metric_names(rule["expr"])
                         if not _query(port, name)})
        assert unread == [], f"alert rules read metrics that do not exist: {unread}"
        assert {r["alert"] for r in rules} >= {"NodeDown", "NoBlockIn30s", "ViewChanges",
                                               "Diverged", "PeerUnreachable"}

        cluster.kill(3, signal.SIGKILL)
        _wait("the NodeDown alert to fire", lambda: any(
            a["metric"].get("alertname") == "NodeDown" for a in
            _query(port, 'ALERTS{alertstate="firing"}')), 60)
        fired = _query(port, 'ALERTS{alertname="NodeDown",alertstate="firing"}')
        assert [a["metric"]["instance"] for a in fired] == [cluster.urls[3].split("//")[1]]
    finally:
        monitoring.stop(cluster.data_dir)


def _ready(port: int) -> bool:
    try:
        return len([r for r in _query(port, 'up{job="ipchain"} == 1')]) == 4
    except OSError:
        return False
