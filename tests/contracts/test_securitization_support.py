"""Shared scaffolding for the securitization tests (no tests of its own).

Collateral (patents, appraisals, licences) is written straight into the State with the
layout fixed in interfaces.md, so these tests exercise securitization alone; one
end-to-end test in test_securitization_ops.py goes through the registry and licensing
ops instead. Royalty collections are simulated as what `royalty.pay` does for an
assigned licence: BPC moves from the licensee into the deal account, nothing else.
"""

from __future__ import annotations

from typing import Any

from contract_chain import DEFAULT_ORGS, Chain, new_chain

from contracts.state import State
from contracts.token.ledger import balance_of, transfer_units

ORGS = DEFAULT_ORGS + [
    ("inv2", ["investor"], 10_000_000),
    ("inv3", ["investor"], 10_000_000),
    ("trust2", ["trustee"], 0),
    ("lic", ["member"], 100_000_000),
    ("poor", ["investor"], 10),
]
"""The default alliance plus more investors (one nearly broke), a second trustee and a
rich licensee who pays the royalties."""

TRANCHES = [
    {"name": "senior", "principal": 500_000, "coupon_bps": 200},
    {"name": "mezz", "principal": 200_000, "coupon_bps": 400},
    {"name": "equity", "principal": 100_000, "coupon_bps": 0},
]
"""800 000 in all: exactly 80 % (the default advance rate) of the 1 000 000 collateral."""

SUBSCRIPTIONS = [
    ("fund", "senior", 300_000), ("inv2", "senior", 200_000),
    ("inv2", "mezz", 150_000), ("inv3", "mezz", 50_000),
    ("inv3", "equity", 100_000),
]


def put_patent(state: State, pid: str, owner: str, value: int | None,
               status: str = "GRANTED") -> None:
    office, number = pid.split(":")
    state.put(f"patent/{pid}", {
        "id": pid, "office": office, "application_no": number, "doc_hash": "ab" * 32,
        "kind": "invention", "title": f"patent {number}", "filing_date": "2020-01-01",
        "publication_date": "2021-01-01", "grant_date": "2022-01-01", "priorities": [],
        "ipc": ["G06F21"], "applicants": [owner], "inventors": ["X"], "owners": [[owner, 10_000]],
        "status": status, "supersedes": None, "version": 1, "height": 0, "timestamp_ms": 0})
    if value is not None:
        state.put(f"appraisal/{pid}", {"value": value, "basis": "income", "evaluator": "eval",
                                       "height": 0, "timestamp_ms": 0})


def put_licence(state: State, lid: str, patents: list[str], *, licensor: str = "acme",
                licensee: str = "lic", status: str = "active",
                licensors: list[list[Any]] | None = None) -> None:
    state.put(f"licence/{lid}", {
        "id": lid, "state": status, "offered_by": licensor,
        "licensors": licensors or [[licensor, 10_000]], "licensee": licensee,
        "patents": sorted(patents), "kind": "non_exclusive", "fields": ["*"],
        "territories": ["*"], "start_date": "2023-01-01", "end_date": "2033-12-31",
        "sublicensable": False, "fee": 0, "royalty_bps": 500, "royalty_floor_per_unit": None,
        "royalty_cap_per_unit": None, "minimum_annual_royalty": None, "open_offer": None,
        "height": 0, "timestamp_ms": 0, "accepted_height": 0, "accepted_timestamp_ms": 0})


def new_deal_chain(contracts: dict[str, Any] | None = None, *,
                   values: tuple[int, ...] = (400_000, 350_000, 250_000)) -> Chain:
    """A chain with licences a000...01 .. a000...0n (16 hex, like real ids) of acme's patents CN:1..CN:n (appraised `values`)."""
    chain = new_chain(ORGS, contracts)
    for index, value in enumerate(values, start=1):
        put_patent(chain.state, f"CN:{index}", "acme", value)
        put_licence(chain.state, f"a{index:015x}", [f"CN:{index}"])
    return chain


def create_args(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "originator": "acme", "assets": ["a000000000000001", "a000000000000002", "a000000000000003"],
        "tranches": [dict(t) for t in TRANCHES], "fees_per_period": 1_000,
        "mode": "sequential",
        "tests": {"oc_min_bps": {"senior": 15_000, "mezz": 11_000}, "coverage_min_bps": 10_000},
        "trigger": {"breach_periods": 3}, "principal_per_period": None, "reserve_target": 0,
    }
    args.update(overrides)
    return {k: v for k, v in args.items() if v is not ...}


def create_deal(chain: Chain, **overrides: Any) -> str:
    receipt = chain.must("trust", "deal.create", **create_args(**overrides))
    return receipt.events[0].data["deal"]


def subscribe_all(chain: Chain, deal_id: str,
                  subscriptions: list[tuple[str, str, int]] = SUBSCRIPTIONS) -> None:
    for investor, tranche, amount in subscriptions:
        chain.must(investor, "deal.subscribe", deal=deal_id, tranche=tranche, amount=amount)


def closed_deal(chain: Chain, **overrides: Any) -> str:
    deal_id = create_deal(chain, **overrides)
    tranches = overrides.get("tranches", TRANCHES)
    if tranches is TRANCHES:
        subscribe_all(chain, deal_id)
    else:
        subscribe_all(chain, deal_id, [("fund", t["name"], t["principal"]) for t in tranches])
    chain.must("trust", "deal.close", deal=deal_id)
    return deal_id


def collect(chain: Chain, deal_id: str, amount: int, payer: str = "lic") -> None:
    """What royalty.pay does for an assigned licence: BPC into the deal account."""
    transfer_units(chain.state, "BPC", payer, f"deal:{deal_id}", amount)


def deal_of(chain: Chain, deal_id: str) -> dict[str, Any]:
    return chain.get(f"deal/{deal_id}")


def tranche_of(chain: Chain, deal_id: str, name: str) -> dict[str, Any]:
    return next(t for t in deal_of(chain, deal_id)["tranches"] if t["name"] == name)


def bpc(chain: Chain, account: str) -> int:
    return balance_of(chain.state, "BPC", account)


def report_of(chain: Chain, deal_id: str, period: int) -> dict[str, Any]:
    return chain.query("deal_reports", deal_id, str(period))


def step_of(report: dict[str, Any], kind: str, tranche: str | None) -> dict[str, Any]:
    return next(s for s in report["steps"] if s["kind"] == kind and s["tranche"] == tranche)
