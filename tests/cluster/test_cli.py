"""`ipchain up / status / submit --wait / down` as a user runs them, via subprocess."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ipchain.cluster.manager import Cluster
from ipchain.cluster.procs import find_free_base_port, is_pid_running, pids_under

pytestmark = pytest.mark.cluster


def ipchain(*argv: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scripts.cli", *argv], capture_output=True,
                          text=True, timeout=timeout_s)


def wait_for_heights_above(where: list[str], height: int, deadline_s: float = 30.0) -> list[int]:
    """Every node's height from `ipchain status`, once all are above `height` or at the
    deadline (a node that is down counts as -1)."""
    deadline = time.monotonic() + deadline_s
    while True:
        nodes = json.loads(ipchain("status", "--json", *where).stdout)
        heights = [n["status"]["height"] if n["up"] else -1 for n in nodes]
        if min(heights) > height or time.monotonic() >= deadline:
            return heights
        time.sleep(0.2)


@pytest.fixture
def data_dir(tmp_path: Path):
    """The CLI's data dir; whatever a failing test left running is stopped here."""
    path = tmp_path / "ipchain"
    yield path
    if Cluster.exists(path):
        Cluster.load(path).stop(timeout_s=10.0)
    assert pids_under(path) == []


def test_up_status_submit_down_restart(data_dir: Path) -> None:
    base = find_free_base_port(4)
    where = ["--data-dir", str(data_dir)]
    up = ipchain("up", "-n", "4", "--clients", "2", "--base-port", str(base), *where)
    assert up.returncode == 0, up.stderr
    urls = [f"http://127.0.0.1:{base + i}" for i in range(4)]
    assert all(url in up.stdout.splitlines() for url in urls)
    pids = [Cluster.load(data_dir).pid(i) for i in range(4)]
    assert all(pid and is_pid_running(pid) for pid in pids)

    again = ipchain("up", *where)
    assert again.returncode == 1 and "already running" in again.stderr

    status = ipchain("status", "--json", *where)
    assert status.returncode == 0, status.stdout
    nodes = json.loads(status.stdout)
    assert [n["up"] for n in nodes] == [True] * 4
    assert {n["status"]["chain_id"] for n in nodes} == {"ipchain-local"}

    sent = ipchain("submit", "token.transfer", "--args", '{"to": "cnipa", "amount": 7}',
                   "--org", "harbor-capital", "--node", urls[2], "--wait", *where)
    assert sent.returncode == 0, sent.stdout + sent.stderr
    answer = json.loads(sent.stdout)
    assert answer["status"] == "committed" and answer["receipt"]["code"] == "ok"
    height = answer["receipt"]["height"]

    refused = ipchain("submit", "token.transfer", "--args", '{"to": "nobody", "amount": 1}',
                      "--org", "client-001", "--wait", *where)
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["receipt"]["code"] == "UnknownAccount"

    table = ipchain("status", *where)
    assert table.stdout.count(" up ") == 4

    down = ipchain("down", *where)
    assert down.returncode == 0, down.stderr
    assert "stopped 4 node(s)" in down.stdout
    assert not any(is_pid_running(pid) for pid in pids)
    assert pids_under(data_dir) == []
    assert ipchain("status", *where).returncode == 1  # every node is down

    restart = ipchain("up", *where)  # same keys and state, chain continues
    assert restart.returncode == 0, restart.stderr
    assert "restarting" in restart.stdout
    heights = wait_for_heights_above(where, height)  # a quorum committed; one may lag
    assert min(heights) > height, heights
    assert ipchain("down", *where).returncode == 0
    assert pids_under(data_dir) == []


def test_up_refuses_taken_ports(data_dir: Path) -> None:
    base = find_free_base_port(2)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", base + 1))
        squatter.listen()
        up = ipchain("up", "-n", "2", "--base-port", str(base), "--data-dir", str(data_dir))
    assert up.returncode == 1
    assert f"[{base + 1}]" in up.stderr and "in use" in up.stderr
    assert pids_under(data_dir) == []


def test_demo_runs_the_story_and_stops(data_dir: Path) -> None:
    base = find_free_base_port(4)
    demo = ipchain("demo", "--down", "--base-port", str(base), "--data-dir", str(data_dir))
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr
    assert "all 4 nodes agree at height" in demo.stdout
    done = re.search(r"^(\d+) of (\d+) transactions committed$", demo.stdout, re.M)
    assert done and done.group(1) == done.group(2)
    assert int(done.group(1)) >= 8  # at least the funding transfers
    # the market chapter ran on the live cluster and each of its claims holds (exit 0
    # also requires that); the ratings table reads GET /v1/state/credit/<org>
    for title in ("the market chapter, checked on chain", "credit ratings", "pledge loans"):
        assert title in demo.stdout, title
    assert re.search(r"^the borrower's rating fell\s+yes$", demo.stdout, re.M)
    assert pids_under(data_dir) == []
