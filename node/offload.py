"""Work the node's event loop must not do itself: bulk signature checks, WAL checkpoints.

A node catching up 10,000 blocks checks about ten Ed25519 signatures per block (the
pre-prepare, 2f+1 COMMITs, the execution votes that come with the range and the peers'
answers to its own votes). Checked inside the replica step, a fetched chunk's votes made
steps of 130-650 ms on a loaded machine, and /v1/status waited behind them. SQLite's
automatic WAL checkpoint (copy the log into the database, fsync both) ran inside
whichever block commit crossed 1,000 pages, on the loop too.

Both move to worker threads here, in the asyncio adapter: the engine and the replica
stay synchronous and shared with the simulator, and nothing they see changes.
- `PreverifiedKeyring` wraps the replica's keyring. A worker thread checks signatures
  ahead of the replica (PyNaCl releases the GIL, so this runs on the other core) and
  remembers the exact (signer, signature, signed bytes) it found valid; the replica's
  own check of that message is then a lookup. Only valid results are remembered, and
  only for exactly those bytes, so the replica's verdict is the one the inner keyring
  would give. A message that was not checked ahead (or was forgotten) is checked inline.
- `WalCheckpointer` turns the automatic checkpoint off and runs it from its own
  connection in a thread. Commits still happen on the loop, in the engine's order
  (persist before send); in WAL mode with synchronous=NORMAL they are appends without an
  fsync. A checkpoint that fails for any reason but a busy database is a storage error:
  the node fail-stops, as it would had the write failed on the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Callable, Iterable

from consensus import messages as wire
from consensus.crypto import Keyring
from node.logs import Event

log = logging.getLogger("ipchain.offload")

MAX_REMEMBERED = 16_384
"""Valid signatures kept for the replica's own check: a fetched chunk of 256 blocks
brings about 1,800; the oldest are forgotten first (then checked inline again)."""
CHECKPOINT_INTERVAL_S = 0.5
"""How often the WAL is copied into the database: the log stays a few MB at most."""


class PreverifiedKeyring:
    """The replica's keyring, with signatures checked ahead of it in a worker thread."""

    def __init__(self, inner: Keyring, chain_id: str) -> None:
        self.inner = inner
        self.index, self.label = inner.index, inner.label
        self.chain_id = chain_id
        self._valid: dict[tuple[int, bytes, bytes], None] = {}
        """Written only by the worker thread (one thread: no lock needed for writes);
        the loop only tests membership, which is safe under the GIL."""
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="sigcheck")
        self.checked_ahead = 0
        self.hits = 0

    def sign(self, data: bytes) -> bytes:
        return self.inner.sign(data)

    def verify(self, signer: int, data: bytes, sig: bytes) -> bool:
        if (signer, sig, data) in self._valid:
            self.hits += 1
            return True
        return self.inner.verify(signer, data, sig)

    async def check_ahead(self, msgs: Iterable[wire.Signed]) -> None:
        """Check `msgs` in the worker thread; the replica then finds the valid ones.

        The signed bytes are built here, on the loop: the thread makes only the C calls
        (PyNaCl releases the GIL in them). A thread running Python code would hold the
        GIL for whole switch intervals and the loop would wait for it at every SQLite
        call and socket write, which made catch-up slower and no more responsive.
        A message already found valid is not checked again: a catching-up replica asks
        for a range again every fetch timeout, and the same votes come back each time."""
        keys = []
        for msg in msgs:
            key = (msg.sender, msg.sig, msg.signing_bytes(self.chain_id))
            if key not in self._valid:
                keys.append(key)
        self.checked_ahead += len(keys)
        if keys:
            await asyncio.get_running_loop().run_in_executor(self._pool, self._verify, keys)

    def _verify(self, keys: list[tuple[int, bytes, bytes]]) -> None:
        for key in keys:
            if self.inner.verify(key[0], key[2], key[1]):
                self._remember(key)

    def _remember(self, key: tuple[int, bytes, bytes]) -> None:
        self._valid[key] = None
        while len(self._valid) > MAX_REMEMBERED:
            del self._valid[next(iter(self._valid))]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class WalCheckpointer:
    """SQLite's WAL checkpoint, every `interval_s`, in a thread with its own connection."""

    def __init__(self, db: sqlite3.Connection, path: Path,
                 on_failure: Callable[[str], None],
                 interval_s: float = CHECKPOINT_INTERVAL_S) -> None:
        self.path, self.interval_s = path, interval_s
        self.on_failure = on_failure
        """Called from the thread with the reason; the adapter fail-stops the engine."""
        self.checkpoints = 0
        self._stop = threading.Event()
        db.execute("PRAGMA wal_autocheckpoint=0")  # from now on only this thread checkpoints
        self._thread = threading.Thread(target=self._run, name="wal-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(str(self.path), isolation_level=None)
            conn.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as exc:
            self.on_failure(f"wal checkpoint connection failed: {exc!r}")
            return
        try:
            while not self._stop.wait(self.interval_s):
                if not self._checkpoint(conn):
                    return
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> bool:
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                return True  # another checkpoint or a schema change: next round
            self.on_failure(f"wal checkpoint failed: {exc!r}")
            return False
        except sqlite3.Error as exc:
            self.on_failure(f"wal checkpoint failed: {exc!r}")
            return False
        self.checkpoints += 1
        return True

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        if self._thread.is_alive():
            log.warning(Event("wal_checkpoint_slow_to_stop", path=str(self.path)))
