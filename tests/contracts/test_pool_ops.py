"""pool.create / attest / join / convert / distribute and the pool queries: one table per
op (pre-state, op, expected error or post-state)."""

from __future__ import annotations

import pytest
from test_licensing_support import (
    A, B, C, LAB, Case, advance_to, bpc, grant_licence, new_pool, new_world,
    pledge, pool_in, run_case, set_status,
)

from contracts.pool.contract import compute_bpr, compute_distribution, is_pool_licensed
from contracts.token.ledger import balance_of

# -- pure calculations ------------------------------------------------------------------


@pytest.mark.parametrize("amount, ratio, expected", [
    (250, [1, 100], (2, 200)),        # only the 200 that buys whole BPR is taken
    (200, [1, 100], (2, 200)),
    (99, [1, 100], (0, 0)),
    (10, [3, 7], (4, 10)),            # 30 // 7 = 4 BPR; 4 BPR cost ceil(28 / 3) = 10
    (9, [3, 7], (3, 7)),
    (1000, [7, 3], (2333, 1000)),     # ceil(2333 * 3 / 7) = ceil(999.86)
    (5, [1, 1], (5, 5)),
])
def test_compute_bpr(amount, ratio, expected) -> None:
    assert compute_bpr(amount, ratio) == expected


@pytest.mark.parametrize("amount, fee_bps, weights, expected", [
    # the spec's reference vectors, with no fee
    (1_000_001, 0, {"A": 3, "B": 3, "C": 1}, (0, {"A": 428_572, "B": 428_572, "C": 142_857})),
    (100, 0, {"A": 1, "B": 1, "C": 1}, (0, {"A": 34, "B": 33, "C": 33})),
    (1000, 1000, {"A": 10_000}, (100, {"A": 900})),
    (999, 1000, {"A": 6000, "B": 4000}, (99, {"A": 540, "B": 360})),
    (7, 10_000, {"A": 1}, (7, {"A": 0})),
])
def test_compute_distribution(amount, fee_bps, weights, expected) -> None:
    assert compute_distribution(amount, fee_bps, weights) == expected


# -- pool.create ----------------------------------------------------------------------------


def _created(chain, ctx, receipt):
    pool = chain.query("pools", receipt.events[0].data["pool"])
    assert pool["admin"] == "adm1" and pool["bpr_ratio"] == [1, 100]
    assert pool["treasury_bpc"] == 0 and pool["members"] == [] and pool["bpr_term_days"] == 30


def _args(**overrides):
    return {"name": "BPSA", "admin_fee_bps": 500, "bpr_ratio": [1, 100], **overrides}


CREATE_CASES = [
    Case("an admin creates a pool", "adm1", _args(bpr_term_days=30), check=_created),
    Case("a member may not", "acme", _args(), "Unauthorized"),
    Case("fee above 100 %", "adm1", _args(admin_fee_bps=10_001), "BadArguments"),
    Case("negative fee", "adm1", _args(admin_fee_bps=-1), "BadArguments"),
    Case("zero numerator", "adm1", _args(bpr_ratio=[0, 1]), "BadArguments"),
    Case("ratio of one number", "adm1", _args(bpr_ratio=[1]), "BadArguments"),
    Case("boolean in the ratio", "adm1", _args(bpr_ratio=[1, True]), "BadArguments"),
    Case("empty name", "adm1", _args(name=""), "BadArguments"),
    Case("zero-day term", "adm1", _args(bpr_term_days=0), "BadArguments"),
]


@pytest.mark.parametrize("case", CREATE_CASES, ids=str)
def test_create(case: Case) -> None:
    run_case("pool.create", case)


# -- pool.attest ----------------------------------------------------------------------------


def _pool(chain):
    return {"pool": new_pool(chain)}


def _lapse(chain, pid):
    set_status(chain, pid, "LAPSED")
    return {}


def _attest(pid):
    return lambda ctx: {"pool": ctx["pool"], "patent": pid}


def _attested_a(chain):
    ctx = _pool(chain)
    chain.must("eval", "pool.attest", pool=ctx["pool"], patent=A)
    return ctx


ATTEST_CASES = [
    Case("an evaluator attests essentiality", "eval", _attest(A), setup=_pool,
         check=lambda ch, ctx, r: ch.query("pools", ctx["pool"])["attested"] == [A]
         or pytest.fail("not attested")),
    Case("a member may not", "acme", _attest(A), "Unauthorized", setup=_pool),
    Case("unknown pool", "eval", {"pool": "0" * 16, "patent": A}, "PoolNotFound"),
    Case("unknown patent", "eval", _attest("CN:99"), "NotFound", setup=_pool),
    Case("a lapsed patent", "eval", _attest(A), "PatentInactive",
         setup=lambda ch: _pool(ch) | _lapse(ch, A)),
    Case("attested once", "eval", _attest(A), "AlreadyAttested", setup=_attested_a),
    Case("an evaluator that owns the patent is not independent", "lab", _attest(LAB),
         "NotIndependent", setup=_pool),
]


