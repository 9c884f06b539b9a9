"""Genesis: the organisations, their keys, roles and BPC, and the contracts' settings.

The genesis document is JSON (as in CometBFT's genesis.json). Everything here is
validated before any state is built, so a bad genesis fails loudly at start-up rather
than as a divergent state root later.
"""

from __future__ import annotations

from typing import Any

from contracts import errors
from contracts.state import State

ROLES = frozenset({"admin", "office", "member", "evaluator", "investor", "trustee", "regulator",
                   "lender"})
"""`lender`: funds pledge-backed loans on the exchange (a bank or a guarantee fund)."""

DEFAULT_CONTRACT_CONFIG: dict[str, Any] = {
    "home_office": "CN",
    "base_ipc": ["G06F21", "H04L9"],
    "citation_bands": [[0, 0], [1, 5], [3, 10], [6, 15], [11, 20]],
    "family_bands": [[1, 0], [2, 5], [3, 10], [5, 15], [10, 20]],
    "international_bands": [[0, 0], [1, 10], [2, 20]],
    "advance_rate_bps": 8000,
    "breach_periods": 3,
    "patent_term_years": {"invention": 20, "utility_model": 10, "design": 15},
    "proposal_ttl_ms": 7 * 86_400_000,
}
"""Quality-score bands are [lower bound, points] pairs, ascending: the last bound not
above the value gives the points."""


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise errors.BadArguments(f"genesis: {message}")


def validate(genesis: dict[str, Any]) -> None:
    _require(isinstance(genesis.get("chain_id"), str) and genesis["chain_id"] != "",
             "chain_id must be a non-empty string")
    _require(isinstance(genesis.get("genesis_time_ms"), int), "genesis_time_ms must be an integer")
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
    validate_exchange_settings(genesis.get("contracts", {}), org_ids)


EXCHANGE_BPS_SETTINGS = ("clearing_fee_bps", "ltv_max_bps")
CREDIT_COMPONENTS = ("royalties", "loans", "securitization")


def validate_exchange_settings(contracts: dict[str, Any], org_ids: set[str]) -> None:
    """The IP exchange's settings (contracts/exchange), when a genesis gives them."""
    for name in EXCHANGE_BPS_SETTINGS:
        value = contracts.get(name, 0)
        _require(isinstance(value, int) and not isinstance(value, bool)
                 and 0 <= value <= 10_000, f"contracts.{name} must be 0 .. 10000 bps")
    account = contracts.get("clearing_account")
    _require(account is None or account in org_ids,
             "contracts.clearing_account must name an organisation of the genesis")
    weights = contracts.get("credit_weights", {name: 1 for name in CREDIT_COMPONENTS})
    _require(isinstance(weights, dict) and set(weights) <= set(CREDIT_COMPONENTS) and all(
        isinstance(w, int) and not isinstance(w, bool) and w >= 0 for w in weights.values()),
        f"contracts.credit_weights maps {list(CREDIT_COMPONENTS)} to non-negative integers")
    for name in ("credit_late_points", "credit_no_history_score"):
        value = contracts.get(name, 0)
        _require(isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 100,
                 f"contracts.{name} must be 0 .. 100")
    grace = contracts.get("royalty_grace_days", 0)
    _require(isinstance(grace, int) and not isinstance(grace, bool) and 0 <= grace <= 3650,
             "contracts.royalty_grace_days must be 0 .. 3650")


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
