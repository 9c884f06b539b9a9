"""Nonce handling: each sender's nonces are unique, consecutive and survive restarts."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from scripts.cli import choose_nonce
from ipchain.sdk.client import NonceStore, time_nonce

SENDER = "ab" * 32


def test_reserve_hands_out_consecutive_ranges(tmp_path: Path) -> None:
    store = NonceStore(tmp_path)
    assert [store.reserve(SENDER), store.reserve(SENDER, 10), store.reserve(SENDER)] == [0, 1, 11]
    assert store.peek(SENDER) == 12
    assert store.reserve("cd" * 32) == 0  # counters are per sender


def test_counter_survives_a_new_store(tmp_path: Path) -> None:
    NonceStore(tmp_path).reserve(SENDER, 5)
    assert NonceStore(tmp_path).reserve(SENDER) == 5


@pytest.mark.parametrize("used, before, after", [(7, 0, 8), (2, 5, 5), (5, 5, 6)])
def test_note_used_moves_the_counter_only_up(tmp_path: Path, used: int, before: int,
                                             after: int) -> None:
    store = NonceStore(tmp_path)
    if before:
        store.reserve(SENDER, before)
    store.note_used(SENDER, used)
    assert store.peek(SENDER) == after


def test_concurrent_reservations_never_collide(tmp_path: Path) -> None:
    got: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        store = NonceStore(tmp_path)  # separate open files, so flock really arbitrates
        for _ in range(25):
            first = store.reserve(SENDER, 2)
            with lock:
                got.extend([first, first + 1])

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(got) == list(range(200))


def test_reserve_refuses_empty_ranges(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        NonceStore(tmp_path).reserve(SENDER, 0)


def test_choose_nonce_prefers_explicit_then_counter_then_clock(tmp_path: Path) -> None:
    store = NonceStore(tmp_path)
    assert choose_nonce(41, SENDER, store) == 41
    assert choose_nonce(None, SENDER, store) == 42
    before = time_nonce()
    assert choose_nonce(None, SENDER, None) >= before
