"""Typed op arguments: one msgspec Struct per op, checked before a block is spent.

Each op declares its arguments as a frozen `Args` struct (contracts/<family>/schemas.py):
field names, types, integer ranges, string formats, nested records and defaults, with
a one-line description per field. `decode_args` turns a transaction's `args` map into
that struct or raises `BadArguments` naming the field, so the same check runs at
admission (the node refuses with 400 before ordering) and in `apply_block` (a
transaction a faulty primary ordered anyway gets the same named refusal, on every
node). Handlers then read `call.args.<field>` and keep only the rules that need state.

msgspec is used because its conversion is strict (no str->int, no bool->int), refuses
unknown keys, and writes JSON Schema from the same declaration: the catalogue, the
OpenAPI document and the SDK's builders are all generated from these structs.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

from contracts import errors

AMOUNT_MAX = 2**62
"""The one amount range of every op: 1 .. 2^62 minor units (0 .. 2^62 where zero is
allowed). Far inside the codec's 64-bit range, so sums of a few amounts never overflow
what a state value can hold."""
BPS_MAX = 10_000
TEXT_MAX = 512
LIST_MAX = 64


class Args(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True,
           omit_defaults=True):
    """Base of every op's arguments (and of every nested record in them)."""

    def to_value(self) -> dict[str, Any]:
        """The plain map a handler may store (defaults left out, as a client sent it;
        tuples back to lists, as the codec decodes them)."""
        return _as_lists(msgspec.to_builtins(self))


def _as_lists(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_as_lists(item) for item in value]
    if isinstance(value, dict):
        return {key: _as_lists(item) for key, item in value.items()}
    return value


def whole(body: str) -> str:
    """A pattern matching the whole string. Python's `$` also matches before a final
    newline ("CN\\n"); the lookahead closes that gap and means nothing to ECMA regexes,
    so the JSON Schema published from it reads the same to every client."""
    return f"^{body}(?!\\n)$"


def _int(minimum: int, maximum: int, doc: str) -> Any:
    return Annotated[int, Meta(ge=minimum, le=maximum, description=doc)]


Amount = Annotated[int, Meta(ge=1, le=AMOUNT_MAX, description="minor units, 1 .. 2^62")]
AmountOrZero = Annotated[int, Meta(ge=0, le=AMOUNT_MAX, description="minor units, 0 .. 2^62")]
Bps = Annotated[int, Meta(ge=0, le=BPS_MAX, description="basis points, 0 .. 10 000")]
OrgId = Annotated[str, Meta(pattern=whole(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"),
                            description="organisation id")]
PatentId = Annotated[str, Meta(pattern=whole(r"[A-Z]{2}:[A-Za-z0-9][A-Za-z0-9._-]{0,63}"),
                               description="patent id OFFICE:APPLICATION_NO, e.g. CN:2024101")]
RecordId = Annotated[str, Meta(pattern=whole(r"[0-9a-f]{16}"),
                               description="record id: first 16 hex chars of the creating tx id")]
IsoDate = Annotated[str, Meta(pattern=whole(r"[0-9]{4}-[0-9]{2}-[0-9]{2}"),
                              description="calendar date YYYY-MM-DD")]
Period = Annotated[str, Meta(pattern=whole(r"[0-9]{4}-Q[1-4]"),
                             description="calendar quarter YYYY-Qn, e.g. 2026-Q3")]
Hex32 = Annotated[str, Meta(pattern=whole(r"[0-9a-f]{64}"), description="32 bytes, lower-case hex")]
Text = Annotated[str, Meta(max_length=TEXT_MAX, description="free text, at most 512 chars")]


def bounded(minimum: int, maximum: int, doc: str) -> Any:
    """An integer field with its own range and description."""
    return _int(minimum, maximum, doc)


def decode_args(op: str, schema: type[Args], raw: Any) -> Args:
    """`raw` as the op's struct, or BadArguments naming the op and the field."""
    try:
        return msgspec.convert(raw, type=schema, strict=True)
    except msgspec.ValidationError as exc:
        raise errors.BadArguments(f"{op}: {describe(exc)}") from None


def describe(exc: msgspec.ValidationError) -> str:
    """msgspec's message with its `$.field` path spelt as `args.field`."""
    return str(exc).replace("`$.", "`args.").replace("`$`", "`args`")


def schema_components(schemas: list[type[Args]], ref_template: str
                      ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """JSON Schema (2020-12) of each struct and of the records they share."""
    return msgspec.json.schema_components(schemas, ref_template=ref_template)
