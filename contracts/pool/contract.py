"""The BPSA patent pool ("Proof of Patent"): BPC in, BPR out, BPR is a pool licence.

An admin creates a pool with a fixed BPR price (bpr_ratio = [num, den]: a conversion
of `amount` BPC yields floor(amount * num / den) BPR). An independent evaluator attests
that a patent is essential; then any of its owners may join it (a non-exclusive grant:
owners keep their bilateral rights, but no exclusive or sole licence may overlap it,
see contracts/licensing/scope.py). Implementers convert BPC into BPR; holding at least
one BPR of a pool, within its term when the pool sets one, licenses every patent in
that pool. The pool admin distributes the treasury per quarter: an admin fee, and the
rest to the contributing owners by their count of active, attested patents.

The price is set once at creation and no operation changes it, so a new contributor
dilutes the owners' shares of future distributions but never the licensees' price
(DOJ/FTC pool guidance: royalties should not depend on the number of members).

State: pool/<id>; pool_attest/<id>/<pid>; pool_member/<id>/<pid>; pooled/<pid>/<id>
(the day it joined, read by the exclusivity check); pool_bpr/<id>/<holder> (units this
pool minted to the holder and when its licence ends); pool_dist/<id>/<period>; the
treasury is the BPC account "pool:<id>".
"""

from __future__ import annotations

from typing import Any

from contracts import errors, registry
from contracts.errors import PeriodAlreadyDistributed  # noqa: F401  (shared; re-exported)
from contracts.licensing.scope import (
    ExclusiveConflict, add_days_iso, find_exclusive_from, get_block_iso, pooled_key,
)
from contracts.licensing.royalty import PeriodNotEnded, format_period, get_period_days, parse_period
from contracts.call import Call, Op
from contracts.pool.schemas import (
    AttestArgs, ConvertArgs, CreatePoolArgs, DistributeArgs, JoinArgs,
)
from contracts.split import split_by_weights
from contracts.state import State
from contracts.token.ledger import balance_of, mint, transfer_units

FULL_BPS = 10_000
MAX_AMOUNT = 2**62


class PoolNotFound(errors.NotFound):
    """No pool has this id."""


class NotPoolAdmin(errors.ContractError):
    """Only the organisation that created the pool distributes its treasury."""


class PatentNotAttested(errors.ContractError):
    """A patent joins a pool only after an evaluator attested its essentiality."""


class AlreadyAttested(errors.ContractError):
    """This patent is already attested for this pool."""


class AlreadyPooled(errors.ContractError):
    """This patent is already in this pool."""


class NotIndependent(errors.ContractError):
    """An evaluator may not attest a patent its own organisation owns."""


class EmptyTreasury(errors.ContractError):
    """The pool treasury holds no BPC to distribute."""


class NoContributors(errors.ContractError):
    """No active, attested patent is in the pool: there is nobody to pay."""



# -- pure calculations ---------------------------------------------------------------


