"""Catch-up work kept from holding the node's event loop (node/offload.py,
node/serving.py): signatures checked ahead in slices leave the replica's verdicts as
they were, invalid ones are never remembered, memory is bounded; the WAL checkpoint runs
in its thread (and a failure there is reported); block serving is bounded per answer
and per peer."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import threading
import time
from pathlib import Path

import msgpack
import nacl.signing
import pytest

from consensus import messages as wire
from consensus.crypto import Ed25519Keyring
from node import offload, serving
from node.offload import PreverifiedKeyring, WalCheckpointer
from node.serving import BlockServer
from node.storage import Storage

CHAIN = "chain-offload"


class CountingKeyring(Ed25519Keyring):
    """Ed25519 with a count of real signature checks."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.checks = 0

    def verify(self, signer: int, data: bytes, sig: bytes) -> bool:
        self.checks += 1
        return super().verify(signer, data, sig)


def keyrings(n: int = 4) -> tuple[list[Ed25519Keyring], CountingKeyring]:
    keys = [nacl.signing.SigningKey(bytes([i + 1]) * 32) for i in range(n)]
    public = [bytes(k.verify_key) for k in keys]
    signers = [Ed25519Keyring(i, keys[i], public) for i in range(n)]
    return signers, CountingKeyring(0, keys[0], public)


def signed(signer: Ed25519Keyring, seq: int) -> wire.Signed:
    body = wire.Commit(0, seq, bytes([seq % 256]) * 32)
    return wire.Signed(body, signer.index, signer.sign(wire.signing_bytes(body, CHAIN)))


def is_authentic(keyring, msg: wire.Signed) -> bool:
    """What the replica asks (consensus/replica.py `is_authentic`)."""
    return keyring.verify(msg.sender, msg.signing_bytes(CHAIN), msg.sig)


async def test_checked_ahead_valid_messages_are_lookups_with_the_same_verdict() -> None:
    signers, inner = keyrings()
    keyring = PreverifiedKeyring(inner, CHAIN)
    good = [signed(signers[i % 4], i) for i in range(1, 9)]
    forged = wire.Signed(good[0].body, 2, good[0].sig)  # node 1's signature, claimed by 2
    tampered = wire.Signed(wire.Commit(0, 99, good[1].body.digest), 1, good[1].sig)
    await keyring.check_ahead([*good, forged, tampered])
    checked = inner.checks
    assert checked == 10
    assert all(is_authentic(keyring, m) for m in good)
    assert inner.checks == checked and keyring.hits == len(good)  # lookups, no checks
    assert not is_authentic(keyring, forged) and not is_authentic(keyring, tampered)
    assert inner.checks == checked + 2  # never remembered: checked inline, refused again
    unseen = signed(signers[3], 50)
    assert is_authentic(keyring, unseen) and inner.checks == checked + 3


async def test_a_message_checked_twice_ahead_costs_one_signature_check() -> None:
    signers, inner = keyrings()
    keyring = PreverifiedKeyring(inner, CHAIN)
    votes = [signed(signers[1], i) for i in range(1, 6)]
    await keyring.check_ahead(votes)
    await keyring.check_ahead(votes)  # a fetch timeout later, the same range again
    assert inner.checks == len(votes)


async def test_catch_up_work_gets_one_turn_per_loop_iteration() -> None:
    """However many catch-up tasks want the loop, a handler that is ready waits for at
    most one turn of theirs: here three check-ahead floods and a busy replica-like task
    run while an API-like task counts the turns taken between its own steps."""
    signers, inner = keyrings()
    turns = offload.Turns(turn_ms=0.0)  # each turn one unit: many turns, a strict count
    keyring = PreverifiedKeyring(inner, CHAIN, turns)
    gaps: list[int] = []
    running = True

    async def api() -> None:
        while running:
            seen = turns.taken
            await asyncio.sleep(0)
            gaps.append(turns.taken - seen)

    async def stepping() -> None:
        for _ in range(40):
            async with turns.turn():
                pass

    probe = asyncio.create_task(api())
    await asyncio.gather(stepping(), *(
        keyring.check_ahead([signed(signers[k], i) for i in range(1, 21)])
        for k in (1, 2, 3)))
    running = False
    await probe
    assert turns.taken == 40 + 60 and inner.checks == 60
    assert max(gaps) == 1  # never two turns in one iteration of the loop
    assert sum(gaps) >= 90  # and the turns did go on while the API ran


