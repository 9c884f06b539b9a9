"""The tx index's two levels (txs_recent, then txs): every read sees both, the move keeps
the first block's row for an id, and a block with its tx rows is still all or nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from node import storage as storage_module
from node.storage import ALL_TX_IDS, RECENT_TXS_MAX, Storage


def tx_ids(prefix: bytes, count: int) -> list[bytes]:
    return [hashlib.sha256(prefix + i.to_bytes(4, "big")).digest() for i in range(count)]


def save(store: Storage, height: int, ids: list[bytes]) -> None:
    store.save_block(height, bytes([height % 256]) * 32, b"h", b"r", b"p", b"c",
                     [(tx_id, i, b"receipt-%d-%d" % (height, i)) for i, tx_id in enumerate(ids)],
                     {f"k{height}": b"v"})


def rows_in(store: Storage, table: str) -> int:
    return store.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_reads_see_rows_before_and_after_they_move(tmp_path: Path) -> None:
    store = Storage(tmp_path / "db.sqlite")
    try:
        per_block = RECENT_TXS_MAX // 4
        blocks = {h: tx_ids(b"%d" % h, per_block) for h in range(1, 6)}
        for height in range(1, 4):
            save(store, height, blocks[height])
        assert rows_in(store, "txs") == 0 and rows_in(store, "txs_recent") == 3 * per_block
        save(store, 4, blocks[4])  # the 4,096th row: this block's transaction moves them all
        assert rows_in(store, "txs") == 4 * per_block and rows_in(store, "txs_recent") == 0
        save(store, 5, blocks[5])
        assert rows_in(store, "txs_recent") == per_block
        every = [tx_id for h in sorted(blocks) for tx_id in blocks[h]]
        assert store.known_tx_ids(every + tx_ids(b"new", 10)) == set(every)
        assert store.tx(blocks[2][7]) == (2, 7, b"receipt-2-7")  # moved
        assert store.tx(blocks[5][7]) == (5, 7, b"receipt-5-7")  # recent
        for height in (2, 5):
            assert store.receipts_at(height) == [b"receipt-%d-%d" % (height, i)
                                                 for i in range(per_block)]
        assert store.tx_count() == 5 * per_block
        assert sorted(r[0] for r in store.db.execute(ALL_TX_IDS)) == sorted(every)
    finally:
        store.close()


def test_close_moves_the_recent_rows_and_a_reopened_store_counts_on(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    store = Storage(path)
    save(store, 1, tx_ids(b"a", 100))
    store.close()
    store = Storage(path)
    try:
        assert rows_in(store, "txs") == 100 and rows_in(store, "txs_recent") == 0
        save(store, 2, tx_ids(b"b", 100))
        assert store.tx(tx_ids(b"b", 1)[0]) == (2, 0, b"receipt-2-0")
    finally:
        store.close()


def test_an_id_already_moved_keeps_its_first_row(tmp_path: Path) -> None:
    """The executor never stores an id twice, but the store's rule stays the old one:
    the first block's row wins (INSERT OR IGNORE)."""
    store = Storage(tmp_path / "db.sqlite")
    try:
        twice = tx_ids(b"t", 1)[0]
        save(store, 1, [twice])
        store.close()  # moves it into txs
        store = Storage(tmp_path / "db.sqlite")
        save(store, 2, [twice])
        store.close()
        store = Storage(tmp_path / "db.sqlite")
        assert store.tx(twice) == (1, 0, b"receipt-1-0") and store.tx_count() == 1
    finally:
        store.close()


def test_a_block_that_fails_after_the_move_leaves_neither_its_rows_nor_the_move(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """All or nothing across the move: the block's transaction rolls the move back too,
    and the next block moves the rows again."""
    monkeypatch.setattr(storage_module, "RECENT_TXS_MAX", 150)
    store = Storage(tmp_path / "db.sqlite")
    try:
        save(store, 1, tx_ids(b"a", 100))
        move = store._move_recent

        def move_then_fail() -> None:
            move()
            assert rows_in(store, "txs") == 200  # moved, not yet committed
            raise RuntimeError("killed mid-block")
        monkeypatch.setattr(store, "_move_recent", move_then_fail)
        with pytest.raises(RuntimeError):
            save(store, 2, tx_ids(b"b", 100))
        assert rows_in(store, "txs_recent") == 100 and rows_in(store, "txs") == 0
        assert store.last_height() == 1 and store.tx(tx_ids(b"b", 1)[0]) is None
        monkeypatch.setattr(store, "_move_recent", move)
        save(store, 2, tx_ids(b"c", 100))
        assert rows_in(store, "txs") == 200 and rows_in(store, "txs_recent") == 0
    finally:
        store.close()


def test_a_snapshot_restore_keeps_the_rows_this_node_holds(tmp_path: Path) -> None:
    """The restore's ids are indexed with INSERT OR IGNORE: an id this node already stored
    (still in txs_recent) keeps its row, and is not written a second time."""
    store = Storage(tmp_path / "db.sqlite")
    try:
        held = tx_ids(b"h", 3)
        save(store, 1, held)
        store.begin_restore()
        store.restore_tx_blocks([(1, b"".join(held)), (2, b"".join(tx_ids(b"n", 2)))])
        store.index_restored_tx_ids()
        store.finish_restore(2, (b"\x02" * 32, b"h", b"r", b"p", b"c"), b"v", {})
        assert store.tx(held[0]) == (1, 0, b"receipt-1-0")
        assert store.tx_count() == 5 and rows_in(store, "txs_recent") == 0
    finally:
        store.close()