@pytest.mark.parametrize("case", ATTEST_CASES, ids=str)
def test_attest(case: Case) -> None:
    run_case("pool.attest", case)


# -- pool.join ------------------------------------------------------------------------------


def _attested(*pids):
    def setup(chain):
        ctx = _pool(chain)
        for pid in pids:
            chain.must("eval", "pool.attest", pool=ctx["pool"], patent=pid)
        return ctx
    return setup


def _with(setup, step):
    def combined(chain):
        ctx = setup(chain)
        step(chain)
        return ctx
    return combined


def _attested_elsewhere(chain):
    _attested(A)(chain)
    return {"pool": new_pool(chain, "adm2")}


def _joined_a(chain):
    ctx = _attested(A)(chain)
    chain.must("acme", "pool.join", pool=ctx["pool"], patent=A)
    return ctx


def _exclusive_until_january(chain):
    grant_licence(chain, kind="exclusive", end_date="2024-01-31")
    advance_to(chain, "2024-02-01")


def _joined(chain, ctx, receipt):
    pool = chain.query("pools", ctx["pool"])
    assert [m["patent"] for m in pool["members"]] == [B]
    assert pool["members"][0]["owners"] == [["acme", 6000], ["univ", 4000]]
    assert chain.get(f"pooled/{B}/{ctx['pool']}") == "2024-01-01"


JOIN_CASES = [
    Case("a co-owner joins an attested patent", "univ", _attest(B), setup=_attested(B),
         check=_joined),
    Case("not attested", "acme", _attest(A), "PatentNotAttested", setup=_pool),
    Case("attested for another pool only", "acme", _attest(A), "PatentNotAttested",
         setup=_attested_elsewhere),
    Case("only an owner joins", "bolt", _attest(A), "NotOwner", setup=_attested(A)),
    Case("joined once", "acme", _attest(A), "AlreadyPooled", setup=_joined_a),
    Case("a running exclusive licence", "acme", _attest(A), "ExclusiveConflict",
         setup=_with(_attested(A), lambda ch: grant_licence(ch, kind="exclusive",
                                                             fields=["cars"]))),
    Case("a running sole licence in one territory", "acme", _attest(A), "ExclusiveConflict",
         setup=_with(_attested(A), lambda ch: grant_licence(ch, kind="sole",
                                                             territories=["US"]))),
    Case("a non-exclusive licence does not block", "acme", _attest(A),
         setup=_with(_attested(A), lambda ch: grant_licence(ch))),
    Case("an exclusive licence that ended does not block", "acme", _attest(A),
         setup=_with(_attested(A), _exclusive_until_january)),
    Case("an exclusive offer not yet accepted does not block", "acme", _attest(A),
         setup=_with(_attested(A), lambda ch: ch.must(
             "acme", "licence.offer", licensee="bolt", patents=[A], kind="exclusive",
             start_date="2024-01-01", end_date="2024-12-31"))),
    Case("a lapsed patent", "acme", _attest(A), "PatentInactive",
         setup=_with(_attested(A), lambda ch: set_status(ch, A, "LAPSED"))),
    Case("a pledged patent", "acme", _attest(A), "PatentPledged",
         setup=_with(_attested(A), lambda ch: pledge(ch, A))),
    Case("unknown pool", "acme", {"pool": "f" * 16, "patent": A}, "PoolNotFound"),
]


@pytest.mark.parametrize("case", JOIN_CASES, ids=str)
def test_join(case: Case) -> None:
    run_case("pool.join", case)


# -- pool.convert ---------------------------------------------------------------------------


def _converted(chain, ctx, receipt):
    data = receipt.events[0].data
    assert (data["bpc"], data["bpr"]) == (200, 2)
    assert bpc(chain, "bolt") == 1_000_000 - 200
    assert bpc(chain, f"pool:{ctx['pool']}") == 200
    assert balance_of(chain.state, "BPR", "bolt") == 2 and chain.get("supply/BPR") == 2


def _convert(amount):
    return lambda ctx: {"pool": ctx["pool"], "bpc_amount": amount}