async def test_a_turn_lasts_until_its_time_is_spent() -> None:
    signers, inner = keyrings()
    keyring = PreverifiedKeyring(inner, CHAIN, offload.Turns(turn_ms=60_000.0))
    await keyring.check_ahead([signed(signers[1], i) for i in range(1, 33)])
    assert keyring.turns.taken == 1 and inner.checks == 32


async def test_remembered_signatures_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(offload, "MAX_REMEMBERED", 3)
    signers, inner = keyrings()
    keyring = PreverifiedKeyring(inner, CHAIN)
    msgs = [signed(signers[1], i) for i in range(1, 6)]
    await keyring.check_ahead(msgs)
    assert len(keyring._good) == 3
    before = inner.checks
    assert is_authentic(keyring, msgs[0])  # forgotten: checked again, still valid
    assert inner.checks == before + 1
    assert is_authentic(keyring, msgs[-1]) and inner.checks == before + 1


def test_the_checkpointer_thread_copies_the_wal_into_the_database(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    storage = Storage(path)
    failures: list[str] = []
    checkpointer = WalCheckpointer(storage.db, path, failures.append, interval_s=0.05)
    try:
        assert storage.db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        for i in range(300):
            storage.set_meta(f"k{i}", b"x" * 2000)
        deadline = time.monotonic() + 20
        while checkpointer.checkpoints < 2:
            assert time.monotonic() < deadline, "no checkpoint ran in the thread"
            time.sleep(0.02)
        reader = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        # everything written is in the database file proper once checkpointed:
        busy, log_frames, done = storage.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        assert busy == 0 and done == log_frames
        assert reader.execute("SELECT COUNT(*) FROM meta").fetchone()[0] == 300
        reader.close()
    finally:
        checkpointer.stop()
        storage.close()
    assert failures == []


def test_a_checkpoint_that_cannot_run_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    storage = Storage(path)
    failures: list[str] = []
    missing = tmp_path / "no-such-dir" / "db.sqlite"  # its connection cannot open
    checkpointer = WalCheckpointer(storage.db, missing, failures.append, interval_s=0.05)
    try:
        deadline = time.monotonic() + 10
        while not failures:
            assert time.monotonic() < deadline, "the failure was not reported"
            time.sleep(0.02)
        assert "wal checkpoint" in failures[0]
    finally:
        checkpointer.stop()
        storage.close()


def store_blocks(path: Path, count: int, size: int) -> None:
    storage = Storage(path)
    for height in range(1, count + 1):
        storage.save_block(height, bytes(32), b"h", bytes(32), bytes([height % 256]) * size,
                           b"c", [], {})
    storage.close()


async def test_an_answer_stops_past_the_byte_cap(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serving, "MAX_SERVE_BYTES", 10_000)
    path = tmp_path / "db.sqlite"
    store_blocks(path, 40, 3_000)
    server = BlockServer(path)
    try:
        body = await server.answer("validator-1", 1, 40)
        blocks = msgpack.unpackb(body)["blocks"]
        assert len(blocks) == 4  # the block that crosses 10,000 bytes is the last
        assert server.served_blocks == 4
    finally:
        await server.close()


async def test_one_range_per_peer_at_a_time(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "db.sqlite"
    store_blocks(path, 5, 100)
    server = BlockServer(path)
    release = threading.Event()
    original = BlockServer._pack

    def slow_pack(self, first: int, last: int):
        release.wait(10)
        return original(self, first, last)

    monkeypatch.setattr(BlockServer, "_pack", slow_pack)
    try:
        first = asyncio.create_task(server.answer("validator-1", 1, 5))
        await asyncio.sleep(0.05)
        assert await server.answer("validator-1", 1, 5) is None  # busy: ask another peer
        assert server.busy_refusals == 1
        other = asyncio.create_task(server.answer("validator-2", 1, 5))  # queued, not refused
        release.set()
        assert (await first) is not None and (await other) is not None
        assert await server.answer("validator-1", 1, 5) is not None  # free again
    finally:
        release.set()
        await server.close()


def test_the_startup_heap_is_frozen_out_of_full_collections() -> None:
    """A full collection walked every object the node made at startup (27-37 ms of CPU
    per collection on a loaded machine, mid-callback); after the freeze it walks none."""
    try:
        frozen = offload.freeze_startup_heap()
        assert frozen == gc.get_freeze_count() > 10_000  # pytest, nacl, aiohttp, node...
        assert len(gc.get_objects(generation=2)) < frozen // 100
    finally:
        gc.unfreeze()
