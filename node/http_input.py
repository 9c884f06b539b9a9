"""Reading untrusted HTTP input: the one place where paths, queries and bodies are parsed.

Every bad input ends here as an `InputError` (a 4xx with the JSON error body), never a
500 with a traceback: integers are ASCII digits in a declared range (`str.isdigit()`
accepts "²" and "١", and `int()` then either fails or reads another number), text is
decoded under a charset that must exist, JSON nesting that exhausts the recursion limit
is refused, and msgpack is unpacked with per-type size limits.

A batch is decoded item by item in slices that give the event loop back every few
milliseconds (`Yielder`), and its item count is checked from the array header before
a single item is built — a 2 MB body of a million junk items costs microseconds.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import re
import time
from typing import Any, Callable, Iterator

import msgpack
from aiohttp import web

from contracts import errors
from contracts.tx import MAX_TX_BYTES, Transaction, from_bytes, from_canonical_bytes, from_json

MAX_INT = 2**63 - 1
"""Heights, timeouts and rule ids all fit a signed 64-bit integer; SQLite refuses more."""
_ASCII_DIGITS = re.compile(r"[0-9]{1,19}")
BODY_READ_TIMEOUT_S = 30.0
"""A body that has not fully arrived after this long is refused (a slow-body attack)."""
YIELD_EVERY_MS = 5.0
MAX_JSON_BATCH_VALUES = 250_000
"""Upper bound on JSON values in one client batch, counted before parsing (1,000 txs of
~100 fields each fit); 8 MB of `[{},{},...]` would otherwise build 2.6M dicts."""


class InputError(Exception):
    """A request the node refuses: HTTP status, error code, message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class NonCanonical(errors.ContractError):
    """The transaction bytes are not its canonical encoding; its id would not be their hash."""


class TooManyItems(InputError):
    def __init__(self, count: int, limit: int) -> None:
        super().__init__(413, "TooManyItems",
                         f"batch holds {count} items; limit {limit} — split it")


def error_body(status: int, code: str, message: str,
               headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status,
                             headers=headers)


# -- integers ---------------------------------------------------------------------------------
def parse_int(text: str, name: str, *, low: int = 0, high: int = MAX_INT) -> int:
    """An integer written in ASCII digits, within [low, high]; else a 400 naming `name`."""
    if not _ASCII_DIGITS.fullmatch(text):
        raise InputError(400, "BadArguments", f"{name} must be an integer written in ASCII "
                                              f"digits, {low}..{high}")
    value = int(text)
    if not low <= value <= high:
        raise InputError(400, "BadArguments", f"{name} must be in {low}..{high}")
    return value


def query_int(request: web.Request, name: str, default: int, *, low: int = 0,
              high: int = MAX_INT) -> int:
    raw = request.query.get(name)
    return default if raw is None else parse_int(raw, name, low=low, high=high)


# -- bodies -----------------------------------------------------------------------------------
_BODY = web.RequestKey("ipchain_body", bytes)
READ_CHUNK_BYTES = 256 * 1024


async def read_body(request: web.Request,
                    peek: Callable[[bytes], None] | None = None) -> bytes:
    """The whole body, within BODY_READ_TIMEOUT_S, read once and kept on the request.

    Its size was bounded from Content-Length before (a body without one is refused);
    `peek` sees the first bytes as soon as they arrive and may refuse the request
    before the rest is read (a msgpack array's item count, say)."""
    cached = request.get(_BODY)
    if cached is not None:
        return cached
    chunks: list[bytes] = []
    head = b""
    try:
        async with asyncio.timeout(BODY_READ_TIMEOUT_S):
            async for chunk in request.content.iter_chunked(READ_CHUNK_BYTES):
                chunks.append(chunk)
                if peek is not None and len(head) < 16:
                    head += chunk[:16]
                    if len(head) >= 16:
                        peek(head)
    except TimeoutError as exc:
        raise InputError(408, "BodyTimeout",
                         f"body not received within {BODY_READ_TIMEOUT_S:.0f} s") from exc
    if peek is not None and len(head) < 16:
        peek(head)
    body = b"".join(chunks)
    request[_BODY] = body
    return body


def peek_array_count(max_items: int) -> Callable[[bytes], None]:
    """A `read_body` peek refusing a msgpack array of more than `max_items` items."""
    def peek(head: bytes) -> None:
        try:
            count, _ = _array_header(head)
        except InputError:
            return  # not an array: the full decode says so
        if count > max_items:
            raise TooManyItems(count, max_items)
    return peek


async def read_text(request: web.Request) -> str:
    body = await read_body(request)
    charset = request.charset or "utf-8"
    try:
        codecs.lookup(charset)
    except LookupError as exc:
        raise InputError(415, "BadCharset", f"unknown charset {charset!r}") from exc
    try:
        return body.decode(charset)
    except (UnicodeError, ValueError) as exc:
        raise InputError(400, "MalformedText", f"body is not valid {charset}: {exc}") from exc


def _reject_float(text: str) -> Any:
    raise InputError(400, "BadTransaction", "floats are not allowed; use integers")


