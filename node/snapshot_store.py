"""Where a node keeps its snapshots and the block history they carry, and how it makes them.

Layout under `<data_dir>/snapshots/`:

    history.sqlite        one row per block: header and its transaction ids (32 B each)
    <height>/manifest     the manifest (node/snapshot.py), written last: its presence
                          marks a complete snapshot
    <height>/state-<m>    state chunk m

The history is its own small database, kept beside the chain's, because it must outlive
block pruning: a pruned node still serves the ids of every block, and a restored node
serves the history it was given. A block is recorded right after it is stored; after a
crash between the two, `backfill` copies what is missing from the blocks table.

Making a snapshot: the state after block h is captured while the executor holds its
lock (sorted keys, leaf hashes and values: copies of lists and a dict, ~0.1 s per
million entries), and the chunks are encoded and written by a worker thread, so the
node keeps committing meanwhile.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from consensus import messages as wire
from node.chain import Header
from node.logs import Event
from node.snapshot import (CHUNK_LEAVES_LOG2, Manifest, encode_history_chunk, encode_state_chunk,
                           history_ranges, state_chunk_roots)

log = logging.getLogger("ipchain.snapshot")

HISTORY_SCHEMA = """
CREATE TABLE IF NOT EXISTS history (
    height INTEGER PRIMARY KEY, header BLOB NOT NULL, ids BLOB NOT NULL, count INTEGER NOT NULL);
