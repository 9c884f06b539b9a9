"""Replica messages (Castro & Liskov), their signatures and their wire form.

Every message body is a frozen dataclass. A `Signed` wraps a body with the sender's
replica index and its signature over `DOMAIN || chain_id || 0x00 || body`, so a
signature can be replayed neither as another kind of message (the kind is the first
field of the body) nor on another chain. On the wire a message is a msgpack array
with a fixed field order: no map ordering question arises, and decoding checks every
field's type so a peer's junk is refused before any handler sees it.
"""

from __future__ import annotations

import hashlib
import operator
from dataclasses import dataclass, fields
from typing import Any, Callable, ClassVar, Collection, Sequence, Union

import msgpack
import msgspec

DOMAIN = b"ipchain/consensus/v1"
BATCH_DOMAIN = b"ipchain/batch/v1"


class WireError(ValueError):
    """Bytes from a peer that are not a well-formed replica message."""


@dataclass(frozen=True, init=False)
class PrePrepare:
    """The primary's proposal of `txs` at (view, seq). Only the header is signed: the
    digest binds the timestamp and the transactions (through their Merkle root)."""

    KIND: ClassVar[str] = "PP"
    view: int
    seq: int
    digest: bytes
    timestamp_ms: int
    txs: tuple[bytes, ...] = ()

    def __init__(self, view: int, seq: int, digest: bytes, timestamp_ms: int,
                 txs: tuple[bytes, ...] = ()) -> None:
        """Fields written to __dict__ directly: the generated frozen __init__ calls
        object.__setattr__ per field, most of the cost of a message built per vote sent or
        received (as `contracts.runtime.Receipt`). Still frozen after this; the same for
        the other bodies and `Signed`."""
        fields = self.__dict__
        fields["view"] = view
        fields["seq"] = seq
        fields["digest"] = digest
        fields["timestamp_ms"] = timestamp_ms
        fields["txs"] = txs


def _vote_init(self: "Prepare | Commit", view: int, seq: int, digest: bytes) -> None:
    """Prepare's and Commit's `__init__` (the same three fields; see PrePrepare's)."""
    fields = self.__dict__
    fields["view"] = view
    fields["seq"] = seq
    fields["digest"] = digest


@dataclass(frozen=True, init=False)
class Prepare:
    KIND: ClassVar[str] = "P"
    view: int
    seq: int
    digest: bytes

    __init__ = _vote_init


@dataclass(frozen=True, init=False)
class Commit:
    KIND: ClassVar[str] = "C"
    view: int
    seq: int
    digest: bytes

    __init__ = _vote_init


@dataclass(frozen=True, init=False)
class Checkpoint:
    KIND: ClassVar[str] = "CP"
    seq: int
    state_root: bytes

    def __init__(self, seq: int, state_root: bytes) -> None:
        fields = self.__dict__
        fields["seq"] = seq
        fields["state_root"] = state_root


@dataclass(frozen=True)
class Suspect:
    """"My requests made no progress in `view`": a vote to leave it that promises
    nothing. A replica starts VIEW-CHANGE (which promises to stop working in `view`)
    only on 2f+1 of these, so one replica cut off alone never leaves the quorum's
    view (the PreVote of Raft, the timeout certificate of HotStuff)."""

    KIND: ClassVar[str] = "S"
    view: int


@dataclass(frozen=True, init=False)
class Executed:
    """An execution vote: "I executed block `height` and its header hashes to
    `block_hash`". 2f+1 matching votes certify the block's results (docs/protocol.md)."""

    KIND: ClassVar[str] = "EX"
    height: int
    block_hash: bytes

    def __init__(self, height: int, block_hash: bytes) -> None:
        fields = self.__dict__
        fields["height"] = height
        fields["block_hash"] = block_hash


@dataclass(frozen=True)
class PreparedProof:
    """A pre-prepare and 2f matching prepares: the batch may have committed somewhere."""

    preprepare: "Signed"
    prepares: tuple["Signed", ...]


