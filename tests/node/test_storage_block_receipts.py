"""A block's receipts in one `block_receipts` row: every reader still finds them (by tx
id, by height, in order, with gaps where the executor kept none), pruning drops them,
and a store written with receipts in the tx index reads as before and opens whole."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from node.storage import Storage

OLD_RECENT = """
CREATE TABLE txs (id BLOB PRIMARY KEY, height INTEGER NOT NULL, idx INTEGER NOT NULL,
    receipt BLOB NOT NULL);
CREATE INDEX txs_by_height ON txs (height, idx) WHERE receipt != x'';
CREATE TABLE txs_recent (id BLOB PRIMARY KEY, height INTEGER NOT NULL, idx INTEGER NOT NULL,
    receipt BLOB NOT NULL);
CREATE INDEX txs_recent_by_height ON txs_recent (height, idx);
"""


def tx_id(height: int, idx: int) -> bytes:
    return bytes([height, idx]) * 16


def save(store: Storage, height: int, indices: list[int]) -> None:
    store.save_block(height, bytes([height]) * 32, b"h", b"r", b"p", b"c",
                     [(tx_id(height, i), i, b"receipt-%d-%d" % (height, i)) for i in indices],
                     {})


def test_receipts_are_one_row_per_block_and_found_by_id_and_height(tmp_path: Path) -> None:
    store = Storage(tmp_path / "db.sqlite")
    try:
        save(store, 1, [0, 1, 2])
        save(store, 2, [0, 3, 1])  # 2 was a duplicate: no receipt, no row
        assert store.db.execute("SELECT COUNT(*) FROM block_receipts").fetchone()[0] == 2
        assert store.db.execute("SELECT COUNT(*) FROM txs_recent WHERE height = 2"
                                ).fetchone()[0] == 3
        assert store.receipts_at(2) == [b"receipt-2-0", b"receipt-2-1", b"receipt-2-3"]
        assert store.tx(tx_id(2, 3)) == (2, 3, b"receipt-2-3")
        assert store.tx(tx_id(2, 2)) is None
        store.close()  # moves the index rows into txs; the receipts stay per block
        store = Storage(tmp_path / "db.sqlite")
        assert store.tx(tx_id(1, 2)) == (1, 2, b"receipt-1-2")
        assert store.receipts_at(1) == [b"receipt-1-0", b"receipt-1-1", b"receipt-1-2"]
        assert store.receipts_at(3) == []
    finally:
        store.close()


def test_pruning_drops_a_block_receipts_and_keeps_its_ids(tmp_path: Path) -> None:
    store = Storage(tmp_path / "db.sqlite")
    try:
        save(store, 1, [0, 1])
        save(store, 2, [0])
        store.prune_blocks(2, [tx_id(1, 0), tx_id(1, 1)])
        assert store.receipts_at(1) == [] and store.tx(tx_id(1, 1)) == (1, 1, b"")
        assert store.known_tx_ids([tx_id(1, 0), tx_id(9, 9)]) == {tx_id(1, 0)}
        assert store.tx(tx_id(2, 0)) == (2, 0, b"receipt-2-0")
    finally:
        store.close()


def test_a_store_with_receipts_in_the_tx_index_opens_whole(tmp_path: Path) -> None:
    """The old shape: receipts in both index levels. Opening moves the old recent rows
    into txs with their receipts; old and new blocks then read alike."""
    path = tmp_path / "db.sqlite"
    old = sqlite3.connect(str(path))
    old.executescript(OLD_RECENT)
    old.execute("INSERT INTO txs VALUES (?, 1, 0, x'01')", (tx_id(1, 0),))
    old.executemany("INSERT INTO txs_recent VALUES (?, 2, ?, ?)",
                    [(tx_id(2, i), i, b"old-%d" % i) for i in (1, 0)])
    old.commit()
    old.close()
    store = Storage(path)
    try:
        assert store.db.execute("SELECT COUNT(*) FROM txs").fetchone()[0] == 3
        assert store.db.execute("SELECT COUNT(*) FROM txs_recent").fetchone()[0] == 0
        assert store.receipts_at(2) == [b"old-0", b"old-1"]
        assert store.tx(tx_id(2, 1)) == (2, 1, b"old-1")
        save(store, 3, [0, 1])
        assert store.tx(tx_id(3, 1)) == (3, 1, b"receipt-3-1")
        assert store.tx_count() == 5
    finally:
        store.close()


def test_a_block_without_receipts_adds_no_index_row(tmp_path: Path) -> None:
    store = Storage(tmp_path / "db.sqlite")
    try:
        save(store, 1, [])
        save(store, 2, [0, 1])  # positions = idx: the rows are cut apart in SQLite
        assert store.tx_count() == 2 and store.receipts_at(1) == []
        assert store.tx(b"") is None and store.tx(tx_id(2, 1)) == (2, 1, b"receipt-2-1")
    finally:
        store.close()