"""


@dataclass(frozen=True)
class StateCapture:
    """The state after block `height`, frozen for a worker thread."""

    height: int
    keys: list[str]
    leaves: list[bytes]
    values: dict[str, bytes]


class SnapshotStore:
    def __init__(self, data_dir: Path, chain_id: str, keep: int = 2,
                 chunk_leaves_log2: int = CHUNK_LEAVES_LOG2) -> None:
        self.chunk_leaves_log2 = chunk_leaves_log2
        self.root = data_dir / "snapshots"
        self.root.mkdir(parents=True, exist_ok=True)
        self.chain_id = chain_id
        self.keep = keep
        self._lock = threading.Lock()
        """One SQLite connection shared by the event loop and the snapshot thread."""
        self.db = sqlite3.connect(str(self.root / "history.sqlite"), isolation_level=None,
                                  check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(HISTORY_SCHEMA)
        self.worker: threading.Thread | None = None

    def close(self) -> None:
        if self.worker is not None:
            self.worker.join()
        self.db.close()

    # -- history ----------------------------------------------------------------------------
    def record_block(self, height: int, header: bytes, ids: bytes) -> None:
        with self._lock:
            self.db.execute("INSERT OR REPLACE INTO history VALUES (?,?,?,?)",
                            (height, header, ids, len(ids) // 32))

    def record_blocks(self, rows: list[tuple[int, bytes, bytes]]) -> None:
        with self._lock, self.db:
            self.db.executemany("INSERT OR REPLACE INTO history VALUES (?,?,?,?)",
                                ((h, header, ids, len(ids) // 32) for h, header, ids in rows))

    def history_top(self) -> int:
        with self._lock:
            return self.db.execute("SELECT MAX(height) FROM history").fetchone()[0] or 0

    def backfill(self, storage: Any, height: int) -> int:
        """Copy the blocks above our history's top from the blocks table (a crash between
        the two writes, or a chain that predates snapshots); returns how many."""
        rows = []
        for h in range(self.history_top() + 1, height + 1):
            row = storage.block(h)
            if row is None:
                break
            pp = wire.decode(row[3]).body
            rows.append((h, row[1], b"".join(hashlib.sha256(raw).digest() for raw in pp.txs)))
            if len(rows) >= 512:
                self.record_blocks(rows)
                rows = []
        self.record_blocks(rows)
        return self.history_top()

    def history_chunk(self, first: int, last: int) -> bytes | None:
        """Blocks first..last as one chunk, or None if this node lacks any of them."""
        with self._lock:
            rows = self.db.execute("SELECT header, ids FROM history WHERE height BETWEEN ? AND ? "
                                   "ORDER BY height", (first, last)).fetchall()
        if len(rows) != last - first + 1:
            return None
        return encode_history_chunk(rows)

    def _history_claims(self, height: int) -> list[tuple[int, int, bytes]]:
        with self._lock:
            counts = self.db.execute("SELECT height, count FROM history WHERE height < ? "
                                     "ORDER BY height", (height,)).fetchall()
        if len(counts) != height - 1:
            raise LookupError(f"history lacks {height - 1 - len(counts)} blocks below {height}")
        claims = []
        for first, last in history_ranges(counts):
            with self._lock:
                header = self.db.execute("SELECT header FROM history WHERE height = ?",
                                         (last,)).fetchone()[0]
            claims.append((first, last, Header.decode(header).hash))
        return claims

    # -- snapshots ------------------------------------------------------------------------------
    def capture(self, height: int, state: Any) -> StateCapture:
        keys, leaves = state.sorted_leaves()
        return StateCapture(height, keys, leaves, state.raw_items())

    def write_in_background(self, capture: StateCapture, block: tuple | None) -> bool:
        """Start writing a snapshot unless one is being written (then skip this height)."""
        if self.worker is not None and self.worker.is_alive():
            log.warning(Event("snapshot_skipped", height=capture.height, reason="busy"))
            return False
        self.worker = threading.Thread(target=self._write_logged, args=(capture, block),
                                       name=f"snapshot-{capture.height}", daemon=True)
        self.worker.start()
        return True

    def _write_logged(self, capture: StateCapture, block: tuple | None) -> None:
        try:
            self.write(capture, block)
        except Exception:  # a snapshot is an optimisation: never the chain's failure
            log.exception(Event("snapshot_failed", height=capture.height))

    def write(self, capture: StateCapture, block: tuple | None) -> Manifest:
        """Write snapshot `capture.height` (manifest last, then renamed into place);
        `block` is the stored row of that block (node.storage.Storage.block), read by
        the caller: the SQLite connection is the event loop's."""
        height = capture.height
        if block is None:
            raise LookupError(f"block {height} is not stored")
        _, header, _, preprepare, certificate = block
        size = 1 << self.chunk_leaves_log2
        roots = state_chunk_roots(capture.leaves, size)
        manifest = Manifest(self.chain_id, height, header, self.chunk_leaves_log2, tuple(roots),
                            tuple(self._history_claims(height)), preprepare, certificate)
        final = self.root / str(height)
        if (final / "manifest").exists():
            return manifest
        work = self.root / f".{height}.partial"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir()
        for index, start in enumerate(range(0, len(capture.keys), size)):
            keys = capture.keys[start:start + size]
            (work / f"state-{index}").write_bytes(
                encode_state_chunk([(k, capture.values[k]) for k in keys]))
        (work / "manifest").write_bytes(manifest.encode())
        os.replace(work, final)
        log.info(Event("snapshot_written", height=height, state_chunks=len(roots),
                       history_chunks=len(manifest.history), entries=len(capture.keys)))
        self._drop_old()
        return manifest

    def _drop_old(self) -> None:
        for height in self.heights()[:-self.keep]:
            shutil.rmtree(self.root / str(height), ignore_errors=True)

    def heights(self) -> list[int]:
        """Complete snapshots, ascending."""
        return sorted(int(p.name) for p in self.root.iterdir()
                      if p.name.isdigit() and (p / "manifest").exists())

    def latest(self) -> int:
        heights = self.heights()
        return heights[-1] if heights else 0

    def manifest(self, height: int) -> bytes | None:
        return _read(self.root / str(height) / "manifest")

    def state_chunk(self, height: int, index: int) -> bytes | None:
        return _read(self.root / str(height) / f"state-{index}")


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None
