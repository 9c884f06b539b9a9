"""Snapshots checked against a certified chain: every chunk, manifest and certificate.

The chain is built by ipchain/workloads/bigchain.py (real executor, real keys) with tiny
state chunks, so the snapshot has many of them; each check must refuse a changed byte.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from pathlib import Path

import msgpack
import pytest

from consensus import messages as wire
from contracts import codec
from contracts.merkle import fold_subtree_roots, merkle_root
from ipchain.cluster.manager import Cluster
from ipchain.workloads import bigchain
from node.chain import Executor, Header
from node.snapshot import (Manifest, SnapshotError, verify_history_chunk, verify_manifest,
                           verify_state_chunk)
from node.snapshot_store import SnapshotStore
from node.storage import Storage


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8, 13, 64, 100, 257])
@pytest.mark.parametrize("chunk_log2", [1, 2, 3])
def test_chunk_roots_fold_to_the_state_root(count: int, chunk_log2: int) -> None:
    """Chunks of 2^k leaves are subtrees of the carry-up tree, the last one too."""
    rng = random.Random(count * 31 + chunk_log2)
    leaves = [rng.randbytes(32) for _ in range(count)]
    size = 1 << chunk_log2
    roots = [merkle_root(leaves[i:i + size]) for i in range(0, count, size)]
    assert fold_subtree_roots(roots) == merkle_root(leaves)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("snap")
    cluster = Cluster.create(base / "c", 4, 47000, clients=3)
    bigchain.build(cluster, 600, 50, [0], say=lambda _line: None, chunk_leaves_log2=4)
    storage = Storage(cluster.node_dir(0) / "db.sqlite")
    executor = Executor(storage, cluster.genesis)
    store = SnapshotStore(cluster.node_dir(0), cluster.chain_id)
    height = store.latest()
    manifest = Manifest.decode(store.manifest(height))
    votes = codec.decode(storage.exec_cert(height)[1])
    yield {"cluster": cluster, "storage": storage, "store": store, "executor": executor,
           "manifest": manifest, "votes": votes, "genesis": cluster.genesis,
           "genesis_hash": executor.genesis.hash, "height": height}
    store.close()
    storage.close()


def test_a_built_snapshot_checks_out_chunk_by_chunk(chain: dict) -> None:
    manifest, store = chain["manifest"], chain["store"]
    header, votes = verify_manifest(manifest, chain["votes"], chain["genesis"],
                                    chain["genesis_hash"])
    assert header.height == chain["height"] and len(votes) == 4
    assert len(manifest.state_chunks) > 10, "tiny chunks: the state spans many"
    pairs = []
    for index in range(len(manifest.state_chunks)):
        pairs += verify_state_chunk(manifest, index, header.state_leaves,
                                    store.state_chunk(chain["height"], index))[0]
    assert dict(pairs) == chain["executor"].state.raw_items()
    ids = []
    for j, (first, last, _) in enumerate(manifest.history):
        ids += [i for _, block in verify_history_chunk(
            manifest, j, chain["genesis_hash"], store.history_chunk(first, last)) for i in block]
    pp = wire.decode(manifest.preprepare).body
    ids += [hashlib.sha256(raw).digest() for raw in pp.txs]
    assert len(ids) == 600 and set(ids) == chain["storage"].known_tx_ids(ids)


def test_a_state_chunk_with_one_byte_changed_is_refused(chain: dict) -> None:
    manifest, store = chain["manifest"], chain["store"]
    leaves = manifest.header_value.state_leaves
    good = store.state_chunk(chain["height"], 3)
    items = msgpack.unpackb(good, raw=False)
    key, value = items[0]
    items[0] = [key, value[:-1] + bytes([value[-1] ^ 1])]
    with pytest.raises(SnapshotError, match="does not match its root"):
        verify_state_chunk(manifest, 3, leaves, msgpack.packb(items, use_bin_type=True))
    with pytest.raises(SnapshotError, match="wrong size"):
        verify_state_chunk(manifest, 3, leaves, msgpack.packb(items[1:], use_bin_type=True))
    with pytest.raises(SnapshotError, match="does not match its root"):
        verify_state_chunk(manifest, 4, leaves, good)  # the right chunk at the wrong place


def test_a_history_chunk_missing_a_transaction_is_refused(chain: dict) -> None:
    manifest, store = chain["manifest"], chain["store"]
    first, last, _ = manifest.history[0]
    rows = msgpack.unpackb(store.history_chunk(first, last), raw=False)
    rows[2][1] = rows[2][1][32:]  # block 3 without its first id
    with pytest.raises(SnapshotError, match="miss its tx root"):
        verify_history_chunk(manifest, 0, chain["genesis_hash"],
                             msgpack.packb(rows, use_bin_type=True))


def test_a_manifest_without_a_quorum_or_with_a_wrong_root_is_refused(chain: dict) -> None:
    manifest, votes = chain["manifest"], chain["votes"]
    genesis, genesis_hash = chain["genesis"], chain["genesis_hash"]
    with pytest.raises(SnapshotError, match="2 valid signatures; 3 needed"):
        verify_manifest(manifest, votes[:2], genesis, genesis_hash)
    with pytest.raises(SnapshotError, match="2 valid signatures"):
        verify_manifest(manifest, votes[:2] + [votes[0]], genesis, genesis_hash)
    roots = list(manifest.state_chunks)
    roots[0] = bytes(32)
    with pytest.raises(SnapshotError, match="do not fold to the certified state root"):
        verify_manifest(dataclasses.replace(manifest, state_chunks=tuple(roots)), votes,
                        genesis, genesis_hash)
    header = Header.decode(manifest.header)
    other = dataclasses.replace(header, state_leaves=header.state_leaves + 1)
    with pytest.raises(SnapshotError, match="2 valid signatures|0 valid signatures"):
        verify_manifest(dataclasses.replace(manifest, header=other.encode()), votes,
                        genesis, genesis_hash)
    history = list(manifest.history)
    history[-1] = (*history[-1][:2], bytes(32))
    with pytest.raises(SnapshotError, match="does not chain to the snapshot block"):
        verify_manifest(dataclasses.replace(manifest, history=tuple(history)), votes,
                        genesis, genesis_hash)


def test_a_manifest_decodes_to_itself(chain: dict) -> None:
    manifest = chain["manifest"]
    assert Manifest.decode(manifest.encode()) == manifest
    with pytest.raises(SnapshotError, match="malformed"):
        Manifest.decode(b"\x93junk")


def test_restored_tx_ids_keep_their_first_block_and_position_as_the_executor_does(
        tmp_path: Path) -> None:
    """An id ordered twice (after a view change) is indexed at its first occurrence,
    whatever order the history chunks arrived in."""
    from node.snapshot_sync import Fetched
    a, b, c = (bytes([i]) * 32 for i in (1, 2, 3))
    got = Fetched(history={1: ([(5, c + a), (6, a + b + a)], b""),
                           0: ([(2, b), (3, b"")], b"")})
    assert got.tx_blocks() == [(2, b), (3, b""), (5, c + a), (6, a + b + a)]
    store = Storage(tmp_path / "db.sqlite")
    store.begin_restore()
    store.restore_tx_blocks(reversed(got.tx_blocks()))
    store.index_restored_tx_ids()
    store.finish_restore(7, (b"h" * 32, b"hdr", b"r" * 32, b"pp", b"cert"), b"votes", {})
    assert [store.tx(i) for i in (a, b, c)] == [(5, 1, b""), (2, 0, b""), (5, 0, b"")]
    assert store.db.execute("SELECT COUNT(*) FROM txs").fetchone()[0] == 3
    store.close()


def test_state_chunks_out_of_key_order_across_chunks_are_refused() -> None:
    from node.snapshot_sync import Fetched
    got = Fetched(state={0: ([("b", b"1")], [b"x"]), 1: ([("a", b"2")], [b"y"])})
    with pytest.raises(SnapshotError, match="does not follow"):
        got.state_in_order()
    ok = Fetched(state={1: ([("b", b"1")], [b"x"]), 0: ([("a", b"2")], [b"y"])})
    assert ok.state_in_order() == ([("a", b"2"), ("b", b"1")], [b"y", b"x"])


class FakePeers:
    """StateSync's HTTP side served from one store: per peer, honest, tampering, or down."""

    def __init__(self, chain: dict, behaviour: dict[int, str]) -> None:
        self.chain, self.behaviour = chain, behaviour
        self.links = dict.fromkeys(behaviour)
        self.asked: list[tuple[int, str]] = []

    def answer(self, peer: int, path: str) -> bytes | None:
        self.asked.append((peer, path))
        store, height = self.chain["store"], self.chain["height"]
        kind = self.behaviour[peer]
        if kind == "down":
            return None
        if path == "/p2p/snapshots":
            return msgpack.packb({"snapshots": [[height, hashlib.sha256(
                store.manifest(height)).digest()]]})
        if path.endswith("/manifest"):
            votes = self.chain["votes"][:2] if kind == "short-certificate" else self.chain["votes"]
            return msgpack.packb({"manifest": store.manifest(height), "certificate": votes})
        if "/state/" in path:
            chunk = store.state_chunk(height, int(path.rsplit("/", 1)[1]))
            return chunk[:-1] + bytes([chunk[-1] ^ 1]) if kind == "tamper" else chunk
        first, last = (int(p.split("=")[1]) for p in path.split("?")[1].split("&"))
        return store.history_chunk(first, last)