@dataclass(frozen=True)
class ViewChange:
    KIND: ClassVar[str] = "VC"
    new_view: int
    stable_seq: int
    stable_root: bytes
    checkpoint_proof: tuple["Signed", ...]
    prepared: tuple[PreparedProof, ...]


@dataclass(frozen=True)
class NewView:
    KIND: ClassVar[str] = "NV"
    view: int
    view_changes: tuple["Signed", ...]
    preprepares: tuple["Signed", ...]


Body = Union[PrePrepare, Prepare, Commit, Checkpoint, ViewChange, NewView, Suspect, Executed]
KINDS: dict[str, type] = {cls.KIND: cls for cls in
                          (PrePrepare, Prepare, Commit, Checkpoint, ViewChange, NewView, Suspect,
                           Executed)}


@dataclass(frozen=True, init=False)
class Signed:
    body: Body
    sender: int
    sig: bytes

    def signing_bytes(self, chain_id: str) -> bytes:
        return signing_bytes(self.body, chain_id)

    def __init__(self, body: Body, sender: int, sig: bytes) -> None:
        fields = self.__dict__
        fields["body"] = body
        fields["sender"] = sender
        fields["sig"] = sig


def view_of(body: Body) -> int:
    """The view a message belongs to (a VIEW-CHANGE names the view it asks for)."""
    return body.new_view if isinstance(body, ViewChange) else getattr(body, "view", 0)


def compute_digest(timestamp_ms: int, tx_root: bytes) -> bytes:
    """What a quorum agrees on for one sequence number: the time and the tx Merkle root.

    The Merkle root itself is computed by the host (see `Replica(digest_batch=...)`):
    consensus orders opaque requests and does not own the tree a client's proof uses.
    """
    return hashlib.sha256(BATCH_DOMAIN + timestamp_ms.to_bytes(8, "big") + tx_root).digest()


def request_id(raw: bytes) -> bytes:
    """A request's identity: the SHA-256 of its bytes (the transaction id)."""
    return hashlib.sha256(raw).digest()


# -- encoding -------------------------------------------------------------------------
def _field_value(value: Any) -> Any:
    kind = type(value)
    if kind is int or kind is bytes:  # most fields: answered before any isinstance
        return value
    if kind is tuple:
        return [_field_value(v) for v in value]
    if isinstance(value, Signed):
        return _signed_value(value)
    if isinstance(value, PreparedProof):
        return [_signed_value(value.preprepare), [_signed_value(p) for p in value.prepares]]
    if isinstance(value, tuple):
        return [_field_value(v) for v in value]
    return value


_WIRE_FIELDS: dict[type, tuple[str, ...]] = {cls: tuple(f.name for f in fields(cls))
                                             for cls in KINDS.values()}
"""Each body's fields in wire order (dataclasses.fields() is too slow for every message)."""
_SIGNED_FIELDS: dict[type, tuple[str, ...]] = {
    cls: tuple(name for name in names if not (cls is PrePrepare and name == "txs"))
    for cls, names in _WIRE_FIELDS.items()}
"""What a signature covers: a PRE-PREPARE's transactions are bound by its digest instead."""

_SCALAR_BODIES = (PrePrepare, Prepare, Commit, Checkpoint, Suspect, Executed)
"""Bodies of ints and bytes only (a PRE-PREPARE's txs: a tuple of bytes), most messages:
their values go to the packer as they are (it packs a tuple as an array, as a list)."""
_WIRE_PARTS: dict[type, Callable[[Any], tuple[Any, ...]]] = {
    cls: operator.attrgetter("KIND", *_WIRE_FIELDS[cls]) for cls in _SCALAR_BODIES}
_SIGNED_PARTS: dict[type, Callable[[Any], tuple[Any, ...]]] = {
    cls: operator.attrgetter("KIND", *_SIGNED_FIELDS[cls]) for cls in _SCALAR_BODIES}
"""(KIND, *fields) of a scalar body, in one call: the whole body, or its signed part."""


