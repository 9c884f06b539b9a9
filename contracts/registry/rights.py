"""Ownership and pledges: changes that every current owner must sign.

Co-owners sign one at a time, in separate transactions (their keys live in different
organisations), so a change is a pending *consent*: the first signer states the terms,
the others sign the same terms, and the change happens in the transaction that adds the
last required signature. Signing different terms replaces the pending ones, so that no
signature ever counts for terms its signer did not see.

Pledges follow Civil Code Art. 444: a pledged patent is not transferred unless the
pledgee agrees; the pledgee releases it when paid, or after `until` takes it over.
"""

from __future__ import annotations

from typing import Any

from contracts import errors
from contracts.registry.core import (
    FULL_SHARE_BPS, PatentInactive, PatentPledged, check_shares, get_block_date, get_patent,
    get_pledge, get_superseded_by, is_owner, is_pledged, parse_date, require_active,
    require_owner, require_right_holder,
)
from contracts.call import Call, Op
from contracts.registry.schemas import AssignArgs, PatentRef, PledgeArgs
from contracts.state import State

CONSENT_KINDS = ("assign", "pledge", "withdraw")


class AlreadyApproved(errors.ContractError):
    """This organisation already signed the pending terms."""


class NoPendingAssignment(errors.ContractError):
    """There is no pending assignment of this patent to approve."""


class AssignmentMismatch(errors.ContractError):
    """The approval names other terms than the pending assignment."""


class NotPledged(errors.ContractError):
    """The patent carries no pledge."""


class NotPledgee(errors.ContractError):
    """Only the pledgee may release or enforce a pledge."""


class PledgeNotDue(errors.ContractError):
    """A pledge can be enforced only after its `until` date has passed."""


class PledgeHeldForLoan(errors.ContractError):
    """The pledge secures an exchange loan: it ends through loan.repay, loan.enforce or a
    sale on the exchange, which settle the loan with it."""


# -- consents ------------------------------------------------------------------------------


def get_consent(state: State, kind: str, pid: str) -> dict[str, Any] | None:
    return state.get(f"consent/{kind}/{pid}")


def clear_consents(state: State, pid: str) -> None:
    """New owners (or a replaced record) void what the previous ones had half-signed."""
    for kind in CONSENT_KINDS:
        state.delete(f"consent/{kind}/{pid}")


def record_consent(state: State, kind: str, pid: str, terms: dict[str, Any], org: str,
                   required: set[str], *, may_replace: bool = True) -> bool:
    """Add `org`'s signature to `terms`; True (and the consent is consumed) once every
    organisation in `required` has signed those exact terms.

    Signers are checked against `required` when counting, not when signing, so an
    organisation that stopped being an owner in between does not count.
    """
    key = f"consent/{kind}/{pid}"
    pending = state.get(key)
    if pending is not None and pending["terms"] == terms:
        approvals = set(pending["approvals"])
        if org in approvals and not required <= approvals:
            raise AlreadyApproved(f"{org} already signed this {kind} of {pid}")
    elif not may_replace:
        if pending is None:
            raise NoPendingAssignment(f"no pending {kind} of {pid}")
        raise AssignmentMismatch(f"the pending {kind} of {pid} has other terms")
    else:
        approvals = set()
    approvals.add(org)
    if required <= approvals:
        state.delete(key)
        return True
    state.put(key, {"terms": terms, "approvals": sorted(approvals)})
    return False


# -- assignment ----------------------------------------------------------------------------


def compute_assign_signers(state: State, patent: dict[str, Any]) -> set[str]:
    signers = {org for org, _ in patent["owners"]}
    pledge = get_pledge(state, patent["id"])
    return signers | {pledge["pledgee"]} if pledge else signers


def check_assignable(state: State, patent: dict[str, Any], to: Any) -> list[list[Any]]:
    successor = get_superseded_by(state, patent["id"])
    if successor is not None:
        raise PatentInactive(f"{patent['id']} was superseded by {successor}")
    pledge = get_pledge(state, patent["id"])
    if pledge is not None and pledge.get("loan") is not None:
        raise PledgeHeldForLoan(f"{patent['id']} secures loan {pledge['loan']}; sell it on "
                                f"the exchange or repay the loan first")
    shares = check_shares(state, to, "to")
    if shares == patent["owners"]:
        raise errors.BadArguments("the assignment does not change the owners")
    return shares


def on_assign(call: Call) -> None:
    """An owner proposes (or co-signs) new owners; done when all owners, and the pledgee
    if the patent is pledged, have signed."""
    state, pid = call.state, call.args.patent
    patent = require_owner(state, pid, call.org)
    shares = check_assignable(state, patent, call.args.to_value()["to"])
    done = record_consent(state, "assign", pid, {"to": shares}, call.org,
                          compute_assign_signers(state, patent))
    finish_assign(call, pid, shares, done)


