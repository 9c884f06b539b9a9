"""The store screens tx-id lookups through the committed-id filter without a false "no"."""

from __future__ import annotations

import hashlib
from pathlib import Path

from node.seen_ids import CommittedIds
from node.storage import Storage


def tx_ids(prefix: bytes, count: int) -> list[bytes]:
    return [hashlib.sha256(prefix + i.to_bytes(4, "big")).digest() for i in range(count)]


def save(store: Storage, height: int, ids: list[bytes]) -> None:
    store.save_block(height, bytes([height]) * 32, b"h", b"r", b"p", b"c",
                     iter([(tx_id, i, b"receipt") for i, tx_id in enumerate(ids)]), {})


class CountingFilter(CommittedIds):
    def __init__(self) -> None:
        super().__init__()
        self.maybes = 0

    def might_hold(self, tx_id: bytes) -> bool:
        found = super().might_hold(tx_id)
        self.maybes += found
        return found


def test_committed_ids_stay_known_and_new_ids_skip_sqlite(tmp_path: Path) -> None:
    store = Storage(tmp_path / "db.sqlite")
    try:
        earlier, later, strangers = tx_ids(b"e", 300), tx_ids(b"l", 300), tx_ids(b"s", 300)
        save(store, 1, earlier)
        screen = CountingFilter()
        screen.take_in(CommittedIds(earlier))  # what the node loads at start
        store.screen_ids_with(screen)
        save(store, 2, later)  # a generator of receipts: consumed once, ids still added
        assert store.known_tx_ids(earlier + later + strangers) == set(earlier + later)
        assert store.tx(later[0]) == (2, 0, b"receipt")
        assert screen.maybes < 610  # the strangers were ruled out before SQLite
    finally:
        store.close()


def test_a_filter_that_has_not_loaded_the_earlier_ids_leaves_the_answer_to_sqlite(
        tmp_path: Path) -> None:
    store = Storage(tmp_path / "db.sqlite")
    try:
        earlier = tx_ids(b"e", 50)
        save(store, 1, earlier)
        store.screen_ids_with(CommittedIds(complete=False))
        assert store.known_tx_ids(earlier) == set(earlier)
    finally:
        store.close()


def test_a_snapshot_restore_stops_the_screening(tmp_path: Path) -> None:
    """Restored ids never went through save_block: a filter kept across the restore would
    call them new, and a replayed old transaction would run twice."""
    store = Storage(tmp_path / "db.sqlite")
    try:
        store.screen_ids_with(CommittedIds())
        restored = tx_ids(b"r", 40)
        store.begin_restore()
        store.restore_tx_blocks([(5, b"".join(restored))])
        store.index_restored_tx_ids()
        store.finish_restore(5, (b"\x05" * 32, b"h", b"r", b"p", b"c"), b"v", {})
        assert store.known_tx_ids(restored) == set(restored)
    finally:
        store.close()