def _body_value(body: Body, signed_part_only: bool = False) -> Sequence[Any]:
    parts = (_SIGNED_PARTS if signed_part_only else _WIRE_PARTS).get(type(body))
    if parts is not None:
        return parts(body)
    names = (_SIGNED_FIELDS if signed_part_only else _WIRE_FIELDS)[type(body)]
    return [body.KIND, *[_field_value(getattr(body, name)) for name in names]]


def _signed_value(msg: Signed) -> list[Any]:
    return [msg.sender, msg.sig, _body_value(msg.body)]


_pack = msgspec.msgpack.Encoder().encode
"""Writes exactly msgpack.packb(value, use_bin_type=True)'s bytes for these values
(lists and tuples, ints, bytes, str: smallest form of each, bin for bytes; a test
compares) at a fraction of its cost: packb builds a Packer per call (2.7 against 0.15 µs
for a vote)."""


_SIGNING_PREFIXES: dict[str, bytes] = {}
"""chain id -> DOMAIN || chain_id || 0x00, the start of every signed part on that chain."""


def signing_bytes(body: Body, chain_id: str) -> bytes:
    prefix = _SIGNING_PREFIXES.get(chain_id)
    if prefix is None:
        prefix = _SIGNING_PREFIXES[chain_id] = DOMAIN + chain_id.encode() + b"\x00"
    parts = _SIGNED_PARTS.get(type(body))  # `_body_value`'s first step, without its call
    return prefix + _pack(parts(body) if parts is not None else _body_value(body, True))


def encode(msg: Signed) -> bytes:
    """The wire bytes, computed once per message object: a message is frozen, and the
    same one is encoded for its WAL record, each send, certificates and evidence."""
    fields = msg.__dict__
    encoded = fields.get("_encoded")
    if encoded is None:
        body = msg.body
        parts = _WIRE_PARTS.get(type(body))  # `_signed_value`'s, without its two calls
        encoded = fields["_encoded"] = _pack(
            (msg.sender, msg.sig, parts(body) if parts is not None else _body_value(body)))
    return encoded


# -- decoding -------------------------------------------------------------------------
def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise WireError(what)


# The checks below run for every field of every message a replica receives: each
# tests the exact type (msgpack yields exactly int, bytes and list; bool is not an int
# here) and raises only on failure, without building a message when all is well.
_MAX_INT = 2**63


def _int(value: Any) -> int:
    if type(value) is not int or not 0 <= value < _MAX_INT:
        raise WireError("expected a non-negative integer")
    return value


def _bytes(value: Any, size: int | None = None) -> bytes:
    if type(value) is not bytes:
        raise WireError("expected bytes")
    if size is not None and len(value) != size:
        raise WireError(f"expected {size} bytes")
    return value


def _list(value: Any) -> list[Any]:
    if type(value) is not list:
        raise WireError("expected an array")
    return value


def _proof(value: Any) -> PreparedProof:
    items = _list(value)
    _expect(len(items) == 2, "prepared proof has two parts")
    return PreparedProof(_signed(items[0], "PP"), tuple(_signed(p, "P") for p in _list(items[1])))


_VOTE_KINDS: dict[str, type] = {"P": Prepare, "C": Commit}
_HASH_VOTE_KINDS: dict[str, type] = {"EX": Executed, "CP": Checkpoint}
"""Bodies of (int, 32 bytes): execution votes and checkpoints."""