def compute_bpr(amount_bpc: int, ratio: list[int]) -> tuple[int, int]:
    """(BPR minted, BPC taken): floor(amount * num / den) BPR, and the least BPC that
    buys exactly that many (ceil(bpr * den / num) <= amount), so no BPC is taken for a
    fraction of a BPR."""
    num, den = ratio
    bpr = amount_bpc * num // den
    return bpr, -(-bpr * den // num)


def compute_distribution(amount_bpc: int, admin_fee_bps: int,
                         weights: dict[str, int]) -> tuple[int, dict[str, int]]:
    """(admin fee, payouts by owner); fee + sum(payouts) == amount_bpc exactly."""
    fee = amount_bpc * admin_fee_bps // FULL_BPS
    return fee, split_by_weights(amount_bpc - fee, weights)


def treasury_account(pool_id: str) -> str:
    return f"pool:{pool_id}"


# -- reads ---------------------------------------------------------------------------


def get_pool(state: State, pool_id: Any) -> dict[str, Any]:
    record = (state.get(f"pool/{pool_id}") if isinstance(pool_id, str) and "/" not in pool_id
              else None)
    if record is None:
        raise PoolNotFound(f"no pool {pool_id!r}")
    return record


def get_members(state: State, pool_id: str) -> list[str]:
    prefix = f"pool_member/{pool_id}/"
    return [key[len(prefix):] for key in state.keys(prefix)]


def get_contribution_weights(state: State, pool_id: str, timestamp_ms: int) -> dict[str, int]:
    """Each active member patent weighs 10 000, split among its current owners by share:
    an owner's weight / 10 000 is its (fractional) count of contributed patents."""
    weights: dict[str, int] = {}
    for pid in get_members(state, pool_id):
        if registry.is_active(state, pid, timestamp_ms):
            for org, bps in registry.get_owners(state, pid):
                weights[org] = weights.get(org, 0) + bps
    return weights


def is_bpr_holding_live(holding: dict[str, Any] | None, today: str) -> bool:
    return (holding is not None and holding["units"] >= 1
            and (holding["expires_date"] is None or today <= holding["expires_date"]))


def get_licensing_pools(state: State, holder: str, pid: str, timestamp_ms: int) -> list[str]:
    """The pools holding `pid` in which `holder` has a live BPR holding."""
    if balance_of(state, "BPR", holder) < 1:
        return []
    today = get_block_iso(timestamp_ms)
    pools = []
    for key in state.keys(f"pooled/{pid}/"):
        pool_id = key.rsplit("/", 1)[1]
        if is_bpr_holding_live(state.get(f"pool_bpr/{pool_id}/{holder}"), today):
            pools.append(pool_id)
    return pools


def is_pool_licensed(state: State, holder: str, pid: str, timestamp_ms: int) -> bool:
    """Does `holder` hold a pool licence to `pid` now (>= 1 live BPR of a pool with it)?"""
    return bool(get_licensing_pools(state, holder, pid, timestamp_ms))


# -- handlers ------------------------------------------------------------------------


def require_active_patent(state: State, pid: str, timestamp_ms: int) -> None:
    registry.get_patent(state, pid)
    if not registry.is_active(state, pid, timestamp_ms):
        raise registry.PatentInactive(f"{pid} is {registry.get_status(state, pid, timestamp_ms)}")



def on_create(call: Call) -> None:
    args: CreatePoolArgs = call.args
    pool = {"id": call.tx.id[:16], "name": args.name, "admin": call.org,
            "admin_fee_bps": args.admin_fee_bps, "bpr_ratio": list(args.bpr_ratio),
            "bpr_term_days": args.bpr_term_days, "last_period": None, "converted_bpc": 0,
            "minted_bpr": 0, "distributed_bpc": 0, "height": call.ctx.height,
            "timestamp_ms": call.ctx.timestamp_ms}
    if f"pool/{pool['id']}" in call.state:
        raise errors.BadArguments("pool id collision; resend with another nonce")
    call.state.put(f"pool/{pool['id']}", pool)
    call.emit("pool", "created", pool=pool["id"], admin=call.org, bpr_ratio=pool["bpr_ratio"])


def on_attest(call: Call) -> None:
    args: AttestArgs = call.args
    basis = args.basis
    pool, pid = get_pool(call.state, args.pool), args.patent
    require_active_patent(call.state, pid, call.ctx.timestamp_ms)
    if registry.is_owner(call.state, pid, call.org):
        raise NotIndependent(f"{call.org} owns {pid}")
    key = f"pool_attest/{pool['id']}/{pid}"
    if key in call.state:
        raise AlreadyAttested(f"{pid} is already attested for pool {pool['id']}")
    call.state.put(key, {"evaluator": call.org, "basis": basis, "height": call.ctx.height,
                         "timestamp_ms": call.ctx.timestamp_ms})
    call.emit("pool", "attested", pool=pool["id"], patent=pid, evaluator=call.org)


def on_join(call: Call) -> None:
    pool, pid, now_ms = get_pool(call.state, call.args.pool), call.args.patent, call.ctx.timestamp_ms
    require_active_patent(call.state, pid, now_ms)
    if not registry.is_owner(call.state, pid, call.org):
        raise registry.NotOwner(f"{call.org} does not own {pid}")
    if registry.is_pledged(call.state, pid):
        raise registry.PatentPledged(f"{pid} is pledged; it may not be licensed to a pool")
    if f"pool_attest/{pool['id']}/{pid}" not in call.state:
        raise PatentNotAttested(f"{pid} has no essentiality attestation for pool {pool['id']}")
    if f"pool_member/{pool['id']}/{pid}" in call.state:
        raise AlreadyPooled(f"{pid} is already in pool {pool['id']}")
    today = get_block_iso(now_ms)
    exclusive = find_exclusive_from(call.state, pid, today)
    if exclusive is not None:
        raise ExclusiveConflict(f"{pid} is under {exclusive['kind']} licence {exclusive['id']} "
                                f"until {exclusive['end_date']}")
    call.state.put(f"pool_member/{pool['id']}/{pid}", {
        "joined_by": call.org, "date": today, "height": call.ctx.height, "timestamp_ms": now_ms})
    call.state.put(pooled_key(pid, pool["id"]), today)
    call.emit("pool", "joined", pool=pool["id"], patent=pid, by=call.org)


def on_convert(call: Call) -> None:
    pool, amount = get_pool(call.state, call.args.pool), call.args.bpc_amount
    bpr, taken_bpc = compute_bpr(amount, pool["bpr_ratio"])
    if not 0 < bpr <= MAX_AMOUNT:
        raise errors.BadArguments(f"{amount} BPC buys {bpr} BPR at {pool['bpr_ratio']}: "
                                  f"must be 1..{MAX_AMOUNT}")
    transfer_units(call.state, "BPC", call.org, treasury_account(pool["id"]), taken_bpc)
    mint(call.state, "BPR", call.org, bpr)
    key = f"pool_bpr/{pool['id']}/{call.org}"
    holding = call.state.get(key, {"units": 0, "expires_date": None})
    expires = None
    if pool["bpr_term_days"] is not None:
        expires = add_days_iso(get_block_iso(call.ctx.timestamp_ms), pool["bpr_term_days"] - 1)
        expires = max(expires, holding["expires_date"] or expires)
    call.state.put(key, {"units": holding["units"] + bpr, "expires_date": expires})
    call.state.put(f"pool/{pool['id']}", {
        **pool, "converted_bpc": pool["converted_bpc"] + taken_bpc,
        "minted_bpr": pool["minted_bpr"] + bpr})
    call.emit("pool", "converted", pool=pool["id"], holder=call.org, bpc=taken_bpc, bpr=bpr,
              expires_date=expires)


def on_distribute(call: Call) -> None:
    pool = get_pool(call.state, call.args.pool)
    if pool["admin"] != call.org:
        raise NotPoolAdmin(f"pool {pool['id']} is run by {pool['admin']}")
    year, quarter = parse_period(call.args.period)
    period = format_period(year, quarter)
    if pool["last_period"] is not None and period <= pool["last_period"]:
        raise PeriodAlreadyDistributed(f"pool {pool['id']} distributed {pool['last_period']}")
    if get_block_iso(call.ctx.timestamp_ms) <= get_period_days(year, quarter)[1].isoformat():
        raise PeriodNotEnded(f"{period} has not ended")
    treasury = treasury_account(pool["id"])
    amount = balance_of(call.state, "BPC", treasury)
    if amount == 0:
        raise EmptyTreasury(f"pool {pool['id']} holds no BPC")
    weights = get_contribution_weights(call.state, pool["id"], call.ctx.timestamp_ms)
    if not weights:
        raise NoContributors(f"pool {pool['id']} has no active patent")
    fee, payouts = compute_distribution(amount, pool["admin_fee_bps"], weights)
    transfer_units(call.state, "BPC", treasury, pool["admin"], fee)
    for org, part in payouts.items():
        transfer_units(call.state, "BPC", treasury, org, part)
    call.state.put(f"pool_dist/{pool['id']}/{period}", {
        "amount": amount, "fee": fee, "payouts": payouts,
        "patents": sum(weights.values()) // FULL_BPS,
        "height": call.ctx.height, "timestamp_ms": call.ctx.timestamp_ms})
    call.state.put(f"pool/{pool['id']}", {**pool, "last_period": period,
                                          "distributed_bpc": pool["distributed_bpc"] + amount})
    call.emit("pool", "distributed", pool=pool["id"], period=period, amount=amount, fee=fee,
              payouts=payouts)


# -- queries -------------------------------------------------------------------------


def describe_pool(state: State, now_ms: int, pool: dict[str, Any]) -> dict[str, Any]:
    members = []
    for pid in get_members(state, pool["id"]):
        member = state.get(f"pool_member/{pool['id']}/{pid}")
        members.append({"patent": pid, "joined": member["date"], "joined_by": member["joined_by"],
                        "active": registry.is_active(state, pid, now_ms),
                        "owners": registry.get_owners(state, pid)})
    attest_prefix = f"pool_attest/{pool['id']}/"
    holder_prefix = f"pool_bpr/{pool['id']}/"
    return {
        **pool, "treasury_bpc": balance_of(state, "BPC", treasury_account(pool["id"])),
        "members": members,
        "attested": [key[len(attest_prefix):] for key in state.keys(attest_prefix)],
        "holders": {key[len(holder_prefix):]: value for key, value in state.items(holder_prefix)},
        "distributions": {key.rsplit("/", 1)[1]: value
                          for key, value in state.items(f"pool_dist/{pool['id']}/")},
    }


def query_pools(state: State, now_ms: int, pool_id: str | None = None) -> Any:
    """/pools: every pool in brief; /pools/<id>: one, with members and treasury."""
    if pool_id is not None:
        return describe_pool(state, now_ms, get_pool(state, pool_id))
    return [value for _, value in state.items("pool/")]


def query_pool_licensed(state: State, now_ms: int, holder: str, pid: str) -> dict[str, Any]:
    pools = get_licensing_pools(state, holder, pid, now_ms)
    return {"holder": holder, "patent": pid, "licensed": bool(pools), "pools": pools}


OPS = {
    "pool.create": Op(on_create, roles=frozenset({"admin"}), args=CreatePoolArgs,
                      doc="Create a patent pool that you run."),
    "pool.attest": Op(on_attest, roles=frozenset({"evaluator"}), args=AttestArgs,
                      doc="Attest that a patent is essential to a pool (not one you own)."),
    "pool.join": Op(on_join, roles=frozenset({"member"}), args=JoinArgs,
                    doc="Put an attested patent you own into a pool."),
    "pool.convert": Op(on_convert, roles=frozenset({"member"}), args=ConvertArgs,
                       doc="Convert BPC into the pool's BPR access tokens."),
    "pool.distribute": Op(on_distribute, roles=frozenset({"admin"}), args=DistributeArgs,
                          doc="Distribute the treasury for an ended quarter to contributors."),
}
QUERIES = {"pools": query_pools, "pool_licensed": query_pool_licensed}
