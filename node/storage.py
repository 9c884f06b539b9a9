"""Per-node SQLite storage (WAL mode): blocks, certificates, tx index, receipts, state,
and the consensus write-ahead log.

Each block is written in one SQLite transaction together with the state changes it
caused, so a `kill -9` leaves either the whole block or none of it. synchronous=NORMAL
in WAL mode survives a process crash without an fsync per commit (a power cut may lose
the last commits, which peers still hold and state transfer refetches).

The tx index comes in two levels. A block's rows go to `txs_recent`, a small table, and
every RECENT_TXS_MAX rows they move into `txs` in one sorted statement, inside that
block's transaction. Transaction ids are SHA-256 digests: inserted one block at a time
into the big id index, nearly every id dirtied a page of its own (about 450 of a 500-tx
block's 630 WAL pages on a 200k-tx store), and every such page was written to the WAL at
COMMIT and copied again by the checkpoint. Moved in id order, thousands of ids share
each page they touch. Every read asks both tables; `close` empties `txs_recent`.

A block's receipts are one row of `block_receipts` (one msgpack array), not a column of
each tx's index row: the index rows shrink from about 265 to 45 bytes, so a block
writes its receipts once instead of twice (into `txs_recent`, then again when they
move) and neither level keeps a by-height index for them. storebench, 200k txs, same
run: 28.2 -> 21.0 us of CPU per tx, 419 -> 344 WAL pages per block. Rows written
before that keep their receipt in `txs` and are read as before (`txs_by_height`); a
`txs_recent` of the old shape moves into `txs` when the store opens. Code older than
block_receipts reads the newer blocks' receipts as pruned: going back is not supported.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol

import msgpack

from node.logs import Event

log = logging.getLogger("ipchain.storage")

SCHEMA = """
CREATE TABLE IF NOT EXISTS blocks (
    height INTEGER PRIMARY KEY, hash BLOB NOT NULL, header BLOB NOT NULL,
    result_root BLOB NOT NULL, preprepare BLOB NOT NULL, certificate BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS txs (
    id BLOB PRIMARY KEY, height INTEGER NOT NULL, idx INTEGER NOT NULL, receipt BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS txs_by_height ON txs (height, idx) WHERE receipt != x'';
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS wal (
    id INTEGER PRIMARY KEY AUTOINCREMENT, view INTEGER NOT NULL, seq INTEGER NOT NULL,
    kind TEXT NOT NULL, msg BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS evidence (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,
    sender INTEGER NOT NULL, first BLOB NOT NULL, second BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS exec_certs (
    height INTEGER PRIMARY KEY, hash BLOB NOT NULL, votes BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS txs_recent (
    id BLOB PRIMARY KEY, height INTEGER NOT NULL, idx INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS block_receipts (height INTEGER PRIMARY KEY, receipts BLOB NOT NULL);
"""

RECENT_TXS_MAX = 8_192
"""Rows `txs_recent` collects before they move into `txs` (about sixteen 500-tx blocks):
more shares the big index's pages better, but makes the block that moves them longer.
With 45-byte rows (receipts per block), storebench on a 200k-tx store, 128 blocks, same
run: 4,096 / 8,192 / 16,384 rows cost 18.5 / 16.8 / 15.7 us of CPU per tx and the block
that moves them about 42 / 51 / 66 ms of CPU on this loaded machine; on a 20k-tx store all
three cost the same (14.3-14.6 us)."""

ALL_TX_IDS = "SELECT id FROM txs UNION ALL SELECT id FROM txs_recent"
"""Every stored tx id (node/runtime.py fills the committed-id filter from it)."""

_MOVE_RECENT = "INSERT OR IGNORE INTO txs SELECT id, height, idx, x'' FROM txs_recent"
"""In id order without a sort: `txs_recent` is a WITHOUT ROWID table keyed by id."""

_MOVE_LEGACY_RECENT = ("INSERT OR IGNORE INTO txs SELECT id, height, idx, receipt "
                       "FROM txs_recent ORDER BY id")

_CUT_IDS = ("WITH RECURSIVE pos(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM pos "
            "WHERE i + 1 < ?3) SELECT substr(?1, i * 32 + 1, 32), ?2, i FROM pos")
"""(id, height ?2, position) for each 32-byte id concatenated in ?1 (?3 of them)."""

_STAGE_BLOCK_IDS = "INSERT INTO temp.restore_ids " + _CUT_IDS

_INDEX_BLOCK_IDS = "INSERT OR IGNORE INTO txs_recent " + _CUT_IDS


CACHE_KIB = 32_768
"""SQLite's page cache for the node's connection (its default is 2,000 KiB). A block of
500 transfers dirtied about 630 pages on a 200k-tx store (each random tx id on its own
index page), more than the default cache holds, so every block read its pages back from
the file (pread was about a third of save_block's CPU). A bound, not a preallocation: a
small store uses what it has."""


def pack_receipts(receipts: list[tuple[bytes, int, bytes]]) -> bytes:
    """A block's receipts as one msgpack array indexed by the tx's position in the block
    (nil where the executor kept none: a duplicate), so `tx` finds one by its idx."""
    slots: list[bytes | None] = [None] * (max(idx for _, idx, _ in receipts) + 1)
    for _, idx, receipt in receipts:
        slots[idx] = receipt
    return msgpack.packb(slots, use_bin_type=True)


class IdFilter(Protocol):
    """`node.seen_ids.CommittedIds`: a certain "no" or a "maybe" for a tx id."""

    def add_all(self, tx_ids: Iterable[bytes]) -> None: ...

    def might_hold(self, tx_id: bytes) -> bool: ...

    def maybe_among(self, tx_ids: list[bytes]) -> list[bytes]: ...


class Storage:
    """The node's store; `node.memory_storage.MemoryStorage` is the simulator's twin."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        self._retire_legacy_recent()
        self.db.executescript(SCHEMA)
        self.id_filter: IdFilter | None = None
        self._recent_rows = self._count_recent()

    def screen_ids_with(self, id_filter: IdFilter) -> None:
        """From now on every committed block's ids go into `id_filter` and
        `known_tx_ids` asks SQLite only about ids it cannot rule out. The executor asks
        about every id of every block (2.5 ms of SQLite per 500 ids on a 200k-tx store, 0.5
        ms in the filter, same run) and nearly all are new. The ids are added right after
        the block's COMMIT, here, so no block can be checked against a filter that misses
        the one before it; ids stored before this call must be loaded into it by the caller
        (node/runtime.py does, in a thread; the filter says "maybe" until then).
        Admission's duplicate check comes through here too."""
        self.id_filter = id_filter

    def close(self) -> None:
        """Moves the recent rows into `txs` first, so a store closed cleanly has its
        whole index in one table (as a store written before the two levels had)."""
        try:
            if self._recent_rows and not self.db.in_transaction:
                with self.db:
                    self._move_recent()
        except sqlite3.Error as exc:  # they stay in txs_recent, where reads find them
            log.warning(Event("recent_txs_not_moved", rows=self._recent_rows, error=str(exc)))
        finally:
            self.db.close()

    def _retire_legacy_recent(self) -> None:
        """A store written before receipts went per block has `txs_recent` with a receipt
        column: its rows (receipts and all) move into `txs`, and the table goes, so
        SCHEMA creates the new one."""
        columns = [row[1] for row in self.db.execute("PRAGMA table_info(txs_recent)")]
        if "receipt" in columns:
            with self.db:
                self.db.execute(_MOVE_LEGACY_RECENT)
                self.db.execute("DROP TABLE txs_recent")

    def _count_recent(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM txs_recent").fetchone()[0]

    def _move_recent(self) -> None:
        """Inside the caller's transaction: the recent rows into `txs`, in id order. An
        id `txs` already holds keeps its row there (the first block's, as before)."""
        self.db.execute(_MOVE_RECENT)
        self.db.execute("DELETE FROM txs_recent")

    def tx_count(self) -> int:
        return self.db.execute("SELECT (SELECT COUNT(*) FROM txs) + "
                               "(SELECT COUNT(*) FROM txs_recent)").fetchone()[0]

    # -- blocks ------------------------------------------------------------------------
    def save_block(self, height: int, block_hash: bytes, header: bytes, result_root: bytes,
                   preprepare: bytes, certificate: bytes,
                   receipts: Iterable[tuple[bytes, int, bytes]],
                   state_changes: dict[str, bytes | None]) -> None:
        """Block, tx index and state changes in one transaction: all or nothing."""
        receipts = list(receipts)
        cur = self.db.cursor()
        cur.execute("BEGIN")
        try:
            cur.execute("INSERT INTO blocks VALUES (?,?,?,?,?,?)",
                        (height, block_hash, header, result_root, preprepare, certificate))
            if receipts:  # (the statement that cuts ids apart makes a row of none)
                self._index_recent(cur, height, receipts)
                cur.execute("INSERT INTO block_receipts VALUES (?,?)",
                            (height, pack_receipts(receipts)))
            cur.executemany("INSERT OR REPLACE INTO state VALUES (?,?)",
                            ((k, v) for k, v in state_changes.items() if v is not None))
            cur.executemany("DELETE FROM state WHERE key = ?",
                            ((k,) for k, v in state_changes.items() if v is None))
            moving = self._recent_rows + len(receipts) >= RECENT_TXS_MAX
            if moving:
                self._move_recent()
            cur.execute("COMMIT")
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        self._recent_rows = 0 if moving else self._recent_rows + len(receipts)
        if self.id_filter is not None:
            self.id_filter.add_all([tx_id for tx_id, _, _ in receipts])

    @staticmethod
    def _index_recent(cur: sqlite3.Cursor, height: int,
                      receipts: list[tuple[bytes, int, bytes]]) -> None:
        """A block's index rows. When every tx has its receipt (no duplicate dropped), a
        row's idx is its position: one statement cuts the concatenated ids apart in
        SQLite (alone, 500 rows: 1.1 against 1.9-2.1 ms of CPU bound one by one from
        Python; in storebench's whole block, 20k-tx store, same run: 5.37 -> 5.13 ms)."""
        if all(idx == pos for pos, (_, idx, _) in enumerate(receipts)):
            cur.execute(_INDEX_BLOCK_IDS, (b"".join([tx_id for tx_id, _, _ in receipts]),
                                           height, len(receipts)))
        else:
            cur.executemany("INSERT OR IGNORE INTO txs_recent VALUES (?,?,?)",
                            [(tx_id, height, idx) for tx_id, idx, _ in receipts])

    def block(self, height: int) -> tuple[bytes, bytes, bytes, bytes, bytes] | None:
        """(hash, header, result_root, preprepare, certificate) or None."""
        row = self.db.execute("SELECT hash, header, result_root, preprepare, certificate "
                              "FROM blocks WHERE height = ?", (height,)).fetchone()
        return None if row is None else tuple(row)

    def blocks(self, first: int, last: int) -> list[tuple[int, bytes, bytes]]:
        """(height, preprepare, certificate) for state transfer, ascending."""
        return self.db.execute("SELECT height, preprepare, certificate FROM blocks "
                               "WHERE height BETWEEN ? AND ? ORDER BY height",
                               (first, last)).fetchall()

    def last_height(self) -> int:
        row = self.db.execute("SELECT MAX(height) FROM blocks").fetchone()
        return row[0] or 0

    # -- execution certificates ------------------------------------------------------------
    def save_exec_cert(self, height: int, block_hash: bytes, votes: bytes) -> None:
        """2f+1 execution votes for a block's header hash (consensus/execution.py)."""
        with self.db:
            self.db.execute("INSERT OR IGNORE INTO exec_certs VALUES (?,?,?)",
                            (height, block_hash, votes))

    def exec_cert(self, height: int) -> tuple[bytes, bytes] | None:
        """(block_hash, encoded votes) or None while the block is not certified."""
        row = self.db.execute("SELECT hash, votes FROM exec_certs WHERE height = ?",
                              (height,)).fetchone()
        return None if row is None else tuple(row)

    def exec_certs(self, first: int, last: int) -> list[bytes]:
        """Encoded votes of the certificates in [first, last], for state transfer."""
        return [r[0] for r in self.db.execute(
            "SELECT votes FROM exec_certs WHERE height BETWEEN ? AND ? ORDER BY height",
            (first, last))]

    def last_certified(self) -> int:
        row = self.db.execute("SELECT MAX(height) FROM exec_certs").fetchone()
        return row[0] or 0

    def replace_state(self, items: dict[str, bytes]) -> None:
        """The whole state at once (a rebuild after damage: node/repair.py)."""
        with self.db:
            self.db.execute("DELETE FROM state")
            self.db.executemany("INSERT INTO state VALUES (?,?)", sorted(items.items()))

    def quick_check(self) -> str:
        """SQLite's own consistency check: "ok" or its first complaint."""
        try:
            row = self.db.execute("PRAGMA quick_check(1)").fetchone()
        except sqlite3.DatabaseError as exc:
            return str(exc)
        return row[0] if row else "no answer"

    def tx(self, tx_id: bytes) -> tuple[int, int, bytes] | None:
        """(height, idx, receipt); the receipt is b"" once its block is pruned."""
        row = self.db.execute("SELECT height, idx, receipt FROM txs WHERE id = ?",
                              (tx_id,)).fetchone()
        if row is None:
            row = self.db.execute("SELECT height, idx, x'' FROM txs_recent WHERE id = ?",
                                  (tx_id,)).fetchone()
        if row is None:
            return None
        height, idx, receipt = row
        if not receipt:
            receipts = self._block_receipts(height)
            if receipts is not None and idx < len(receipts):
                receipt = receipts[idx] or b""
        return height, idx, receipt

    def _block_receipts(self, height: int) -> list[bytes | None] | None:
        row = self.db.execute("SELECT receipts FROM block_receipts WHERE height = ?",
                              (height,)).fetchone()
        return None if row is None else msgpack.unpackb(row[0])

    def receipts_at(self, height: int) -> list[bytes]:
        """The encoded receipts of one block, in transaction order.

        Through `txs_by_height`: without it every proof scanned the whole tx table (0.6-0.8 s
        on the loop for a 1M-tx chain). The index leaves out the receipt-less rows a
        snapshot restore writes, so a restore does not pay for it; their heights are pruned
        and have no receipts to give anyway. A block stored since receipts went per
        block has them in one row of `block_receipts`."""
        receipts = self._block_receipts(height)
        if receipts is not None:
            return [r for r in receipts if r is not None]
        return [r[0] for r in self.db.execute(
            "SELECT receipt FROM (SELECT idx, receipt FROM txs WHERE height = ?1 AND "
            "receipt != x'') ORDER BY idx", (height,))]

    def known_tx_ids(self, ids: list[bytes]) -> set[bytes]:
        if self.id_filter is not None:  # nearly every answer is "no": SQLite not asked
            ids = self.id_filter.maybe_among(ids)
        found: set[bytes] = set()
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            found.update(r[0] for r in self.db.execute(
                f"SELECT id FROM txs WHERE id IN ({marks}) UNION ALL "
                f"SELECT id FROM txs_recent WHERE id IN ({marks})", chunk + chunk))
        return found

    def state_items(self) -> dict[str, bytes]:
        return dict(self.db.execute("SELECT key, value FROM state"))

    # -- consensus WAL and evidence --------------------------------------------------------
    def append_wal(self, records: list[tuple[int, int, str, bytes]]) -> None:
        with self.db:
            self.db.executemany("INSERT INTO wal (view, seq, kind, msg) VALUES (?,?,?,?)", records)

    def copy_wal_from(self, other: Path) -> int:
        """Take over another database's WAL (what this replica signed), if it reads;
        the count of records kept (0 when that file cannot give them)."""
        try:
            source = sqlite3.connect(f"file:{other}?mode=ro", uri=True)
            rows = source.execute("SELECT view, seq, kind, msg FROM wal ORDER BY id").fetchall()
            source.close()
        except sqlite3.Error:
            return 0
        self.append_wal(rows)
        return len(rows)

    def wal(self) -> list[bytes]:
        return [r[0] for r in self.db.execute("SELECT msg FROM wal ORDER BY id")]

    def prune_wal(self, settled: Callable[[int, int, str], bool]) -> None:
        """Drop every record `settled(view, seq, kind)` calls settled: the rule is the
        engine's (`node.engine.wal_settled`), shared with the in-memory store."""
        self.db.create_function("wal_settled", 3, settled, deterministic=True)
        with self.db:
            self.db.execute("DELETE FROM wal WHERE wal_settled(view, seq, kind)")

    def add_evidence(self, kind: str, sender: int, first: bytes, second: bytes) -> None:
        with self.db:
            self.db.execute("INSERT INTO evidence (kind, sender, first, second) VALUES (?,?,?,?)",
                            (kind, sender, first, second))

    def evidence(self, limit: int = 100) -> list[tuple[str, int, bytes, bytes]]:
        return self.db.execute("SELECT kind, sender, first, second FROM evidence "
                               "ORDER BY id LIMIT ?", (limit,)).fetchall()

    def get_meta(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else msgpack.unpackb(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                            (key, msgpack.packb(value, use_bin_type=True)))

    def init_state(self, items: dict[str, bytes]) -> None:
        """Write the genesis state once; later starts load what the blocks left."""
        with self.db:
            if self.db.execute("SELECT COUNT(*) FROM state").fetchone()[0] == 0:
                self.db.executemany("INSERT INTO state VALUES (?,?)", sorted(items.items()))

    # -- state sync and pruning (node/snapshot_sync.py, node/snapshot_service.py) -------------
    def pruned_below(self) -> int:
        """The lowest block height this node keeps (1 when nothing is pruned)."""
        return self.get_meta("lowest_retained_height") or 1

    def begin_restore(self) -> None:
        """Open the one transaction a snapshot restore writes in: a crash before
        `finish_restore` leaves the store as it was (WAL frames of a transaction that
        never committed are ignored on recovery). The restore's transaction ids are
        staged in a temporary table (memory, gone with the connection) and indexed in
        id order at the end, so SQLite sorts them, not Python."""
        self.id_filter = None  # it never saw the restored ids: its "no" would be wrong
        self.db.execute("PRAGMA temp_store=MEMORY")
        self.db.execute("BEGIN")
        self._move_recent()  # the restore's INSERT OR IGNORE then sees every id held here
        self.db.execute("DELETE FROM state")
        self.db.execute("DELETE FROM blocks")
        self.db.execute("CREATE TEMP TABLE restore_ids "
                        "(id BLOB NOT NULL, height INTEGER NOT NULL, idx INTEGER NOT NULL)")

    def restore_state_rows(self, pairs: list[tuple[str, bytes]]) -> None:
        self.db.executemany("INSERT INTO state VALUES (?,?)", pairs)

    def restore_tx_blocks(self, blocks: Iterable[tuple[int, bytes]]) -> None:
        """Stage (height, concatenated 32-byte ids) of pruned blocks; SQLite cuts each
        block's ids apart itself (a million tuples built in Python cost seconds)."""
        self.db.executemany(_STAGE_BLOCK_IDS, ((ids, height, len(ids) // 32)
                                               for height, ids in blocks if ids))

    def index_restored_tx_ids(self) -> None:
        """The staged ids into the tx index, receipts unknown (empty), in id order (SQLite
        appends instead of splitting pages). An id in two blocks keeps its first block
        and position, as the executor's index does; an id this node already holds keeps
        its row. One statement: sqlite3 leaves the GIL free while it runs."""
        self.db.execute("INSERT OR IGNORE INTO txs SELECT id, height, idx, x'' "
                        "FROM temp.restore_ids ORDER BY id, height, idx")
        self.db.execute("DROP TABLE temp.restore_ids")

    def finish_restore(self, height: int, block: tuple[bytes, bytes, bytes, bytes, bytes],
                       exec_votes: bytes, report: dict[str, Any]) -> None:
        block_hash, header, result_root, preprepare, certificate = block
        self.db.execute("INSERT INTO blocks VALUES (?,?,?,?,?,?)",
                        (height, block_hash, header, result_root, preprepare, certificate))
        self.db.execute("INSERT OR REPLACE INTO exec_certs VALUES (?,?,?)",
                        (height, block_hash, exec_votes))
        for key, value in (("lowest_retained_height", height), ("state_sync", report)):
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                            (key, msgpack.packb(value, use_bin_type=True)))
        # a checkpoint proof from before the restore would pull the watermarks below h
        self.db.execute("DELETE FROM meta WHERE key = 'stable_checkpoint'")
        # No checkpoint inside this COMMIT: copying the restore's ~0.5 GB of WAL into the
        # database is the node's checkpoint thread's job (node/offload.py), not the join's.
        autocheckpoint = self.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        self.db.execute("PRAGMA wal_autocheckpoint=0")
        try:
            self.db.execute("COMMIT")
        finally:
            self.db.execute(f"PRAGMA wal_autocheckpoint={int(autocheckpoint)}")
            self._recent_rows = self._count_recent()
            self._end_restore()

    def _end_restore(self) -> None:
        if not self.db.in_transaction:  # (a failed COMMIT: abort_restore rolls back first)
            self.db.execute("PRAGMA temp_store=DEFAULT")

    def abort_restore(self) -> None:
        if self.db.in_transaction:
            self.db.execute("ROLLBACK")
        self._recent_rows = self._count_recent()
        self._end_restore()

    def prune_blocks(self, below: int, tx_ids: list[bytes]) -> None:
        """Drop blocks under `below` and the receipts of `tx_ids` (theirs); the ids stay,
        so a replayed old transaction is still refused as a duplicate."""
        with self.db:
            self._move_recent()
            self.db.execute("DELETE FROM blocks WHERE height < ?", (below,))
            self.db.execute("DELETE FROM block_receipts WHERE height < ?", (below,))
            self.db.executemany("UPDATE txs SET receipt = x'' WHERE id = ? AND height < ? "
                                "AND receipt != x''", ((tx_id, below) for tx_id in tx_ids))
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                            ("lowest_retained_height", msgpack.packb(below)))
        self._recent_rows = 0
