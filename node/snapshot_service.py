"""A running node's side of snapshots: record history, take snapshots, prune old blocks.

Hangs off the engine as an observer of executed blocks (it runs right after a block is
stored, under the executor's lock, so the state it captures is exactly block h's):

- every block's header and transaction ids go to the history (node/snapshot_store.py);
- every `snapshot_interval_blocks` a snapshot of the state is captured and written by a
  worker thread; it is offered to peers once its block has an execution certificate;
- with `retain_blocks` set, blocks more than that far below the head are dropped, but
  never at or above the latest snapshot: a node restoring from that snapshot must be
  able to fetch every block after it from us.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from consensus import events as ev
from consensus import messages as wire
from node.chain import Header
from node.logs import Event
from node.snapshot_store import SnapshotStore

log = logging.getLogger("ipchain.snapshot")

PRUNE_EVERY_BLOCKS = 16
PRUNE_MAX_BLOCKS = 256
"""Pruning runs every few blocks and drops at most this many per run, so a node that
just turned pruning on does not stall on one huge delete."""


class SnapshotService:
    def __init__(self, runtime: Any) -> None:
        cfg = runtime.cfg
        self.runtime = runtime
        self.interval_blocks = cfg.snapshot_interval_blocks
        self.retain_blocks = cfg.retain_blocks
        self.store = runtime.snapshots
        self.store.backfill(runtime.storage, runtime.executor.height)

    def attach(self, engine: Any) -> None:
        engine.observers.append(self.after_block)

    def after_block(self, block: ev.Deliver, header: Header, receipts: list[Any]) -> None:
        height = header.height
        if len(receipts) == len(block.txs):  # one per transaction, in order: their ids
            ids = bytes.fromhex("".join(receipt.tx_id for receipt in receipts))
        else:
            ids = b"".join(hashlib.sha256(raw).digest() for raw in block.txs)
        self.store.record_block(height, header.encode(), ids)
        if self.interval_blocks and height % self.interval_blocks == 0:
            state = self.runtime.executor.state
            capture = self.store.capture(height, state)
            self.store.write_in_background(capture, self.runtime.storage.block(height))
        if self.retain_blocks and height % PRUNE_EVERY_BLOCKS == 0:
            self.prune(height)

    def prune(self, height: int) -> None:
        below = height - self.retain_blocks + 1
        if self.interval_blocks:
            below = min(below, self.store.latest() or 1)
        storage = self.runtime.storage
        start = storage.pruned_below()
        below = min(below, start + PRUNE_MAX_BLOCKS, self.store.history_top() + 1)
        if below <= start:
            return
        tx_ids = []
        for h in range(start, below):
            row = storage.block(h)
            if row is not None:
                tx_ids += [hashlib.sha256(raw).digest() for raw in wire.decode(row[3]).body.txs]
        storage.prune_blocks(below, tx_ids)
        log.info(Event("pruned", below=below, blocks=below - start, txs=len(tx_ids)))

    def offers(self) -> list[tuple[int, bytes]]:
        """(height, manifest hash) of the snapshots whose block is certified here."""
        found = []
        for height in self.store.heights():
            manifest = self.store.manifest(height)
            if manifest is not None and self.runtime.storage.exec_cert(height) is not None:
                found.append((height, hashlib.sha256(manifest).digest()))
        return found


def pruned_message(storage: Any, height: int) -> str | None:
    """Why height `height` cannot be answered here, or None if it is kept."""
    lowest = storage.pruned_below()
    if 0 < height < lowest:
        return (f"block {height} is pruned on this node; its lowest retained height is "
                f"{lowest} (ask an archive node, one with retain_blocks = 0)")
    return None


def open_store(cfg: Any) -> SnapshotStore:
    return SnapshotStore(cfg.data_dir, cfg.chain_id, cfg.snapshots_kept,
                         cfg.snapshot_chunk_leaves_log2)
