"""apply_transaction: one transaction's state transition, read top to bottom (node/chain.py runs blocks).

For each transaction: check it (chain, op, signature, nonce, sender) before anything
changes, then run its handler inside a state transaction that commits all of its
writes or none. A refused transaction leaves the state root exactly as it was and
gets a receipt naming the error; the block goes on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from contracts import catalogue, errors
from contracts.codec import pack
from contracts.call import (  # noqa: F401  (re-exported: the node's view of a block)
    BlockContext, Call, Event, Op, org_of_key, org_roles,
)
from contracts.schema import decode_args
from contracts.state import State
from contracts.token import ledger
from contracts.tx import Transaction

log = logging.getLogger("ipchain.contracts")

NONCE_WINDOW = 1024
"""A sender's nonces may arrive out of order within this window (clients submit to
any node, so two of one sender's transactions can be ordered either way). Each nonce
is still usable once: the window is a bitmap of the last NONCE_WINDOW nonces."""
_WINDOW_MASK = (1 << NONCE_WINDOW) - 1


@dataclass(frozen=True, init=False)
class Receipt:
    tx_id: str
    height: int
    index: int
    ok: bool
    code: str
    message: str = ""
    events: tuple[Event, ...] = ()

    def __init__(self, tx_id: str, height: int, index: int, ok: bool, code: str,
                 message: str = "", events: tuple[Event, ...] = ()) -> None:
        """Fields written to __dict__ directly: the generated frozen __init__ calls
        object.__setattr__ per field, which cost more than the rest of building a
        receipt (one per transaction on every replica). Still frozen after this."""
        fields = self.__dict__
        fields["tx_id"] = tx_id
        fields["height"] = height
        fields["index"] = index
        fields["ok"] = ok
        fields["code"] = code
        fields["message"] = message
        fields["events"] = events

    def to_value(self) -> dict[str, Any]:
        return {"tx_id": self.tx_id, "height": self.height, "index": self.index,
                "status": "committed" if self.ok else "rejected", "code": self.code,
                "message": self.message, "events": [e.to_value() for e in self.events]}


DIRECT_HANDLERS: dict[Callable[[Call], None], Callable[[State, str, Any], Event]] = {
    ledger.on_transfer: ledger.transfer_bpc,
}
"""Handlers that only wrap a function of (state, sender's org, typed args) returning
their one event: the runtime calls that function without building a Call (every
transfer of a bench block; the Call cost a tenth of it). Keyed by the op's handler, so
an op given another handler runs through its Call like any other."""


def get_ops() -> dict[str, Op]:
    """Every op by name (contracts/catalogue.py builds the registry in one place)."""
    return catalogue.get_ops()


_TYPED_ARGS = "_typed_args"
"""Where `check_args` keeps a transaction's decoded arguments (in its __dict__)."""


def check_args(tx: Transaction) -> Any:
    """The transaction's arguments decoded into its op's schema, or BadArguments naming
    the field. The node calls this at admission (a typo costs no block); the executor
    calls it again, so a transaction ordered anyway is refused the same on every node.

    The decoded struct is kept on the transaction object, so a transaction admitted by
    this node is decoded once, not again when its block runs. That is safe: it is a
    pure function of the frozen transaction's own fields, and a block fetched from a
    peer arrives as bytes that this node decodes into new objects (node/chain.py)."""
    typed = tx.__dict__.get(_TYPED_ARGS, _TYPED_ARGS)
    if typed is not _TYPED_ARGS:
        return typed
    op = get_ops().get(tx.op)
    if op is None:
        raise errors.UnknownOp(f"unknown op {tx.op!r}")
    typed = tx.args if op.args is None else decode_args(tx.op, op.args, tx.args)
    tx.__dict__[_TYPED_ARGS] = typed
    return typed


def check_nonce(state: State, sender_hex: str, nonce: int) -> tuple[int, int]:
    """Return the sender's (high, bitmap) after using `nonce`, or raise NonceUsed."""
    return _use_nonce(state.get(f"nonce/{sender_hex}"), nonce)


def _use_nonce(record: list | None, nonce: int) -> tuple[int, int]:
    """`check_nonce` of the sender's stored nonce record."""
    high, bitmap = (-1, 0) if record is None else (record[0], int.from_bytes(record[1], "big"))
    if nonce > high:
        shift = nonce - high
        bitmap = ((bitmap << shift) | 1) & _WINDOW_MASK if shift < NONCE_WINDOW else 1
        return nonce, bitmap
    age = high - nonce
    if age >= NONCE_WINDOW or bitmap >> age & 1:
        raise errors.NonceUsed(f"nonce {nonce} already used or below the window (high {high})")
    return high, bitmap | 1 << age


def check_transaction(state: State, ctx: BlockContext, tx: Transaction,
                      signature_ok: Callable[[Transaction], bool]) -> tuple[Op, str, str, list]:
    """Every check that does not depend on the op's own rules; raises before any write.

    Returns the op, the sender's organisation, the key of the sender's nonce record and
    that record once this transaction's nonce is used."""
    if tx.chain != ctx.chain_id:
        raise errors.WrongChain(f"transaction is for chain {tx.chain!r}, this is {ctx.chain_id!r}")
    op = catalogue.OPS.get(tx.op)  # get_ops(), without two calls per transaction
    if op is None:
        raise errors.UnknownOp(f"unknown op {tx.op!r}")
    if not signature_ok(tx):
        raise errors.BadSignature("signature does not verify")
    sender_hex = tx.sender_hex
    org = state.get(f"key/{sender_hex}")  # org_of_key and org_roles, inlined
    if org is None:
        raise errors.UnknownAccount("sender key belongs to no organisation")
    roles = state.view(f"org/{org}", org_role_tuple)
    if roles == ("regulator",):
        raise errors.Unauthorized("a regulator reads everything and writes nothing")
    if op.roles is not None and not op.roles.intersection(roles):
        raise errors.Unauthorized(f"{tx.op} needs one of the roles {sorted(op.roles)}")
    nonce_key = f"nonce/{sender_hex}"
    high, bitmap = _use_nonce(state.get(nonce_key), tx.nonce)
    return op, org, nonce_key, [high, bitmap.to_bytes(NONCE_WINDOW // 8, "big")]


def org_role_tuple(record: dict[str, Any] | None) -> tuple[str, ...]:
    """An organisation record's roles as `org_roles` reads them, as a tuple (shared
    through `State.view`, so it must not change)."""
    return () if record is None else tuple(record["roles"])


_NONCE_HIGH_END = 2**64


def apply_transaction(state: State, ctx: BlockContext, tx: Transaction, index: int,
                      signature_ok: Callable[[Transaction], bool]) -> Receipt:
    """Check and run one transaction: all of its writes, or none and a named refusal.

    A refused transaction does not use up its nonce (its state root must not change),
    yet it cannot be replayed: its id has a receipt in the chain from then on, and the
    block executor refuses any id already in the chain as DuplicateTransaction."""
    state.begin()
    try:
        op, org, nonce_key, nonce_record = check_transaction(state, ctx, tx, signature_ok)
        if nonce_record[0] < _NONCE_HIGH_END:  # [int, bytes]: packed as it is, no walk
            state.put_encoded(nonce_key, pack(nonce_record))
        else:
            state.put(nonce_key, nonce_record)
        typed = tx.__dict__.get(_TYPED_ARGS, _TYPED_ARGS)  # check_args's cache, read here
        if typed is _TYPED_ARGS:
            typed = check_args(tx)
        direct = DIRECT_HANDLERS.get(op.handler)
        if direct is not None:
            events: tuple[Event, ...] = (direct(state, org, typed),)
        else:
            call = Call(state, ctx, tx, org, typed, [])
            op.handler(call)
            events = tuple(call.events)
    except errors.ContractError as exc:
        state.rollback()
        return Receipt(tx.id, ctx.height, index, False, exc.code, str(exc))
    except Exception as exc:  # a handler bug: deterministic on every node, so reject it
        state.rollback()
        log.error("event=handler_crash op=%s tx=%s error=%r", tx.op, tx.id, exc)
        return Receipt(tx.id, ctx.height, index, False, "InternalError", repr(exc))
    state.commit()
    return Receipt(tx.id, ctx.height, index, True, "ok", "", events)


def apply_block(state: State, ctx: BlockContext, txs: Sequence[Transaction], *,
                signature_ok: Callable[[Transaction], bool] = Transaction.signature_ok,
                ) -> list[Receipt]:
    """Apply `txs` in order to `state` (mutated in place); one receipt per transaction."""
    return [apply_transaction(state, ctx, tx, index, signature_ok)
            for index, tx in enumerate(txs)]
