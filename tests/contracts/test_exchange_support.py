"""Shared scaffolding for the exchange tests (no tests of its own).

The world, at 2024-01-01, built through the registry's own ops:

    CN:1  acme 100 %                 granted, appraised 2 000 000, licensed to bolt
    CN:2  acme 6 667, univ 3 333     granted, appraised 1 000 000
    CN:3  univ 100 %                 granted, never appraised
    CN:4  acme 100 %                 pending (FILED)

`bank` is the lender (role `lender`); the clearing account is the first admin, adm1,
and the clearing fee the default 25 bps. A table case names the pre-state (a setup),
the op, its sender and arguments, and the expected error or a post-state check;
`Chain.fails` asserts that a refused op left the state root where it was.
"""

from __future__ import annotations

from typing import Any

from contract_chain import DEFAULT_ORGS, Case, Chain, new_chain, run_case_in

from contracts.runtime import Receipt
from contracts.state import State
from contracts.token import balance_of

ORGS = DEFAULT_ORGS + [
    ("bank", ["lender"], 50_000_000),
    ("bank2", ["lender"], 100),
    ("poor", ["member"], 50),
]
A, B, C, PENDING = "CN:1", "CN:2", "CN:3", "CN:4"
CLEARING = "adm1"
ESCROW = "market:escrow"
LATER = "2024-12-31"
"""An expiry well after every block of a test."""


def new_world(contracts: dict[str, Any] | None = None) -> Chain:
    chain = new_chain(ORGS, contracts)
    chain.grant(chain.deposit("acme", "1"))
    chain.grant(chain.deposit("acme", "2", owners=[["acme", 6667], ["univ", 3333]]))
    chain.grant(chain.deposit("univ", "3"))
    chain.deposit("acme", "4")
    chain.must("eval", "appraisal.post", patent=A, value=2_000_000, basis="income")
    chain.must("eval", "appraisal.post", patent=B, value=1_000_000, basis="income")
    lid = chain.must("acme", "licence.offer", licensee="bolt", patents=[A],
                     kind="non_exclusive", start_date="2024-01-01", end_date="2025-12-31",
                     fee=0).events[0].data["licence"]
    chain.must("bolt", "licence.accept", licence=lid)
    return chain


def clone(chain: Chain) -> Chain:
    """An independent copy: property tests build the world once and fork it per example."""
    return Chain(State(chain.state.raw_items()), dict(chain.keys), chain.height,
                 chain.timestamp_ms, dict(chain.nonces))


def bpc(chain: Chain, account: str) -> int:
    return balance_of(chain.state, "BPC", account)


def list_patent(chain: Chain, pid: str = A, price: int = 1_000, expires: str = LATER) -> str:
    """Every owner signs the listing; returns its id."""
    owners = [org for org, _ in chain.get(f"patent/{pid}")["owners"]]
    receipts = [chain.must(org, "market.list", patent=pid, price=price, expires=expires)
                for org in owners]
    return receipts[0].events[0].data["listing"]


def make_offer(chain: Chain, buyer: str = "bolt", pid: str = A, price: int = 1_000,
               expires: str = LATER) -> str:
    receipt = chain.must(buyer, "market.offer", patent=pid, price=price, expires=expires)
    return receipt.events[0].data["offer"]


def request_loan(chain: Chain, patent: str = A, principal: int = 500_000, rate_bps: int = 730,
                 term_days: int = 90) -> str:
    owners = [org for org, _ in chain.get(f"patent/{patent}")["owners"]]
    receipts = [chain.must(org, "loan.request", patent=patent, principal=principal,
                           rate_bps=rate_bps, term_days=term_days) for org in owners]
    return receipts[0].events[0].data["loan"]


def fund_loan(chain: Chain, lender: str = "bank", **terms: Any) -> str:
    loan = request_loan(chain, **terms)
    chain.must(lender, "loan.fund", loan=loan)
    return loan


def run_case(op: str, case: Case) -> tuple[Chain, dict[str, Any], Receipt]:
    return run_case_in(new_world, op, case)