CONVERT_CASES = [
    Case("BPR = floor(amount x num / den); only what buys whole BPR is taken", "bolt",
         _convert(250), setup=_pool, check=_converted),
    Case("buys no whole BPR", "bolt", _convert(99), "BadArguments", setup=_pool),
    Case("would mint more BPR than a balance can hold", "bolt", _convert(2**62),
         "BadArguments", setup=lambda ch: {"pool": new_pool(ch, bpr_ratio=[2**32, 1])}),
    Case("zero", "bolt", _convert(0), "BadArguments", setup=_pool),
    Case("cannot pay", "poor", _convert(100), "InsufficientFunds", setup=_pool),
    Case("more than it holds is refused whole", "poor", _convert(150),
         "InsufficientFunds", setup=lambda ch: {"pool": new_pool(ch, bpr_ratio=[1, 50])}),
    Case("only the converted part must be held", "poor", _convert(70),
         setup=lambda ch: {"pool": new_pool(ch, bpr_ratio=[1, 40])},
         check=lambda ch, ctx, r: bpc(ch, "poor") == 10 or pytest.fail("took the rest")),
    Case("unknown pool", "bolt", {"pool": "e" * 16, "bpc_amount": 100}, "PoolNotFound"),
    Case("a regulator writes nothing", "reg", _convert(100), "Unauthorized", setup=_pool),
]


@pytest.mark.parametrize("case", CONVERT_CASES, ids=str)
def test_convert(case: Case) -> None:
    run_case("pool.convert", case)


# -- pool.licensed ----------------------------------------------------------------------------


def test_holding_bpr_licenses_every_patent_in_that_pool_only() -> None:
    chain = new_world()
    first, second = new_pool(chain), new_pool(chain, "adm2", bpr_ratio=[1, 10])
    pool_in(chain, first, A, "acme")
    pool_in(chain, second, C, "univ")
    now = chain.timestamp_ms
    assert not is_pool_licensed(chain.state, "bolt", A, now)
    chain.must("bolt", "pool.convert", pool=first, bpc_amount=100)
    now = chain.timestamp_ms
    assert is_pool_licensed(chain.state, "bolt", A, now)
    assert not is_pool_licensed(chain.state, "bolt", C, now)       # another pool's patent
    assert not is_pool_licensed(chain.state, "bolt", B, now)       # not pooled at all
    pool_in(chain, first, B, "univ")                               # joins later: covered
    assert chain.query("pool_licensed", "bolt", B) == {
        "holder": "bolt", "patent": B, "licensed": True, "pools": [first]}
    assert chain.query("pool_licensed", "lab", A)["licensed"] is False


def test_a_pool_licence_ends_with_the_bpr_term_and_renews_on_conversion() -> None:
    chain = new_world()
    pool = new_pool(chain, bpr_term_days=90)
    pool_in(chain, pool, A, "acme")
    chain.must("bolt", "pool.convert", pool=pool, bpc_amount=100)
    assert chain.get(f"pool_bpr/{pool}/bolt") == {"units": 1, "expires_date": "2024-03-30"}
    advance_to(chain, "2024-03-30")
    chain.block([])
    assert is_pool_licensed(chain.state, "bolt", A, chain.timestamp_ms)
    advance_to(chain, "2024-03-31")
    chain.block([])
    assert not is_pool_licensed(chain.state, "bolt", A, chain.timestamp_ms)
    assert balance_of(chain.state, "BPR", "bolt") == 1      # units stay; the term ended
    chain.must("bolt", "pool.convert", pool=pool, bpc_amount=100)
    assert is_pool_licensed(chain.state, "bolt", A, chain.timestamp_ms)
    assert chain.get(f"pool_bpr/{pool}/bolt") == {"units": 2, "expires_date": "2024-06-28"}


def test_pool_members_keep_bilateral_non_exclusive_rights_but_no_exclusive() -> None:
    chain = new_world()
    pool = new_pool(chain)
    pool_in(chain, pool, A, "acme")
    grant_licence(chain)
    chain.fails("ExclusiveConflict", "acme", "licence.offer", licensee="univ", patents=[A],
                kind="exclusive", start_date="2024-01-01", end_date="2024-12-31",
                fields=["cars"])


# -- pool.distribute ------------------------------------------------------------------------


def _funded(fee_bps=1000, buyers=(("bolt", 1000),), members=((A, "acme"), (B, "acme"))):
    """A pool with `members`, funded by conversions; clock after 2024-Q1."""
    def setup(chain):
        pool = new_pool(chain, admin_fee_bps=fee_bps, bpr_ratio=[1, 1])
        for pid, owner in members:
            pool_in(chain, pool, pid, owner)
        for buyer, amount in buyers:
            chain.must(buyer, "pool.convert", pool=pool, bpc_amount=amount)
        advance_to(chain, "2024-04-01")
        return {"pool": pool}
    return setup


def _period(period="2024-Q1"):
    return lambda ctx: {"pool": ctx["pool"], "period": period}


