"""State sync from certified snapshots and block pruning, on real node processes.

1. Three validators commit, take snapshots every 8 blocks and prune old blocks; one of
   them (node2) is Byzantine and serves every state chunk with one byte changed. A
   fresh fourth node restores a snapshot with chunks from at least two peers, refuses
   node2's bad chunks and fetches them elsewhere, replays only the blocks after the
   snapshot, ends with the others' height and state root, and then votes: with node0
   killed, nodes 1-3 commit on, all in one view.
2. A pruning node answers queries for pruned heights with 410 Pruned naming its lowest
   retained height, and still proves recent transactions (checked offline).
"""

from __future__ import annotations

import asyncio
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
import waiting

from ipchain.cluster import layout
from ipchain.cluster.manager import Cluster
from ipchain.cluster.procs import find_free_base_port, pids_under
from ipchain.sdk import client
from node.proofs import verify_proof
from node.snapshot_api import PLANTED_TAMPER_ENV

pytestmark = pytest.mark.cluster
DEADLINE_S = 90.0
SNAPSHOT_OPTIONS = {"snapshot_interval_blocks": 8, "snapshot_chunk_leaves_log2": 3,
                    "retain_blocks": 4}
"""Tiny chunks (8 entries), so even the genesis state spans many of them."""


@pytest.fixture
def cluster(tmp_path: Path):
    made = Cluster.create(tmp_path / "c", 4, find_free_base_port(4), 2)
    for i in range(made.n):
        set_options(made, i, SNAPSHOT_OPTIONS)
    yield made
    made.stop(timeout_s=10.0)
    assert pids_under(made.data_dir) == []


def set_options(cluster: Cluster, node: int, options: dict[str, Any]) -> None:
    path = cluster.config_path(node)
    config = tomllib.loads(path.read_text())
    config.update(options)
    path.write_text(layout.render_toml(config))


async def until(predicate, what: str, deadline_s: float = DEADLINE_S) -> Any:
    return await waiting.until(predicate, what, deadline_s)


async def transfers(session: Any, cluster: Cluster, url: str, count: int) -> list[str]:
    """`count` committed transfers, one block each (wait=commit); their ids."""
    org = cluster.org_ids()[-1]
    key = cluster.client_key(org)
    ids = []
    for _ in range(count):
        tx = client.sign(key, cluster.chain_id, cluster.nonces.reserve(client.sender_hex(key)),
                         "token.transfer", {"to": cluster.org_ids()[0], "amount": 1})
        answer = await client.submit(session, url, tx, wait=True, timeout_ms=30_000)
        assert answer["status"] == "committed", answer
        ids.append(tx.id)
    return ids


async def statuses(session: Any, cluster: Cluster, nodes: list[int]) -> list[dict[str, Any]]:
    return [await client.get_status(session, cluster.urls[i]) for i in nodes]


async def agree(session: Any, cluster: Cluster, nodes: list[int]) -> bool:
    found = await statuses(session, cluster, nodes)
    return len({(s["height"], s["state_root"], s["view"], s["in_view_change"])
                for s in found}) == 1


async def answering(session: Any, cluster: Cluster, nodes: list[int]) -> bool:
    await statuses(session, cluster, nodes)
    return True