def load_json(text: str, max_values: int | None = None, floats: bool = False) -> Any:
    """JSON, without floats unless asked (transactions never hold one; fault specs do);
    `max_values` bounds what parsing may build (see MAX_JSON_BATCH_VALUES)."""
    if max_values is not None:
        approx = text.count(",") + text.count(":") + 1
        if approx > max_values:
            raise InputError(413, "TooManyItems", f"body holds over {max_values} JSON values")
    try:
        return json.loads(text, parse_float=None if floats else _reject_float)
    except RecursionError as exc:
        raise InputError(400, "MalformedJSON", "JSON nested too deeply") from exc
    except ValueError as exc:
        raise InputError(400, "MalformedJSON", f"body is not valid JSON: {exc}") from exc


async def read_json(request: web.Request, max_values: int | None = None,
                    floats: bool = False) -> Any:
    return load_json(await read_text(request), max_values, floats)


class Yielder:
    """Gives the loop back once YIELD_EVERY_MS of work has passed since the last time."""

    def __init__(self, every_ms: float = YIELD_EVERY_MS) -> None:
        self.every_s = every_ms / 1000
        self.since = time.perf_counter()

    async def maybe_yield(self) -> None:
        if time.perf_counter() - self.since >= self.every_s:
            await asyncio.sleep(0)
            self.since = time.perf_counter()


def _array_header(body: bytes) -> tuple[int, int]:
    """(item count, header length) of a msgpack array, read from its first bytes alone."""
    first = body[:1]
    if first and 0x90 <= first[0] <= 0x9F:
        return first[0] & 0x0F, 1
    if first == b"\xdc" and len(body) >= 3:
        return int.from_bytes(body[1:3], "big"), 3
    if first == b"\xdd" and len(body) >= 5:
        return int.from_bytes(body[1:5], "big"), 5
    raise InputError(400, "MalformedMsgpack", "body is not a msgpack array")


def msgpack_items(body: bytes, max_items: int, max_item_bytes: int
                  ) -> tuple[int, Iterator[tuple[Any, bytes]]]:
    """(count, iterator of (item, its raw bytes)) of a msgpack array, count checked first.

    Per-type limits keep any one item from building more than `max_item_bytes` of
    strings or containers; ext types and floats are left to the per-item check so they
    become that item's refusal, not the batch's."""
    count, offset = _array_header(body)
    if count > max_items:
        raise TooManyItems(count, max_items)
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=len(body) + 1,
                                max_bin_len=max_item_bytes, max_str_len=max_item_bytes,
                                max_array_len=max_item_bytes, max_map_len=max_item_bytes,
                                max_ext_len=max_item_bytes)
    unpacker.feed(body[offset:])

    def items() -> Iterator[tuple[Any, bytes]]:
        start = offset
        for _ in range(count):
            try:
                item = unpacker.unpack()
            except Exception as exc:  # msgpack raises several unrelated types on junk
                raise InputError(400, "MalformedMsgpack",
                                 f"body is not msgpack: {type(exc).__name__}") from exc
            end = offset + unpacker.tell()
            yield item, body[start:end]
            start = end
        if start != len(body):
            raise InputError(400, "MalformedMsgpack", "bytes after the array")
    return count, items()


# -- transactions -----------------------------------------------------------------------------
def tx_from_canonical_bytes(data: bytes) -> Transaction:
    """A transaction whose bytes are exactly its canonical encoding (its id is their hash).
    Nearly every one is: the short way first, the long way names what is wrong."""
    tx = from_canonical_bytes(data)
    if tx is not None:
        return tx
    tx = from_bytes(data)
    if tx.encoded != data:
        raise NonCanonical("transaction bytes are not canonical msgpack (sorted keys, "
                           "shortest forms); the id is the hash of the bytes sent")
    return tx


def relayed_txs(raws: list[bytes], counters: Any) -> list[Transaction]:
    """Transactions relayed by a peer (canonical bytes each), in order; one that is not
    is dropped and counted in `counters["relayed_tx_malformed"]`. Every node decodes
    every relayed transaction: the short way over the whole list at once, in C's loop,
    and only when some item failed it, item by item as `tx_from_canonical_bytes`."""
    txs = list(map(from_canonical_bytes, raws))
    decoded = list(filter(None, txs))  # a Transaction is truthy: no __len__, no __bool__
    if len(decoded) == len(txs):
        return decoded
    decoded = []
    for raw, tx in zip(raws, txs):
        try:
            decoded.append(tx if tx is not None else tx_from_canonical_bytes(raw))
        except errors.ContractError:
            counters["relayed_tx_malformed"] += 1
    return decoded


def _tx_from_batch_item(item: Any, raw: bytes) -> Transaction:
    """A msgpack batch item: encoded tx bytes, or the tx map itself (its bytes canonical)."""
    try:
        return tx_from_canonical_bytes(item if isinstance(item, bytes) else raw)
    except (TypeError, ValueError, OverflowError) as exc:  # not a ContractError: junk
        raise errors.BadTransaction(f"not a transaction: {type(exc).__name__}") from exc


def _tx_from_json_item(item: Any) -> Transaction:
    try:
        return from_json(item)
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise errors.BadTransaction(f"not a transaction: {type(exc).__name__}") from exc


