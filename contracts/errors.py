"""Named contract errors.

A refused operation raises one of these before or instead of changing state; its
class name becomes the `code` in the rejected receipt and in the API's error body, so
clients can branch on it without parsing messages.
"""

from __future__ import annotations


class ContractError(Exception):
    """Base of every refusal a contract can produce."""

    @property
    def code(self) -> str:
        return type(self).__name__


def _named(name: str, doc: str) -> type[ContractError]:
    return type(name, (ContractError,), {"__doc__": doc})


# Transaction-level checks (check_transaction), before any handler runs.
BadTransaction = _named("BadTransaction", "Malformed transaction: fields, types or size.")
BadSignature = _named("BadSignature", "The signature does not verify for the sender key.")
WrongChain = _named("WrongChain", "The transaction names another chain id.")
NonceUsed = _named("NonceUsed", "This sender already used this nonce (or it is below the window).")
UnknownOp = _named("UnknownOp", "No contract handles this op.")
BadArguments = _named("BadArguments", "The op's arguments are missing, mistyped or out of range.")
Unauthorized = _named("Unauthorized", "The sender's organisation lacks the role this op needs.")
UnknownAccount = _named("UnknownAccount", "The sender key belongs to no organisation.")
InsufficientFunds = _named("InsufficientFunds", "A balance would go negative.")
NotFound = _named("NotFound", "The record the op refers to does not exist.")
