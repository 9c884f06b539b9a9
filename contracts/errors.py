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


# Transaction-level checks (check_transaction), before any handler runs.


class BadTransaction(ContractError):
    """Malformed transaction: fields, types or size."""


class BadSignature(ContractError):
    """The signature does not verify for the sender key."""


class WrongChain(ContractError):
    """The transaction names another chain id."""


class NonceUsed(ContractError):
    """This sender already used this nonce (or it is below the window)."""


class UnknownOp(ContractError):
    """No contract handles this op."""


class BadArguments(ContractError):
    """The op's arguments are missing, mistyped or out of range."""


class Unauthorized(ContractError):
    """The sender's organisation lacks the role this op needs."""


class UnknownAccount(ContractError):
    """The sender key belongs to no organisation."""


class InsufficientFunds(ContractError):
    """A balance would go negative."""


class NotFound(ContractError):
    """The record the op refers to does not exist."""


# Period errors shared by royalties, the pool and deals: one class each, so a client
# branching on the code sees one meaning whatever the family.


class PeriodAlreadyDistributed(ContractError):
    """This period (or a later one) was already distributed: each is paid out once."""


class PeriodOutOfOrder(ContractError):
    """Periods run in sequence: a royalty report needs the previous quarter's report; a
    deal distributes 1, 2, 3, ... (its breach trigger counts consecutive periods)."""
