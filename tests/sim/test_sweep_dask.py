"""Seeds spread over a real Dask cluster give exactly the single-process outcomes.

A `dask scheduler` and two `dask worker` processes run on loopback (free ports, the
scheduler's address read from its scheduler file); `ipchain sim --scheduler` sends the
seeds there, streams one JSON line per seed, and a second, resumed run skips them all.
Determinism across processes is what lets a sweep be split over machines: each seed's
fingerprint (chains, roots, acknowledgements, verdicts) must equal the one computed here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ipchain.sim.faults import MIXES
from ipchain.sim.run import SimConfig
from ipchain.sim.sweep import done_seeds, run_one, sweep

pytest.importorskip("distributed", reason="dask.distributed is not installed")

SEEDS = 200
CFG = SimConfig(nodes=4, blocks=10, mix=MIXES["full"])
FLAGS = ["--nodes", "4", "--blocks", "10", "--mix", "full"]
DASK = Path(sys.executable).with_name("dask")


def _start(argv: list[str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(argv, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True, cwd=Path(__file__).parents[2])


def _wait_for(predicate, what: str, deadline_s: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.fixture
def dask_cluster(tmp_path: Path):
    if not DASK.exists():
        pytest.skip(f"the dask command is not installed beside {sys.executable}")
    scheduler_file = tmp_path / "scheduler.json"
    procs = [_start([str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0",
                     "--no-dashboard", "--scheduler-file", str(scheduler_file)],
                    tmp_path / "scheduler.log")]
    try:
        _wait_for(scheduler_file.exists, "the scheduler file")
        address = json.loads(scheduler_file.read_text())["address"]
        for i in range(2):
            procs.append(_start([str(DASK), "worker", "--scheduler-file", str(scheduler_file),
                                 "--nthreads", "1", "--nworkers", "1", "--no-dashboard",
                                 "--host", "127.0.0.1", "--name", f"w{i}"],
                                tmp_path / f"worker{i}.log"))
        from dask.distributed import Client
        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def test_200_seeds_on_a_scheduler_and_two_workers_match_the_single_process_run(
        dask_cluster: str, tmp_path: Path) -> None:
    out = tmp_path / "results.jsonl"
    cli = [sys.executable, "-m", "scripts.sim", "--seeds", str(SEEDS), *FLAGS, "--json",
           "--scheduler", dask_cluster, "--out", str(out)]
    ran = subprocess.run(cli, capture_output=True, text=True, timeout=600,
                         cwd=Path(__file__).parents[2])
    summary = json.loads(ran.stdout)
    # Exit 1 would mean some seed found a violation: that is the sweep's verdict, not a
    # distribution failure, and the fingerprints below compare verdicts too.
    assert ran.returncode == (1 if summary["failing_seeds"] else 0), ran.stderr[-2000:]
    assert summary["ran"] == SEEDS and summary["backend"] == dask_cluster
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(v["seed"] for v in lines) == list(range(1, SEEDS + 1))
    distributed = {v["seed"]: v["fingerprint"] for v in lines}
    local = {seed: run_one(seed, CFG)["fingerprint"] for seed in range(1, SEEDS + 1)}
    assert distributed == local

    resumed = subprocess.run([*cli, "--resume"], capture_output=True, text=True, timeout=300,
                             cwd=Path(__file__).parents[2])
    again = json.loads(resumed.stdout)
    assert again["failing_seeds"] == summary["failing_seeds"], resumed.stderr[-2000:]
    assert (again["ran"], again["resumed"], again["seeds"]) == (0, SEEDS, SEEDS)
    assert len(out.read_text().splitlines()) == SEEDS


def test_resume_reruns_only_what_is_missing_and_ignores_a_torn_line(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    first = sweep(CFG, range(1, 6), out=out)
    assert first["ran"] == 5
    with out.open("a") as sink:
        sink.write('{"seed": 6, "ok": tr')  # killed mid-write
    assert done_seeds(out) == {1, 2, 3, 4, 5}
    second = sweep(CFG, range(1, 9), out=out, resume=True)
    assert (second["ran"], second["resumed"], second["seeds"]) == (3, 5, 8)
    assert done_seeds(out) == set(range(1, 9))
