"""Process management with a fake node: start, find, refuse, signal, stop, restart.

The fake node (fake_node.py) serves the node API on the configured port but has no
consensus, so these tests are about processes, ports and files only.
"""

from __future__ import annotations

import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from ipchain.cluster.manager import Cluster, ClusterError
from ipchain.cluster.procs import (REPO_ROOT, find_free_base_port, is_pid_running, is_port_free,
                                   pids_under)


def test_start_wait_ready_stop_leaves_nothing(make_fake_cluster) -> None:
    cluster = make_fake_cluster(n=3)
    cluster.start()
    probe = cluster.wait_ready(30.0)
    assert probe["status"] == "committed" and probe["receipt"]["code"] == "ok"
    pids = [cluster.pid(i) for i in range(3)]
    assert cluster.running() == [0, 1, 2]
    assert pids_under(cluster.data_dir) == sorted(pids)
    assert [n["pid"] for n in Cluster.load(cluster.data_dir).manifest["nodes"]] == pids
    assert cluster.stop(timeout_s=10.0) == []  # all went on SIGTERM
    assert not any(is_pid_running(pid) for pid in pids)
    assert pids_under(cluster.data_dir) == []
    assert all(cluster.pid(i) is None for i in range(3))
    assert all(is_port_free(cluster.base_port + i) for i in range(3))


def test_a_second_start_is_refused_while_running(make_fake_cluster) -> None:
    cluster = make_fake_cluster(n=2)
    cluster.start()
    with pytest.raises(ClusterError, match="already running"):
        Cluster.load(cluster.data_dir, node_cmd=cluster.node_cmd).start()
    with pytest.raises(ClusterError, match="is running"):
        Cluster.create(cluster.data_dir, 2, cluster.base_port, fresh=True)


def test_start_is_refused_when_a_port_is_taken(make_fake_cluster) -> None:
    cluster = make_fake_cluster(n=2)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", cluster.base_port))
        squatter.listen()
        with pytest.raises(ClusterError, match=rf"\[{cluster.base_port}\].*in use"):
            cluster.start()
    assert cluster.running() == []  # refused before starting any node


