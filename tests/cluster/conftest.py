"""Real node processes on loopback for the multi-process tests.

Every cluster is created on a free port range in the test's tmp dir and stopped at
teardown, whatever happened, with a check that no node process is left.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from ipchain.cluster.manager import Cluster, start_and_wait
from ipchain.cluster.procs import find_free_base_port, pids_under


@pytest.fixture
def start_cluster(tmp_path: Path) -> Iterator[Callable[..., tuple[Cluster, dict]]]:
    """start_cluster(n, clients) -> (running cluster, probe answer); stopped at teardown."""
    made: list[Cluster] = []

    def start(n: int = 4, clients: int = 8) -> tuple[Cluster, dict]:
        cluster = Cluster.create(tmp_path / f"c{len(made)}", n, find_free_base_port(n), clients)
        made.append(cluster)
        probe = start_and_wait(cluster, 60.0)
        return cluster, probe

    yield start
    for cluster in made:
        cluster.stop(timeout_s=10.0)
        assert pids_under(cluster.data_dir) == []
