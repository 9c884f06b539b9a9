"""Log lines parse (logfmt quoting, JSON mode), levels change live, restarts apply options."""

from __future__ import annotations

import io
import json
import logging
import tomllib
from pathlib import Path

import pytest

from ipchain.cluster.manager import Cluster
from node import logs
from node.config import ConfigError, load_config
from scripts.cli import main as cli_main
from tests.cluster.test_oplogs import parse_logfmt

AWKWARD = 'ValueError(\'a b\') "quoted" key=value back\\slash\nnext line'


def emit(fmt: str, level: str = "info") -> list[str]:
    logs.configure(level, "node 7", fmt=fmt)
    stream = io.StringIO()
    logging.getLogger().handlers[0].setStream(stream)
    log = logging.getLogger("ipchain.test")
    log.info(logs.Event("block", height=3, error=AWKWARD, ok=True, empty=""))
    log.warning("event=legacy height=%d", 4)
    log.info("free text with = and \"quotes\"")
    log.debug(logs.Event("hidden"))
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception(logs.Event("failed", reason="x y"))
    return stream.getvalue().splitlines()


@pytest.fixture(autouse=True)
def restore_logging():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_logfmt_quotes_every_awkward_value_and_each_line_parses():
    lines = emit("logfmt")
    assert len(lines) == 4  # the debug line is filtered
    records = [parse_logfmt(line) for line in lines]
    assert records[0]["error"] == AWKWARD and records[0]["node"] == "node 7"
    assert records[0]["ok"] == "true" and records[0]["empty"] == ""
    assert records[1]["event"] == "legacy" and records[1]["height"] == "4"
    assert records[2]["msg"] == 'free text with = and "quotes"'
    assert "RuntimeError: boom" in records[3]["exc"] and records[3]["reason"] == "x y"


def test_json_mode_writes_one_object_per_line_with_typed_fields():
    records = [json.loads(line) for line in emit("json")]
    assert records[0]["event"] == "block" and records[0]["height"] == 3
    assert records[0]["error"] == AWKWARD and records[0]["ok"] is True
    assert records[1] == {**records[1], "event": "legacy", "height": "4", "level": "warning"}
    assert records[2]["msg"] == 'free text with = and "quotes"'
    assert "RuntimeError: boom" in records[3]["exc"]


def test_level_changes_live_and_bad_values_are_refused():
    logs.configure("info")
    assert logs.current_level() == "info"
    assert not logging.getLogger("ipchain.engine").isEnabledFor(logging.DEBUG)
    assert logs.set_level("DEBUG") == "debug"
    assert logging.getLogger("ipchain.engine").isEnabledFor(logging.DEBUG)
    for bad in ("loud", "", 3):
        with pytest.raises(ConfigError):
            logs.set_level(bad)
    with pytest.raises(ConfigError):
        logs.configure("info", fmt="xml")


def test_restart_options_are_written_to_every_node_config(tmp_path: Path):
    cluster = Cluster.create(tmp_path / "c", 4, 31000, 0)
    assert load_config(cluster.config_path(2)).log_level == "warning"
    cluster.set_node_options(log_level="debug", log_format="json")
    for i in range(4):
        cfg = load_config(cluster.config_path(i))
        assert (cfg.log_level, cfg.log_format) == ("debug", "json")
        assert len(tomllib.loads(cluster.config_path(i).read_text())["peers"]) == 3


def test_cli_refuses_an_unknown_level_before_writing_anything(tmp_path: Path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["up", "--data-dir", str(tmp_path / "d"), "--log-level", "loud"])
    assert exit_info.value.code == 2 and not (tmp_path / "d").exists()
    assert "invalid choice: 'loud'" in capsys.readouterr().err
