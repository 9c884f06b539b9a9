"""GET /metrics (Prometheus text, a registry per node) and the structured log lines."""

from __future__ import annotations

import dataclasses
import io
import logging
import sys

import msgpack
import pytest
from prometheus_client.parser import text_string_to_metric_families

from consensus import messages as wire
from node import logs
from node.config import ConfigError
from tests.node.conftest import LocalCluster, until

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(cluster: LocalCluster, node: int) -> Samples:
    """Every sample, keyed by (name, sorted labels); fails if the text does not parse."""
    assert cluster.session is not None
    async with cluster.session.get(cluster.url(node) + "/metrics") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await resp.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in samples, f"duplicate series {key}"
            samples[key] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


async def test_metrics_parse_and_counters_move_under_load(local_cluster) -> None:
    cluster = await local_cluster(4)
    before = {i: await scrape(cluster, i) for i in range(4)}
    txs = cluster.transfers(120)
    for k, start in enumerate(range(0, 120, 30)):
        await cluster.submit(txs[start:start + 30], node=k % 2)
    await cluster.wait_committed(txs)
    after = {i: await scrape(cluster, i) for i in range(4)}

    for i in range(4):
        old, new = before[i], after[i]
        assert value(new, "ipchain_node_info", node=f"node{i}", chain=cluster.genesis["chain_id"],
                     index=str(i)) == 1
        assert value(new, "ipchain_height") == cluster.node(i).height > value(old, "ipchain_height")
        assert value(new, "ipchain_blocks_total") - value(old, "ipchain_blocks_total") >= 1
        assert value(new, "ipchain_txs_total") - value(old, "ipchain_txs_total") == 120
        assert value(new, "ipchain_tx_results_total", status="committed", code="ok") == 120
        assert value(new, "ipchain_mempool_txs") == 0
        assert value(new, "ipchain_view") == 0 and value(new, "ipchain_view_changes_total") == 0
        for j in range(4):
            if j != i:
                assert value(new, "ipchain_messages_sent_total", peer=f"node{j}") > \
                    value(old, "ipchain_messages_sent_total", peer=f"node{j}")
        assert value(new, "ipchain_messages_received_total", type="Commit") > \
            value(old, "ipchain_messages_received_total", type="Commit")
        # every node admitted the txs (from a client or relayed), so each measured them
        assert value(new, "ipchain_commit_latency_seconds_count") == 120
        assert 0 < value(new, "ipchain_commit_latency_seconds_sum") < 120 * 10
    assert value(after[1], "ipchain_messages_received_total", type="PrePrepare") >= 1


async def test_refused_transactions_and_bad_signatures_are_counted(local_cluster) -> None:
    cluster = await local_cluster(4)
    good = cluster.transfers(1)[0]
    forged = dataclasses.replace(good, sig=bytes(64), encoded=b"")
    async with cluster.session.post(cluster.url(0) + "/v1/tx", json=forged.to_json()) as resp:
        assert resp.status == 400
    bad_vote = wire.Signed(wire.Prepare(0, 1, bytes(32)), 2, bytes(64))
    body = msgpack.packb([wire.encode(bad_vote)], use_bin_type=True)
    async with cluster.session.post(cluster.url(0) + "/p2p/messages", data=body,
                                    headers={"Content-Type": "application/msgpack"}) as resp:
        assert resp.status == 202
    await until(lambda: cluster.node(0).runtime.replica.stats["dropped_bad_signature"] == 1, 5,
                "the forged vote to reach the replica")
    samples = await scrape(cluster, 0)
    assert value(samples, "ipchain_txs_refused_total", code="BadSignature") == 1
    assert value(samples, "ipchain_signature_failures_total") == 1
    assert value(samples, "ipchain_evidence_total") == 0


async def test_each_node_has_its_own_registry(local_cluster) -> None:
    cluster = await local_cluster(4)
    txs = cluster.transfers(10)
    await cluster.submit(txs, node=3)
    await cluster.wait_committed(txs)
    samples = [await scrape(cluster, i) for i in range(4)]
    assert [value(s, "ipchain_txs_total") for s in samples] == [10] * 4
    assert total(samples[0], "ipchain_node_info") == 1


# -- logs ---------------------------------------------------------------------------------
def format_line(message: str, *args: object, name: str = "ipchain.test",
                exc: bool = False) -> str:
    record = logging.LogRecord(name, logging.WARNING, __file__, 1, message, args,
                               None if not exc else _exc_info())
    return logs.KeyValueFormatter("node3").format(record)


def _exc_info():
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        return sys.exc_info()


@pytest.mark.parametrize("message, args, expected_tail", [
    ("event=started port=%d", (26600,), "node=node3 event=started port=26600"),
    ("Error handling request", (), 'node=node3 event=log msg="Error handling request"'),
    ('two\nlines "quoted"', (), r'node=node3 event=log msg="two\nlines \"quoted\""'),
    ("event=odd text=%s", ("a\nb",), r"node=node3 event=odd text=a\nb"),
])
def test_log_lines_are_one_structured_event(message: str, args: tuple, expected_tail: str) -> None:
    line = format_line(message, *args)
    assert "\n" not in line
    assert line.startswith("ts=") and " level=warning logger=ipchain.test " in line
    assert line.endswith(expected_tail)


def test_tracebacks_stay_on_the_line() -> None:
    line = format_line("event=crash", exc=True)
    assert "\n" not in line and 'exc="Traceback' in line and "boom\\nsecond line" in line


def test_configure_sets_level_and_refuses_unknown_levels() -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        logs.configure("info", "node7")
        stream = io.StringIO()
        root.handlers[0].setStream(stream)
        logging.getLogger("ipchain.test").debug("event=hidden")
        logging.getLogger("ipchain.test").info("event=shown n=%d", 1)
        assert stream.getvalue().count("\n") == 1 and "node=node7 event=shown n=1" in \
            stream.getvalue()
        with pytest.raises(ConfigError):
            logs.configure("loud")
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