def test_stop_kills_nodes_that_ignore_sigterm(make_fake_cluster, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_NODE_IGNORE_TERM", "1")
    cluster = make_fake_cluster(n=2)
    cluster.start()
    cluster.wait_ready(30.0, probe=False)
    assert sorted(cluster.stop(timeout_s=1.0)) == [0, 1]
    assert pids_under(cluster.data_dir) == []


def test_wait_ready_fails_fast_with_the_log_when_a_node_exits(make_fake_cluster,
                                                              monkeypatch) -> None:
    monkeypatch.setenv("FAKE_NODE_EXIT", "3")
    cluster = make_fake_cluster(n=2)
    cluster.start()
    with pytest.raises(ClusterError, match=r"exited with code 3(.|\n)*exiting as told"):
        cluster.wait_ready(30.0)


def test_kill_one_node_and_restart_it(make_fake_cluster) -> None:
    cluster = make_fake_cluster(n=2)
    cluster.start()
    cluster.wait_ready(30.0, probe=False)
    old = cluster.pid(1)
    cluster.kill(1, signal.SIGKILL)
    assert cluster.running() == [0] and not is_pid_running(old)
    with pytest.raises(ClusterError, match="not running"):
        cluster.kill(1)
    cluster.start([1])
    cluster.wait_ready(30.0)
    assert cluster.running() == [0, 1] and cluster.pid(1) != old


def test_a_stale_pid_file_is_not_trusted(make_fake_cluster) -> None:
    """A pid that is alive but is not this node (here: the test itself) never counts."""
    import os
    cluster = make_fake_cluster(n=1)
    (cluster.node_dir(0) / "node.pid").write_text(f"{os.getpid()}\n")
    assert cluster.running() == []
    cluster.stop()  # must not signal the test process
    assert is_pid_running(os.getpid())


def test_load_without_a_cluster_says_what_to_do(tmp_path) -> None:
    with pytest.raises(ClusterError, match="ipchain up"):
        Cluster.load(tmp_path)


def test_wait_ready_on_a_stopped_cluster_fails_at_once(make_fake_cluster) -> None:
    cluster = make_fake_cluster(n=1)
    with pytest.raises(ClusterError, match="node 0 is not running"):
        cluster.wait_ready(30.0)


def test_a_start_that_fails_part_way_stops_the_nodes_it_started(make_fake_cluster) -> None:
    """Node 1 cannot be spawned (its directory is gone): node 0, already started, must not
    be left running with nobody knowing its pid."""
    import shutil
    cluster = make_fake_cluster(n=2)
    shutil.rmtree(cluster.node_dir(1))
    with pytest.raises(OSError):
        cluster.start()
    assert cluster.running() == [] and pids_under(cluster.data_dir) == []


def test_wait_for_blocks_names_the_nodes_that_lack_the_height(make_fake_cluster) -> None:
    """Fake nodes keep separate chains: the probe puts block 1 on node0 only, until node1
    gets a transaction of its own; a stopped node counts as lacking the block."""
    import asyncio

    from ipchain.sdk import client

    cluster = make_fake_cluster(n=3)
    cluster.start()
    cluster.wait_ready(30.0)
    cluster.kill(2, signal.SIGKILL)

    async def run() -> tuple[list, list]:
        async with client.open_session() as session:
            before = await client.wait_for_blocks(session, cluster.urls, 1, deadline_s=0.3)
            await client.submit(session, cluster.urls[1], cluster.probe_tx(), wait=True)
            after = await client.wait_for_blocks(session, cluster.urls[:2], 1, deadline_s=5.0)
        return before, after

    before, after = asyncio.run(run())
    assert [b is not None for b in before] == [True, False, False]
    assert [b["height"] for b in after] == [1, 1]


def test_a_free_base_port_range_lies_below_the_kernels_outgoing_port_range() -> None:
    """Outgoing connections take local ports from the ephemeral range at any moment; a
    cluster's listening ports chosen there could be taken between the probe and the bind."""
    from ipchain.cluster.procs import LISTEN_PORTS_FROM, ephemeral_port_range, find_free_base_port
    low, _ = ephemeral_port_range()
    bases = {find_free_base_port(16) for _ in range(20)}
    assert all(LISTEN_PORTS_FROM <= base and base + 15 < low for base in bases)
    assert len(bases) > 1  # random, so parallel runs spread out


async def test_until_treats_an_api_error_as_not_yet_and_names_what_timed_out() -> None:
    from ipchain.sdk import client
    answers = iter([client.ApiError(503, "Busy", "later"), None, {"height": 3}])

    async def poll():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer
    assert await client.until(poll, "height 3", 5.0, poll_s=0) == {"height": 3}

    async def never():
        return None
    with pytest.raises(TimeoutError, match="waiting for the moon"):
        await client.until(never, "the moon", 0.05, poll_s=0.01)


def test_a_started_node_runs_the_code_of_the_tree_that_started_it(tmp_path) -> None:
    """The node's packages come from this checkout (first on its PYTHONPATH), not from
    another copy installed in the environment: a same-minute A/B of two trees relies on
    it. The stand-in node, started without site-packages, writes where `node` was
    imported from, then exits."""
    script = tmp_path / "where.py"
    script.write_text("import pathlib, node\n"
                      "pathlib.Path('where.txt').write_text(node.__file__)\n")
    # -S: no site-packages, so `node` can only come from what the cluster put on PYTHONPATH
    cluster = Cluster.create(tmp_path / "data", 1, find_free_base_port(1), 1,
                             node_cmd=[sys.executable, "-S", str(script)])
    cluster.start()
    where = cluster.node_dir(0) / "where.txt"
    deadline = time.monotonic() + 30.0
    while not where.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert Path(where.read_text()).resolve() == REPO_ROOT / "node" / "__init__.py"
    assert (REPO_ROOT / "consensus").is_dir() and (REPO_ROOT / "ipchain").is_dir()