Decoded = list[Transaction | errors.ContractError]


async def _decode_all(pairs: Iterator[Any], decode: Callable[..., Transaction]) -> Decoded:
    """Each item becomes a Transaction or its own refusal; the loop is given back often.
    A refusal keeps only the exception (no traceback: `__traceback__` is dropped)."""
    out: Decoded = []
    yielder = Yielder()
    for args in pairs:
        try:
            out.append(decode(*args))
        except errors.ContractError as exc:
            exc.__traceback__ = exc.__cause__ = exc.__context__ = None
            out.append(exc)
        await yielder.maybe_yield()
    return out


async def read_tx_batch(request: web.Request, max_items: int, msgpack_type: str) -> Decoded:
    """POST /v1/txs: a msgpack array (encoded txs or tx maps) or JSON {"txs": [...]}."""
    if request.content_type == msgpack_type:
        body = await read_body(request)
        whole = _whole_byte_strings(body, max_items, MAX_TX_BYTES)  # the usual: encoded txs
        if whole is not None:
            return await _decode_all(((raw, raw) for raw in whole), _tx_from_batch_item)
        _, pairs = msgpack_items(body, max_items, MAX_TX_BYTES)
        return await _decode_all(pairs, _tx_from_batch_item)
    value = await read_json(request, max_values=MAX_JSON_BATCH_VALUES)
    if not isinstance(value, dict) or not isinstance(value.get("txs"), list):
        raise InputError(400, "BadTransaction", 'a batch is {"txs": [...]}')
    if len(value["txs"]) > max_items:
        raise TooManyItems(len(value["txs"]), max_items)
    return await _decode_all(((item,) for item in value["txs"]), _tx_from_json_item)


async def read_one_tx(request: web.Request, msgpack_type: str) -> Transaction:
    if request.content_type == msgpack_type:
        return tx_from_canonical_bytes(await read_body(request))
    return _tx_from_json_item(await read_json(request))


async def read_byte_strings(request: web.Request, max_items: int, max_item_bytes: int
                            ) -> list[bytes]:
    """A peer body: a msgpack array of byte strings, count checked before decoding."""
    return await byte_strings(await read_body(request), max_items, max_item_bytes)


async def byte_strings(body: bytes, max_items: int, max_item_bytes: int) -> list[bytes]:
    """`body` as a msgpack array of byte strings (a POST's body or a peer stream's frame),
    its count checked before decoding, yielding to the loop while it reads a long one."""
    whole = _whole_byte_strings(body, max_items, max_item_bytes)
    if whole is not None:
        return whole
    _, pairs = msgpack_items(body, max_items, max_item_bytes)
    out: list[bytes] = []
    yielder = Yielder()
    for item, _raw in pairs:
        if not isinstance(item, bytes):
            raise InputError(400, "MalformedMsgpack", "expected an array of byte strings")
        out.append(item)
        await yielder.maybe_yield()
    return out


WHOLE_BODY_BYTES = 1 << 20
"""A body up to this size is read in one C call (well under a millisecond)."""


def _whole_byte_strings(body: bytes, max_items: int, max_item_bytes: int) -> list[bytes] | None:
    """A well-formed array of byte strings at once, in C (a peer stream's frame, about 190
    bytes an item; there every tx was a Python step, a sliced copy and a clock read),
    with `msgpack_items`' limits; None for anything else, which `byte_strings` then
    reads item by item to name what is wrong, as before; None also for a body over
    WHOLE_BODY_BYTES, read item by item so the loop is given back while it is copied."""
    if len(body) > WHOLE_BODY_BYTES:
        return None
    count, _ = _array_header(body)
    if count > max_items:
        raise TooManyItems(count, max_items)
    try:
        items = msgpack.unpackb(body, raw=False, strict_map_key=False, max_bin_len=max_item_bytes,
                                max_str_len=max_item_bytes, max_array_len=max_item_bytes,
                                max_map_len=max_item_bytes, max_ext_len=max_item_bytes)
    except Exception:  # msgpack raises several unrelated types on junk
        return None
    if type(items) is not list or not set(map(type, items)) <= {bytes}:
        return None
    return items


# -- the middleware ---------------------------------------------------------------------------
@web.middleware
async def input_errors_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Innermost middleware: turn every way input can be bad into a JSON 4xx.

    HTTP errors raised by aiohttp itself (404, 405 with its Allow header, 413) keep
    their headers; RecursionError/LookupError/UnicodeError that escaped a handler's own
    checks are the client's input, not the node's trouble."""
    try:
        return await handler(request)
    except InputError as exc:
        return error_body(exc.status, exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
        return error_body(exc.status, exc.reason.replace(" ", ""), exc.reason, headers)
    except RecursionError:
        return error_body(400, "TooDeep", "input nested too deeply")
    except LookupError as exc:  # an unknown charset or codec named by the client
        return error_body(400, "BadEncoding", f"unknown encoding: {exc}")
    except UnicodeError as exc:  # lone surrogates and undecodable bytes
        return error_body(400, "BadEncoding", f"text is not valid Unicode: {exc.reason}")
