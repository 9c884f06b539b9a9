"""`ipchain bench`: one JSON result, and the temporary cluster always goes away,
including when the bench is interrupted mid-load."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ipchain.cluster.procs import pids_under

pytestmark = pytest.mark.cluster

BENCH = [sys.executable, "-m", "scripts.cli", "bench", "--nodes", "4"]


def bench_dir(stderr: str) -> Path:
    found = re.search(r" in (\S*ipchain-bench-\S+)", stderr)
    assert found, stderr
    return Path(found.group(1))


def test_bench_prints_one_json_result_and_cleans_up(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    run = subprocess.run([*BENCH, "--duration", "1", "--rate", "200", "--out", str(out)],
                         capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)  # stdout is exactly one JSON object
    assert json.loads(out.read_text()) == result
    assert result["nodes"] == 4 and result["offered_tps"] == 200
    assert result["submitted"] == 200 and result["committed"] == 200
    assert result["rejected"] == 0 and result["agreement"] is True
    assert 0 < result["p50_ms"] <= result["p99_ms"]
    # Each node did real work for the 200 transactions, and more than one verification.
    assert len(result["cpu_us_per_tx"]) == 4
    assert all(v is not None and v > result["verify_us"] > 0 for v in result["cpu_us_per_tx"])
    assert 0 < result["limit_ratio"] < 1
    # A light load causes no view change, and each node's memory was sampled.
    assert result["view_changes"] == 0 and result["views_end"] == [0, 0, 0, 0]
    assert all(v is not None and v > 0 for v in result["rss_mb_start"] + result["rss_mb_end"])
    assert result["shed"] == 0
    workdir = bench_dir(run.stderr)
    assert not workdir.exists() and pids_under(workdir) == []


def test_bench_loads_an_existing_cluster_and_leaves_it_running(start_cluster) -> None:
    cluster, _ = start_cluster(4, clients=8)
    run = subprocess.run([*BENCH, "--data-dir", str(cluster.data_dir), "--clients", "8",
                          "--duration", "1", "--rate", "100"], capture_output=True, text=True,
                         timeout=180)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["committed"] == 100 and result["agreement"] is True
    assert all(v and v > 0 for v in result["cpu_us_per_tx"])  # read from /proc of its pids
    assert cluster.running() == [0, 1, 2, 3]


def test_interrupted_bench_stops_its_cluster() -> None:
    proc = subprocess.Popen([*BENCH, "--duration", "60", "--rate", "100"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[str] = []
    workdir = None
    try:
        for line in proc.stderr:  # blocks on the bench's own progress, not on a timer
            seen.append(line)
            if "offering" in line:
                break
        workdir = bench_dir("".join(seen))
        assert pids_under(workdir), "the bench's nodes should be running mid-load"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        left = pids_under(workdir) if workdir is not None else []
        for pid in left:  # only if the test already failed: leave no node behind
            os.kill(pid, signal.SIGKILL)
    assert proc.returncode == 130
    assert left == []
    assert pids_under(workdir) == [] and not workdir.exists()
