"""node/memory.py: the memory breakdown gauges read real figures, and the arena cap holds."""

from __future__ import annotations

import ctypes
import os
import platform
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from node import memory

ROOT = Path(__file__).resolve().parents[2]
glibc_only = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc",
    reason="mallinfo2/malloc_info/mallopt are glibc's (this C library is not)")
linux_only = pytest.mark.skipif(sys.platform != "linux",
                                reason="RssAnon/RssFile are Linux's /proc/self/status fields")


def gauges() -> dict[str, float]:
    return {m.name: m.samples[0].value for m in memory.MemoryCollector().collect()}


def test_sqlite_gauge_follows_a_page_cache_filling_and_freed(tmp_path: Path) -> None:
    before = memory.sqlite_bytes()
    assert before is not None
    db = sqlite3.connect(str(tmp_path / "t.sqlite"))
    db.execute("PRAGMA cache_size=-8192")
    db.execute("CREATE TABLE t (k BLOB PRIMARY KEY, v BLOB)")
    with db:
        db.executemany("INSERT INTO t VALUES (?, ?)",
                       ((i.to_bytes(8, "big"), bytes(200)) for i in range(20_000)))
    filled = memory.sqlite_bytes()
    assert filled is not None and filled - before > 3_000_000  # ~5 MB of pages cached
    db.close()
    closed = memory.sqlite_bytes()
    assert closed is not None and closed - before < 500_000


@linux_only
def test_rss_split_adds_up_to_the_kernels_rss() -> None:
    values = gauges()
    status = Path("/proc/self/status").read_text()
    rss = next(int(line.split()[1]) * 1024 for line in status.splitlines()
               if line.startswith("VmRSS:"))
    anon, file = values["ipchain_memory_rss_anon_bytes"], values["ipchain_memory_rss_file_bytes"]
    assert 1_000_000 < anon < rss and 0 < file < rss
    assert abs((anon + file) - rss) < 0.1 * rss  # sampled a moment apart


@glibc_only
def test_malloc_gauges_see_a_large_allocation() -> None:
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    before = memory.mallinfo()
    block = libc.malloc(50_000)  # under the mmap threshold: from an arena
    try:
        after = memory.mallinfo()
    finally:
        libc.free(block)
    assert before is not None and after is not None
    assert after["in_use"] - before["in_use"] >= 50_000
    values = gauges()
    assert values["ipchain_memory_malloc_arenas"] >= 1
    assert values["ipchain_memory_malloc_free_bytes"] >= 0


ARENAS_AFTER_EIGHT_THREADS = textwrap.dedent("""
    import sys, threading
    from node import memory
    capped = memory.limit_malloc_arenas() if sys.argv[1] == "cap" else None
    go = threading.Barrier(8)
    def work():
        go.wait()
        keep = [bytearray(5000) for _ in range(2000)]
        del keep
    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads: t.start()
    for t in threads: t.join()
    print(capped, memory.malloc_arenas())
""")


def arenas_after_threads(mode: str, **env: str) -> tuple[str, int]:
    clean = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    out = subprocess.run([sys.executable, "-c", ARENAS_AFTER_EIGHT_THREADS, mode],
                         capture_output=True, text=True, timeout=60, cwd=ROOT,
                         env={**clean, "PYTHONPATH": str(ROOT), **env}, check=True)
    capped, arenas = out.stdout.split()
    return capped, int(arenas)


@glibc_only
def test_arena_cap_holds_with_threads_allocating_at_once() -> None:
    assert arenas_after_threads("cap") == ("True", memory.MALLOC_ARENAS)
    capped, uncapped = arenas_after_threads("none")
    assert uncapped > memory.MALLOC_ARENAS  # without the cap each thread got its own


@glibc_only
def test_an_operators_malloc_arena_max_wins() -> None:
    assert arenas_after_threads("cap", MALLOC_ARENA_MAX="3") == ("False", 3)


FREED_BELOW_A_LIVE_CHUNK = textwrap.dedent("""
    import ctypes
    from node import memory
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    chunks = [libc.malloc(2000) for _ in range(20_000)]  # ~40 MB, under the mmap threshold
    for chunk in chunks:
        libc.memset(chunk, 1, 2000)  # resident
    pin = libc.malloc(2000)  # above them: free() alone cannot shrink the heap
    for chunk in chunks:
        libc.free(chunk)
    before = memory.resident_split()["anon"]
    trimmed = memory.trim()
    after = memory.resident_split()["anon"]
    print(trimmed, before - after)
""")


@glibc_only
@linux_only
def test_trim_gives_freed_heap_pages_back() -> None:
    out = subprocess.run([sys.executable, "-c", FREED_BELOW_A_LIVE_CHUNK], capture_output=True,
                         text=True, timeout=60, cwd=ROOT, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    trimmed, returned = out.stdout.split()
    assert trimmed == "True"
    assert int(returned) > 30_000_000  # most of the 40 MB freed below the pinned chunk
