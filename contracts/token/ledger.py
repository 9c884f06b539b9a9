"""The token ledger: BPC (payment) and BPR (pool access) balances per organisation.

Every contract moves value through `transfer_units`, so the two invariants — no
negative balance, supply constant outside minting — are enforced in one place.
"""

from __future__ import annotations

from typing import Any

from contracts import errors
from contracts.call import Call, Event, Op
from contracts.state import State
from contracts.token.schemas import TransferArgs

ASSETS = ("BPC", "BPR")


def balance_of(state: State, asset: str, account: str) -> int:
    return state.get(f"bal/{asset}/{account}", 0)


def _set_balance(state: State, asset: str, account: str, amount: int) -> None:
    _set_balance_at(state, f"bal/{asset}/{account}", account, asset, amount)


def transfer_units(state: State, asset: str, source: str, target: str, amount: int) -> None:
    """Move `amount` of `asset`; raises InsufficientFunds before writing anything."""
    if amount < 0:
        raise errors.BadArguments("amount must not be negative")
    source_key = f"bal/{asset}/{source}"
    have = state.get(source_key, 0)
    if have < amount:
        raise errors.InsufficientFunds(f"{source} holds {have} {asset}, needs {amount}")
    if amount == 0 or source == target:
        return
    # `_set_balance` of both sides with each key formatted once (every transfer of
    # every block runs this): the source keeps have - amount >= 0, deleted at zero.
    if have == amount:
        state.delete(source_key)
    else:
        state.put(source_key, have - amount)
    target_key = f"bal/{asset}/{target}"
    balance = state.get(target_key, 0) + amount
    if balance > 0:  # always, as no balance is negative: `_set_balance_at` without its call
        state.put(target_key, balance)
    else:
        _set_balance_at(state, target_key, target, asset, balance)


def _set_balance_at(state: State, key: str, account: str, asset: str, amount: int) -> None:
    """`_set_balance` with the balance's key already formatted."""
    if amount < 0:
        raise errors.InsufficientFunds(f"{account} would hold {amount} {asset}")
    if amount == 0:
        state.delete(key)
    else:
        state.put(key, amount)


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


def _is_live_org(record: dict[str, Any] | None) -> bool:
    """An organisation record that exists and is not removed (read through
    `State.view`: decoding the record cost more than the rest of a transfer's check)."""
    return record is not None and not record.get("removed", False)


def on_transfer(call: Call) -> None:
    call.events.append(transfer_bpc(call.state, call.org, call.args))


def transfer_bpc(state: State, org: str, args: TransferArgs) -> Event:
    """token.transfer from `org`: its rules and writes, returning its one event. The
    runtime calls this directly for the op (contracts/runtime.py `DIRECT_HANDLERS`),
    without building a Call, which cost a tenth of a transfer's execution."""
    to, amount = args.to, args.amount
    if to == org:
        raise errors.BadArguments("token.transfer: `args.to` is the sender's own organisation")
    if not state.view(f"org/{to}", _is_live_org):
        raise errors.UnknownAccount(f"no organisation {to!r}")
    transfer_units(state, "BPC", org, to, amount)
    return Event("token", "transferred",
                 {"asset": "BPC", "source": org, "target": to, "amount": amount})


def query_balance(state: State, account: str) -> dict[str, Any]:
    if not _is_account(state, account):
        raise errors.NotFound(f"no account {account!r}")
    return {"account": account, **{asset.lower(): balance_of(state, asset, account)
                                   for asset in ASSETS}}


def query_supply(state: State) -> dict[str, int]:
    return {asset.lower(): state.get(f"supply/{asset}", 0) for asset in ASSETS}


OPS = {"token.transfer": Op(on_transfer, args=TransferArgs,
                            doc="Move BPC to another organisation.")}
