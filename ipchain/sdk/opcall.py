"""An op and its arguments, checked against the op's schema before anything is signed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from contracts import errors
from contracts.runtime import get_ops
from contracts.schema import decode_args


class Unset:
    """The type of UNSET: an optional argument the caller left out (the op's default)."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET = Unset()


@dataclass(frozen=True)
class OpCall:
    op: str
    args: dict[str, Any]


def validate(op: str, args: dict[str, Any]) -> None:
    """Raise BadArguments (naming the field) or UnknownOp, exactly as a node would."""
    described = get_ops().get(op)
    if described is None:
        raise errors.UnknownOp(f"unknown op {op!r}")
    decode_args(op, described.args, args)


def build(op: str, **given: Any) -> OpCall:
    """The OpCall for `op` from keyword arguments (UNSET ones left out), validated."""
    args = msgspec.to_builtins({k: v for k, v in given.items() if v is not UNSET})
    args = _lists(args)
    validate(op, args)
    return OpCall(op, args)


def _lists(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_lists(item) for item in value]
    if isinstance(value, dict):
        return {key: _lists(item) for key, item in value.items()}
    return value