def restore_with(chain: dict, behaviour: dict[int, str], tmp_path: Path):
    import asyncio
    from node.snapshot_sync import StateSync

    peers = FakePeers(chain, behaviour)
    target = Storage(tmp_path / "new.sqlite")
    sync = StateSync(peers, target, None, chain["genesis"], chain["genesis_hash"], 0)

    async def fake_get(peer: int, path: str) -> bytes | None:
        await asyncio.sleep(0)
        return peers.answer(peer, path)
    sync._get = fake_get
    report = asyncio.run(sync.run())
    return report, sync, target, peers


def test_a_restore_takes_chunks_from_every_honest_peer_and_none_from_a_tampering_one(
        chain: dict, tmp_path: Path) -> None:
    report, sync, target, peers = restore_with(
        chain, {0: "honest", 1: "tamper", 2: "honest", 3: "down"}, tmp_path)
    assert report["height"] == chain["height"]
    assert {"0", "2"} <= set(report["chunks_by_peer"]) and "3" not in report["chunks_by_peer"]
    assert report["rejected_by_peer"]["1"] >= 1  # (its history chunks are honest)
    assert target.state_items() == chain["executor"].state.raw_items()
    assert sync.state.root() == chain["executor"].state.root()
    assert target.pruned_below() == chain["height"] == target.last_height()
    refused = {p for p, path in peers.asked if p == 1 and "/state/" in path}
    assert refused, "the tampering peer was asked for state chunks"
    retried = [path for p, path in peers.asked if "/state/" in path]
    assert len(retried) > len(sync_manifest(chain).state_chunks), "refused chunks refetched"
    target.close()


