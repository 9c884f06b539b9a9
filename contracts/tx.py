"""The signed transaction: what a client sends and what a block orders.

Only `sender` and `sig` are bytes; every argument inside `args` is plain JSON-able
data (hashes and keys as lowercase hex strings). That keeps the JSON and msgpack forms
of one transaction the same canonical value, hence the same id and signature.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Annotated, Any, Callable

import msgspec
import nacl.exceptions
import nacl.signing

from contracts.codec import CodecError, decode, encode, is_canonical, pack, sorted_copy
from contracts.errors import BadTransaction

TX_DOMAIN = b"ipchain/tx/v1"
MAX_TX_BYTES = 64 * 1024
SIG_ENTRY_HEAD = b"\xa3sig\xc4\x40"
"""A canonical tx map (fixmap of 6) ends with "sig" (str 3) and its 64-byte bin 8 value."""
SIG_ENTRY_BYTES = len(SIG_ENTRY_HEAD) + 64
_SIGNED_BODY_HEAD = TX_DOMAIN + b"\x85"
"""What the signed bytes start with: the domain, then the body's map header (fixmap of 5)."""
FIELDS = ("args", "chain", "nonce", "op", "sender", "sig")
_FIELD_SET = frozenset(FIELDS)


class _computed_once:
    """A value computed on first read and kept in the instance's __dict__ (a frozen
    dataclass has one): `functools.cached_property` without the lock it takes on
    Python 3.11, which cost more than the hash it guards on every transaction."""

    def __init__(self, compute: Callable[[Any], Any]) -> None:
        self.compute = compute
        self.name = compute.__name__
        self.__doc__ = compute.__doc__

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.compute(obj)
        return value


@dataclass(frozen=True)
class Transaction:
    chain: str
    sender: bytes
    nonce: int
    op: str
    args: dict[str, Any]
    sig: bytes
    encoded: bytes = field(default=b"", compare=False, repr=False)

    @_computed_once
    def id(self) -> str:
        """SHA-256 of the canonical encoding, hex: the same on every node."""
        return self.id_bytes.hex()

    @_computed_once
    def id_bytes(self) -> bytes:
        """The id as the node keys its mempool and store with it (hashed once, where
        hex `id` and `bytes.fromhex` hashed, formatted and parsed for every lookup)."""
        return hashlib.sha256(self.encoded or self.to_bytes()).digest()

    @_computed_once
    def sender_hex(self) -> str:
        """Read several times per transaction (key, nonce and account lookups)."""
        return self.sender.hex()

    def body(self) -> dict[str, Any]:
        return {"args": self.args, "chain": self.chain, "nonce": self.nonce, "op": self.op,
                "sender": self.sender}

    def signing_bytes(self) -> bytes:
        """TX_DOMAIN + the canonical encoding of the body. Cut from the canonical bytes
        when we hold them (every node verifies every tx: this is hot): the body is that
        map less its last entry ("sig" sorts last), so drop the entry and count one key
        fewer; the same bytes as encoding the body again."""
        enc = self.encoded
        if enc[-SIG_ENTRY_BYTES:-64] == SIG_ENTRY_HEAD and enc[0] == 0x86:
            return _SIGNED_BODY_HEAD + enc[1:-SIG_ENTRY_BYTES]
        return TX_DOMAIN + encode(self.body())

    def to_bytes(self) -> bytes:
        return self.encoded or encode({**self.body(), "sig": self.sig})

    def to_json(self) -> dict[str, Any]:
        return {**self.body(), "sender": self.sender.hex(), "sig": self.sig.hex()}

    def signature_ok(self) -> bool:
        try:
            nacl.signing.VerifyKey(self.sender).verify(self.signing_bytes(), self.sig)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, TypeError):
            return False
        return True


def sign_tx(key: nacl.signing.SigningKey, chain: str, nonce: int, op: str,
            args: dict[str, Any]) -> Transaction:
    unsigned = Transaction(chain, bytes(key.verify_key), nonce, op, args, b"")
    sig = key.sign(unsigned.signing_bytes()).signature
    return from_value({**unsigned.body(), "sig": sig})


def from_value(value: Any, checked: bool = False) -> Transaction:
    """Build a transaction from a decoded canonical map, checking every field's type.

    `checked`: `value` comes from `codec.decode` or `codec.sorted_copy`, which have
    already checked every type and sorted every map, so packing it gives its canonical
    bytes without a second walk (every node decodes every transaction: a hot path)."""
    if not isinstance(value, dict):
        raise BadTransaction("a transaction is a map")
    if value.keys() != _FIELD_SET:
        missing = sorted(set(FIELDS) - set(value))
        extra = sorted(set(value) - set(FIELDS))
        raise BadTransaction(f"transaction fields wrong: missing={missing} unexpected={extra}")
    chain, sender, nonce, op = value["chain"], value["sender"], value["nonce"], value["op"]
    args, sig = value["args"], value["sig"]
    if not isinstance(chain, str) or not isinstance(op, str):
        raise BadTransaction("chain and op must be strings")
    if not isinstance(sender, bytes) or len(sender) != 32:
        raise BadTransaction("sender must be a 32-byte Ed25519 public key")
    if not isinstance(sig, bytes) or len(sig) != 64:
        raise BadTransaction("sig must be 64 bytes")
    if not isinstance(nonce, int) or isinstance(nonce, bool) or nonce < 0:
        raise BadTransaction("nonce must be a non-negative integer")
    if not isinstance(args, dict):
        raise BadTransaction("args must be a map")
    encoded = pack(value) if checked else encode(value)
    if len(encoded) > MAX_TX_BYTES:
        raise BadTransaction(f"transaction is {len(encoded)} bytes; limit {MAX_TX_BYTES}")
    return Transaction(chain, sender, nonce, op, args, sig, encoded)


