"""Typed builders for the membership ops (generated; see `ipchain.sdk.builders`)."""

from __future__ import annotations

from typing import Any, Literal

from ipchain.sdk.opcall import UNSET, OpCall, Unset, build

__all__ = [
    "member_propose",
    "member_rotate_key",
    "member_vote",
]


def member_propose(*,
    action: Literal['add_org', 'grant_role', 'mint', 'remove_org', 'revoke_role'],
    params: dict[str, Any],
) -> OpCall:
    """Propose a governance action (add/remove org, roles, mint).

    action: what the proposal does once > 2/3 of admins approve
    params: the action's parameters: add_org {id, name, roles, keys}; remove_org {id}; grant_role / revoke_role {org, role}; mint {to, amount}
    """
    return build(
        'member.propose',
        action=action,
        params=params,
    )


def member_rotate_key(*,
    old: str,
    new: str,
    proof: str,
) -> OpCall:
    """Replace one of your organisation's keys.

    old: the key retired (one of yours)
    new: the new key (never used before)
    proof: the new key's Ed25519 signature (hex) over the rotation message
    """
    return build(
        'member.rotate_key',
        old=old,
        new=new,
        proof=proof,
    )


def member_vote(*,
    proposal: str,
    approve: bool,
) -> OpCall:
    """Vote on an open proposal; it executes at > 2/3 of admins.

    proposal: proposal id (16 hex)
    approve: true approves, false rejects
    """
    return build(
        'member.vote',
        proposal=proposal,
        approve=approve,
    )
