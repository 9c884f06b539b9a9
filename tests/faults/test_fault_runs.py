"""End to end on real node processes (loopback, free ports): short fault scenarios run
through `ipchain faults run`, with the cluster always stopped afterwards.

- a backup is killed with -9 and restarted under load: the run passes;
- a short f+1 negative control: the checker must report the fork it causes;
- (soak) every shipped scenario ends the way it declares.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts.cli import main as ipchain_main
from ipchain.faultrun.runner import run_scenario
from ipchain.faultrun.scenario import SCENARIO_DIR, load_scenario
from ipchain.cluster.procs import pids_under

BACKUP_CRASH = """\
name = "backup-crash-short"
description = "kill -9 node3 under load for 3 s, with 5 % loss on node2's links"
duration_s = 9
heal_at_s = 6
liveness_bound_s = 10

[load]
rate_tps = 20
clients = 4

[[events]]
at_s = 1.5
action = "rules"
nodes = [2]
for_s = 4
rules = [{ action = "drop", probability = 0.05, direction = "both" },
         { action = "duplicate", probability = 0.1 }]

[[events]]
at_s = 2
action = "kill"
node = 3
for_s = 3
"""

FORK_SHORT = """\
name = "f-plus-one-short"
description = "negative control: node0 and node1 equivocate towards node3"
duration_s = 6
heal_at_s = 5
liveness_bound_s = 8
negative_control = true

[load]
rate_tps = 20
clients = 4

[[events]]
at_s = 1
action = "byzantine"
node = 0
mode = "equivocate"
targets = [3]

[[events]]
at_s = 1
action = "byzantine"
node = 1
mode = "equivocate"
targets = [3]
"""


def run_file(tmp_path: Path, name: str, text: str) -> dict:
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    out = tmp_path / "out"
    code = ipchain_main(["faults", "run", str(path), "--seed", "11", "--out", str(out)])
    report = json.loads((out / "report.json").read_text())
    assert code == (0 if report["as_expected"] else 1)
    assert pids_under(out / "cluster") == []
    assert (out / "timeline.svg").read_text().startswith("<svg")
    assert (out / "summary.txt").read_text().startswith("ipchain fault run")
    assert f"<h2>{report['scenario']}</h2>" in (out / "report.html").read_text()
    return report


@pytest.mark.cluster
def test_backup_crash_under_load_keeps_safety_and_liveness(tmp_path: Path) -> None:
    report = run_file(tmp_path, "backup-crash", BACKUP_CRASH)
    assert report["violations"] == [] and report["passed"] is True, report["violations"]
    assert report["load"]["acknowledged"] > 50
    assert report["liveness"]["recovered_after_s"] <= 10
    assert [w["label"] for w in report["fault_windows"]] == ["drop+duplicate @2", "kill node3"]
    finals = report["cluster"]["final"]
    assert len({f["height"] for f in finals.values()}) == 1  # node3 caught up
    assert report["diagnostics"]["2"]["counters"]  # the rules really acted


@pytest.mark.cluster
def test_f_plus_one_colluding_replicas_fork_and_the_checker_sees_it(tmp_path: Path) -> None:
    report = run_file(tmp_path, "fork", FORK_SHORT)
    assert report["passed"] is False and report["as_expected"] is True
    fork = next(v for v in report["violations"] if v["invariant"] == "agreement")
    assert fork["nodes"] == [2, 3] and fork["heights"]
    first = str(fork["heights"][0])
    assert len(fork["evidence"]["first_conflicts"][first]["blocks"]) == 2
    assert report["cluster"]["byzantine"] == [0, 1]


SHIPPED = sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))


@pytest.mark.soak
@pytest.mark.cluster
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenario_ends_as_declared(name: str, tmp_path: Path) -> None:
    scenario = load_scenario(SCENARIO_DIR / f"{name}.toml")
    report = run_scenario(scenario, tmp_path / "out", lambda line: None)
    assert pids_under(tmp_path / "out" / "cluster") == []
    assert report["as_expected"], json.dumps(report["violations"], indent=1)