def on_approve_assign(call: Call) -> None:
    """A co-owner or the pledgee signs the pending assignment; `to` repeats its terms so
    that nobody approves an assignment that was replaced under them."""
    state, pid = call.state, call.args.patent
    patent = get_patent(state, pid)
    signers = compute_assign_signers(state, patent)
    if call.org not in signers:
        raise errors.Unauthorized(f"{call.org} is neither an owner nor the pledgee of {pid}")
    shares = check_assignable(state, patent, call.args.to_value()["to"])
    done = record_consent(state, "assign", pid, {"to": shares}, call.org, signers,
                          may_replace=False)
    finish_assign(call, pid, shares, done)


def finish_assign(call: Call, pid: str, shares: list[list[Any]], done: bool) -> None:
    if not done:
        call.emit("registry", "assign_approved", patent=pid, by=call.org, to=shares)
        return
    pledge = get_pledge(call.state, pid)
    previous = set_owners(call.state, pid, shares)
    if pledge is not None and is_owner(call.state, pid, pledge["pledgee"]):
        # The pledgee now owns (part of) the collateral: a pledge over one's own right
        # is meaningless, so it ends here rather than lingering as a blocker.
        call.state.delete(f"pledge/{pid}")
        call.emit("registry", "pledge_released", patent=pid, pledgee=pledge["pledgee"])
    call.emit("registry", "assigned", patent=pid, previous=previous, owners=shares)


def set_owners(state: State, pid: str, shares: list[list[Any]]) -> list[list[Any]]:
    patent = get_patent(state, pid)
    previous = patent["owners"]
    patent["owners"] = shares
    state.put(f"patent/{pid}", patent)
    clear_consents(state, pid)
    return previous


# -- pledges -------------------------------------------------------------------------------


def check_pledge_terms(call: Call, pid: str) -> dict[str, Any]:
    args: PledgeArgs = call.args
    state = call.state
    require_active(state, pid, call.ctx.timestamp_ms)
    if is_pledged(state, pid):
        raise PatentPledged(f"{pid} is already pledged")
    require_right_holder(state, args.pledgee, "pledgee")
    if is_owner(state, pid, args.pledgee):
        raise errors.BadArguments("an owner cannot be the pledgee of its own patent")
    if parse_date(args.until, "until") <= get_block_date(call.ctx.timestamp_ms):
        raise errors.BadArguments("until must be after the block's date")
    return {"pledgee": args.pledgee, "amount": args.amount, "until": args.until}


def on_pledge(call: Call) -> None:
    """Every owner signs the same terms; the pledge exists from the last signature."""
    state, pid = call.state, call.args.patent
    patent = require_owner(state, pid, call.org)
    terms = check_pledge_terms(call, pid)
    owners = {org for org, _ in patent["owners"]}
    if not record_consent(state, "pledge", pid, terms, call.org, owners):
        call.emit("registry", "pledge_approved", patent=pid, by=call.org, **terms)
        return
    state.put(f"pledge/{pid}", {**terms, "pledgors": patent["owners"],
                                "height": call.ctx.height, "timestamp_ms": call.ctx.timestamp_ms})
    call.emit("registry", "pledged", patent=pid, **terms)


def require_pledgee(call: Call) -> tuple[str, dict[str, Any]]:
    pid = call.args.patent
    get_patent(call.state, pid)
    pledge = get_pledge(call.state, pid)
    if pledge is None:
        raise NotPledged(f"{pid} is not pledged")
    if pledge["pledgee"] != call.org:
        raise NotPledgee(f"{pid} is pledged to {pledge['pledgee']}, not {call.org}")
    if pledge.get("loan") is not None:
        raise PledgeHeldForLoan(f"{pid} secures loan {pledge['loan']}: use loan.enforce")
    return pid, pledge


def on_release(call: Call) -> None:
    """The debt is paid: the pledgee lets go."""
    pid, pledge = require_pledgee(call)
    call.state.delete(f"pledge/{pid}")
    call.emit("registry", "pledge_released", patent=pid, pledgee=pledge["pledgee"])


def on_enforce(call: Call) -> None:
    """Unpaid after `until`: the patent passes whole to the pledgee."""
    pid, pledge = require_pledgee(call)
    if get_block_date(call.ctx.timestamp_ms) <= parse_date(pledge["until"], "until"):
        raise PledgeNotDue(f"the pledge on {pid} runs until {pledge['until']}")
    call.state.delete(f"pledge/{pid}")
    previous = set_owners(call.state, pid, [[call.org, FULL_SHARE_BPS]])
    call.emit("registry", "pledge_enforced", patent=pid, pledgee=call.org, previous=previous)


OPS = {
    "patent.assign": Op(on_assign, args=AssignArgs,
                        doc="Propose or co-sign new owners (all owners and any pledgee sign)."),
    "patent.approve_assign": Op(on_approve_assign, args=AssignArgs,
                                doc="Co-sign the pending assignment, repeating its terms."),
    "patent.pledge": Op(on_pledge, args=PledgeArgs,
                        doc="Pledge a patent as collateral (every owner signs the terms)."),
    "patent.release": Op(on_release, args=PatentRef,
                         doc="The pledgee releases its pledge."),
    "patent.enforce": Op(on_enforce, args=PatentRef,
                         doc="After `until`, the pledgee takes the patent whole."),
}
