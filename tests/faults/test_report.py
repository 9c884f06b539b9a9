"""What a run leaves behind, from planted data: the SVG timeline is well-formed and
shades every fault window; the summary and report say pass or fail with the violations;
the CLI refuses bad scenarios before starting anything."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import pytest

from scripts.cli import main as ipchain_main
from ipchain.checks import Violation, run_checks
from ipchain.faultrun.control import Applied, Window
from ipchain.faultrun.report import build_report, format_summary, write_outputs
from ipchain.faultrun.scenario import parse_scenario
from ipchain.faultrun.timeline import Shade, TimelineData, render_svg
from tests.checks.planted import clean_history

SVG = "{http://www.w3.org/2000/svg}"


def timeline(shades: list[Shade]) -> TimelineData:
    return TimelineData("demo", 20.0, [(s, 30) for s in range(20)],
                        {i: [(t / 2, 0 if t < 20 else 1) for t in range(40)] for i in range(4)},
                        {i: [(t / 2, not (i == 3 and 10 <= t < 20)) for t in range(40)]
                         for i in range(4)}, shades, heal_t=12.0, load_end_t=18.0)


def test_timeline_is_svg_with_a_shade_per_fault_window() -> None:
    shades = [Shade("kill node3", "process", 5.0, 10.0), Shade("partition {0,1}|{2,3}",
                                                               "network", 6.0, 12.0),
              Shade("byzantine mute @1", "byzantine", 7.0, 12.0)]
    root = ET.fromstring(render_svg(timeline(shades)))
    texts = [t.text for t in root.iter(f"{SVG}text")]
    for label in ("kill node3", "partition {0,1}|{2,3}", "byzantine mute @1", "heal",
                  "committed tx/s", "view (per node)"):
        assert label in texts
    tips = [r.find(f"{SVG}title").text for r in root.iter(f"{SVG}rect")
            if r.find(f"{SVG}title") is not None]
    assert any(t.startswith("kill node3: 5.0s - 10.0s") for t in tips)
    assert sum(1 for t in tips if t.endswith(": 30 tx")) == 20  # one bar per second
    assert len(list(root.iter(f"{SVG}polyline"))) == 4  # one view line per node


def test_overlapping_labels_get_their_own_lanes() -> None:
    shades = [Shade(f"fault number {k}", "network", 1.0 + k * 0.1, 5.0) for k in range(3)]
    root = ET.fromstring(render_svg(timeline(shades)))
    ys = {t.get("y") for t in root.iter(f"{SVG}text") if (t.text or "").startswith("fault number")}
    assert len(ys) == 3


def fake_run(history, violations: list[Violation], tmp_path: Path):
    scenario = parse_scenario('name = "planted"\nnegative_control = false\n', "planted.toml")
    data = SimpleNamespace(wall0_ms=0, samples=[], heal_t=10.0, load_end_t=15.0, end_t=16.0,
                           diagnostics={})
    controller = SimpleNamespace(applied=[Applied(0, "kill 3", 2.0, 2.01, [3])],
                                 windows=[Window("kill node3", "process", (3,), 2.01, 6.0, 0)])
    held = {"agreement": not violations}
    report = build_report(scenario, history, data, controller, violations, held, tmp_path, 20.0)
    write_outputs(report, history, data, controller, tmp_path)
    return report


def test_report_and_summary_for_a_clean_run(tmp_path: Path) -> None:
    report = fake_run(clean_history(), [], tmp_path)
    assert report["passed"] is True and report["as_expected"] is True
    assert report["violations"] == [] and report["liveness"]["recovered_after_s"] == 0.5
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk["passed"] is True and on_disk["load"]["submitted"] == 7
    summary = (tmp_path / "summary.txt").read_text()
    assert "RESULT: PASSED (expected: pass) - as expected" in summary
    assert "kill node3" in summary and str(tmp_path / "timeline.svg") in summary
    lines = (tmp_path / "submissions.jsonl").read_text().splitlines()
    assert len(lines) == 7 and {json.loads(l)["outcome"] for l in lines} == {
        "acknowledged", "rejected", "unknown"}
    ET.fromstring((tmp_path / "timeline.svg").read_text())


def test_report_lists_violations_with_nodes_heights_and_evidence(tmp_path: Path) -> None:
    history = clean_history()
    history.replicas[3].blocks = history.replicas[3].blocks[:2] + [
        b.__class__(**{**b.__dict__, "hash": "f" * 64}) for b in history.replicas[3].blocks[2:]]
    violations, _ = run_checks(history)
    report = fake_run(history, violations, tmp_path)
    assert report["passed"] is False and report["as_expected"] is False
    fork = next(v for v in report["violations"] if v["invariant"] == "agreement")
    assert fork["heights"] == [3, 4] and fork["nodes"] == [0, 1, 2, 3] and fork["evidence"]
    assert "VIOLATION agreement" in format_summary(report)


BAD = """\
name = "too-many"
heal_at_s = 8

[[events]]
at_s = 1
action = "kill"
node = 1

[[events]]
at_s = 2
action = "kill"
node = 2
"""


def test_cli_refuses_too_many_faults_before_starting(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "too-many.toml"
    path.write_text(BAD)
    assert ipchain_main(["faults", "run", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{path}:10: events[1].at_s: 2 replicas are faulty" in err and "f=1" in err
    assert not (tmp_path / "out").exists()  # nothing was started or written


def test_cli_refuses_a_syntax_error_with_its_line(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('name = "x"\n[[events]\nat_s = 1\n')
    assert ipchain_main(["faults", "run", str(path)]) == 2
    assert f"{path}:2:" in capsys.readouterr().err


def test_cli_lists_the_shipped_scenarios(capsys: pytest.CaptureFixture) -> None:
    assert ipchain_main(["faults", "list"]) == 0
    out = capsys.readouterr().out
    assert "f-plus-one-byzantine" in out and "violation" in out and "lossy-network" in out
