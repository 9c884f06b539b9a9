"""The CLI's newer options against real node processes, run as a user runs them.

`up --mqtt --mqtt-port`, `submit` after an SDK client used the same key, `watch` over
SSE (default) and MQTT, `demo --json`, `faults run --base-port --json`.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from ipchain.cluster import broker
from ipchain.cluster.manager import Cluster
from ipchain.cluster.procs import find_free_base_port, is_port_free, pids_under
from ipchain.sdk.aio import AsyncClient
from ipchain.sdk.keys import Signer
from tests.cluster.test_cli import data_dir, ipchain  # noqa: F401  (fixture)

pytestmark = pytest.mark.cluster


def free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def watcher(*argv: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "scripts.cli", "watch", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_mqtt_port_submit_recovery_and_watch(data_dir: Path) -> None:  # noqa: F811
    pytest.importorskip("amqtt", reason="the embedded broker is amqtt (pip install amqtt)")
    base, mqtt_port = find_free_base_port(4), free_port()
    where = ["--data-dir", str(data_dir)]
    up = ipchain("up", "--base-port", str(base), "--clients", "1", "--mqtt", "--mqtt-port",
                 str(mqtt_port), *where)
    watchers: list[subprocess.Popen] = []
    try:
        assert up.returncode == 0, up.stderr
        url = f"mqtt://127.0.0.1:{mqtt_port}"
        assert {tomllib.loads(p.read_text())["mqtt_url"]
                for p in data_dir.glob("node*/config.toml")} == {url}
        assert broker.is_serving_mqtt("127.0.0.1", mqtt_port)

        # another client (the SDK, nonces from the account) takes this key's next nonces
        cluster = Cluster.load(data_dir)
        key_file = data_dir / "other.key"
        key_file.write_text(bytes(cluster.client_key("client-000")).hex())

        async def other_client() -> None:
            async with AsyncClient(cluster.urls[1], signer=Signer.from_file(key_file)) as sdk:
                for _ in range(3):
                    answer = await sdk.submit("token.transfer", {"to": "cnipa", "amount": 1})
                    assert answer["status"] == "committed", answer
        asyncio.run(other_client())

        height = json.loads(ipchain("status", "--json", *where).stdout)[0]["status"]["height"]
        sse = watcher("--json", "--count", "2", "--timeout", "60", "--from-height",
                      str(height + 1), *where)  # the next block on: no race with the submit
        mqtt = watcher("--mqtt", "--json", "--count", "2", "--timeout", "60", *where)
        watchers += [sse, mqtt]
        assert "reading the event stream of http://127.0.0.1:" in connected_line(sse)
        assert f"subscribed to ipchain/# at {url}" in connected_line(mqtt)
        sent = ipchain("submit", "token.transfer", "--org", "client-000", "--args",
                       '{"to": "cnipa", "amount": 2}', "--wait", *where)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert json.loads(sent.stdout)["status"] == "committed"
        assert "retrying once with the account's next nonce 3" in sent.stderr
        for proc in watchers:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            kinds = [json.loads(line)["type"] for line in out.splitlines()]
            assert len(kinds) == 2 and set(kinds) <= {"block", "event"}, out
    finally:
        for proc in watchers:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert ipchain("down", *where).returncode == 0
    assert pids_under(data_dir) == [] and is_port_free(mqtt_port)


def connected_line(proc: subprocess.Popen) -> str:
    """The watcher's first stderr line: it is reading (or subscribed); or its error."""
    assert proc.stderr is not None
    return proc.stderr.readline()


def test_demo_json_is_one_object_on_stdout(data_dir: Path) -> None:  # noqa: F811
    base = find_free_base_port(4)
    demo = ipchain("demo", "--json", "--down", "--base-port", str(base), "--data-dir",
                   str(data_dir), timeout_s=300)
    assert demo.returncode == 0, demo.stderr[-3000:]
    summary = json.loads(demo.stdout)  # the whole of stdout is one JSON object
    assert summary["ok"] is True and summary["agreed"] is True
    assert summary["committed"] == len(summary["transactions"]) >= 8
    assert all(check["holds"] for check in summary["checks"]) and summary["checks"]
    assert [n["url"] for n in summary["nodes"]] == \
        [f"http://127.0.0.1:{base + i}" for i in range(4)]
    assert "demo transactions:" in demo.stderr  # progress, on stderr
    assert "the story, checked on chain" in demo.stderr  # the tables, on stderr
    assert pids_under(data_dir) == []


def test_faults_run_on_a_chosen_base_port_prints_the_report_as_json(tmp_path: Path) -> None:
    scenario = tmp_path / "short.toml"
    scenario.write_text(SHORT)
    base = find_free_base_port(4)
    run = ipchain("faults", "run", str(scenario), "--base-port", str(base), "--json",
                  "--out", str(tmp_path / "out"), timeout_s=180)
    report = json.loads(run.stdout)
    assert run.returncode == (0 if report["as_expected"] else 1), run.stderr[-2000:]
    assert f"ports {base}..{base + 3}" in run.stderr
    assert "faults run short:" in run.stderr  # the progress lines
    assert report["scenario"] == "short"
    assert pids_under(tmp_path / "out" / "cluster") == []


SHORT = """
name = "short"
description = "pause a backup briefly under light load"
nodes = 4
duration_s = 6
heal_at_s = 4
liveness_bound_s = 15
seed = 3

[load]
rate_tps = 10
clients = 4

[[events]]
at_s = 1
action = "pause"
node = 3
"""