def _body(value: Any, kinds: Collection[str] = KINDS) -> Body:
    """`kinds`: what may appear here. Nested messages have one kind each, which also
    bounds the nesting depth (a NEW-VIEW cannot hold a NEW-VIEW).

    PREPAREs, COMMITs, EXECUTED votes and CHECKPOINTs, most of the traffic, are checked
    inline first (the same checks as `_checked_body`'s, without a call per field);
    anything else, or anything that fails them, takes the general path, which raises
    the usual error."""
    if type(value) is list:
        size = len(value)
        if size == 4:
            kind, view, seq, digest = value
            if (type(kind) is str and kind in _VOTE_KINDS and kind in kinds
                    and type(view) is int and 0 <= view < _MAX_INT
                    and type(seq) is int and 0 <= seq < _MAX_INT
                    and type(digest) is bytes and len(digest) == 32):
                return _VOTE_KINDS[kind](view, seq, digest)
        elif size == 3:
            kind, number, digest = value
            if (type(kind) is str and kind in _HASH_VOTE_KINDS and kind in kinds
                    and type(number) is int and 0 <= number < _MAX_INT
                    and type(digest) is bytes and len(digest) == 32):
                return _HASH_VOTE_KINDS[kind](number, digest)
    return _checked_body(value, kinds)


def _checked_body(value: Any, kinds: Collection[str]) -> Body:
    items = _list(value)
    _expect(len(items) >= 1 and isinstance(items[0], str) and items[0] in kinds,
            "unknown message kind")
    kind, rest = items[0], items[1:]
    if kind == "PP":
        _expect(len(rest) == 5, "PRE-PREPARE has 5 fields")
        return PrePrepare(_int(rest[0]), _int(rest[1]), _bytes(rest[2], 32), _int(rest[3]),
                          tuple(_bytes(t) for t in _list(rest[4])))
    if kind in ("P", "C"):
        _expect(len(rest) == 3, f"{kind} has 3 fields")
        return KINDS[kind](_int(rest[0]), _int(rest[1]), _bytes(rest[2], 32))
    if kind == "S":
        _expect(len(rest) == 1, "SUSPECT has 1 field")
        return Suspect(_int(rest[0]))
    if kind == "CP":
        _expect(len(rest) == 2, "CHECKPOINT has 2 fields")
        return Checkpoint(_int(rest[0]), _bytes(rest[1], 32))
    if kind == "EX":
        _expect(len(rest) == 2, "EXECUTED has 2 fields")
        return Executed(_int(rest[0]), _bytes(rest[1], 32))
    if kind == "VC":
        _expect(len(rest) == 5, "VIEW-CHANGE has 5 fields")
        return ViewChange(_int(rest[0]), _int(rest[1]), _bytes(rest[2], 32),
                          tuple(_signed(m, "CP") for m in _list(rest[3])),
                          tuple(_proof(p) for p in _list(rest[4])))
    _expect(len(rest) == 3, "NEW-VIEW has 3 fields")
    return NewView(_int(rest[0]), tuple(_signed(m, "VC") for m in _list(rest[1])),
                   tuple(_signed(m, "PP") for m in _list(rest[2])))


def _signed(value: Any, kind: str | None = None, signed_type: type[Signed] = Signed) -> Signed:
    if type(value) is list and len(value) == 3:
        sender, sig = value[0], value[1]
        if (type(sender) is int and 0 <= sender < _MAX_INT
                and type(sig) is bytes and len(sig) == 64):  # the body's checks come next
            return signed_type(_body(value[2], KINDS if kind is None else (kind,)), sender, sig)
    return _checked_signed(value, kind, signed_type)


def _checked_signed(value: Any, kind: str | None, signed_type: type[Signed] = Signed) -> Signed:
    """`_signed` one check at a time, in the order that picks the error reported."""
    items = _list(value)
    _expect(len(items) == 3, "a signed message has sender, signature and body")
    return signed_type(_body(items[2], KINDS if kind is None else (kind,)), _int(items[0]),
                       _bytes(items[1], 64))


def decode(data: bytes, signed_type: type[Signed] = Signed) -> Signed:
    """`signed_type`: the class of the message returned, a `Signed` or a subclass of it
    (the simulator's one copy that all receivers share); nested messages are `Signed`."""
    try:
        value = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)
    except Exception as exc:  # msgpack signals junk with several unrelated types
        raise WireError(f"malformed msgpack: {exc.__class__.__name__}") from exc
    return _signed(value, None, signed_type)
