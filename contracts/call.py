"""What an op handler sees: the block, the call, the op's declaration.

Contract families import this module and never `contracts.runtime`, so the op
registry (contracts/catalogue.py) can import every family while the runtime imports
only the registry: no import cycle between the executor and the contracts it runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from contracts.schema import Args
from contracts.state import State
from contracts.tx import Transaction


@dataclass(frozen=True)
class BlockContext:
    chain_id: str
    height: int
    timestamp_ms: int
    """Chosen by the primary and agreed by the quorum: the only clock contracts see."""


@dataclass(frozen=True, init=False)
class Event:
    contract: str
    name: str
    data: dict[str, Any]

    def __init__(self, contract: str, name: str, data: dict[str, Any]) -> None:
        """Written to __dict__ directly, as `contracts.runtime.Receipt` is (the generated
        frozen __init__'s object.__setattr__ per field, once per event on every replica)."""
        fields = self.__dict__
        fields["contract"] = contract
        fields["name"] = name
        fields["data"] = data

    def to_value(self) -> dict[str, Any]:
        return {"contract": self.contract, "name": self.name, "data": self.data}


@dataclass
class Call:
    """What a handler sees: the state, the block, the transaction, its sender's org and
    the op's arguments decoded into the op's schema (contracts/schema.py)."""

    state: State
    ctx: BlockContext
    tx: Transaction
    org: str
    args: Any = None
    events: list[Event] = field(default_factory=list)

    def emit(self, contract: str, name: str, **data: Any) -> None:
        self.events.append(Event(contract, name, data))


@dataclass(frozen=True)
class Op:
    handler: Callable[[Call], None]
    roles: frozenset[str] | None = None
    """Roles any one of which the sender's organisation must hold; None = any member org."""
    args: type[Args] | None = None
    """The op's argument schema; the handler receives `call.args` decoded into it."""
    doc: str = ""
    """One line for the catalogue: what the op does."""


def org_of_key(state: State, sender_hex: str) -> str | None:
    return state.get(f"key/{sender_hex}")


def org_roles(state: State, org: str) -> list[str]:
    record = state.get(f"org/{org}")
    return [] if record is None else record["roles"]

