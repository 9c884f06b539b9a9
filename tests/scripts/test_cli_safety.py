"""The CLI refuses what would destroy data, and says what went wrong in one sentence."""

from __future__ import annotations

from pathlib import Path

import pytest

from ipchain.cluster.manager import Cluster
from ipchain.cluster.procs import find_free_base_port
from scripts import cli


def test_version_names_the_installed_package(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("ipchain ")


def test_demo_will_not_replace_a_chain_it_did_not_make(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    made = Cluster.create(tmp_path / "mine", 4, find_free_base_port(4), 0)
    genesis = (made.data_dir / "genesis.json").read_bytes()
    assert cli.main(["demo", "--data-dir", str(made.data_dir)]) == cli.EXIT_FAIL
    err = capsys.readouterr().err
    assert "the demo did not make" in err and "--fresh" in err
    assert (made.data_dir / "genesis.json").read_bytes() == genesis  # untouched


def test_the_demo_has_its_own_default_data_dir() -> None:
    args = cli.build_parser().parse_args(["demo"])
    assert str(args.data_dir) == cli.DEMO_DATA_DIR != str(cli.build_parser().parse_args(
        ["up"]).data_dir)


def test_an_unreachable_node_reads_as_one_sentence_with_a_hint() -> None:
    from ipchain.sdk import client

    exc = client.ApiError(0, "Unreachable", "GET http://127.0.0.1:26600/v1/status: "
                          "ClientConnectorError(ConnectionKey(host='127.0.0.1', ...))")
    assert cli.explain(exc) == ("http://127.0.0.1:26600 is not answering; is the cluster up? "
                                "try `ipchain status` (or `ipchain up`)")
    refused = client.ApiError(400, "BadArguments", "amount: must be positive")
    assert cli.explain(refused) == str(refused)


def test_up_on_a_busy_port_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        data_dir = tmp_path / "new"
        assert cli.main(["up", "--data-dir", str(data_dir), "--base-port", str(port - 1)]) == \
            cli.EXIT_FAIL
    assert "in use" in capsys.readouterr().err
    assert not data_dir.exists()


def test_an_unknown_log_level_is_refused_by_the_cli_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as refused:
        cli.main(["up", "--data-dir", str(tmp_path / "x"), "--log-level", "loud"])
    assert refused.value.code == 2 and not (tmp_path / "x").exists()
