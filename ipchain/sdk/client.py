"""A small async client for a node's HTTP API, plus keys and nonces for signing.

Callers open ONE `aiohttp.ClientSession` per process (`open_session`) and pass it to
every call, so connections are pooled across nodes. Every non-2xx answer becomes an
`ApiError` carrying the node's `{"error": {"code", "message"}}`; callers branch on
`.code` (e.g. "NonceUsed") rather than on message text.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable, Iterator

import aiohttp
import msgpack
import nacl.signing

from contracts.tx import Transaction, sign_tx

MSGPACK = "application/msgpack"
FINAL_STATUSES = frozenset({"committed", "rejected"})


class ApiError(Exception):
    """A node answered with an error status (or not at all: status 0)."""

    def __init__(self, status: int, code: str, message: str, body: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.body = body


def open_session(total_timeout_s: float = 60.0, limit: int = 200) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=limit)
    return aiohttp.ClientSession(connector=connector,
                                 timeout=aiohttp.ClientTimeout(total=total_timeout_s))


async def _decode(response: aiohttp.ClientResponse) -> Any:
    raw = await response.read()
    if response.content_type == MSGPACK:
        return msgpack.unpackb(raw, raw=False)
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode(errors="replace")


async def request(session: aiohttp.ClientSession, method: str, url: str, *,
                  ok: Iterable[int] = (), **kwargs: Any) -> tuple[int, Any]:
    """Send one request; return (status, body). Raise ApiError unless 2xx or in `ok`."""
    try:
        async with session.request(method, url, **kwargs) as response:
            body = await _decode(response)
            status = response.status
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        raise ApiError(0, "Unreachable", f"{method} {url}: {exc!r}") from exc
    if 200 <= status < 300 or status in ok:
        return status, body
    error = body.get("error", {}) if isinstance(body, dict) else {}
    raise ApiError(status, str(error.get("code", f"HTTP{status}")),
                   str(error.get("message", body)), body)


async def submit(session: aiohttp.ClientSession, url: str, tx: Transaction, *,
                 wait: bool = False, timeout_ms: int | None = None,
                 as_msgpack: bool = False) -> dict[str, Any]:
    """POST /v1/tx. Without `wait`: {"id", "status": "pending"}; with it, the receipt."""
    params: dict[str, str] = {}
    if wait:
        params["wait"] = "commit"
        if timeout_ms is not None:
            params["timeout_ms"] = str(timeout_ms)
    if as_msgpack:
        kwargs: dict[str, Any] = {"data": tx.to_bytes(), "headers": {"Content-Type": MSGPACK}}
    else:
        kwargs = {"json": tx.to_json()}
    _, body = await request(session, "POST", f"{url}/v1/tx", params=params, **kwargs)
    return body


def pack_batch(txs: Iterable[Transaction]) -> bytes:
    """The msgpack body of POST /v1/txs: an array of encoded transactions."""
    return msgpack.packb([tx.to_bytes() for tx in txs], use_bin_type=True)


async def submit_batch(session: aiohttp.ClientSession, url: str,
                       txs: list[Transaction] | bytes) -> dict[str, Any]:
    """POST /v1/txs (msgpack) -> {"accepted": [ids], "rejected": [{index, id, error}]}.

    Pass pre-packed bytes (`pack_batch`) to keep encoding off a timed path."""
    data = txs if isinstance(txs, bytes) else pack_batch(txs)
    _, body = await request(session, "POST", f"{url}/v1/txs", data=data,
                            headers={"Content-Type": MSGPACK})
    return body


async def get_status(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    return (await request(session, "GET", f"{url}/v1/status"))[1]


async def get_block(session: aiohttp.ClientSession, url: str,
                    height: int | str = "latest", *,
                    wait_ms: int | None = None) -> dict[str, Any] | None:
    """The block header and tx ids at `height` ("latest" allowed); None if not there yet.
    With `wait_ms` (a numeric height) the node answers as soon as the block is stored, or
    None after `wait_ms`: a long poll, for followers."""
    query = f"?wait_ms={wait_ms}" if wait_ms is not None else ""
    status, body = await request(session, "GET", f"{url}/v1/blocks/{height}{query}", ok=(404,))
    return None if status == 404 else body


async def wait_for_blocks(session: aiohttp.ClientSession, urls: list[str], height: int, *,
                          deadline_s: float = 10.0,
                          poll_s: float = 0.1) -> list[dict[str, Any] | None]:
    """Each node's block at `height`, once every node has it; at the deadline, None for
    the nodes that still do not (an unreachable node counts as not having it)."""
    deadline = time.monotonic() + deadline_s
    while True:
        blocks = []
        for url in urls:
            try:
                blocks.append(await get_block(session, url, height))
            except ApiError:
                blocks.append(None)
        if all(blocks) or time.monotonic() >= deadline:
            return blocks
        await asyncio.sleep(poll_s)


async def until(predicate: Callable[[], Awaitable[Any]], what: str, deadline_s: float, *,
                poll_s: float = 0.05) -> Any:
    """The predicate's first truthy answer; a node answering with an API error counts as
    not yet. TimeoutError naming `what` once `deadline_s` has passed."""
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            found = await predicate()
        except ApiError:
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {deadline_s:.0f}s waiting for {what}")
        await asyncio.sleep(poll_s)


async def get_tx(session: aiohttp.ClientSession, url: str, tx_id: str) -> dict[str, Any]:
    status, body = await request(session, "GET", f"{url}/v1/tx/{tx_id}", ok=(404,))
    return {"id": tx_id, "status": "unknown", "receipt": None} if status == 404 else body


async def get_state(session: aiohttp.ClientSession, url: str, *parts: str) -> Any:
    return (await request(session, "GET", f"{url}/v1/state/" + "/".join(parts)))[1]


async def wait_for_tx(session: aiohttp.ClientSession, url: str, tx_id: str, *,
                      deadline_s: float = 30.0, poll_s: float = 0.05) -> dict[str, Any]:
    """Poll GET /v1/tx/{id} until committed or rejected; TimeoutError at the deadline."""
    deadline = time.monotonic() + deadline_s
    while True:
        answer = await get_tx(session, url, tx_id)
        if answer.get("status") in FINAL_STATUSES:
            return answer
        if time.monotonic() >= deadline:
            raise TimeoutError(f"tx {tx_id} still {answer.get('status')} at {url}")
        await asyncio.sleep(poll_s)


# -- keys and nonces ----------------------------------------------------------------

def load_key(path: str | Path) -> nacl.signing.SigningKey:
    """A key file holds the 32-byte Ed25519 seed as 64 hex characters."""
    text = Path(path).read_text().strip()
    try:
        seed = bytes.fromhex(text)
    except ValueError as exc:
        raise ValueError(f"{path}: not a hex seed") from exc
    if len(seed) != 32:
        raise ValueError(f"{path}: a key file holds 64 hex characters (32-byte seed)")
    return nacl.signing.SigningKey(seed)


def write_key(path: Path, seed_hex: str) -> None:
    """Write a seed readable by its owner only (it is a private key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(seed_hex + "\n")


def time_nonce() -> int:
    """Fallback nonce when no counter file can be kept: ms since the epoch."""
    return time.time_ns() // 1_000_000


class NonceStore:
    """Per-sender nonce counters in `<dir>/<public key hex>.next`, locked with flock.

    The chain accepts each nonce once and tolerates reordering only within a window of
    1024 below the highest used, so consecutive small nonces are safest: any two
    `ipchain submit` runs, the `up` probe and the demo draw from the same counter and
    never collide, and in-flight reordering stays well inside the window."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    @contextmanager
    def _locked(self, sender_hex: str) -> Iterator[Path]:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{sender_hex}.next"
        with open(self.directory / f"{sender_hex}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield path
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def peek(self, sender_hex: str) -> int:
        path = self.directory / f"{sender_hex}.next"
        return int(path.read_text()) if path.exists() else 0

    def reserve(self, sender_hex: str, count: int = 1) -> int:
        """Reserve `count` consecutive nonces; return the first."""
        if count < 1:
            raise ValueError("count must be positive")
        with self._locked(sender_hex) as path:
            first = int(path.read_text()) if path.exists() else 0
            _atomic_write(path, str(first + count))
        return first

    def note_used(self, sender_hex: str, nonce: int) -> None:
        """Record an explicitly chosen nonce so later reservations start above it."""
        with self._locked(sender_hex) as path:
            current = int(path.read_text()) if path.exists() else 0
            if nonce + 1 > current:
                _atomic_write(path, str(nonce + 1))


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def sign(key: nacl.signing.SigningKey, chain_id: str, nonce: int, op: str,
         args: dict[str, Any]) -> Transaction:
    return sign_tx(key, chain_id, nonce, op, args)


def sender_hex(key: nacl.signing.SigningKey) -> str:
    return bytes(key.verify_key).hex()
