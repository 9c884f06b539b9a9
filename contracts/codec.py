"""Canonical msgpack: the one byte form that is hashed and signed.

Two nodes must produce identical bytes for equal values, so maps are written with
their keys sorted, and the only numbers are integers: a float's rounding is exactly
the kind of non-determinism (CometBFT's ABCI checklist, BFT-SMaRt's HashMap warning)
that splits a chain.
"""

from __future__ import annotations

from typing import Any

import msgpack
import msgspec

MAX_DEPTH = 32


class CodecError(ValueError):
    """The bytes or the value are not canonical ipchain data."""


def canonical(value: Any) -> Any:
    """Return `value` with maps key-sorted; refuse anything that is not plain data.

    Allowed: None, bool, int (64-bit range), str, bytes, list/tuple, dict with str keys.
    Dispatch is on the exact type: subclasses (an IntEnum, say) are refused rather than
    encoded in some way a peer might not reproduce.
    """
    return value if is_canonical(value) else _sort_maps(value)


_SCALARS = frozenset({str, bytes, bool, type(None)})
"""Exact types that are canonical as they are (int has a range to check)."""
_INT_MIN, _INT_END = -(2**63), 2**64


_CONTAINERS = frozenset({dict, list, tuple})


def sorted_copy(value: Any) -> Any:
    """A fresh copy of `value` with every map's keys in order and tuples as lists: what
    `decode(encode(value))` returns, without writing and parsing the bytes."""
    is_canonical(value)
    return _sort_maps(value)


def _sort_maps(value: Any) -> Any:
    """Copy with every map's keys in order; types were already checked by is_canonical."""
    kind = type(value)
    if kind is dict:
        return {key: _sort_maps(item) if type(item) in _CONTAINERS else item
                for key, item in sorted(value.items())}
    if kind is list or kind is tuple:
        return [_sort_maps(item) if type(item) in _CONTAINERS else item for item in value]
    return value


def is_canonical(value: Any, depth: int = 0) -> bool:
    """Check every type (raising CodecError on anything not allowed) without building a
    copy; False when some map's keys are out of order. This is the hot path: values
    decoded from canonical bytes, and values built by contracts, are nearly always
    canonical already. Scalar items of a map or list are checked in the loop, without
    a call each (most items are scalars: a call costs more than the check); an int in
    range too (a balance, a nonce, a height: a call each was most of the calls)."""
    if depth > MAX_DEPTH:
        raise CodecError("value nested too deeply")
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind is int:
        if not _INT_MIN <= value < _INT_END:
            raise CodecError("integer out of 64-bit range")
        return True
    ordered = True
    deep = depth >= MAX_DEPTH  # then even a scalar item is one level too deep
    if kind is dict:
        previous = None
        for key, item in value.items():
            if type(key) is not str:
                raise CodecError(f"map keys must be strings, got {type(key).__name__}")
            if previous is not None and key <= previous:
                ordered = False
            previous = key
            item_kind = type(item)
            if deep or item_kind not in _SCALARS:
                if not deep and item_kind is int and _INT_MIN <= item < _INT_END:
                    continue
                ordered = is_canonical(item, depth + 1) and ordered
        return ordered
    if kind is list or kind is tuple:
        for item in value:
            item_kind = type(item)
            if deep or item_kind not in _SCALARS:
                if not deep and item_kind is int and _INT_MIN <= item < _INT_END:
                    continue
                ordered = is_canonical(item, depth + 1) and ordered
        return ordered
    if kind is float:
        raise CodecError("floats are not allowed; use integers (minor units, basis points)")
    raise CodecError(f"type {kind.__name__} is not allowed")


_SORTED_ENCODER = msgspec.msgpack.Encoder(order="sorted")
_pack_sorted = _SORTED_ENCODER.encode
pack = msgspec.msgpack.encode
"""Pack a value already checked and in canonical order (`is_canonical` was True, or
it came from `decode`): the same bytes as msgpack-python's `packb(use_bin_type=True)`
(tests/contracts/test_codec_msgspec_identity.py compares them), about 3x faster."""


def encode(value: Any) -> bytes:
    """The canonical bytes of `value`.

    Types are checked here; the key order is left to msgspec's sorted encoder, which
    writes every map's keys in code-point order (str's `<`, as `_sort_maps` does)
    instead of building a sorted copy first. Its output is byte-for-byte msgpack-python's
    `packb(canonical(value), use_bin_type=True)`: smallest int and length formats,
    str8 for strings, bin for bytes (tests/contracts/test_codec_msgspec_identity.py)."""
    if type(value) is int and _INT_MIN <= value < _INT_END:
        return pack(value)  # a balance or a counter: most state writes
    is_canonical(value)
    return _pack_sorted(value)


def encode_event_list(events: list[dict[str, Any]]) -> bytes:
    """`encode` of a list of maps {"contract": str, "data": map, "name": str} built by
    the caller (node/chain.py's receipt events): only each map's `data` is walked, not
    the list and the maps around it (once per receipt on every replica)."""
    for event in events:
        if type(event["contract"]) is not str or type(event["name"]) is not str:
            raise CodecError("an event's contract and name must be strings")
        if type(event["data"]) is not dict:
            raise CodecError("an event's data must be a map")
        is_canonical(event["data"], 2)
    return _pack_sorted(events)


def encode_events(events: Any) -> bytes:
    """`encode_event_list` of the maps {"contract", "data", "name"} of these events,
    encoded from the `contracts.call.Event` objects themselves: the sorted encoder
    writes a dataclass's fields as a map in name order, the same bytes as those maps
    (tests/contracts/test_codec_msgspec_identity.py), without building them."""
    for event in events:
        if type(event.contract) is not str or type(event.name) is not str:
            raise CodecError("an event's contract and name must be strings")
        if type(event.data) is not dict:
            raise CodecError("an event's data must be a map")
        is_canonical(event.data, 2)
    return _pack_sorted(events)


def _refuse_ext(code: int, data: bytes) -> Any:
    """An extension type would otherwise arrive as an ExtType tuple and pass as a list."""
    raise CodecError(f"msgpack extension type {code} is not allowed")


def decode(data: bytes) -> Any:
    """Decode msgpack and check it holds only canonical types (no floats, str keys).

    It does not insist the input was key-sorted: a transaction's id and signature are
    computed over the re-encoded canonical form, so a client's key order cannot matter.
    """
    return canonical(unpack(data))


def unpack(data: bytes) -> Any:
    """msgpack to Python values, ext types refused, types NOT yet checked: the caller
    checks them (`decode` does, with `canonical`) before trusting the value."""
    try:
        value = msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True,
                                ext_hook=_refuse_ext)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise CodecError(f"malformed msgpack: {exc}") from exc
    except Exception as exc:  # msgpack raises a handful of unrelated types on junk
        raise CodecError(f"malformed msgpack: {exc.__class__.__name__}") from exc
    return value
