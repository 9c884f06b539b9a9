"""The simulator's store: `node.storage.Storage`'s semantics in dicts, no SQLite.

What the engine needs (`node.engine.Storage`) plus the few reads the simulator and
its tests make. The values are the same encoded bytes the SQLite store keeps, so a
codec bug shows up in simulation too, and a block is saved all-or-nothing (nothing in
`save_block` can fail half-way: every value is built before anything is written).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable


class MemoryStorage:
    def __init__(self) -> None:
        self.blocks_by_height: dict[int, tuple[bytes, bytes, bytes, bytes, bytes]] = {}
        self.txs: dict[bytes, tuple[int, int, bytes]] = {}
        self.state: dict[str, bytes] = {}
        self.wal_records: list[tuple[int, int, str, bytes]] = []
        self.evidence_records: list[tuple[str, int, bytes, bytes]] = []
        self.meta: dict[str, Any] = {}
        self.certs: dict[int, tuple[bytes, bytes]] = {}

    # -- blocks ------------------------------------------------------------------------
    def save_block(self, height: int, block_hash: bytes, header: bytes, result_root: bytes,
                   preprepare: bytes, certificate: bytes,
                   receipts: Iterable[tuple[bytes, int, bytes]],
                   state_changes: dict[str, bytes | None]) -> None:
        if height in self.blocks_by_height:
            raise ValueError(f"block {height} is already stored")  # SQLite: UNIQUE failed
        rows = list(receipts)
        self.blocks_by_height[height] = (block_hash, header, result_root, preprepare, certificate)
        for tx_id, idx, receipt in rows:
            self.txs.setdefault(tx_id, (height, idx, receipt))  # INSERT OR IGNORE
        for key, value in state_changes.items():
            if value is None:
                self.state.pop(key, None)
            else:
                self.state[key] = value

    def block(self, height: int) -> tuple[bytes, bytes, bytes, bytes, bytes] | None:
        return self.blocks_by_height.get(height)

    def blocks(self, first: int, last: int) -> list[tuple[int, bytes, bytes]]:
        return [(h, row[3], row[4]) for h, row in sorted(self.blocks_by_height.items())
                if first <= h <= last]

    def last_height(self) -> int:
        return max(self.blocks_by_height, default=0)

    def tx(self, tx_id: bytes) -> tuple[int, int, bytes] | None:
        return self.txs.get(tx_id)

    def receipts_at(self, height: int) -> list[bytes]:
        return [r for h, _, r in sorted((h, i, r) for h, i, r in self.txs.values())
                if h == height]

    def known_tx_ids(self, ids: list[bytes]) -> set[bytes]:
        return {i for i in ids if i in self.txs}

    def tx_count(self) -> int:
        return len(self.txs)

    def state_items(self) -> dict[str, bytes]:
        return dict(self.state)

    def init_state(self, items: dict[str, bytes]) -> None:
        if not self.state:
            self.state = dict(items)

    # -- consensus WAL and evidence --------------------------------------------------------
    def append_wal(self, records: list[tuple[int, int, str, bytes]]) -> None:
        self.wal_records.extend(records)

    def wal(self) -> list[bytes]:
        return [r[3] for r in self.wal_records]

    def prune_wal(self, settled: Callable[[int, int, str], bool]) -> None:
        self.wal_records = [r for r in self.wal_records if not settled(r[0], r[1], r[2])]

    def add_evidence(self, kind: str, sender: int, first: bytes, second: bytes) -> None:
        self.evidence_records.append((kind, sender, first, second))

    def evidence(self, limit: int = 100) -> list[tuple[str, int, bytes, bytes]]:
        return self.evidence_records[:limit]

    # -- execution certificates ------------------------------------------------------------
    def save_exec_cert(self, height: int, block_hash: bytes, votes: bytes) -> None:
        self.certs.setdefault(height, (block_hash, votes))  # INSERT OR IGNORE

    def exec_cert(self, height: int) -> tuple[bytes, bytes] | None:
        return self.certs.get(height)

    def exec_certs(self, first: int, last: int) -> list[bytes]:
        return [votes for h, (_, votes) in sorted(self.certs.items()) if first <= h <= last]

    def last_certified(self) -> int:
        return max(self.certs, default=0)

    def replace_state(self, items: dict[str, bytes]) -> None:
        self.state = dict(items)

    def quick_check(self) -> str:
        return "ok"  # dicts cannot be torn; the state-root check still runs

    def get_meta(self, key: str) -> Any:
        return self.meta.get(key)

    def set_meta(self, key: str, value: Any) -> None:
        self.meta[key] = value

    def close(self) -> None:
        pass
