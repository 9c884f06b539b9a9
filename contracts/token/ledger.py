"""The token ledger: BPC (payment) and BPR (pool access) balances per organisation.

Every contract moves value through `transfer_units`, so the two invariants — no
negative balance, supply constant outside minting — are enforced in one place.
"""

from __future__ import annotations

from typing import Any

from contracts import errors
from contracts.call import Call, Op
from contracts.state import State
from contracts.token.schemas import TransferArgs

ASSETS = ("BPC", "BPR")


def balance_of(state: State, asset: str, account: str) -> int:
    return state.get(f"bal/{asset}/{account}", 0)


def _set_balance(state: State, asset: str, account: str, amount: int) -> None:
    if amount < 0:
        raise errors.InsufficientFunds(f"{account} would hold {amount} {asset}")
    if amount == 0:
        state.delete(f"bal/{asset}/{account}")
    else:
        state.put(f"bal/{asset}/{account}", amount)


def transfer_units(state: State, asset: str, source: str, target: str, amount: int) -> None:
    """Move `amount` of `asset`; raises InsufficientFunds before writing anything."""
    if amount < 0:
        raise errors.BadArguments("amount must not be negative")
    have = balance_of(state, asset, source)
    if have < amount:
        raise errors.InsufficientFunds(f"{source} holds {have} {asset}, needs {amount}")
    if amount == 0 or source == target:
        return
    _set_balance(state, asset, source, have - amount)
    _set_balance(state, asset, target, balance_of(state, asset, target) + amount)


def mint(state: State, asset: str, account: str, amount: int) -> None:
    """Create units: only governance (BPC) and pool conversion (BPR) call this."""
    if amount < 0:
        raise errors.BadArguments("mint amount must not be negative")
    _set_balance(state, asset, account, balance_of(state, asset, account) + amount)
    state.put(f"supply/{asset}", state.get(f"supply/{asset}", 0) + amount)


def burn(state: State, asset: str, account: str, amount: int) -> None:
    """Destroy units (no op burns yet). A negative burn would be a mint in disguise."""
    if amount < 0:
        raise errors.BadArguments("burn amount must not be negative")
    _set_balance(state, asset, account, balance_of(state, asset, account) - amount)
    state.put(f"supply/{asset}", state.get(f"supply/{asset}", 0) - amount)


def _is_account(state: State, account: str) -> bool:
    return f"org/{account}" in state or account.startswith(("pool:", "deal:"))


def on_transfer(call: Call) -> None:
    args: TransferArgs = call.args
    if args.to == call.org:
        raise errors.BadArguments("token.transfer: `args.to` is the sender's own organisation")
    target = call.state.get(f"org/{args.to}")
    if target is None or target.get("removed", False):
        raise errors.UnknownAccount(f"no organisation {args.to!r}")
    transfer_units(call.state, "BPC", call.org, args.to, args.amount)
    call.emit("token", "transferred", asset="BPC", source=call.org, target=args.to,
              amount=args.amount)


def query_balance(state: State, account: str) -> dict[str, Any]:
    if not _is_account(state, account):
        raise errors.NotFound(f"no account {account!r}")
    return {"account": account, **{asset.lower(): balance_of(state, asset, account)
                                   for asset in ASSETS}}


def query_supply(state: State) -> dict[str, int]:
    return {asset.lower(): state.get(f"supply/{asset}", 0) for asset in ASSETS}


OPS = {"token.transfer": Op(on_transfer, args=TransferArgs,
                            doc="Move BPC to another organisation.")}
