"""Membership: who belongs to the alliance, with which roles, and with which keys.

Governance is a proposal that admins vote on. It passes when strictly more than two
thirds of the *current* admins approve (counted at each vote, so an admin removed in
the meantime no longer counts) and it executes in the transaction that carries the
deciding vote, exactly once. Each action is checked when proposed and again when it
executes: the world may have changed in between, and a proposal that can no longer run
closes as "failed" instead of blocking later votes.

Organisations are never deleted: a removed one keeps its record (patents and receipts
still name it) but loses its roles and keys, and its id and keys are never reused, so
nothing it signed before can be replayed as someone else.
"""

from __future__ import annotations

import re
from typing import Any, Callable

import nacl.exceptions
import nacl.signing

from contracts import errors
from contracts.token import ledger as token
from contracts.codec import encode
from contracts.genesis import ROLES, get_contract_config
from contracts.call import BlockContext, Call, Op
from contracts.membership.schemas import ProposeArgs, RotateKeyArgs, VoteArgs
from contracts.state import State

ROTATION_DOMAIN = b"ipchain/key-rotation/v1"
"""The new key signs its own rotation, under a domain of its own so that no other
signature can be replayed as one."""
ORG_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""No '/' or ':': ids are parts of state keys, and "pool:"/"deal:" name contract accounts."""
KEY_RE = re.compile(r"[0-9a-f]{64}")
MAX_SUPPLY = 2**63 - 1
"""The codec's integer range: a mint that would pass it is refused, not crashed on."""


class OrgExists(errors.ContractError):
    """This organisation id is (or was) taken; ids are never reused."""


class KeyInUse(errors.ContractError):
    """This key belongs, or once belonged, to an organisation."""


class LastAdmin(errors.ContractError):
    """The change would leave the alliance without any admin to govern it."""


class RoleHeld(errors.ContractError):
    """The organisation already holds this role."""


class RoleNotHeld(errors.ContractError):
    """The organisation does not hold this role."""


class ProposalClosed(errors.ContractError):
    """The proposal was already executed, rejected, failed or has expired."""


class AlreadyVoted(errors.ContractError):
    """Each admin organisation votes once per proposal."""


class BadProof(errors.ContractError):
    """The new key's signature over its own rotation does not verify."""


# -- reads ------------------------------------------------------------------------------


def get_org(state: State, org: Any) -> dict[str, Any]:
    record = state.get(f"org/{org}") if isinstance(org, str) else None
    if record is None:
        raise errors.NotFound(f"no organisation {org!r}")
    return record


def is_org_active(state: State, org: Any) -> bool:
    record = state.get(f"org/{org}") if isinstance(org, str) else None
    return record is not None and not record.get("removed", False)


def get_admins(state: State) -> list[str]:
    """Current admin organisations, sorted: the electorate of every vote."""
    return [record["id"] for _, record in state.items("org/")
            if "admin" in record["roles"] and not record.get("removed", False)]


def compute_approvals_needed(admin_count: int) -> int:
    """The fewest approvals that are strictly more than two thirds of the admins."""
    return admin_count * 2 // 3 + 1


def is_key_fresh(state: State, key: str) -> bool:
    return f"key/{key}" not in state and f"retired_key/{key}" not in state


# -- checking arguments --------------------------------------------------------------------


def check_org_id(value: Any) -> str:
    if not isinstance(value, str) or not ORG_ID_RE.fullmatch(value):
        raise errors.BadArguments("organisation ids: letters, digits, '.', '_', '-' (<= 64)")
    return value


def check_active_org(state: State, value: Any) -> dict[str, Any]:
    record = get_org(state, check_org_id(value))
    if record.get("removed", False):
        raise errors.NotFound(f"organisation {value!r} was removed")
    return record


def check_role(value: Any) -> str:
    # Type first: a list or map is unhashable, and `in ROLES` would crash on it.
    if not isinstance(value, str) or value not in ROLES:
        raise errors.BadArguments(f"role must be one of {sorted(ROLES)}")
    return value


def check_new_keys(state: State, keys: Any) -> list[str]:
    if not isinstance(keys, list) or not keys or len(set(map(str, keys))) != len(keys):
        raise errors.BadArguments("keys must be a non-empty list of distinct keys")
    for key in keys:
        if not isinstance(key, str) or not KEY_RE.fullmatch(key):
            raise errors.BadArguments("a key is 32 bytes as 64 lowercase hex digits")
        if not is_key_fresh(state, key):
            raise KeyInUse(f"key {key} is or was registered")
    return sorted(keys)


def check_params(params: Any, names: set[str]) -> dict[str, Any]:
    if not isinstance(params, dict) or set(params) != names:
        raise errors.BadArguments(f"params must have exactly {sorted(names)}")
    return params


# -- governance actions: check (no writes), then apply ----------------------------------------


