"""Work the node's event loop must not do in one piece: signature checks, block
execution and replica steps while catching up, WAL checkpoints.

A node catching up 10,000 blocks checks about ten Ed25519 signatures per block (the
pre-prepare, 2f+1 COMMITs, the execution votes that come with the range and the peers'
answers to its own votes), steps its replica and executes and stores each block.
Checked inside the replica step, a fetched chunk's votes made steps of 130-650 ms on a
loaded machine, and /v1/status waited behind them. SQLite's automatic WAL checkpoint
(copy the log into the database, fsync both) ran inside whichever block commit crossed
1,000 pages, on the loop too.

All of it changes here, in the asyncio adapter: the engine and the replica stay
synchronous and shared with the simulator, and nothing they see changes.
- `Turns`: every piece of catch-up work (checking signatures ahead, a replica step, a
  chunk of block execution) runs in a turn of at most `TURN_MS`, and one turn at a time:
  each iteration of the event loop runs at most one turn besides whatever I/O and API
  handlers are ready. Yielding with `asyncio.sleep(0)` alone did not bound that: five
  catch-up tasks each yielding after their own slice still filled one iteration with
  five slices (10-30 ms of CPU), and a status request needs two or three iterations —
  on a machine where the node gets a sixth of a core, 150-450 ms.
- `PreverifiedKeyring` is the replica's `RememberingKeyring` (each valid signature is
  checked once however often it arrives). The adapter checks the signatures
  of fetched blocks and vote floods before they reach the replica, in turns, and
  remembers the exact (signer, signature, signed bytes)
  it found valid; the replica's own check of that message is then a lookup. Only valid
  results are remembered, and only for exactly those bytes, so the replica's verdict
  is the one the inner keyring would give. A message not checked ahead (or forgotten)
  is checked inline. Not a thread: PyNaCl releases the GIL in its C call, but every
  check then hands the GIL back and forth, and on a loaded machine each handover waits
  for the OS to reschedule the loop's thread — a worker thread measured a median
  /v1/status latency of 109 ms during catch-up against 72 ms for slices on the loop.
- `freeze_startup_heap`: Python's full garbage collection walks every tracked object,
  and a started node holds hundreds of thousands that live as long as the process
  (modules, routes, the OpenAPI document, the genesis state). Each full collection
  took 27-37 ms of CPU (120-230 ms of wall clock on the loaded machine) in the middle
  of whatever callback allocated last — the largest stall left once catch-up work took
  turns. Objects alive when the node starts are moved out of the collector's sight.
- `WalCheckpointer` turns the automatic checkpoint off and runs it from its own
  connection in a thread (one C call every two seconds: no GIL traffic to speak of).
  Commits still happen on the loop, in the engine's order (persist before send); in WAL
  mode with synchronous=NORMAL they are appends without an fsync. A checkpoint that
  fails for any reason but a busy database is a storage error: the node fail-stops, as
  it would had the write failed on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import AsyncIterator, Callable, Iterable

from consensus import messages as wire
from consensus.crypto import Keyring, RememberingKeyring
from node.logs import Event

log = logging.getLogger("ipchain.offload")

MAX_REMEMBERED = 16_384
"""Valid signatures kept for the replica's own check: a fetched chunk of 256 blocks
brings about 1,800; the oldest are forgotten first (then checked inline again)."""
TURN_MS = 3.0
"""The longest a turn of catch-up work keeps the loop (wall clock; a turn always does
one unit, e.g. one signature check or one replica event). A status request waits for
at most one turn per loop iteration it needs."""
CHECKPOINT_INTERVAL_S = 4.0
"""How often the WAL is copied into the database: the log stays some tens of MB at most.
Every block rewrites the same state and index pages; a checkpoint copies each page
once however often it changed since the last, so every 2 s instead of 0.5 s cost
about 8 % less node CPU per transaction in a same-run saturated A/B bench, and every
4 s instead of 2 s (storebench, 30k-tx store, checkpoints every 20 blocks against 10)
1,102 -> 799 us of checkpoint CPU per 500-tx block."""


def freeze_startup_heap() -> int:
    """Collect once, then exempt everything still alive from later collections (it is
    still freed by reference counting; only cycles among it would stay). Called once the
    node is built, before it listens: the collection's own pause then comes before the
    loop-lag probe and the first request. How many objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


class Turn:
    """One turn's deadline: `over()` once TURN_MS have passed since it began."""

    __slots__ = ("deadline",)

    def __init__(self, length_s: float) -> None:
        self.deadline = time.perf_counter() + length_s

    def over(self) -> bool:
        return time.perf_counter() >= self.deadline


class Turns:
    """Catch-up work, one turn at a time, each followed by a pass of the event loop.

    A FIFO lock: the catch-up tasks (fetched signatures, vote floods, replica steps,
    block execution) take turns, and a turn keeps the lock until the loop has run once
    more, so the API's handlers, ready in between, run after at most one turn. Taking
    a turn nobody else wants costs no yield before it, only the one after."""

    def __init__(self, turn_ms: float = TURN_MS) -> None:
        self.turn_s = turn_ms / 1000
        self._lock = asyncio.Lock()
        self.taken = 0

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[Turn]:
        async with self._lock:
            self.taken += 1
            yield Turn(self.turn_s)
            # Held across one pass of the loop: a lock handed over at once let three
            # waiting tasks take their turns in the same iteration, one after another.
            await asyncio.sleep(0)


class PreverifiedKeyring(RememberingKeyring):
    """The replica's remembering keyring, with signatures checked ahead of it in turns."""

    def __init__(self, inner: Keyring, chain_id: str, turns: Turns | None = None) -> None:
        super().__init__(inner, capacity=MAX_REMEMBERED)
        self.chain_id = chain_id
        self.turns = turns or Turns()
        self.checked_ahead = 0

    async def check_ahead(self, msgs: Iterable[wire.Signed]) -> None:
        """Check `msgs` in turns; the replica then finds the valid ones. A message
        already found valid is not checked again: a catching-up replica asks for a
        range again every fetch timeout, and the same votes come back."""
        pending = list(msgs)
        done = 0
        while done < len(pending):
            async with self.turns.turn() as turn:
                while done < len(pending):
                    msg = pending[done]
                    done += 1
                    data = msg.signing_bytes(self.chain_id)
                    if (msg.sender, msg.sig, data) not in self._good:
                        self.checked_ahead += 1
                        self.remember(msg.sender, data, msg.sig)
                    if turn.over():
                        break


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
