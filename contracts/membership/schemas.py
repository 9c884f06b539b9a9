"""Argument schemas of the membership ops (contracts/schema.py).

A proposal's `params` depend on its `action`; each action's params are a struct of
their own (ACTION_PARAMS), checked when the proposal is decoded, so a misspelt param
is refused at admission like any other argument.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from contracts.schema import Amount, Args, Hex32, OrgId, RecordId, describe, whole

Role = Literal["admin", "office", "member", "evaluator", "investor", "trustee", "regulator"]
OrgName = Annotated[str, Meta(min_length=1, max_length=256, description="display name")]
Keys = Annotated[list[Hex32], Meta(min_length=1, max_length=64,
                                   description="Ed25519 public keys, distinct, never used before")]


class AddOrgParams(Args, frozen=True):
    """add_org: admit a new organisation."""

    id: Annotated[OrgId, Meta(description="the new organisation's id (never reused)")]
    name: OrgName
    roles: Annotated[list[Role], Meta(min_length=1, max_length=7, description="its roles")]
    keys: Keys


class RemoveOrgParams(Args, frozen=True):
    """remove_org: an organisation loses its roles and keys (its record stays)."""

    id: Annotated[OrgId, Meta(description="the organisation removed")]


class RoleParams(Args, frozen=True):
    """grant_role / revoke_role: one role of one organisation."""

    org: OrgId
    role: Role


class MintParams(Args, frozen=True):
    """mint: create BPC for an organisation."""

    to: OrgId
    amount: Annotated[Amount, Meta(description="BPC minor units created, 1 .. 2^62")]


ACTION_PARAMS: dict[str, type[Args]] = {
    "add_org": AddOrgParams, "remove_org": RemoveOrgParams, "grant_role": RoleParams,
    "revoke_role": RoleParams, "mint": MintParams,
}


class ProposeArgs(Args, frozen=True):
    """An admin proposes a governance action (and approves it by proposing)."""

    action: Annotated[Literal["add_org", "remove_org", "grant_role", "revoke_role", "mint"],
                      Meta(description="what the proposal does once > 2/3 of admins approve")]
    params: Annotated[dict[str, Any], Meta(
        description="the action's parameters: add_org {id, name, roles, keys}; remove_org "
                    "{id}; grant_role / revoke_role {org, role}; mint {to, amount}")]

    def __post_init__(self) -> None:
        try:
            msgspec.convert(self.params, type=ACTION_PARAMS[self.action], strict=True)
        except msgspec.ValidationError as exc:
            raise ValueError(f"params of {self.action}: "
                             + describe(exc).replace("`args", "`args.params")) from None


class VoteArgs(Args, frozen=True):
    """An admin votes on an open proposal."""

    proposal: Annotated[RecordId, Meta(description="proposal id (16 hex)")]
    approve: Annotated[bool, Meta(description="true approves, false rejects")]


class RotateKeyArgs(Args, frozen=True):
    """Replace one of your organisation's keys; the new key signs the rotation."""

    old: Annotated[Hex32, Meta(description="the key retired (one of yours)")]
    new: Annotated[Hex32, Meta(description="the new key (never used before)")]
    proof: Annotated[str, Meta(pattern=whole(r"[0-9a-f]{128}"), description=(
        "the new key's Ed25519 signature (hex) over the rotation message"))]