def check_add_org(state: State, p: dict[str, Any]) -> None:
    check_params(p, {"id", "name", "roles", "keys"})
    if f"org/{check_org_id(p['id'])}" in state:
        raise OrgExists(f"organisation id {p['id']!r} is taken")
    if not isinstance(p["name"], str) or not p["name"].strip() or len(p["name"]) > 256:
        raise errors.BadArguments("name must be a non-empty string of at most 256")
    if not isinstance(p["roles"], list) or not p["roles"]:
        raise errors.BadArguments("roles must be a non-empty list")
    for role in p["roles"]:
        check_role(role)
    check_new_keys(state, p["keys"])


def apply_add_org(state: State, p: dict[str, Any], ctx: BlockContext) -> None:
    state.put(f"org/{p['id']}", {"id": p["id"], "name": p["name"],
                                 "roles": sorted(set(p["roles"])), "keys": sorted(p["keys"])})
    for key in p["keys"]:
        state.put(f"key/{key}", p["id"])


def check_remove_org(state: State, p: dict[str, Any]) -> None:
    record = check_active_org(state, check_params(p, {"id"})["id"])
    if "admin" in record["roles"] and get_admins(state) == [p["id"]]:
        raise LastAdmin("cannot remove the last admin")


def apply_remove_org(state: State, p: dict[str, Any], ctx: BlockContext) -> None:
    record = get_org(state, p["id"])
    for key in record["keys"]:
        state.delete(f"key/{key}")
        state.put(f"retired_key/{key}", p["id"])
    state.put(f"org/{p['id']}", {**record, "roles": [], "keys": [], "removed": True,
                                 "removed_height": ctx.height})


def check_grant_role(state: State, p: dict[str, Any]) -> None:
    record = check_active_org(state, check_params(p, {"org", "role"})["org"])
    if check_role(p["role"]) in record["roles"]:
        raise RoleHeld(f"{p['org']} already holds {p['role']}")


def apply_grant_role(state: State, p: dict[str, Any], ctx: BlockContext) -> None:
    record = get_org(state, p["org"])
    state.put(f"org/{p['org']}", {**record, "roles": sorted({*record["roles"], p["role"]})})


def check_revoke_role(state: State, p: dict[str, Any]) -> None:
    record = check_active_org(state, check_params(p, {"org", "role"})["org"])
    if check_role(p["role"]) not in record["roles"]:
        raise RoleNotHeld(f"{p['org']} does not hold {p['role']}")
    if p["role"] == "admin" and get_admins(state) == [p["org"]]:
        raise LastAdmin("cannot revoke the last admin")


def apply_revoke_role(state: State, p: dict[str, Any], ctx: BlockContext) -> None:
    record = get_org(state, p["org"])
    state.put(f"org/{p['org']}", {**record,
                                  "roles": [r for r in record["roles"] if r != p["role"]]})


def check_mint(state: State, p: dict[str, Any]) -> None:
    check_active_org(state, check_params(p, {"to", "amount"})["to"])
    amount = p["amount"]
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise errors.BadArguments("amount must be a positive integer (BPC minor units)")
    if state.get("supply/BPC", 0) + amount > MAX_SUPPLY:
        raise errors.BadArguments("the mint would overflow the BPC supply")


def apply_mint(state: State, p: dict[str, Any], ctx: BlockContext) -> None:
    token.mint(state, "BPC", p["to"], p["amount"])


Check = Callable[[State, dict[str, Any]], None]
Apply = Callable[[State, dict[str, Any], BlockContext], None]
ACTIONS: dict[str, tuple[Check, Apply]] = {
    "add_org": (check_add_org, apply_add_org),
    "remove_org": (check_remove_org, apply_remove_org),
    "grant_role": (check_grant_role, apply_grant_role),
    "revoke_role": (check_revoke_role, apply_revoke_role),
    "mint": (check_mint, apply_mint),
}


# -- proposals and votes ---------------------------------------------------------------------


def get_proposal(state: State, pid: Any) -> dict[str, Any]:
    record = state.get(f"proposal/{pid}") if isinstance(pid, str) else None
    if record is None:
        raise errors.NotFound(f"no proposal {pid!r}")
    return record


def get_proposal_status(proposal: dict[str, Any], timestamp_ms: int) -> str:
    """"expired" is derived, like a patent's EXPIRED: nobody has to close it."""
    if proposal["status"] == "open" and timestamp_ms >= proposal["expires_ms"]:
        return "expired"
    return proposal["status"]


def compute_tally(state: State, proposal: dict[str, Any]) -> dict[str, int]:
    """Votes of current admins only; the threshold moves with the admin set."""
    admins = get_admins(state)
    votes = proposal["votes"]
    return {"admins": len(admins), "needed": compute_approvals_needed(len(admins)),
            "yes": sum(1 for a in admins if votes.get(a) is True),
            "no": sum(1 for a in admins if votes.get(a) is False)}


def process_tally(call: Call, proposal: dict[str, Any]) -> dict[str, Any]:
    """Close the proposal if the vote is decided; execute it if it passed."""
    tally = compute_tally(call.state, proposal)
    if tally["yes"] >= tally["needed"]:
        check, apply = ACTIONS[proposal["action"]]
        try:
            check(call.state, proposal["params"])
        except errors.ContractError as exc:
            return close(call, proposal, "failed", f"{exc.code}: {exc}")
        apply(call.state, proposal["params"], call.ctx)
        return close(call, proposal, "executed", "")
    if tally["admins"] - tally["no"] < tally["needed"]:
        return close(call, proposal, "rejected", "too many admins voted no")
    return proposal


