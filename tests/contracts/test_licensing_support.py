"""Shared scaffolding for the licensing and pool tests (no tests of its own).

Patents are made through the registry's own ops (deposit, then the office grants), so
these tests also exercise the interface licensing reads. The world, built fresh per
case in a few milliseconds, at 2024-01-01:

    CN:1  acme 100 %              granted
    CN:2  acme 60 %, univ 40 %    granted
    CN:3  univ 100 %              granted
    CN:4  acme 100 %              pending (FILED)
    CN:5  lab 100 %               granted (lab is both a member and an evaluator)

A table case names the pre-state (a setup function), the op, its sender and arguments,
and the expected error code or a post-state check. `Chain.fails` also asserts that a
refused op left the state root where it was.
"""

from __future__ import annotations

from typing import Any

from contract_chain import DAY_MS, DEFAULT_ORGS, Case, Chain, new_chain, run_case_in

from contracts.runtime import Receipt
from contracts.state import State
from contracts.token.ledger import balance_of

ORGS = DEFAULT_ORGS + [
    ("poor", ["member"], 50),
    ("lab", ["member", "evaluator"], 1_000_000),
    ("eval2", ["evaluator"], 0),
]
A, B, C, PENDING, LAB = "CN:1", "CN:2", "CN:3", "CN:4", "CN:5"


def new_world() -> Chain:
    chain = new_chain(ORGS)
    chain.grant(chain.deposit("acme", "1"))
    chain.grant(chain.deposit("acme", "2", owners=[["acme", 6000], ["univ", 4000]]))
    chain.grant(chain.deposit("univ", "3"))
    chain.deposit("acme", "4")
    chain.grant(chain.deposit("lab", "5"))
    return chain


def clone(chain: Chain) -> Chain:
    """An independent copy: property tests build the world once and fork it per example."""
    return Chain(State(chain.state.raw_items()), dict(chain.keys), chain.height,
                 chain.timestamp_ms, dict(chain.nonces))


def offer_args(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {"licensee": "bolt", "patents": [A], "kind": "non_exclusive",
                            "start_date": "2024-01-01", "end_date": "2025-12-31", "fee": 1000}
    return {**args, **overrides}


def offer(chain: Chain, sender: str = "acme", **overrides: Any) -> str:
    """Offer a licence (defaults: acme -> bolt, CN:1, non-exclusive, 2024-2025, fee 1000)."""
    receipt = chain.must(sender, "licence.offer", **offer_args(**overrides))
    return receipt.events[0].data["licence"]


def grant_licence(chain: Chain, sender: str = "acme", **overrides: Any) -> str:
    """Offer and accept: an active licence."""
    lid = offer(chain, sender, **overrides)
    chain.must(overrides.get("licensee", "bolt"), "licence.accept", licence=lid)
    return lid


def new_pool(chain: Chain, admin: str = "adm1", **overrides: Any) -> str:
    args = {"name": "BPSA", "admin_fee_bps": 1000, "bpr_ratio": [1, 100], **overrides}
    return chain.must(admin, "pool.create", **args).events[0].data["pool"]


def pool_in(chain: Chain, pool: str, pid: str, owner: str, evaluator: str = "eval") -> None:
    """Attest and join."""
    chain.must(evaluator, "pool.attest", pool=pool, patent=pid)
    chain.must(owner, "pool.join", pool=pool, patent=pid)


def set_status(chain: Chain, pid: str, status: str) -> None:
    chain.must("cnipa", "patent.set_status", patent=pid, status=status)


def pledge(chain: Chain, pid: str, owner: str = "acme") -> None:
    chain.must(owner, "patent.pledge", patent=pid, pledgee="fund", amount=1000,
               until="2030-01-01")


def advance_to(chain: Chain, iso_day: str) -> None:
    """Move the clock so that the next block falls on `iso_day` (UTC)."""
    import datetime

    day = datetime.date.fromisoformat(iso_day)
    target_ms = (day - datetime.date(1970, 1, 1)).days * DAY_MS + 3_600_000
    assert target_ms >= chain.timestamp_ms, f"{iso_day} is in the chain's past"
    chain.timestamp_ms = target_ms - 1000


def run_checked(chain: Chain, org: str, op: str, **args: Any) -> Receipt:
    """Run an op that may be refused; a refusal must be a named error that moved nothing."""
    before = chain.state.root()
    receipt = chain.run(org, op, **args)
    if not receipt.ok:
        assert receipt.code != "InternalError", receipt.message
        assert chain.state.root() == before, f"refused {op} changed the state"
    return receipt


def bpc(chain: Chain, account: str) -> int:
    return balance_of(chain.state, "BPC", account)


def total_bpc(chain: Chain) -> int:
    return sum(value for _, value in chain.state.items("bal/BPC/"))


def run_case(op: str, case: Case) -> tuple[Chain, dict[str, Any], Receipt]:
    return run_case_in(new_world, op, case)
