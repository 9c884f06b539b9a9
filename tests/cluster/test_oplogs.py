"""Operator logs on a real 4-node cluster: info tells the story of a primary crash.

node0..node2 write logfmt, node3 writes JSON (`log_format = "json"` in its config), all
at info. Transfers commit, the primary is killed, the survivors change view; their logs
hold the block, view-change-started and view-installed lines with their fields, every
line of every log parses (a strict logfmt parser below; json.loads for node3), and the
admin API turns debug on live: debug lines appear after the PUT, never before.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
import tomllib
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ipchain.cluster.manager import Cluster, start_and_wait
from ipchain.cluster.procs import find_free_base_port, pids_under
from ipchain.sdk import client
from node.config import read_admin_token

pytestmark = pytest.mark.cluster

_KEY = r"[A-Za-z0-9_.:\-]+"
_BARE = r"[^\s\"=\\]+"
_QUOTED = r'"(?:[^"\\\x00-\x1f]|\\["\\/bfnrt]|\\u[0-9a-fA-F]{4})*"'
_PAIR = re.compile(rf"({_KEY})=({_QUOTED}|{_BARE})")


def parse_logfmt(line: str) -> dict[str, Any]:
    """Strict: `key=value` pairs split by single spaces; a value is a bare token (no space,
    quote, `=` or backslash) or a JSON string. Anything else raises ValueError."""
    fields: dict[str, Any] = {}
    pos = 0
    while pos < len(line):
        match = _PAIR.match(line, pos)
        if match is None:
            raise ValueError(f"not logfmt at column {pos}: {line!r}")
        key, raw = match.groups()
        if key in fields:
            raise ValueError(f"duplicate key {key!r}: {line!r}")
        fields[key] = json.loads(raw) if raw.startswith('"') else raw
        pos = match.end()
        if pos < len(line):
            if line[pos] != " ":
                raise ValueError(f"no space after {key}= at column {pos}: {line!r}")
            pos += 1
    for required in ("ts", "level", "logger", "event"):
        if required not in fields:
            raise ValueError(f"missing {required}: {line!r}")
    return fields


def test_strict_parser_rejects_what_breaks_logfmt():
    assert parse_logfmt('ts=1 level=info logger=x event=a error="b c \\"d\\""')["error"] == \
        'b c "d"'
    for bad in ("ts=1 level=info logger=x event=a error=ValueError('b c')",
                'ts=1 level=info logger=x event=a msg="unterminated',
                "ts=1 level=info logger=x event=a x=a=b"):
        with pytest.raises(ValueError):
            parse_logfmt(bad)


def read_log(cluster: Cluster, i: int, fmt: str) -> list[dict[str, Any]]:
    lines = cluster.log_path(i).read_text().splitlines()
    parse = json.loads if fmt == "json" else parse_logfmt
    records = [parse(line) for line in lines if line]
    assert all("event" in r and "level" in r for r in records)
    return records


async def until(predicate, what: str, deadline_s: float = 90.0) -> Any:
    deadline = time.monotonic() + deadline_s
    while not (value := await predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)
    return value


async def transfers(session: Any, cluster: Cluster, urls: list[str], count: int) -> None:
    key = cluster.client_key("client-000")
    for k in range(count):
        nonce = cluster.nonces.reserve(client.sender_hex(key))
        tx = client.sign(key, cluster.chain_id, nonce, "token.transfer",
                         {"to": "north-university", "amount": 1})
        answer = await client.submit(session, urls[k % len(urls)], tx, wait=True,
                                     timeout_ms=30_000)
        assert answer["status"] == "committed"


async def set_level(session: Any, cluster: Cluster, i: int, level: str) -> dict[str, Any]:
    token = read_admin_token(cluster.config_path(i))
    async with session.put(f"{cluster.urls[i]}/admin/log-level", json={"level": level},
                           headers={"Authorization": f"Bearer {token}"}) as resp:
        return {"status": resp.status, **(await resp.json())}


async def scenario(cluster: Cluster) -> int:
    async with aiohttp.ClientSession() as session:
        await transfers(session, cluster, cluster.urls, 8)
        cluster.kill(0, signal.SIGKILL)
        survivors = cluster.urls[1:]
        await transfers(session, cluster, survivors, 6)  # commits only once a view is installed

        async def installed() -> bool:
            return all(any(r["event"] == "view_installed" for r in read_log(cluster, i, fmt))
                       for i, fmt in ((1, "logfmt"), (3, "json")))
        await until(installed, "view_installed in node1 and node3 logs")

        refused = await set_level(session, cluster, 2, "loud")
        assert refused["status"] == 400 and refused["error"]["code"] == "BadLogLevel"
        before = len(read_log(cluster, 2, "logfmt"))
        changed = await set_level(session, cluster, 2, "debug")
        assert changed == {"status": 200, "level": "debug", "was": "info"}
        await transfers(session, cluster, survivors, 2)

        async def debug_seen() -> bool:
            return any(r["level"] == "debug" for r in read_log(cluster, 2, "logfmt")[before:])
        await until(debug_seen, "a debug line on node2 after PUT /admin/log-level")

        cluster.start([0])  # the old primary restores, catches up and says so
        await transfers(session, cluster, survivors, 2)
        target = (await client.get_status(session, cluster.urls[1]))["height"]

        async def caught_up() -> bool:
            heights = [int(r["height"]) for r in read_log(cluster, 0, "logfmt")
                       if r["event"] == "block"]
            return heights and max(heights) >= target
        await until(caught_up, "node0 logging blocks up to the cluster's height")
        return before


def check_story(records: list[dict[str, Any]], node: str) -> None:
    by_event: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_event.setdefault(r["event"], []).append(r)
    started = by_event["started"][0]
    assert started["level"] == "info" and int(started["port"]) > 0, node
    blocks = by_event["block"]
    assert len(blocks) >= 8, node
    assert all(int(b["height"]) >= 1 and int(b["txs"]) >= 0 and "ms_since_proposal" in b
               for b in blocks), node
    assert [int(b["height"]) for b in blocks] == sorted(int(b["height"]) for b in blocks)
    vc = by_event["view_change_started"][0]
    assert int(vc["from"]) == 0 and int(vc["to"]) >= 1 and vc["reason"], (node, vc)
    done = by_event["view_installed"][-1]
    assert int(done["from"]) == 0 and int(done["to"]) >= 1, (node, done)
    assert int(done["duration_ms"]) >= 0 and int(done["primary"]) != 0, (node, done)
    assert "debug" not in {r["level"] for r in records}, node


def test_primary_crash_info_logs_tell_the_story(tmp_path: Path):
    cluster = Cluster.create(tmp_path / "c", 4, find_free_base_port(4), 2, log_level="info",
                             consensus={"request_timeout_ms": 1500})
    config = tomllib.loads(cluster.config_path(3).read_text())
    assert config["log_level"] == "info"
    cluster_json_node = cluster.config_path(3)
    cluster_json_node.write_text(cluster_json_node.read_text().replace(
        'log_level = "info"', 'log_level = "info"\nlog_format = "json"'))
    try:
        start_and_wait(cluster, 60.0)
        before = asyncio.run(scenario(cluster))
        check_story(read_log(cluster, 1, "logfmt"), "node1")
        check_story(read_log(cluster, 3, "json"), "node3")
        node2 = read_log(cluster, 2, "logfmt")
        assert "debug" not in {r["level"] for r in node2[:before]}
        assert any(r["event"] == "log_level_changed" for r in node2)
        node0 = read_log(cluster, 0, "logfmt")
        assert [r["event"] for r in node0].count("started") == 2
        assert [r["event"] for r in node0].count("restored") == 2
        print("\n--- node1 info log ---\n" + cluster.log_path(1).read_text()[:6000])
    finally:
        cluster.stop(timeout_s=10.0)
        assert pids_under(cluster.data_dir) == []
