"""apply_transaction: one transaction's state transition, read top to bottom (node/chain.py runs blocks).

For each transaction: check it (chain, op, signature, nonce, sender) before anything
changes, then run its handler inside a state transaction that commits all of its
writes or none. A refused transaction leaves the state root exactly as it was and
gets a receipt naming the error; the block goes on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from contracts import errors
from contracts.state import State
from contracts.tx import Transaction

log = logging.getLogger("ipchain.contracts")

NONCE_WINDOW = 1024
"""A sender's nonces may arrive out of order within this window (clients submit to
any node, so two of one sender's transactions can be ordered either way). Each nonce
is still usable once: the window is a bitmap of the last NONCE_WINDOW nonces."""


@dataclass(frozen=True)
class BlockContext:
    chain_id: str
    height: int
    timestamp_ms: int
    """Chosen by the primary and agreed by the quorum: the only clock contracts see."""


@dataclass(frozen=True)
class Event:
    contract: str
    name: str
    data: dict[str, Any]

    def to_value(self) -> dict[str, Any]:
        return {"contract": self.contract, "name": self.name, "data": self.data}


@dataclass(frozen=True)
class Receipt:
    tx_id: str
    height: int
    index: int
    ok: bool
    code: str
    message: str = ""
    events: tuple[Event, ...] = ()

    def to_value(self) -> dict[str, Any]:
        return {"tx_id": self.tx_id, "height": self.height, "index": self.index,
                "status": "committed" if self.ok else "rejected", "code": self.code,
                "message": self.message, "events": [e.to_value() for e in self.events]}


@dataclass
class Call:
    """What a handler sees: the state, the block, the transaction and its sender's org."""

    state: State
    ctx: BlockContext
    tx: Transaction
    org: str
    events: list[Event] = field(default_factory=list)

    @property
    def args(self) -> dict[str, Any]:
        return self.tx.args

    def emit(self, contract: str, name: str, **data: Any) -> None:
        self.events.append(Event(contract, name, data))


@dataclass(frozen=True)
class Op:
    handler: Callable[[Call], None]
    roles: frozenset[str] | None = None
    """Roles any one of which the sender's organisation must hold; None = any member org."""


def org_of_key(state: State, sender_hex: str) -> str | None:
    return state.get(f"key/{sender_hex}")


def org_roles(state: State, org: str) -> list[str]:
    record = state.get(f"org/{org}")
    return [] if record is None else record["roles"]


def _registry() -> dict[str, Op]:
    from contracts import licensing, membership, pool, registry, securitization, token

    ops: dict[str, Op] = {}
    for module in (token, membership, registry, licensing, pool, securitization):
        for name, op in module.OPS.items():
            if name in ops:
                raise RuntimeError(f"op {name} registered twice")
            ops[name] = op
    return ops


OPS: dict[str, Op] = {}


def get_ops() -> dict[str, Op]:
    if not OPS:
        OPS.update(_registry())
    return OPS


def check_nonce(state: State, sender_hex: str, nonce: int) -> tuple[int, int]:
    """Return the sender's (high, bitmap) after using `nonce`, or raise NonceUsed."""
    record = state.get(f"nonce/{sender_hex}")
    high, bitmap = (-1, 0) if record is None else (record[0], int.from_bytes(record[1], "big"))
    if nonce > high:
        shift = nonce - high
        bitmap = ((bitmap << shift) | 1) & ((1 << NONCE_WINDOW) - 1) if shift < NONCE_WINDOW else 1
        return nonce, bitmap
    age = high - nonce
    if age >= NONCE_WINDOW or bitmap >> age & 1:
        raise errors.NonceUsed(f"nonce {nonce} already used or below the window (high {high})")
    return high, bitmap | 1 << age


def check_transaction(state: State, ctx: BlockContext, tx: Transaction,
                      signature_ok: Callable[[Transaction], bool]) -> tuple[Op, str, list]:
    """Every check that does not depend on the op's own rules; raises before any write.

    Returns the op, the sender's organisation and the sender's nonce record once this
    transaction's nonce is used."""
    if tx.chain != ctx.chain_id:
        raise errors.WrongChain(f"transaction is for chain {tx.chain!r}, this is {ctx.chain_id!r}")
    op = get_ops().get(tx.op)
    if op is None:
        raise errors.UnknownOp(f"unknown op {tx.op!r}")
    if not signature_ok(tx):
        raise errors.BadSignature("signature does not verify")
    org = org_of_key(state, tx.sender_hex)
    if org is None:
        raise errors.UnknownAccount("sender key belongs to no organisation")
    roles = org_roles(state, org)
    if roles == ["regulator"]:
        raise errors.Unauthorized("a regulator reads everything and writes nothing")
    if op.roles is not None and not op.roles.intersection(roles):
        raise errors.Unauthorized(f"{tx.op} needs one of the roles {sorted(op.roles)}")
    high, bitmap = check_nonce(state, tx.sender_hex, tx.nonce)
    return op, org, [high, bitmap.to_bytes(NONCE_WINDOW // 8, "big")]


def apply_transaction(state: State, ctx: BlockContext, tx: Transaction, index: int,
                      signature_ok: Callable[[Transaction], bool]) -> Receipt:
    """Check and run one transaction: all of its writes, or none and a named refusal.

    A refused transaction does not use up its nonce (its state root must not change),
    yet it cannot be replayed: its id has a receipt in the chain from then on, and the
    block executor refuses any id already in the chain as DuplicateTransaction."""
    state.begin()
    try:
        op, org, nonce_record = check_transaction(state, ctx, tx, signature_ok)
        state.put(f"nonce/{tx.sender_hex}", nonce_record)
        call = Call(state, ctx, tx, org)
        op.handler(call)
    except errors.ContractError as exc:
        state.rollback()
        return Receipt(tx.id, ctx.height, index, False, exc.code, str(exc))
    except Exception as exc:  # a handler bug: deterministic on every node, so reject it
        state.rollback()
        log.error("event=handler_crash op=%s tx=%s error=%r", tx.op, tx.id, exc)
        return Receipt(tx.id, ctx.height, index, False, "InternalError", repr(exc))
    state.commit()
    return Receipt(tx.id, ctx.height, index, True, "ok", "", tuple(call.events))


def apply_block(state: State, ctx: BlockContext, txs: Sequence[Transaction], *,
                signature_ok: Callable[[Transaction], bool] = Transaction.signature_ok,
                ) -> list[Receipt]:
    """Apply `txs` in order to `state` (mutated in place); one receipt per transaction."""
    return [apply_transaction(state, ctx, tx, index, signature_ok)
            for index, tx in enumerate(txs)]


def require_args(call: Call, spec: dict[str, type | tuple[type, ...]]) -> dict[str, Any]:
    """Check the op's arguments by name and type; bools are not ints here."""
    args = call.args
    for name, kind in spec.items():
        if name not in args:
            raise errors.BadArguments(f"{call.tx.op}: missing argument {name!r}")
        value = args[name]
        if isinstance(value, bool) and kind is int:
            raise errors.BadArguments(f"{call.tx.op}: {name} must be an integer")
        if not isinstance(value, kind):
            raise errors.BadArguments(f"{call.tx.op}: {name} has the wrong type")
    return args

