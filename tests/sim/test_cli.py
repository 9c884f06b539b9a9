"""`ipchain sim`: the JSON summary of a sweep, the replay of one seed, exit codes."""

from __future__ import annotations

import json

import pytest

from scripts.sim import main
from scripts.cli import main as ipchain_main


def test_sweep_prints_a_json_summary(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--seeds", "2", "--seed-start", "5", "--blocks", "8", "--mix", "normal", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    assert summary["seeds"] == 2 and summary["seed_first"] == 5 and summary["violations"] == []
    assert summary["seeds_per_min"] > 0 and summary["keyring"] == "fast-insecure-sim"


def test_negative_control_sweep_reports_violations_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--seeds", "1", "--blocks", "6", "--faulty", "2", "--byzantine", "collude"])
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert code == 1 and summary["failing_seeds"] == [1]
    assert {"seed", "invariant", "message", "nodes", "heights"} <= set(summary["violations"][0])
    assert "fault plan (seed 1" in captured.err
    assert "replay: ipchain sim --seed 1 --nodes 4 --blocks 6" in captured.err


def test_replay_prints_the_plan_and_outcome(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--seed", "3", "--blocks", "10", "--mix", "normal"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("seed 3: OK") and "fault plan (seed 3" in out and "outcome:" in out


def test_ipchain_dispatcher_forwards_to_the_simulator(capsys: pytest.CaptureFixture[str]) -> None:
    code = ipchain_main(["sim", "--seed", "2", "--blocks", "5", "--mix", "none", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["seed"] == 2 and result["ok"] is True


@pytest.mark.parametrize("argv", [["--byzantine", "polite"], ["--faulty", "9"], ["--nodes", "0"],
                                  ["--seed", "1", "--seeds", "2"], ["--mix", "auto"]])
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        code = main(argv)
        raise SystemExit(code)
    assert stop.value.code == 2