def test_a_fresh_node_restores_a_snapshot_from_several_peers_refusing_a_tampered_chunk(
        cluster, monkeypatch):
    cluster.start([0, 1])
    monkeypatch.setenv(PLANTED_TAMPER_ENV, "1")
    cluster.start([2])
    monkeypatch.delenv(PLANTED_TAMPER_ENV)

    async def scenario() -> None:
        async with client.open_session() as session:
            await until(lambda: answering(session, cluster, [0, 1, 2]), "three nodes up")
            early = await transfers(session, cluster, cluster.urls[0], 20)

            async def snapshot_certified() -> bool:
                found = await statuses(session, cluster, [0, 1, 2])
                return min(s["certified_height"] for s in found) >= 16
            await until(snapshot_certified, "blocks 16 certified everywhere")
            cluster.start([3])
            await until(lambda: answering(session, cluster, [3]), "node3 up")
            synced = (await client.get_status(session, cluster.urls[3]))["state_sync"]
            assert synced is not None, "node3 did not restore from a snapshot"
            await transfers(session, cluster, cluster.urls[1], 3)
            await until(lambda: agree(session, cluster, [0, 1, 2, 3]),
                        "node3 at the others' height, state root and view")

            assert synced["height"] >= 16 and synced["height"] % 8 == 0
            assert len(synced["peers"]) >= 2, synced
            assert synced["rejected_by_peer"].get("2", 0) >= 1, synced
            assert sum(synced["chunks_by_peer"].values()) == (synced["state_chunks"]
                                                              + synced["history_chunks"])
            assert synced["state_chunks"] > 5 and synced["bytes_fetched"] > 0

            # node3 kept no block below the snapshot, and says so
            gone = await client.request(session, "GET", f"{cluster.urls[3]}/v1/blocks/1",
                                        ok=(410,))
            assert gone[0] == 410 and gone[1]["error"]["code"] == "Pruned"
            assert f"lowest retained height is {synced['height']}" in gone[1]["error"]["message"]
            old_tx = await client.request(session, "GET", f"{cluster.urls[3]}/v1/tx/{early[0]}",
                                          ok=(410,))
            assert old_tx[0] == 410

            # node3 votes: with node0 gone, nodes 1, 2 and 3 are the only quorum left
            cluster.kill(0)
            await transfers(session, cluster, cluster.urls[3], 2)
            await until(lambda: agree(session, cluster, [1, 2, 3]),
                        "nodes 1-3 in one view at one height and root")

    asyncio.run(scenario())
    log = cluster.log_path(3).read_text()
    assert "event=snapshot_chunk_refused peer=2" in log and "event=state_synced" in log


def test_a_pruning_node_answers_410_for_pruned_heights_and_proves_recent_ones(cluster):
    cluster.start()

    async def scenario() -> None:
        async with client.open_session() as session:
            await until(lambda: answering(session, cluster, [0, 1, 2, 3]), "four nodes up")
            early = await transfers(session, cluster, cluster.urls[0], 3)
            await transfers(session, cluster, cluster.urls[0], 30)

            async def pruned() -> int:
                lowest = (await client.get_status(session, cluster.urls[1]))[
                    "lowest_retained_height"]
                return lowest if lowest > 8 else 0
            lowest = await until(pruned, "node1 pruning below its latest snapshot")
            status, body = await client.request(session, "GET",
                                                f"{cluster.urls[1]}/v1/blocks/2", ok=(410,))
            assert status == 410 and body["error"]["code"] == "Pruned"
            assert "block 2 is pruned" in body["error"]["message"]
            assert f"lowest retained height is {lowest}" in body["error"]["message"] or (
                "lowest retained height is" in body["error"]["message"])
            for path in (f"/v1/proof/tx/{early[0]}", f"/v1/tx/{early[0]}"):
                status, body = await client.request(session, "GET", cluster.urls[1] + path,
                                                    ok=(410,))
                assert status == 410 and body["error"]["code"] == "Pruned", (path, body)

            recent = await transfers(session, cluster, cluster.urls[0], 1)

            async def recent_proof() -> Any:  # committed on node0 is not yet stored on node1
                return (await client.request(
                    session, "GET", f"{cluster.urls[1]}/v1/proof/tx/{recent[0]}"))[1]
            proof = await until(recent_proof, "node1 storing the recent transfer")
            assert verify_proof(proof, cluster.genesis)["status"] == "committed"
            # the newest block is never pruned: the head stays readable
            assert (await client.get_block(session, cluster.urls[1], "latest")) is not None

    asyncio.run(scenario())
