"""The admin token is a secret (issue 17, "Secrets"): `ipchain up` writes it to a 0600
file that config.toml names; a token file others can read is refused with a message
saying how to fix it; an old config with the token inline still starts (warned)."""

from __future__ import annotations

import logging
import os
import tomllib
from pathlib import Path

import pytest

from ipchain.cluster import layout
from ipchain.cluster.manager import Cluster
from node.config import ConfigError, load_config, read_admin_token


@pytest.fixture
def cluster(tmp_path: Path) -> Cluster:
    return Cluster.create(tmp_path / "data", 1, 41_000, 0)


def test_the_config_names_a_private_token_file_and_holds_no_secret(cluster: Cluster) -> None:
    text = cluster.config_path(0).read_text()
    token_file = Path(tomllib.loads(text)["admin_token_file"])
    token = token_file.read_text().strip()
    assert token and token not in text
    assert token_file.stat().st_mode & 0o077 == 0
    assert load_config(cluster.config_path(0)).admin_token == token
    assert read_admin_token(cluster.config_path(0)) == token


def test_a_token_file_others_can_read_is_refused(cluster: Cluster) -> None:
    token_file = cluster.node_dir(0) / layout.ADMIN_TOKEN_FILE
    os.chmod(token_file, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_config(cluster.config_path(0))


def test_an_old_config_with_the_token_inline_still_loads_with_a_warning(
        cluster: Cluster, caplog: pytest.LogCaptureFixture) -> None:
    path = cluster.config_path(0)
    lines = [line for line in path.read_text().splitlines()
             if not line.startswith("admin_token_file")]
    path.write_text("\n".join(['admin_token = "old-inline-token"', *lines]) + "\n")
    with caplog.at_level(logging.WARNING, logger="ipchain.config"):
        assert load_config(path).admin_token == "old-inline-token"
    assert "admin_token_inline" in caplog.text


def test_a_config_with_no_token_at_all_is_refused(cluster: Cluster) -> None:
    path = cluster.config_path(0)
    path.write_text("\n".join(line for line in path.read_text().splitlines()
                              if not line.startswith("admin_token_file")) + "\n")
    with pytest.raises(ConfigError, match="admin_token_file"):
        load_config(path)
