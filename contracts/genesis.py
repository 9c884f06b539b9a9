"""Genesis: the organisations, their keys, roles and BPC, and the contracts' settings.

The genesis document is JSON (as in CometBFT's genesis.json). Everything here is
validated before any state is built, so a bad genesis fails loudly at start-up rather
than as a divergent state root later.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from contracts import errors
from contracts.schema import AMOUNT_MAX, Args, Bps, OrgId, describe, whole
from contracts.state import State

ROLES = frozenset({"admin", "office", "member", "evaluator", "investor", "trustee", "regulator",
                   "lender"})
"""`lender`: funds pledge-backed loans on the exchange (a bank or a guarantee fund)."""

BandTerm = Annotated[int, Meta(ge=-(2**32), le=2**32)]
Band = tuple[BandTerm, BandTerm]
"""Any integers: the quality score clamps what bands give to 0 .. 100 (tested)."""
Bands = Annotated[list[Band], Meta(max_length=32, description=(
    "[lower bound, points] pairs, ascending: the last bound not above the value gives "
    "the points"))]


class ContractConfig(Args, frozen=True, omit_defaults=False):
    """The contracts' settings in genesis.json under "contracts"; every one has a default.

    These are alliance policy, not per-transaction choices: a trustee cannot pick its own
    advance rate, an applicant not its own quality bands."""

    home_office: Annotated[str, Meta(pattern=whole(r"[A-Z]{2}"),
                                     description="the alliance's home patent office")] = "CN"
    base_ipc: Annotated[list[Annotated[str, Meta(min_length=1, max_length=16)]], Meta(
        max_length=64, description="IPC classes that score the technology points")
    ] = msgspec.field(default_factory=lambda: ["G06F21", "H04L9"])
    citation_bands: Bands = msgspec.field(
        default_factory=lambda: [(0, 0), (1, 5), (3, 10), (6, 15), (11, 20)])
    family_bands: Bands = msgspec.field(
        default_factory=lambda: [(1, 0), (2, 5), (3, 10), (5, 15), (10, 20)])
    international_bands: Bands = msgspec.field(
        default_factory=lambda: [(0, 0), (1, 10), (2, 20)])
    advance_rate_bps: Annotated[Bps, Meta(
        description="a deal's principal may be at most this share of its collateral")] = 8000
    breach_periods: Annotated[int, Meta(ge=1, le=1000, description=(
        "default consecutive failed periods before a deal's trigger fires"))] = 3
    patent_term_years: Annotated[
        dict[Literal["invention", "utility_model", "design"], Annotated[int, Meta(ge=1, le=100)]],
        Meta(description="term per patent kind, years from filing")
    ] = msgspec.field(default_factory=lambda: {"invention": 20, "utility_model": 10,
                                               "design": 15})
    proposal_ttl_ms: Annotated[int, Meta(ge=1, le=AMOUNT_MAX, description=(
        "how long a governance proposal stays open"))] = 7 * 86_400_000
    clearing_fee_bps: Annotated[Bps, Meta(description=(
        "the exchange's clearing fee, a share of each sale's price"))] = 25
    clearing_account: Annotated[OrgId | None, Meta(description=(
        "who receives the clearing fee; null = the first admin organisation by id"))] = None
    ltv_max_bps: Annotated[Bps, Meta(description=(
        "a pledge loan's principal may be at most this share of the latest appraisal"))] = 5000
    credit_weights: Annotated[
        dict[Literal["royalties", "loans", "securitization"],
             Annotated[int, Meta(ge=0, le=10_000)]],
        Meta(description="weight of each credit-rating component")
    ] = msgspec.field(default_factory=lambda: {"royalties": 4000, "loans": 4000,
                                               "securitization": 2000})
    credit_late_points: Annotated[int, Meta(ge=0, le=100, description=(
        "points (of 100) a royalty period or loan paid late earns in its component"))] = 50
    credit_no_history_score: Annotated[int, Meta(ge=0, le=100, description=(
        "the credit score of an organisation with no payment history"))] = 50
    royalty_grace_days: Annotated[int, Meta(ge=0, le=3650, description=(
        "days after a quarter ends within which its royalty is paid on time"))] = 60


DEFAULT_CONTRACT_CONFIG: dict[str, Any] = ContractConfig().to_value()
"""Written once, in the schema above."""


def check_contract_config(raw: Any) -> dict[str, Any]:
    """genesis["contracts"] checked against ContractConfig (unknown keys refused)."""
    try:
        msgspec.convert(raw, type=ContractConfig, strict=True)
    except msgspec.ValidationError as exc:
        raise errors.BadArguments(
            "genesis: " + describe(exc).replace("`args", "`contracts")) from None
    return raw


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise errors.BadArguments(f"genesis: {message}")


def validate(genesis: dict[str, Any]) -> None:
    _require(isinstance(genesis.get("chain_id"), str) and genesis["chain_id"] != "",
             "chain_id must be a non-empty string")
    _require(isinstance(genesis.get("genesis_time_ms"), int), "genesis_time_ms must be an integer")
    check_contract_config(genesis.get("contracts", {}))
    validators = genesis.get("validators")
    _require(isinstance(validators, list) and len(validators) >= 1, "validators must be a list")
    seen_keys: set[str] = set()
    org_ids: set[str] = set()
    for org in genesis.get("organisations", []):
        _require(isinstance(org.get("id"), str) and org["id"] not in org_ids,
                 f"organisation id {org.get('id')!r} missing or repeated")
        org_ids.add(org["id"])
        _require(set(org.get("roles", [])) <= ROLES, f"{org['id']}: unknown role")
        _require(isinstance(org.get("bpc", 0), int) and org.get("bpc", 0) >= 0,
                 f"{org['id']}: bpc must be a non-negative integer")
        for key in org.get("keys", []):
            _require(isinstance(key, str) and len(bytes.fromhex(key)) == 32,
                     f"{org['id']}: keys are 32-byte hex")
            _require(key not in seen_keys, f"key {key} listed twice")
            seen_keys.add(key)
    check_clearing_account(genesis.get("contracts", {}), org_ids)



def check_clearing_account(contracts: dict[str, Any], org_ids: set[str]) -> None:
    """The schema checks the setting's form; only the genesis knows its organisations."""
    account = contracts.get("clearing_account")
    _require(account is None or account in org_ids,
             f"contracts.clearing_account {account!r} names no organisation of the genesis")

def init_state(genesis: dict[str, Any]) -> State:
    validate(genesis)
    state = State()
    supply = 0
    for org in sorted(genesis.get("organisations", []), key=lambda o: o["id"]):
        state.put(f"org/{org['id']}", {
            "id": org["id"], "name": org.get("name", org["id"]),
            "roles": sorted(set(org.get("roles", []))), "keys": sorted(org.get("keys", [])),
        })
        for key in org.get("keys", []):
            state.put(f"key/{key}", org["id"])
        if org.get("bpc", 0):
            state.put(f"bal/BPC/{org['id']}", org["bpc"])
            supply += org["bpc"]
    state.put("supply/BPC", supply)
    state.put("supply/BPR", 0)
    state.put("config/contracts", {**DEFAULT_CONTRACT_CONFIG, **genesis.get("contracts", {})})
    state.take_dirty()
    return state


def get_contract_config(state: State) -> dict[str, Any]:
    """The contracts' settings, with defaults for keys a genesis left out."""
    return {**DEFAULT_CONTRACT_CONFIG, **state.get("config/contracts", {})}
