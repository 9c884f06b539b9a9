"""A block's receipts are read through an index, not a scan of every transaction."""

from __future__ import annotations

from pathlib import Path

from node.storage import Storage


def save(store: Storage, height: int, receipts: list[tuple[bytes, int, bytes]]) -> None:
    store.save_block(height, bytes([height]) * 32, b"h", b"r", b"p", b"c", receipts, {})


def test_receipts_of_a_block_come_in_order_through_the_height_index(tmp_path: Path) -> None:
    store = Storage(tmp_path / "db.sqlite")
    try:
        for height in (1, 2, 3):
            save(store, height, [(bytes([height, i]) * 16, i, b"receipt-%d-%d" % (height, i))
                                 for i in (2, 0, 1)])
        assert store.receipts_at(2) == [b"receipt-2-0", b"receipt-2-1", b"receipt-2-2"]
        plan = store.db.execute("EXPLAIN QUERY PLAN SELECT receipt FROM txs WHERE height = ? "
                                "AND receipt != x'' ORDER BY idx", (2,)).fetchall()
        assert any("USING INDEX txs_by_height" in row[-1] for row in plan), plan
        assert not any("SCAN txs" == row[-1] for row in plan), plan
    finally:
        store.close()


def test_restored_rows_without_receipts_stay_out_of_a_blocks_receipts(tmp_path: Path) -> None:
    """A snapshot restore writes ids with empty receipts for pruned heights; those heights
    answer with no receipts (the API says 410 Pruned before it asks)."""
    store = Storage(tmp_path / "db.sqlite")
    try:
        store.db.execute("INSERT INTO txs VALUES (?, 7, 0, x'')", (b"\x07" * 32,))
        save(store, 8, [(b"\x08" * 32, 0, b"receipt-8")])
        assert store.receipts_at(7) == [] and store.receipts_at(8) == [b"receipt-8"]
    finally:
        store.close()