def close(call: Call, proposal: dict[str, Any], status: str, reason: str) -> dict[str, Any]:
    call.emit("membership", f"proposal_{status}", proposal=proposal["id"],
              action=proposal["action"], reason=reason)
    return {**proposal, "status": status, "reason": reason, "closed_height": call.ctx.height}


def on_propose(call: Call) -> None:
    """An admin proposes an action and approves it by doing so."""
    args: ProposeArgs = call.args
    ACTIONS[args.action][0](call.state, args.params)
    ttl_ms = get_contract_config(call.state)["proposal_ttl_ms"]
    proposal = {"id": call.tx.id[:16], "action": args.action, "params": args.params,
                "proposer": call.org, "votes": {call.org: True}, "status": "open",
                "reason": "", "created_height": call.ctx.height,
                "expires_ms": call.ctx.timestamp_ms + ttl_ms, "closed_height": None}
    if f"proposal/{proposal['id']}" in call.state:
        raise errors.BadArguments("proposal id collision; resubmit with another nonce")
    call.emit("membership", "proposed", proposal=proposal["id"], action=args.action,
              params=args.params)
    call.state.put(f"proposal/{proposal['id']}", process_tally(call, proposal))


def on_vote(call: Call) -> None:
    args: VoteArgs = call.args
    proposal = get_proposal(call.state, args.proposal)
    status = get_proposal_status(proposal, call.ctx.timestamp_ms)
    if status != "open":
        raise ProposalClosed(f"proposal {proposal['id']} is {status}")
    if call.org in proposal["votes"]:
        raise AlreadyVoted(f"{call.org} already voted on {proposal['id']}")
    proposal["votes"][call.org] = args.approve
    call.emit("membership", "voted", proposal=proposal["id"], by=call.org,
              approve=args.approve)
    call.state.put(f"proposal/{proposal['id']}", process_tally(call, proposal))


# -- keys ----------------------------------------------------------------------------------------


def compute_rotation_message(chain_id: str, org: str, old: str, new: str) -> bytes:
    """What the new key signs: it names the chain, the organisation and the old key, so
    the proof cannot be reused on another chain, for another org or another rotation."""
    return ROTATION_DOMAIN + encode({"chain": chain_id, "org": org, "old": old, "new": new})


def check_rotation_proof(call: Call, old: str, new: str) -> None:
    """Proof of possession: without it an organisation could register someone else's
    public key and so lock that key out of the alliance."""
    proof = call.args.proof
    try:
        nacl.signing.VerifyKey(bytes.fromhex(new)).verify(
            compute_rotation_message(call.ctx.chain_id, call.org, old, new),
            bytes.fromhex(proof))
    except (ValueError, TypeError, nacl.exceptions.BadSignatureError,
            nacl.exceptions.ValueError) as exc:
        raise BadProof("the new key's signature over the rotation does not verify") from exc


def on_rotate_key(call: Call) -> None:
    """An organisation replaces one of its own keys; the old one is retired for good."""
    old, new = call.args.old, call.args.new
    record = get_org(call.state, call.org)
    if old not in record["keys"]:
        raise errors.Unauthorized(f"{old} is not a key of {call.org}")
    check_new_keys(call.state, [new])
    check_rotation_proof(call, old, new)
    call.state.delete(f"key/{old}")
    call.state.put(f"retired_key/{old}", call.org)
    call.state.put(f"key/{new}", call.org)
    call.state.put(f"org/{call.org}", {**record, "keys": sorted(
        [k for k in record["keys"] if k != old] + [new])})
    call.emit("membership", "key_rotated", org=call.org, old=old, new=new)


# -- queries ---------------------------------------------------------------------------------------


def query_orgs(state: State, now_ms: int, org: str | None = None) -> Any:
    if org is None:
        return [record for _, record in state.items("org/")]
    return {**get_org(state, org), "active": is_org_active(state, org)}


def describe_proposal(state: State, proposal: dict[str, Any], now_ms: int) -> dict[str, Any]:
    return {**proposal, "status": get_proposal_status(proposal, now_ms),
            "tally": compute_tally(state, proposal)}


def query_proposals(state: State, now_ms: int, pid: str | None = None) -> Any:
    if pid is None:
        return [describe_proposal(state, p, now_ms) for _, p in state.items("proposal/")]
    return describe_proposal(state, get_proposal(state, pid), now_ms)


OPS = {
    "member.propose": Op(on_propose, roles=frozenset({"admin"}), args=ProposeArgs,
                         doc="Propose a governance action (add/remove org, roles, mint)."),
    "member.vote": Op(on_vote, roles=frozenset({"admin"}), args=VoteArgs,
                      doc="Vote on an open proposal; it executes at > 2/3 of admins."),
    "member.rotate_key": Op(on_rotate_key, args=RotateKeyArgs,
                            doc="Replace one of your organisation's keys."),
}
QUERIES = {"orgs": query_orgs, "proposals": query_proposals}
