"""Build a large, genuine chain for a cluster in-process, far faster than live consensus.

Live consensus commits ~2,000 tx/s on this machine, so a 1,000,000-transaction chain
would take the better part of an hour to grow. This tool makes the same chain directly:
every transaction is signed by a genesis client's key and executed by the real block
executor (node/chain.py) against the real contracts, every block is a PRE-PREPARE signed
by view 0's primary with COMMITs from every validator, and every block gets an execution
certificate signed by every validator over its real header hash. Only the network and
the voting rounds are skipped: the cluster's own keys sign what the quorum would have.

The workload is one patent.deposit (three new state records: the patent, its document
hash and its owner index) to two token.transfer (balances only), so N transactions leave
about N new state records; the numbers are printed and returned.

One node's database is built, then copied to the other nodes asked for (they are
byte-identical replicas at that height), with the snapshot of the last block and the
block history the snapshot carries (node/snapshot_store.py). Signatures are made here and
not re-verified during this build (the executor is given `verified=True`): verifying
what was signed a microsecond earlier would only double the build time.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

import nacl.signing

from consensus import events as ev
from consensus import messages as wire
from consensus.messages import Checkpoint, Commit, Executed, PrePrepare, Signed, signing_bytes
from contracts.tx import Transaction
from ipchain.cluster import layout
from ipchain.cluster.manager import Cluster
from ipchain.sdk import client
from node.chain import Executor, digest_batch, wire_certificate
from node.snapshot import CHUNK_LEAVES_LOG2
from node.snapshot_store import SnapshotStore
from node.storage import Storage

BLOCK_INTERVAL_MS = 10
CHECKPOINT_INTERVAL_BLOCKS = 64


def node_keys(cluster: Cluster) -> list[nacl.signing.SigningKey]:
    return [client.load_key(cluster.node_dir(i) / "node.key") for i in range(cluster.n)]


def signed(body: Any, sender: int, key: nacl.signing.SigningKey, chain_id: str) -> Signed:
    return Signed(body, sender, key.sign(signing_bytes(body, chain_id)).signature)


class Workload:
    """Transactions for block after block, from the cluster's load clients in turn."""

    def __init__(self, cluster: Cluster) -> None:
        self.chain_id = cluster.chain_id
        clients = [o for o in cluster.org_ids("member") if o.startswith("client-")]
        if len(clients) < 2:
            raise SystemExit("the cluster needs at least 2 load clients (Cluster.create clients=)")
        self.clients = clients
        self.keys = [cluster.client_key(org) for org in clients]
        self.nonces = [cluster.nonces.peek(client.sender_hex(k)) for k in self.keys]
        self.count = 0
        self.deposits = 0

    def next_tx(self) -> Transaction:
        c = self.count % len(self.keys)
        org, key = self.clients[c], self.keys[c]
        if self.count % 3 == 0:
            serial = self.deposits
            self.deposits += 1
            meta = {"title": f"Bulk filing {serial}", "kind": "invention",
                    "filing_date": "2020-01-01", "owners": [[org, 10_000]]}
            tx = client.sign(key, self.chain_id, self.nonces[c], "patent.deposit",
                             {"office": "CN", "application_no": f"BIG{serial:09d}",
                              "doc_hash": hashlib.sha256(b"doc%d" % serial).hexdigest(),
                              "meta": meta})
        else:
            to = self.clients[(c + 1) % len(self.clients)]
            tx = client.sign(key, self.chain_id, self.nonces[c], "token.transfer",
                             {"to": to, "amount": 1})
        self.nonces[c] += 1
        self.count += 1
        return tx

    def save_nonces(self, cluster: Cluster) -> None:
        for key, nonce in zip(self.keys, self.nonces):
            if nonce:
                cluster.nonces.note_used(client.sender_hex(key), nonce - 1)


