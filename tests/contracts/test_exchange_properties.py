"""The exchange's invariants (specs/contracts.md, "The IP exchange"), under generated
sequences of market and loan operations with time passing in between:

- BPC supply is unchanged by every market and loan op, and equals the sum of balances;
- the escrow account holds exactly the sum of the open offers;
- every patent's owners' shares always sum to 10 000;
- a sold patent's licences and pool membership are unchanged;
- interest is never negative and never accrues after full repayment.

Every refused step must be a named error that left the state root where it was.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from test_exchange_support import A, B, C, ESCROW, clone, new_world
from test_licensing_support import run_checked

from contract_chain import DAY_MS, Chain

PATENTS = (A, B, C)
BUYERS = ("bolt", "univ", "bank", "fund", "poor")
LENDERS = ("bank", "bank2")
PRICES = st.sampled_from([1, 999, 1_000_003, 400_000, 2_500_000])

STEP = st.one_of(
    st.tuples(st.just("list"), st.sampled_from(PATENTS), PRICES, st.integers(0, 40)),
    st.tuples(st.just("buy"), st.integers(0, 5), st.sampled_from(BUYERS)),
    st.tuples(st.just("offer"), st.sampled_from(BUYERS), st.sampled_from(PATENTS), PRICES),
    st.tuples(st.just("accept"), st.integers(0, 5)),
    st.tuples(st.just("cancel"), st.integers(0, 5)),
    st.tuples(st.just("request"), st.sampled_from(PATENTS),
              st.sampled_from([1, 100_000, 500_000, 1_000_000]),
              st.sampled_from([0, 1, 730, 10_000]), st.sampled_from([0, 1, 30])),
    st.tuples(st.just("fund"), st.integers(0, 5), st.sampled_from(LENDERS)),
    st.tuples(st.just("borrow"), st.sampled_from(PATENTS), st.sampled_from([1, 100_000, 400_000]),
              st.sampled_from([0, 730, 10_000]), st.sampled_from([0, 1, 30])),
    st.tuples(st.just("repay"), st.integers(0, 5), st.just(10**9)),
    st.tuples(st.just("repay"), st.integers(0, 5), st.sampled_from([1, 1_000, 10**9])),
    st.tuples(st.just("enforce"), st.integers(0, 5)),
    st.tuples(st.just("advance"), st.sampled_from([1, 7, 31])),
)
STEPS = st.lists(STEP, min_size=1, max_size=25)
PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_BASE: Chain | None = None


def base_world() -> Chain:
    """Built once, with CN:1 in a pool; forked per example."""
    global _BASE
    if _BASE is None:
        chain = new_world()
        pool = chain.must("adm1", "pool.create", name="P", admin_fee_bps=1000,
                          bpr_ratio=[1, 100]).events[0].data["pool"]
        chain.must("eval", "pool.attest", pool=pool, patent=A)
        chain.must("acme", "pool.join", pool=pool, patent=A)
        _BASE = chain
    return clone(_BASE)


def owners_of(chain: Chain, pid: str) -> list[str]:
    return [org for org, _ in chain.get(f"patent/{pid}")["owners"]]


def pick(ids: list[str], index: int) -> str | None:
    return ids[index % len(ids)] if ids else None


def apply_step(chain: Chain, step: tuple, ids: dict[str, list[str]]) -> None:
    """Run one generated step (every owner signs where the op needs all owners)."""
    kind, *rest = step
    if kind == "advance":
        chain.advance(days=rest[0])
        return
    if kind == "borrow":
        apply_step(chain, ("request", *rest), ids)
        apply_record_step(chain, "fund", [len(ids["request"]) - 1, "bank"], ids)
        return
    if kind in ("list", "request"):
        pid = rest[0]
        args = ({"patent": pid, "price": rest[1],
                 "expires": _day(chain, rest[2])} if kind == "list" else
                {"patent": pid, "principal": rest[1], "rate_bps": rest[2],
                 "term_days": rest[3]})
        op = "market.list" if kind == "list" else "loan.request"
        for org in owners_of(chain, pid):
            receipt = run_checked(chain, org, op, **args)
            record = (receipt.events[0].data.get("listing") or
                      receipt.events[0].data.get("loan")) if receipt.ok else None
            if record and record not in ids[kind]:
                ids[kind].append(record)
        return
    if kind == "offer":
        buyer, pid, price = rest
        receipt = run_checked(chain, buyer, "market.offer", patent=pid, price=price,
                              expires=_day(chain, 20))
        if receipt.ok:
            ids["offer"].append(receipt.events[0].data["offer"])
        return
    apply_record_step(chain, kind, rest, ids)


def apply_record_step(chain: Chain, kind: str, rest: list, ids: dict[str, list[str]]) -> None:
    source = {"buy": "list", "accept": "offer", "cancel": "offer"}.get(kind, "request")
    prefix = {"list": "market_listing", "offer": "market_offer", "request": "loan"}[source]
    live = {"buy": "open", "accept": "open", "cancel": "open", "fund": "requested"}.get(
        kind, "active")
    # Mostly a record the op can act on, sometimes any: refusals are exercised too.
    candidates = [i for i in ids[source] if chain.get(f"{prefix}/{i}")["state"] == live]
    record_id = pick(candidates if candidates and rest[0] % 4 else ids[source], rest[0])
    if record_id is None:
        return
    if kind == "buy":
        listing = chain.get(f"market_listing/{record_id}")
        run_checked(chain, rest[1], "market.buy", listing=record_id, price=listing["price"])
    elif kind == "accept":
        offer = chain.get(f"market_offer/{record_id}")
        for org in owners_of(chain, offer["patent"]):
            run_checked(chain, org, "market.accept", offer=record_id, price=offer["price"])
    elif kind == "cancel":
        offer = chain.get(f"market_offer/{record_id}")
        run_checked(chain, offer["buyer"], "market.cancel", offer=record_id)
    elif kind == "fund":
        run_checked(chain, rest[1], "loan.fund", loan=record_id)
    elif kind == "repay":
        loan = chain.get(f"loan/{record_id}")
        owed = chain.query("loans", record_id)["owed_now"]
        amount = min(rest[1], owed) if owed else rest[1]
        run_checked(chain, loan["borrowers"][0][0], "loan.repay", loan=record_id, amount=amount)
    elif kind == "enforce":
        loan = chain.get(f"loan/{record_id}")
        run_checked(chain, loan.get("lender") or "bank", "loan.enforce", loan=record_id)


def _day(chain: Chain, days: int) -> str:
    import datetime

    return (datetime.date(1970, 1, 1) + datetime.timedelta(
        days=chain.timestamp_ms // DAY_MS + days)).isoformat()


def run_steps(steps: list[tuple], check) -> None:
    chain = base_world()
    ids: dict[str, list[str]] = {"list": [], "offer": [], "request": []}
    memory: dict[str, Any] = {}
    check(chain, memory)
    for step in steps:
        apply_step(chain, step, ids)
        check(chain, memory)
    # Shown by --hypothesis-show-statistics: how often the examples reach each path.
    for _, loan in chain.state.items("loan/"):
        event(f"loan {loan['state']}")
    if chain.get(f"patent/{A}")["owners"] != [["acme", 10_000]]:
        event("licensed, pooled CN:1 changed hands")
    if any(o["state"] == "accepted" for _, o in chain.state.items("market_offer/")):
        event("an offer settled")
    if any(o["state"] == "sold" for _, o in chain.state.items("market_listing/")):
        event("a listing sold")


# -- the invariants -----------------------------------------------------------------------


@PROPERTY
@given(STEPS)
def test_bpc_supply_unchanged_by_every_market_and_loan_op(steps) -> None:
    def check(chain: Chain, memory: dict[str, Any]) -> None:
        balances = [value for _, value in chain.state.items("bal/BPC/")]
        assert all(value > 0 for value in balances)
        supply = chain.get("supply/BPC")
        assert memory.setdefault("supply", supply) == supply == sum(balances)
    run_steps(steps, check)


@PROPERTY
@given(STEPS)
def test_escrow_equals_sum_of_open_offers(steps) -> None:
    def check(chain: Chain, memory: dict[str, Any]) -> None:
        open_total = sum(offer["price"] for _, offer in chain.state.items("market_offer/")
                         if offer["state"] == "open")
        assert chain.get(f"bal/BPC/{ESCROW}", 0) == open_total
    run_steps(steps, check)


@PROPERTY
@given(STEPS)
def test_owner_shares_always_sum_to_10000(steps) -> None:
    def check(chain: Chain, memory: dict[str, Any]) -> None:
        for _, patent in chain.state.items("patent/"):
            shares = [bps for _, bps in patent["owners"]]
            assert sum(shares) == 10_000 and all(bps > 0 for bps in shares)
    run_steps(steps, check)


@PROPERTY
@given(STEPS)
def test_sold_patents_keep_their_licences_and_pool_membership(steps) -> None:
    def check(chain: Chain, memory: dict[str, Any]) -> None:
        rights = (dict(chain.state.items("licence/")), dict(chain.state.items("pool_member/")),
                  dict(chain.state.items("pooled/")))
        assert memory.setdefault("rights", rights) == rights
        if chain.get(f"patent/{A}")["owners"] != [["acme", 10_000]]:
            memory["sold"] = True  # CN:1, licensed and pooled, changed hands
    run_steps(steps, check)


@PROPERTY
@given(STEPS)
def test_interest_never_negative_and_never_accrues_after_full_repayment(steps) -> None:
    def check(chain: Chain, memory: dict[str, Any]) -> None:
        later_ms = chain.timestamp_ms + 400 * DAY_MS
        for _, loan in chain.state.items("loan/"):
            if loan["state"] not in ("active", "repaid", "enforced"):
                continue
            assert loan["interest_due"] >= 0 and loan["interest_paid"] >= 0
            assert loan["outstanding"] >= 0
            if loan["state"] == "repaid":
                assert (loan["interest_due"], loan["outstanding"]) == (0, 0)
                closed = memory.setdefault(loan["id"], loan["interest_paid"])
                assert loan["interest_paid"] == closed
                from contracts.exchange.loans import describe_loan
                assert describe_loan(loan, later_ms)["owed_now"] == 0
    run_steps(steps, check)


def test_the_generator_reaches_sales_loans_repayment_and_enforcement() -> None:
    """A fixed sequence through every path the properties rely on: a sale of the
    licensed, pooled CN:1 with a loan outstanding, a repaid loan, an enforced loan."""
    steps = [("request", B, 100_000, 730, 1), ("fund", 0, "bank"), ("advance", 7),
             ("repay", 0, 10**9), ("request", A, 500_000, 730, 0), ("fund", 1, "bank"),
             ("list", A, 1_000_003, 10), ("buy", 0, "fund"), ("request", C, 1, 0, 0),
             ("advance", 1)]
    chain = base_world()
    ids: dict[str, list[str]] = {"list": [], "offer": [], "request": []}
    for step in steps:
        apply_step(chain, step, ids)
    states = sorted(loan["state"] for _, loan in chain.state.items("loan/"))
    assert states == ["repaid", "repaid", "requested"]
    assert chain.get(f"patent/{A}")["owners"] == [["fund", 10_000]]