def from_bytes(data: bytes) -> Transaction:
    if len(data) > MAX_TX_BYTES:
        raise BadTransaction(f"transaction is {len(data)} bytes; limit {MAX_TX_BYTES}")
    try:
        value = decode(data)
    except CodecError as exc:
        raise BadTransaction(str(exc)) from exc
    return from_value(value, checked=True)


Scalar = str | int | bool | None
"""An argument value that needs no walk: typed by msgspec as it decodes (a transfer's
`to` and `amount`, and most ops' arguments, are only these; bytes are not, as args hold
hex strings, and msgspec takes one str-like type per union)."""


def _wire_type(args: Any) -> type[msgspec.Struct]:
    """The top level of a transaction as `from_canonical_bytes` reads it: the six fields,
    typed by the decoder itself (in C), in name order as the canonical map holds them,
    so packing one writes the map's entries in that order."""
    return msgspec.defstruct("CanonicalTx", [
        ("args", args), ("chain", str), ("nonce", Annotated[int, msgspec.Meta(ge=0)]),
        ("op", str), ("sender", Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]),
        ("sig", Annotated[bytes, msgspec.Meta(min_length=64, max_length=64)])],
        forbid_unknown_fields=True, gc=False)


_decode_scalar_args = msgspec.msgpack.Decoder(_wire_type(dict[str, Scalar])).decode
_decode_any_args = msgspec.msgpack.Decoder(_wire_type(dict[str, Any])).decode
_pack_sorted = msgspec.msgpack.Encoder(order="sorted").encode
_sha256 = hashlib.sha256


def from_canonical_bytes(data: bytes, tx_id: bytes | None = None) -> Transaction | None:
    """The transaction `data` encodes when `data` is exactly its canonical encoding (so
    its id is their hash); None when it is not, or is no transaction at all: the caller
    then goes the long way (`from_bytes`), which names what is wrong.

    Every node decodes every relayed transaction, nearly all of them canonical: msgspec
    decodes it straight into typed fields (`_wire_type`: exactly the six fields, sender
    and sig of their lengths, a non-negative int nonce, a str-keyed map of args), and
    packing them again with every map's keys sorted must give `data` back (shortest
    forms, keys in order at every level, no duplicate key). Arguments that are all
    scalars are typed by the decoder too, and nothing is walked in Python; others
    (floats, ext types, nesting) are decoded again as any value and walked by
    `is_canonical(args, 1)`, which refuses what `decode` refuses (floats, ext types,
    bytes keys, depth; msgpack's own ints are in range). So it accepts exactly what
    `from_bytes` accepts with `encoded == data` (tests/contracts/test_tx_short_way.py
    compares both ways' verdicts on corrupted bytes). The id and the sender's hex, read
    by every admission, are stored with the fields; `tx_id` is `data`'s hash when the
    caller already holds it (the executor hashed the block's batch), so it is not hashed
    again."""
    if type(data) is not bytes or len(data) > MAX_TX_BYTES:
        return None
    try:
        try:
            wire = _decode_scalar_args(data)
        except msgspec.ValidationError:
            wire = _decode_any_args(data)
            if not is_canonical(wire.args, 1):
                return None
        if _pack_sorted(wire) != data:
            return None
    except (msgspec.DecodeError, ValueError, RecursionError):  # CodecError, bad UTF-8
        return None
    tx = object.__new__(Transaction)  # what the frozen dataclass's __init__ stores, at once
    sender = wire.sender
    object.__setattr__(tx, "__dict__", {
        "chain": wire.chain, "sender": sender, "nonce": wire.nonce, "op": wire.op,
        "args": wire.args, "sig": wire.sig, "encoded": data,
        "id_bytes": _sha256(data).digest() if tx_id is None else tx_id,
        "sender_hex": sender.hex()})
    return tx


def from_json(value: Any) -> Transaction:
    """The JSON form: the same map with `sender` and `sig` as lowercase hex."""
    if not isinstance(value, dict):
        raise BadTransaction("a transaction is a JSON object")
    converted = dict(value)
    for name in ("sender", "sig"):
        raw = converted.get(name)
        if not isinstance(raw, str):
            raise BadTransaction(f"{name} must be a hex string")
        try:
            converted[name] = bytes.fromhex(raw)
        except ValueError as exc:
            raise BadTransaction(f"{name} is not valid hex") from exc
    try:
        return from_value(sorted_copy(converted), checked=True)
    except CodecError as exc:
        raise BadTransaction(str(exc)) from exc
