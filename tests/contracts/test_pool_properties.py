"""Invariants of the pool: distributions are exact, the BPR price is fixed, and holding
BPR is exactly what pool.licensed answers."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_licensing_support import A, B, C, LAB, advance_to, bpc, clone, new_world

from contracts.pool.contract import compute_bpr, compute_distribution, is_pool_licensed
from contracts.token.ledger import balance_of

OWNERS = {A: [("acme", 10_000)], B: [("acme", 6000), ("univ", 4000)],
          C: [("univ", 10_000)], LAB: [("lab", 10_000)]}
EVALUATOR = {A: "eval", B: "eval", C: "eval", LAB: "eval2"}
JOINER = {A: "acme", B: "univ", C: "univ", LAB: "lab"}
BUYERS = ["bolt", "poor", "lab", "acme"]
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_BASE = None


def world():
    global _BASE
    if _BASE is None:
        _BASE = new_world()
    return clone(_BASE)


def create_pool(chain, fee_bps=0, ratio=(1, 1)):
    receipt = chain.must("adm1", "pool.create", name="BPSA", admin_fee_bps=fee_bps,
                         bpr_ratio=list(ratio))
    return receipt.events[0].data["pool"]


def join(chain, pool, pid):
    chain.must(EVALUATOR[pid], "pool.attest", pool=pool, patent=pid)
    chain.must(JOINER[pid], "pool.join", pool=pool, patent=pid)


@settings(max_examples=500, deadline=None)
@given(amount=st.integers(0, 10**15), fee_bps=st.integers(0, 10_000),
       weights=st.dictionaries(st.sampled_from("abcdefgh"), st.integers(1, 10**6),
                               min_size=1))
def test_compute_distribution_is_exact_and_proportional(amount, fee_bps, weights) -> None:
    fee, payouts = compute_distribution(amount, fee_bps, weights)
    assert fee + sum(payouts.values()) == amount
    assert fee == amount * fee_bps // 10_000
    total_weight = sum(weights.values())
    for org, part in payouts.items():
        exact = Fraction((amount - fee) * weights[org], total_weight)
        assert part >= 0 and abs(part - exact) < 1


@SETTINGS
@given(fee_bps=st.integers(0, 10_000),
       members=st.lists(st.sampled_from([A, B, C, LAB]), min_size=1, max_size=4, unique=True),
       buys=st.lists(st.tuples(st.sampled_from(BUYERS), st.integers(1, 60_000)), max_size=5),
       lapse_first=st.booleans())
def test_pool_distribution_sums_to_the_whole(fee_bps, members, buys, lapse_first) -> None:
    """Payouts + fee == the treasury distributed, exactly; each active owner gets its
    pro-rata part to within one unit; a lapsed patent earns nothing."""
    chain = world()
    pool = create_pool(chain, fee_bps)
    for pid in members:
        join(chain, pool, pid)
    for buyer, amount in buys:
        chain.run(buyer, "pool.convert", pool=pool, bpc_amount=amount)
    if lapse_first:
        chain.must("cnipa", "patent.set_status", patent=members[0], status="LAPSED")
    advance_to(chain, "2024-04-01")
    treasury = bpc(chain, f"pool:{pool}")
    payees = sorted({"adm1"} | {org for pid in OWNERS for org, _ in OWNERS[pid]})
    before = {org: bpc(chain, org) for org in payees}
    receipt = chain.run("adm1", "pool.distribute", pool=pool, period="2024-Q1")
    active = members[1:] if lapse_first else members
    if treasury == 0 or not active:
        assert receipt.code in ("EmptyTreasury", "NoContributors")
        return
    chain.ok(receipt)
    gained = {org: bpc(chain, org) - before[org] for org in payees}
    assert sum(gained.values()) == treasury and bpc(chain, f"pool:{pool}") == 0
    fee = treasury * fee_bps // 10_000
    weights: dict[str, int] = {}
    for pid in active:
        for org, bps in OWNERS[pid]:
            weights[org] = weights.get(org, 0) + bps
    for org in payees:
        exact = Fraction((treasury - fee) * weights.get(org, 0), sum(weights.values()))
        assert abs(gained[org] - (fee if org == "adm1" else 0) - exact) < 1, org


@SETTINGS
@given(ratio=st.tuples(st.integers(1, 1000), st.integers(1, 1000)),
       amount=st.integers(1, 100_000),
       later=st.lists(st.sampled_from([B, C, LAB]), min_size=1, max_size=3, unique=True))
def test_bpr_price_unchanged_by_new_contributor(ratio, amount, later) -> None:
    chain = world()
    pool = create_pool(chain, ratio=ratio)
    join(chain, pool, A)
    first = chain.run("bolt", "pool.convert", pool=pool, bpc_amount=amount)
    for pid in later:
        join(chain, pool, pid)
    second = chain.run("lab", "pool.convert", pool=pool, bpc_amount=amount)
    num, den = ratio
    bpr = amount * num // den
    if bpr == 0:
        assert first.code == second.code == "BadArguments"
        return
    got = [(r.events[0].data["bpr"], r.events[0].data["bpc"]) for r in (first, second)]
    assert got[0] == got[1] == compute_bpr(amount, [num, den])
    taken = got[0][1]
    # the least BPC that buys those BPR, and never more than offered
    assert taken <= amount and taken * num // den == bpr and (taken - 1) * num // den < bpr
    assert chain.query("pools", pool)["bpr_ratio"] == [num, den]


@SETTINGS
@given(buys=st.lists(st.tuples(st.sampled_from(BUYERS), st.integers(1, 300)), max_size=6),
       members=st.lists(st.sampled_from([A, B, C]), max_size=3, unique=True))
def test_pool_licensed_exactly_while_holding_bpr_of_a_pool_with_the_patent(buys,
                                                                           members) -> None:
    chain = world()
    pool = create_pool(chain, ratio=(1, 100))
    for pid in members:
        join(chain, pool, pid)
    for buyer, amount in buys:
        chain.run(buyer, "pool.convert", pool=pool, bpc_amount=amount)
    for holder in BUYERS:
        holds = balance_of(chain.state, "BPR", holder) >= 1
        for pid in (A, B, C):
            assert is_pool_licensed(chain.state, holder, pid, chain.timestamp_ms) == (
                holds and pid in members), (holder, pid)
