"""Catch-up never stalls anyone (issue 16 item 4, issue 15 item 4), on real processes.

The catch-up benchmark (ipchain/workloads/catchup.py) at a CI size: node3 of a 4-node
cluster is down while the others build a chain, restarts from an empty database and
catches up under closed-loop load on the three live nodes (a quorum without it). The
test holds deadlines, not speeds: the catching-up node gets there, the live nodes go on
committing while it does (no stretch of `MAX_GAP_S` without a block, which the ~1.3 s
stalls seen before would not break but a catch-up that starves the live nodes would),
and every /v1/status poll of the catching-up node is answered. The benchmark's figures
(commit rate before and during, status latency) are printed for the record.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from ipchain.cluster.procs import pids_under
from ipchain.workloads.catchup import Setup, run

pytestmark = pytest.mark.cluster

BLOCKS = 600
MAX_GAP_S = 10.0


def test_live_nodes_keep_committing_and_status_answers_while_a_node_catches_up(
        tmp_path: Path) -> None:
    setup = Setup(nodes=4, lagging=1, blocks=BLOCKS, senders=6, window_s=5.0, warm_s=2.0,
                  catchup_deadline_s=240.0)
    result = asyncio.run(run(setup, tmp_path))
    print(f"\ncatch-up of {BLOCKS} blocks under load: {json.dumps(result)}")
    assert pids_under(tmp_path / "cluster") == []
    before, during = result["before"], result["during"]
    assert during["caught_up"], result
    assert before["blocks"] > 0, result  # the load commits at all (else nothing is shown)
    assert during["blocks"] > 0 and during["acked_tx_per_s"] > 0, result
    assert during["longest_commit_gap_s"] < MAX_GAP_S, result
    status = result["catching_up"]["node3"]
    assert status["unanswered"] == 0, result
    assert status["status"]["polls"] >= 10, result
