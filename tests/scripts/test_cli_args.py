"""Argument parsing of every `ipchain` command: defaults, flags and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts import cli
from ipchain.sdk import client
from scripts.cli import build_parser
from ipchain.cluster.manager import ClusterError


def parse(*argv: str):
    return build_parser().parse_args(list(argv))


@pytest.mark.parametrize("argv, expected", [
    (["up"], {"n": None, "clients": None, "fresh": False, "base_port": None,
              "data_dir": Path(".ipchain"), "timeout": 60.0}),
    (["up", "-n", "7", "--clients", "3", "--fresh", "--base-port", "27000",
      "--data-dir", "/tmp/x"], {"n": 7, "clients": 3, "fresh": True, "base_port": 27000,
                                "data_dir": Path("/tmp/x")}),
    (["down", "--timeout", "3"], {"timeout": 3.0, "data_dir": Path(".ipchain")}),
    (["status", "--json", "-n", "5"], {"json": True, "n": 5}),
    (["submit", "token.transfer", "--args", '{"to": "cnipa", "amount": 5}', "--wait",
      "--org", "acme-electronics", "--nonce", "9"],
     {"op": "token.transfer", "op_args": {"to": "cnipa", "amount": 5}, "wait": True,
      "org": "acme-electronics", "nonce": 9, "key": None, "node": None}),
    (["submit", "patent.cite", "--key", "k.key", "--node", "http://127.0.0.1:9"],
     {"op_args": {}, "key": Path("k.key"), "org": None, "node": "http://127.0.0.1:9",
      "wait": False, "nonce": None}),
    (["demo"], {"n": 4, "down": False, "base_port": None}),
    (["demo", "--nodes", "7", "--down"], {"n": 7, "down": True}),
    (["bench", "--nodes", "4", "--duration", "5", "--rate", "300", "--out", "r.json"],
     {"n": 4, "duration": 5.0, "rate": 300, "out": Path("r.json"), "base_port": None,
      "batch_size": 50, "max_inflight": 8}),
])
def test_parse(argv: list[str], expected: dict) -> None:
    args = parse(*argv)
    assert args.command == argv[0]
    for name, value in expected.items():
        assert getattr(args, name) == value, name


@pytest.mark.parametrize("argv", [
    [],
    ["up", "-n", "0"],
    ["up", "--clients", "-1"],
    ["submit", "token.transfer", "--args", "not json"],
    ["submit", "token.transfer", "--args", "[1, 2]"],
    ["submit", "token.transfer", "--key", "k", "--org", "cnipa"],
    ["submit", "token.transfer", "--nonce", "-3"],
    ["bench", "--rate", "0"],
    ["up", "--base-port", "0"],
    ["up", "--base-port", "65500"],
    ["bench", "--base-port", "http"],
    ["proof", "abc", "--base-port", "-1"],
    ["watch", "--base-port", "99999"],
    ["frobnicate"],
])
def test_refused(argv: list[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        parse(*argv)
    assert exc.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_a_privileged_base_port_is_refused_before_anything_runs(monkeypatch, capsys) -> None:
    """Not root: a port below 1024 would fail in every node's log after the data dir was
    written, so the parser says it first."""
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    with pytest.raises(SystemExit):
        parse("up", "--base-port", "80")
    assert "below 1024 need root" in capsys.readouterr().err
    monkeypatch.setattr("os.geteuid", lambda: 0)
    assert parse("up", "--base-port", "80").base_port == 80


def test_a_cluster_that_would_run_past_port_65535_is_refused_before_writing(
        tmp_path, capsys) -> None:
    assert cli.main(["up", "-n", "100", "--base-port", "65450",
                     "--data-dir", str(tmp_path / "c")]) == 1
    assert "ports above 65535" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_faults_run_refuses_a_base_port_out_of_range(capsys) -> None:
    from scripts.faults import main as faults_main
    with pytest.raises(SystemExit) as exc:
        faults_main(["run", "crash-backup", "--base-port", "70000"])
    assert exc.value.code == 2 and "must be between 1 and" in capsys.readouterr().err


@pytest.mark.parametrize("error", [
    client.ApiError(0, "Unreachable", "GET http://127.0.0.1:9/v1/status: refused"),
    ClusterError("no cluster in .ipchain (no cluster.json); run `ipchain up`"),
    ValueError("key.txt: not a hex seed"),
])
def test_a_failing_command_prints_one_line_not_a_traceback(error: Exception, monkeypatch,
                                                           capsys: pytest.CaptureFixture) -> None:
    """A node that stops answering mid-command (ApiError), like any other expected failure,
    ends the command with `ipchain <command>: error: ...` and exit status 1."""
    def fail(args):
        raise error
    monkeypatch.setitem(cli.COMMANDS, "status", fail)
    assert cli.main(["status"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ipchain status: error: ") and "Traceback" not in err
