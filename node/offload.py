"""Work the node's event loop must not do in one piece: signature checks, WAL checkpoints.

A node catching up 10,000 blocks checks about ten Ed25519 signatures per block (the
pre-prepare, 2f+1 COMMITs, the execution votes that come with the range and the peers'
answers to its own votes). Checked inside the replica step, a fetched chunk's votes made
steps of 130-650 ms on a loaded machine, and /v1/status waited behind them. SQLite's
automatic WAL checkpoint (copy the log into the database, fsync both) ran inside
whichever block commit crossed 1,000 pages, on the loop too.

Both change here, in the asyncio adapter: the engine and the replica stay synchronous
and shared with the simulator, and nothing they see changes.
- `PreverifiedKeyring` is the replica's `RememberingKeyring` (each valid signature is
  checked once however often it arrives). The adapter checks the signatures
  of fetched blocks and vote floods before they reach the replica, `CHECK_SLICE` at a
  time with a yield between, and remembers the exact (signer, signature, signed bytes)
  it found valid; the replica's own check of that message is then a lookup. Only valid
  results are remembered, and only for exactly those bytes, so the replica's verdict
  is the one the inner keyring would give. A message not checked ahead (or forgotten)
  is checked inline. Not a thread: PyNaCl releases the GIL in its C call, but every
  check then hands the GIL back and forth, and on a loaded machine each handover waits
  for the OS to reschedule the loop's thread — a worker thread measured a median
  /v1/status latency of 109 ms during catch-up against 72 ms for slices on the loop.
- `WalCheckpointer` turns the automatic checkpoint off and runs it from its own
  connection in a thread (one C call every two seconds: no GIL traffic to speak of).
  Commits still happen on the loop, in the engine's order (persist before send); in WAL
  mode with synchronous=NORMAL they are appends without an fsync. A checkpoint that
  fails for any reason but a busy database is a storage error: the node fail-stops, as
  it would had the write failed on the loop.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Callable, Iterable

from consensus import messages as wire
from consensus.crypto import Keyring, RememberingKeyring
from node.logs import Event

log = logging.getLogger("ipchain.offload")

MAX_REMEMBERED = 16_384
"""Valid signatures kept for the replica's own check: a fetched chunk of 256 blocks
brings about 1,800; the oldest are forgotten first (then checked inline again)."""
CHECK_SLICE = 8
"""Signatures checked between two yields: about half a millisecond on an idle core."""
CHECKPOINT_INTERVAL_S = 2.0
"""How often the WAL is copied into the database: the log stays a few MB at most.
Every block rewrites the same state and index pages; a checkpoint copies each page
once however often it changed since the last, so every 2 s instead of 0.5 s cost
about 8 % less node CPU per transaction in a same-run saturated A/B bench."""


class PreverifiedKeyring(RememberingKeyring):
    """The replica's remembering keyring, with signatures checked ahead of it in slices."""

    def __init__(self, inner: Keyring, chain_id: str) -> None:
        super().__init__(inner, capacity=MAX_REMEMBERED)
        self.chain_id = chain_id
        self.checked_ahead = 0

    async def check_ahead(self, msgs: Iterable[wire.Signed]) -> None:
        """Check `msgs`, yielding every CHECK_SLICE; the replica then finds the valid
        ones. A message already found valid is not checked again: a catching-up replica
        asks for a range again every fetch timeout, and the same votes come back."""
        keys = []
        for msg in msgs:
            key = (msg.sender, msg.sig, msg.signing_bytes(self.chain_id))
            if key not in self._good:
                keys.append(key)
        self.checked_ahead += len(keys)
        for start in range(0, len(keys), CHECK_SLICE):
            for signer, sig, data in keys[start:start + CHECK_SLICE]:
                self.remember(signer, data, sig)
            await asyncio.sleep(0)


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
