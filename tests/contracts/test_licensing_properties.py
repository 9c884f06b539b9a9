"""Invariants of licensing and the pool, under generated sequences of signed operations.

- exclusivity: no (patent, field, territory, day) cell is covered by an exclusive or
  sole licence and any other licence; no pooled patent carries an overlapping exclusive
  or sole licence; no patent under a live open-licence declaration does either;
- conservation: BPC supply never changes and always equals the sum of balances; BPR
  supply equals the sum of balances and grows only by what conversions minted;
- no balance is ever negative, and a refused operation changes nothing.

The exclusivity check is a deliberately dumb reference: it expands "*" over the finite
universe the generator draws from and compares licences pairwise, sharing no code
with contracts/licensing/scope.py.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle, RuleBasedStateMachine, invariant, multiple, rule, run_state_machine_as_test,
)
from test_licensing_support import (
    A, B, C, LAB, advance_to, clone, new_pool, new_world, pool_in, run_checked,
)

from contracts.state import State

FIELDS = ("f1", "f2")
TERRITORIES = ("CN", "US")
EXCLUSIVE = {"exclusive", "sole"}
OFFERABLE = [("acme", [A]), ("acme", [A]), ("acme", [A, B]), ("acme", [B]), ("univ", [B]),
             ("univ", [B, C]), ("lab", [LAB])]
"""(sender, patents) pairs where the sender owns every patent, CN:1 the most often: most
offers then pass the ownership check and collide on the exclusivity rule under test."""
OWNER = {A: "acme", B: "univ", C: "univ", LAB: "lab"}
DAYS = ["2024-01-01", "2024-03-01", "2024-07-01", "2025-01-01", "2025-06-30", "2026-12-31"]

_BASE = None


def base_world():
    """Built once: the world, plus one pool; forked per example."""
    global _BASE
    if _BASE is None:
        chain = new_world()
        _BASE = (chain, new_pool(chain))
    return clone(_BASE[0]), _BASE[1]


# -- the reference exclusivity check ------------------------------------------------------


def expand(names: list[str], universe: tuple[str, ...]) -> set[str]:
    return set(universe) if "*" in names else set(names)


def shares_a_cell(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return bool(set(a["patents"]) & set(b["patents"])
                and expand(a["fields"], FIELDS) & expand(b["fields"], FIELDS)
                and expand(a["territories"], TERRITORIES) & expand(b["territories"], TERRITORIES)
                and max(a["start_date"], b["start_date"]) <= min(a["end_date"], b["end_date"]))


def exclusivity_violations(state: State) -> list[str]:
    active = [v for _, v in state.items("licence/") if v["state"] == "active"]
    found = []
    for a, b in itertools.combinations(active, 2):
        if (a["kind"] in EXCLUSIVE or b["kind"] in EXCLUSIVE) and shares_a_cell(a, b):
            found.append(f"{a['id']} ({a['kind']}) and {b['id']} ({b['kind']}) share a cell")
    for licence in active:
        if licence["kind"] not in EXCLUSIVE:
            continue
        for pid in licence["patents"]:
            for key, joined in state.items(f"pooled/{pid}/"):
                if licence["end_date"] >= joined:
                    found.append(f"{licence['id']} is {licence['kind']} on pooled {pid}")
            offer = state.get(f"open_offer/{pid}")
            if offer and offer["state"] == "open" and licence["end_date"] >= offer["date"]:
                found.append(f"{licence['id']} is {licence['kind']} on open-licensed {pid}")
    return found


def test_reference_check_detects_a_planted_violation() -> None:
    """The reference check can fail: a planted overlapping pair is reported."""
    chain, _ = base_world()
    template = {"state": "active", "patents": [A], "fields": ["*"], "territories": ["CN"],
                "start_date": "2024-01-01", "end_date": "2024-12-31"}
    chain.state.put("licence/x1", {**template, "id": "x1", "kind": "sole"})
    assert exclusivity_violations(chain.state) == []
    chain.state.put("licence/x2", {**template, "id": "x2", "kind": "non_exclusive",
                                   "fields": ["f2"], "start_date": "2024-12-31"})
    assert exclusivity_violations(chain.state) != []


# -- exclusivity under any sequence -------------------------------------------------------


scopes = st.sampled_from([["*"], ["f1"], ["f2"], ["f1", "f2"]])
territories = st.sampled_from([["*"], ["CN"], ["US"]])


class ExclusivityMachine(RuleBasedStateMachine):
    offers = Bundle("offers")

    def __init__(self) -> None:
        super().__init__()
        self.chain, self.pool = base_world()

    def run(self, org: str, op: str, **args: Any):
        return run_checked(self.chain, org, op, **args)

    @rule(target=offers, who=st.sampled_from(OFFERABLE),
          licensee=st.sampled_from(["bolt", "lab", "poor"]),
          kind=st.sampled_from(["exclusive", "sole", "non_exclusive"]), fields=scopes,
          where=territories, start=st.sampled_from(DAYS[:4]), length=st.integers(0, 3),
          accept_now=st.booleans())
    def offer(self, who, licensee, kind, fields, where, start, length, accept_now):
        """Offer, and half the time accept at once; the rest stay pending to compete."""
        sender, patents = who
        end = DAYS[min(DAYS.index(start) + length, len(DAYS) - 1)]
        receipt = self.run(sender, "licence.offer", licensee=licensee, patents=patents,
                           kind=kind, fields=fields, territories=where, start_date=start,
                           end_date=end, fee=10)
        if not receipt.ok:
            return multiple()
        lid = receipt.events[0].data["licence"]
        if accept_now:
            self.run(licensee, "licence.accept", licence=lid)
        return lid

    @rule(lid=offers)
    def accept(self, lid):
        licence = self.chain.get(f"licence/{lid}")
        if licence is not None:
            self.run(licence["licensee"], "licence.accept", licence=lid)

    @rule(lid=offers)
    def withdraw(self, lid):
        licence = self.chain.get(f"licence/{lid}")
        if licence is not None:
            self.run(licence["offered_by"], "licence.withdraw", licence=lid)

    @rule(pid=st.sampled_from([A, A, A, B, C, LAB]), withdraw=st.integers(0, 2))
    def open_licence(self, pid, withdraw):
        op = "licence.open_withdraw" if withdraw == 0 else "licence.open_offer"
        self.run(OWNER[pid], op, patent=pid, **({} if withdraw == 0 else {"price": 5}))

    @rule(pid=st.sampled_from(sorted(OWNER)), taker=st.sampled_from(["bolt", "poor", "lab"]))
    def take_open(self, pid, taker):
        self.run(taker, "licence.take_open", patent=pid)

    @rule(lid=offers, now=st.integers(0, 2))
    def join_pool(self, lid, now):
        """Pool a patent some offer names (the likeliest to carry an exclusive licence);
        rarer than the other rules, so exclusive licences get room first."""
        licence = self.chain.get(f"licence/{lid}")
        if now or licence is None:
            return
        pid = licence["patents"][-1]
        evaluator = "eval2" if pid == LAB else "eval"
        self.run(evaluator, "pool.attest", pool=self.pool, patent=pid)
        self.run(OWNER[pid], "pool.join", pool=self.pool, patent=pid)

    @rule(days=st.integers(1, 60))
    def wait(self, days):
        self.chain.advance(days=days)

    @invariant()
    def no_cell_is_shared_with_an_exclusive_licence(self):
        assert exclusivity_violations(self.chain.state) == []


def test_exclusivity_never_violated_by_any_sequence_of_offers_and_accepts() -> None:
    run_state_machine_as_test(ExclusivityMachine, settings=settings(
        max_examples=80, stateful_step_count=40, deadline=None,
        suppress_health_check=[HealthCheck.too_slow]))


# -- conservation and non-negativity under generated op sequences ---------------------------

ACTORS = ["acme", "bolt", "univ", "lab", "poor"]
amounts = st.integers(0, 120) | st.integers(0, 2_000_000)
operations = st.one_of(
    st.tuples(st.just("licence"), st.sampled_from(ACTORS), amounts, st.integers(0, 10_000)),
    st.tuples(st.just("take_open"), st.sampled_from(ACTORS)),
    st.tuples(st.just("convert"), st.sampled_from(ACTORS), amounts),
    st.tuples(st.just("report_pay"), st.integers(0, 5), amounts),
    st.tuples(st.just("distribute")),
    st.tuples(st.just("transfer"), st.sampled_from(ACTORS), st.sampled_from(ACTORS), amounts),
)

_ECONOMY = None


def economy_world():
    """The world, a pool holding CN:1 and CN:3, an open licence on CN:2 at 75 BPC."""
    global _ECONOMY
    if _ECONOMY is None:
        chain = new_world()
        pool = new_pool(chain, bpr_ratio=[3, 7], admin_fee_bps=1500)
        pool_in(chain, pool, A, "acme")
        pool_in(chain, pool, C, "univ")
        chain.must("acme", "licence.open_offer", patent=B, price=75,
                   terms={"royalty_bps": 700})
        _ECONOMY = (chain, pool)
    return clone(_ECONOMY[0]), _ECONOMY[1]


class Economy:
    """Applies generated operations; remembers licences and what conversions minted."""

    def __init__(self) -> None:
        self.chain, self.pool = economy_world()
        self.licences: list[tuple[str, str]] = []
        self.minted_bpr = 0
        self.quarter = 0
        self.reported: set[tuple[str, str]] = set()

    def run(self, org: str, op: str, **args: Any):
        return run_checked(self.chain, org, op, **args)

    def apply(self, operation: tuple) -> None:
        getattr(self, f"do_{operation[0]}")(*operation[1:])

    def do_licence(self, licensee, fee, rate_bps):
        receipt = self.run("lab", "licence.offer", licensee=licensee, patents=[LAB],
                           kind="non_exclusive", start_date="2024-01-01",
                           end_date="2030-12-31", fee=fee, royalty_bps=rate_bps,
                           minimum_annual_royalty=rate_bps)
        if receipt.ok:
            lid = receipt.events[0].data["licence"]
            if self.run(licensee, "licence.accept", licence=lid).ok:
                self.licences.append((lid, licensee))

    def do_take_open(self, taker):
        receipt = self.run(taker, "licence.take_open", patent=B)
        if receipt.ok:
            self.licences.append((receipt.events[0].data["licence"], taker))

    def do_convert(self, holder, amount):
        receipt = self.run(holder, "pool.convert", pool=self.pool, bpc_amount=amount)
        if receipt.ok:
            self.minted_bpr += receipt.events[0].data["bpr"]

    def do_report_pay(self, index, net_sales):
        """Report and pay every ended quarter the licence has not reported yet."""
        if not self.licences:
            return
        lid, licensee = self.licences[index % len(self.licences)]
        for quarter in range(1, self.quarter + 1):
            period = f"2024-Q{quarter}"
            if (lid, period) in self.reported:
                continue
            if self.run(licensee, "royalty.report", licence=lid, period=period,
                        net_sales=net_sales, units=1).ok:
                self.reported.add((lid, period))
                self.run(licensee, "royalty.pay", licence=lid, period=period)

    def do_distribute(self):
        if self.quarter < 3:
            self.quarter += 1
            advance_to(self.chain, f"2024-{3 * self.quarter + 1:02d}-01")
        self.run("adm1", "pool.distribute", pool=self.pool, period=f"2024-Q{self.quarter}")

    def do_transfer(self, source, target, amount):
        self.run(source, "token.transfer", to=target, amount=amount)


def balances(state: State, asset: str) -> list[int]:
    return [value for _, value in state.items(f"bal/{asset}/")]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operations, min_size=5, max_size=30))
def test_token_supply_conserved_by_licensing_and_pool_ops(ops) -> None:
    economy = Economy()
    state = economy.chain.state
    bpc_supply = state.get("supply/BPC")
    bpr_supply = state.get("supply/BPR")
    for operation in ops:
        economy.apply(operation)
        assert state.get("supply/BPC") == bpc_supply == sum(balances(state, "BPC"))
        assert state.get("supply/BPR") == bpr_supply + economy.minted_bpr
        assert state.get("supply/BPR") == sum(balances(state, "BPR"))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(operations, min_size=5, max_size=30))
def test_no_negative_balance(ops) -> None:
    economy = Economy()
    state = economy.chain.state
    for operation in ops:
        economy.apply(operation)
        for asset in ("BPC", "BPR"):
            assert all(isinstance(v, int) and v >= 0 for v in balances(state, asset)), asset