def _distributed(chain, ctx, receipt):
    data = receipt.events[0].data
    # 1001: fee 100; net 901 over CN:1 (acme) + CN:2 (acme 60 / univ 40): weights
    # acme 16 000, univ 4 000 -> 720.8 / 180.2 -> 721 / 180
    assert (data["amount"], data["fee"]) == (1001, 100)
    assert data["payouts"] == {"acme": 721, "univ": 180}
    assert data["fee"] + sum(data["payouts"].values()) == data["amount"]
    assert bpc(chain, f"pool:{ctx['pool']}") == 0
    assert bpc(chain, "adm1") == 100
    assert chain.query("pools", ctx["pool"])["last_period"] == "2024-Q1"


def _lapsed_member(chain, ctx, receipt):
    assert receipt.events[0].data["payouts"] == {"acme": 540, "univ": 360}


def _distributed_once(chain):
    ctx = _funded()(chain)
    chain.must("adm1", "pool.distribute", **_period()(ctx))
    chain.must("bolt", "pool.convert", pool=ctx["pool"], bpc_amount=10)
    advance_to(chain, "2024-07-01")
    return ctx


DISTRIBUTE_CASES = [
    Case("fee to the admin, the rest by active patents, owners pro rata", "adm1", _period(),
         setup=_funded(buyers=(("bolt", 1001),), members=((A, "acme"), (B, "univ"))),
         check=_distributed),
    Case("a lapsed patent stops counting", "adm1", _period(),
         setup=_with(_funded(buyers=(("bolt", 1000),), members=((A, "acme"), (B, "acme"))),
                     lambda ch: set_status(ch, A, "LAPSED")),
         check=_lapsed_member),
    Case("a later quarter after an earlier one", "adm1", _period("2024-Q2"),
         setup=_distributed_once),
    Case("only the pool's own admin", "adm2", _period(), "NotPoolAdmin", setup=_funded()),
    Case("a member may not", "acme", _period(), "Unauthorized", setup=_funded()),
    Case("a quarter twice", "adm1", _period(), "PeriodAlreadyDistributed",
         setup=_distributed_once),
    Case("an earlier quarter after a later one", "adm1", _period("2023-Q4"),
         "PeriodAlreadyDistributed", setup=_distributed_once),
    Case("a quarter that has not ended", "adm1", _period("2024-Q2"), "PeriodNotEnded",
         setup=_funded()),
    Case("an empty treasury", "adm1", _period(), "EmptyTreasury", setup=_funded(buyers=())),
    Case("no active patent", "adm1", _period(), "NoContributors",
         setup=_with(_funded(members=((A, "acme"),)), lambda ch: set_status(ch, A, "LAPSED"))),
    Case("not a quarter", "adm1", _period("2024-H1"), "BadArguments", setup=_funded()),
    Case("unknown pool", "adm1", {"pool": "d" * 16, "period": "2024-Q1"}, "PoolNotFound"),
]


@pytest.mark.parametrize("case", DISTRIBUTE_CASES, ids=str)
def test_distribute(case: Case) -> None:
    run_case("pool.distribute", case)


def test_spec_reference_vector_through_the_ops() -> None:
    """1 000 001 BPC by contributors holding 3, 3 and 1 patents, no fee:
    428 572 / 428 572 / 142 857."""
    chain = new_world()
    pool = new_pool(chain, admin_fee_bps=0, bpr_ratio=[1, 1])
    for number in range(10, 16):
        owner = "acme" if number < 13 else "univ"
        chain.grant(chain.deposit(owner, str(number)))
        pool_in(chain, pool, f"CN:{number}", owner)
    pool_in(chain, pool, LAB, "lab", evaluator="eval2")
    chain.must("fund", "token.transfer", to="bolt", amount=1_000_001)
    chain.must("bolt", "pool.convert", pool=pool, bpc_amount=1_000_001)
    advance_to(chain, "2024-04-01")
    receipt = chain.must("adm1", "pool.distribute", pool=pool, period="2024-Q1")
    assert receipt.events[0].data["payouts"] == {"acme": 428_572, "lab": 142_857,
                                                 "univ": 428_572}


def test_pools_query_lists_pools_and_describes_one() -> None:
    chain = new_world()
    pool = new_pool(chain)
    pool_in(chain, pool, A, "acme")
    chain.must("eval", "pool.attest", pool=pool, patent=C)
    chain.must("bolt", "pool.convert", pool=pool, bpc_amount=300)
    assert [p["id"] for p in chain.query("pools")] == [pool]
    described = chain.query("pools", pool)
    assert described["treasury_bpc"] == 300 and described["attested"] == [A, C]
    assert described["holders"] == {"bolt": {"units": 3, "expires_date": None}}
    assert described["members"][0]["active"] is True
    with pytest.raises(Exception) as info:
        chain.query("pools", "nope")
    assert getattr(info.value, "code", "") == "PoolNotFound"
