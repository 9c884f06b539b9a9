"""Fixtures for the scripts' tests: a cluster factory whose processes are always stopped."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable, Iterator

import pytest

from ipchain.cluster.manager import Cluster
from ipchain.cluster.procs import find_free_base_port

FAKE_NODE = str(Path(__file__).with_name("fake_node.py"))


@pytest.fixture
def make_fake_cluster(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    """Create clusters of fake nodes on free loopback ports; stop them all at teardown."""
    made: list[Cluster] = []

    def make(n: int = 2, clients: int = 2, name: str = "data") -> Cluster:
        cluster = Cluster.create(tmp_path / name, n, find_free_base_port(n), clients,
                                 node_cmd=[sys.executable, FAKE_NODE])
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.stop(timeout_s=5.0)
        assert cluster.running() == []
