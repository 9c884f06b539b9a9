"""Where a node's resident memory is, and two allocator settings that keep it flat.

Under load a node's RSS rises from about 52 MB to about 105 MB in its first minutes and
then stays there. Most of the rise is not Python objects: SQLite's page caches fill up
to their bounds (35.5 MB: the store's 32 MiB cache_size, the snapshot history's 2 MB
default), while the Python heap grows by about 13 MB of work in flight. Since
`process_resident_memory_bytes` alone cannot tell a cache filling up to its bound from
a leak, /metrics breaks it down (`MemoryCollector`):

- ipchain_memory_rss_anon_bytes / _rss_file_bytes: RssAnon and RssFile + RssShmem of
  /proc/self/status (kernel counters; smaps_rollup has the same split but walks the page
  tables, four times the CPU for a small process, more for a big one). Anonymous
  memory is the heaps (malloc, pymalloc, SQLite); file-backed is code and mapped files.
- ipchain_memory_sqlite_bytes: sqlite3_memory_used(), all connections of the process.
- ipchain_memory_malloc_in_use_bytes / _malloc_free_bytes: glibc's mallinfo2() over all
  arenas (SQLite allocates through malloc, so its bytes are part of in_use). Free bytes
  are held by malloc but not in use: fragmentation.
- ipchain_memory_malloc_arenas: glibc's arena count (malloc_info()).

Each figure is read at scrape time and is absent where the platform lacks it (not
glibc, no /proc), never a failed scrape.

`limit_malloc_arenas` caps glibc's arenas at two at start-up. glibc gives each new
thread that allocates an arena of its own, up to 8 per core, and memory freed into an
arena stays there: on this 2-core machine a node made 5 (the cap saved 0.4-0.6 MB
here), on a 16-core host it could make 128. An operator's own MALLOC_ARENA_MAX wins.

`trim_forever` hands glibc's free pages back every TRIM_INTERVAL_S (malloc_trim(0)).
Once SQLite's caches are at their bound the live heap stops growing, but the bytes
malloc holds free kept creeping up (fragmentation: 5 MB at start, 9-11 MB after four
minutes under load), and RSS with them. Measured, two 4-node clusters at once, 550
tx/s each for 240 s: the second-half RSS slope 1.7 MB/min without, 0.85 with; each trim
costs 0.3-0.7 ms of CPU on the event loop.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import os
import re
from typing import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

MALLOC_ARENAS = 2
M_ARENA_MAX = -8
"""mallopt parameter number of M_ARENA_MAX (glibc's malloc.h)."""
TRIM_INTERVAL_S = 10.0


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """glibc, or None (musl, macOS: no mallinfo2/mallopt arenas)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
        libc.open_memstream.restype = ctypes.c_void_p
        libc.open_memstream.argtypes = [ctypes.POINTER(ctypes.c_char_p),
                                        ctypes.POINTER(ctypes.c_size_t)]
        libc.fclose.argtypes = [ctypes.c_void_p]
        libc.free.argtypes = [ctypes.c_void_p]
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):
        return None


@functools.cache
def _sqlite() -> ctypes.CDLL | None:
    """The SQLite library the sqlite3 module uses (dlsym on _sqlite3's own handle also
    searches the libsqlite3 it links, and finds it inside when linked statically)."""
    try:
        import _sqlite3
        lib = ctypes.CDLL(_sqlite3.__file__)
        lib.sqlite3_memory_used.restype = ctypes.c_int64
        return lib
    except (OSError, AttributeError, ImportError):
        return None


def limit_malloc_arenas(arenas: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas (call before any thread starts); False if not glibc
    or the environment already set MALLOC_ARENA_MAX (then glibc applied that)."""
    libc = _libc()
    if libc is None or "MALLOC_ARENA_MAX" in os.environ:
        return False
    return bool(libc.mallopt(M_ARENA_MAX, arenas))


def trim() -> bool:
    """Give the pages malloc holds free back to the system; False if not glibc."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


async def trim_forever(interval_s: float = TRIM_INTERVAL_S) -> None:
    """`trim` every `interval_s` until cancelled (a no-op task where it is not glibc)."""
    while True:
        await asyncio.sleep(interval_s)
        if not trim():
            return


def resident_split(pid: int | str = "self") -> dict[str, int]:
    """{"anon": RssAnon, "file": RssFile + RssShmem} of /proc/PID/status in bytes; {}
    where absent (not Linux, or older than 4.5)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return {}
    kib = {}
    for line in lines:
        name, _, rest = line.partition(":")
        if name in ("RssAnon", "RssFile", "RssShmem"):
            kib[name] = int(rest.split()[0])
    if len(kib) < 3:
        return {}
    return {"anon": kib["RssAnon"] * 1024, "file": (kib["RssFile"] + kib["RssShmem"]) * 1024}


def sqlite_bytes() -> int | None:
    lib = _sqlite()
    return None if lib is None else int(lib.sqlite3_memory_used())


def mallinfo() -> dict[str, int] | None:
    """glibc's mallinfo2() over all arenas: in_use (incl. mmapped chunks), free, mmapped."""
    libc = _libc()
    if libc is None:
        return None
    info = libc.mallinfo2()
    return {"in_use": info.uordblks + info.hblkhd, "free": info.fordblks,
            "mmapped": info.hblkhd, "arena": info.arena}


_HEAP = re.compile(rb"<heap nr=")


def malloc_arenas() -> int | None:
    """How many arenas glibc has made (malloc_info's XML has one <heap> per arena)."""
    libc = _libc()
    if libc is None:
        return None
    buf, size = ctypes.c_char_p(), ctypes.c_size_t()
    stream = libc.open_memstream(ctypes.byref(buf), ctypes.byref(size))
    if not stream:
        return None
    try:
        libc.malloc_info(0, stream)
    finally:
        libc.fclose(stream)
    try:
        return len(_HEAP.findall(ctypes.string_at(buf, size.value)))
    finally:
        libc.free(buf)


class MemoryCollector:
    """The breakdown above, read at each scrape (about 65 µs of CPU, most of it
    reading /proc/self/status)."""

    def collect(self) -> Iterator[Metric]:
        resident = resident_split()
        malloc = mallinfo()
        for name, help_text, value in (
                ("ipchain_memory_rss_anon_bytes", "Anonymous resident memory (the heaps: "
                 "malloc, Python, SQLite): RssAnon of /proc/self/status.",
                 resident.get("anon")),
                ("ipchain_memory_rss_file_bytes", "File-backed resident memory (code, "
                 "mapped files): RssFile + RssShmem of /proc/self/status.",
                 resident.get("file")),
                ("ipchain_memory_sqlite_bytes", "Memory SQLite holds (page caches of every "
                 "connection, schemas, statements): sqlite3_memory_used().", sqlite_bytes()),
                ("ipchain_memory_malloc_in_use_bytes", "Bytes in use through glibc malloc, "
                 "all arenas and mmapped chunks (mallinfo2).",
                 None if malloc is None else malloc["in_use"]),
                ("ipchain_memory_malloc_free_bytes", "Bytes glibc malloc holds free in its "
                 "arenas, not returned to the system (mallinfo2 fordblks).",
                 None if malloc is None else malloc["free"]),
                ("ipchain_memory_malloc_arenas", "glibc malloc arenas (capped at start-up, "
                 "node/memory.py).", malloc_arenas())):
            if value is not None:
                yield GaugeMetricFamily(name, help_text, value=value)