def build_db(cluster: Cluster, node: int, total_txs: int, block_txs: int,
             say: Callable[[str], None], chunk_leaves_log2: int = CHUNK_LEAVES_LOG2
             ) -> dict[str, Any]:
    """Execute `total_txs` into node `node`'s empty data dir; returns what was built."""
    data_dir = cluster.node_dir(node)
    if (data_dir / "db.sqlite").exists():
        raise SystemExit(f"{data_dir}/db.sqlite exists: build into a fresh cluster")
    keys, chain_id, n = node_keys(cluster), cluster.chain_id, cluster.n
    storage = Storage(data_dir / "db.sqlite")
    executor = Executor(storage, cluster.genesis)
    store = SnapshotStore(data_dir, chain_id, chunk_leaves_log2=chunk_leaves_log2)
    work = Workload(cluster)
    blocks = -(-total_txs // block_txs)
    blocks += -blocks % CHECKPOINT_INTERVAL_BLOCKS  # end on a checkpoint
    started, ts = time.monotonic(), cluster.genesis["genesis_time_ms"]
    for height in range(1, blocks + 1):
        count = total_txs // blocks + (1 if height <= total_txs % blocks else 0)
        txs = [work.next_tx() for _ in range(count)]
        ts += BLOCK_INTERVAL_MS
        header = execute_block(executor, store, keys, chain_id, n, height, ts, txs)
        if height % 50 == 0 or height == blocks:
            rate = work.count / max(1e-9, time.monotonic() - started)
            say(f"block {height}/{blocks}: {work.count} txs, {len(executor.state)} state "
                f"entries, {rate:.0f} tx/s")
    stable_checkpoint(storage, keys, chain_id, blocks, header.state_root)
    built_s = time.monotonic() - started
    manifest = store.write(store.capture(blocks, executor.state), storage.block(blocks))
    state_bytes = sum(len(k) + len(v) for k, v in executor.state.raw_items().items())
    result = {"transactions": work.count, "deposits": work.deposits,
              "transfers": work.count - work.deposits, "blocks": blocks,
              "height": blocks, "state_entries": len(executor.state),
              "state_bytes": state_bytes, "state_root": header.state_root.hex(),
              "state_chunks": len(manifest.state_chunks),
              "history_chunks": len(manifest.history), "build_s": round(built_s, 1)}
    work.save_nonces(cluster)
    storage.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    storage.close()
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    return result


def execute_block(executor: Executor, store: SnapshotStore, keys: list[nacl.signing.SigningKey],
                  chain_id: str, n: int, height: int, ts: int, txs: list[Transaction]) -> Any:
    raws = tuple(tx.to_bytes() for tx in txs)
    digest = digest_batch(ts, raws)
    pp = signed(PrePrepare(0, height, digest, ts, raws), 0, keys[0], chain_id)
    commits = tuple(signed(Commit(0, height, digest), i, keys[i], chain_id) for i in range(n))
    known = {bytes.fromhex(tx.id): tx for tx in txs}
    run = executor.begin(ev.Deliver(pp, commits), known.get, lambda _tx: True)
    run.advance(None)
    header, _ = executor.commit(run)
    votes = [signed(Executed(height, header.hash), i, keys[i], chain_id) for i in range(n)]
    executor.storage.save_exec_cert(height, header.hash, wire_certificate(votes))
    store.record_block(height, header.encode(), b"".join(known))
    return header


def stable_checkpoint(storage: Storage, keys: list[nacl.signing.SigningKey], chain_id: str,
                      height: int, root: bytes) -> None:
    """The stable checkpoint the quorum would have formed at the last block."""
    proof = [signed(Checkpoint(height, root), i, k, chain_id) for i, k in enumerate(keys)]
    storage.set_meta("stable_checkpoint", [height, [wire.encode(m) for m in proof]])


def finish(cluster: Cluster, node: int, targets: list[int]) -> dict[str, Any]:
    """Make node `node`'s database (a build stopped early, or a format change) ready to
    serve: its head certified, its history complete, a snapshot of its head; then copy
    database and snapshot to `targets`. Returns what the chain holds."""
    storage = Storage(cluster.node_dir(node) / "db.sqlite")
    executor = Executor(storage, cluster.genesis)
    store = SnapshotStore(cluster.node_dir(node), cluster.chain_id)
    height, keys, chain_id = executor.height, node_keys(cluster), cluster.chain_id
    if storage.exec_cert(height) is None:  # stopped between the block and its certificate
        votes = [signed(Executed(height, executor.head.hash), i, k, chain_id)
                 for i, k in enumerate(keys)]
        storage.save_exec_cert(height, executor.head.hash, wire_certificate(votes))
    store.backfill(storage, height)
    for old in store.heights():
        shutil.rmtree(store.root / str(old))
    manifest = store.write(store.capture(height, executor.state), storage.block(height))
    result = {"transactions": storage.tx_count(),
              "height": height, "state_entries": len(executor.state),
              "state_bytes": sum(len(k) + len(v) for k, v in executor.state.raw_items().items()),
              "state_root": executor.state.root().hex(),
              "state_chunks": len(manifest.state_chunks), "history_chunks": len(manifest.history)}
    storage.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    storage.close()
    for target in targets:
        copy_node(cluster, node, target)
    return result


def copy_node(cluster: Cluster, source: int, target: int) -> None:
    src, dst = cluster.node_dir(source), cluster.node_dir(target)
    shutil.copyfile(src / "db.sqlite", dst / "db.sqlite")
    shutil.rmtree(dst / "snapshots", ignore_errors=True)
    shutil.copytree(src / "snapshots", dst / "snapshots")


def build(cluster: Cluster, total_txs: int, block_txs: int, nodes: list[int],
          say: Callable[[str], None] = print,
          chunk_leaves_log2: int = CHUNK_LEAVES_LOG2) -> dict[str, Any]:
    result = build_db(cluster, nodes[0], total_txs, block_txs, say, chunk_leaves_log2)
    for target in nodes[1:]:
        copy_node(cluster, nodes[0], target)
    result["nodes"] = nodes
    db = cluster.node_dir(nodes[0]) / "db.sqlite"
    result["db_bytes"] = db.stat().st_size
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ipchain.workloads.bigchain",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="a new cluster is created here")
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--txs", type=int, default=1_000_000)
    parser.add_argument("--block-txs", type=int, default=8_000)
    parser.add_argument("--built-nodes", type=int, default=None,
                        help="how many nodes get the chain (default: all but the last)")
    parser.add_argument("--base-port", type=int, default=0)
    args = parser.parse_args(argv)
    from ipchain.cluster.procs import find_free_base_port
    port = args.base_port or find_free_base_port(args.nodes)
    cluster = Cluster.create(args.data_dir, args.nodes, port, clients=4)
    built = args.built_nodes if args.built_nodes is not None else args.nodes - 1
    result = build(cluster, args.txs, args.block_txs, list(range(built)))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