def test_a_manifest_with_a_short_certificate_is_passed_over_for_an_honest_peers(
        chain: dict, tmp_path: Path) -> None:
    report, _, target, _ = restore_with(chain, {0: "short-certificate", 1: "honest"}, tmp_path)
    assert report["rejected_by_peer"] == {"0": 1}
    assert target.state_items() == chain["executor"].state.raw_items()
    target.close()


def test_a_restore_whose_chunks_no_peer_serves_right_leaves_the_store_untouched(
        chain: dict, tmp_path: Path) -> None:
    from node.snapshot_sync import StateSyncFailed

    with pytest.raises(StateSyncFailed):
        restore_with(chain, {0: "tamper", 1: "tamper"}, tmp_path)
    target = Storage(tmp_path / "new.sqlite")
    assert target.last_height() == 0 and target.state_items() == {}
    target.close()


def sync_manifest(chain: dict) -> Manifest:
    return chain["manifest"]


def test_a_restored_state_behaves_as_a_loaded_one_through_later_writes() -> None:
    """State.from_verified skips rebuilding leaves and root; every later write, delete
    and root must come out as for a state loaded the ordinary way (this also catches a
    State whose internals grew a field that from_verified does not fill)."""
    from contracts.state import State, leaf_hash

    items = {f"k/{i:04d}": codec.encode(i) for i in range(300)}
    loaded = State(items)
    pairs = sorted(items.items())
    restored = State.from_verified(pairs, [leaf_hash(k, v) for k, v in pairs], loaded.root())
    for state in (loaded, restored):
        state.put("k/0150", "changed")
        state.put("a/new", 1)
        state.delete("k/0007")
        state.put("z/new", [1, 2])
    assert restored.root() == loaded.root()
    assert restored.sorted_leaves() == loaded.sorted_leaves()
    assert restored.take_dirty() == loaded.take_dirty()
    assert list(restored.keys("k/01")) == list(loaded.keys("k/01"))


def test_the_start_up_check_after_a_restore_skips_only_sqlites_read_back(
        chain: dict, tmp_path: Path) -> None:
    """The restoring process just wrote the store from checked chunks, so the engine it
    hands the state to skips quick_check; the state root is still compared."""
    from node.engine import check_at_rest

    _, sync, target, _ = restore_with(chain, {0: "honest", 1: "honest"}, tmp_path)
    executor = Executor(target, chain["genesis"], sync.state)
    target.quick_check = lambda: "page 7: btreeInitPage() returns error code 11"
    assert "btreeInitPage" in check_at_rest(target, executor)["reason"]
    assert check_at_rest(target, executor, sqlite_check=False) is None
    sync.state.put("token/injected", 1)
    assert "does not match" in check_at_rest(target, executor, sqlite_check=False)["reason"]
    target.close()


def test_an_aborted_restore_leaves_no_staged_ids_and_the_store_as_it_was(tmp_path: Path) -> None:
    store = Storage(tmp_path / "db.sqlite")
    store.init_state({"k": b"v"})
    store.begin_restore()
    store.restore_state_rows([("a", b"1")])
    store.restore_tx_blocks([(1, bytes(32))])
    store.abort_restore()
    assert store.state_items() == {"k": b"v"}
    assert store.db.execute("SELECT COUNT(*) FROM txs").fetchone()[0] == 0
    store.begin_restore()  # the staging table is gone with the rolled-back transaction
    store.abort_restore()
    store.close()
