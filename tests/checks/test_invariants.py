"""The one checker library on planted histories: a clean history passes every check,
and each planted fault is reported under its invariant, with the right nodes and
heights. Every invariant in `CHECKS` is shown failing (test_every_invariant_is_shown_failing
enforces it), and a violation reads the same from `ipchain sim` and `ipchain faults run`."""

from __future__ import annotations

import dataclasses
from typing import Callable

import pytest

from ipchain.checks import CHECKS, History, Receipt, Submission, Violation, run_checks
from tests.checks.planted import SUPPLY, TXS, clean_history, h, make_chain, receipts_of


def violations_of(history: History) -> dict[str, list[Violation]]:
    found, _ = run_checks(history)
    by_invariant: dict[str, list[Violation]] = {}
    for v in found:
        by_invariant.setdefault(v.invariant, []).append(v)
    return by_invariant


def _set(obj, **values) -> None:
    for name, value in values.items():
        setattr(obj, name, value)


def _splice_fork(history: History) -> None:
    history.replicas[3].blocks = make_chain(TXS)[:2] + make_chain(TXS, salt="fork")[2:]


PLANTED: list[tuple[str, Callable[[History], None], str]] = [
    ("two honest replicas commit different blocks", _splice_fork, "agreement"),
    ("a replica contradicts its own earlier delivery",
     lambda hi: hi.replicas[0].anomalies.append("replica 0 delivered seq 2 twice"), "agreement"),
    ("a held block's commits are for another view",
     lambda hi: hi.replicas[0].bad_certificates.append("seq 2: commits of view 1"),
     "certificates"),
    ("a replica holds block 3 without block 2",
     lambda hi: hi.replicas[2].blocks.pop(1), "chain_integrity"),
    ("a block does not name its parent",
     lambda hi: _set(hi.replicas[1], blocks=hi.replicas[1].blocks[:3] + [
         dataclasses.replace(hi.replicas[1].blocks[3], prev_hash="f" * 64)]), "chain_integrity"),
    ("state roots differ at a shared height",
     lambda hi: hi.replicas[2].blocks.__setitem__(3, dataclasses.replace(
         hi.replicas[2].blocks[3], result_root=h("other"))), "state_roots"),
    ("final reported roots differ",
     lambda hi: _set(hi.replicas[1], state_root=h("drifted")), "state_roots"),
    ("an acknowledged tx is missing",
     lambda hi: hi.submissions.update(lost=Submission("lost", "load", "c", 0, 2.0,
                                                      "acknowledged", 3, "ok", 2.5)),
     "exactly_once"),
    ("a tx is executed twice",
     lambda hi: hi.replicas[0].receipts.append(Receipt("a", 4, True, "ok")), "exactly_once"),
    ("the client was told ok, the chain says refused",
     lambda hi: _set(hi.submissions["b"], outcome="acknowledged", code="ok"), "exactly_once"),
    ("a tx no client sent is in the chain",
     lambda hi: _set(hi.replicas[2], blocks=hi.replicas[2].blocks[:3] + [
         dataclasses.replace(hi.replicas[2].blocks[3], tx_ids=("d", "e", "forged"))]),
     "no_fabrication"),
    ("balances do not add up to the supply",
     lambda hi: hi.replicas[0].balances_bpc.update({"org-a": 601}), "conservation"),
    ("no request after the heal commits in time",
     lambda hi: _set(hi.submissions["e"], t_done=30.0), "liveness"),
    ("an honest replica stays behind",
     lambda hi: _set(hi.replicas[3], height=2), "liveness"),
    ("a replica is alone in a higher view's view change",
     lambda hi: _set(hi.replicas[3], view=1, in_view_change=True), "view_convergence"),
]


def test_clean_history_passes_every_check_with_and_without_receipts() -> None:
    for receipts in (True, False):
        found, held = run_checks(clean_history(receipts))
        assert found == [] and all(held.values()) and set(held) == set(CHECKS)


@pytest.mark.parametrize("story,change,invariant", PLANTED, ids=[p[0] for p in PLANTED])
def test_planted_violation_is_caught_by_its_invariant(story: str, change, invariant: str) -> None:
    history = clean_history()
    change(history)
    found, held = run_checks(history, seed=7)
    assert invariant in {v.invariant for v in found}, f"nothing caught: {story}"
    assert not held[invariant] and all(v.seed == 7 and v.message for v in found)


def test_every_invariant_is_shown_failing() -> None:
    assert {invariant for _, _, invariant in PLANTED} == set(CHECKS)


# -- agreement and the blocks ------------------------------------------------------------------
def test_fork_names_heights_nodes_and_diagnosis() -> None:
    history = clean_history()
    _splice_fork(history)
    found = violations_of(history)
    (fork,) = found["agreement"]
    assert fork.heights == (3, 4) and fork.nodes == (0, 1, 2, 3)
    blocks = fork.evidence["first_conflicts"]["3"]["blocks"]
    assert sorted(len(b["nodes"]) for b in blocks) == [1, 3]
    assert "state_roots" in found and "chain_integrity" in found
    assert fork.evidence["diagnosis"].startswith("different batches")


def test_same_batch_in_headers_of_another_view_is_diagnosed_as_such() -> None:
    history = clean_history()
    blocks = history.replicas[1].blocks
    blocks[-1] = dataclasses.replace(blocks[-1], view=2, hash=h("view-2 header"))
    (fork,) = violations_of(history)["agreement"]
    assert fork.heights == (4,) and fork.evidence["first_conflicts"]["4"]["differing_fields"] == ["view"]
    assert "same batch" in fork.evidence["diagnosis"]


def test_blocks_without_header_hashes_are_compared_by_digest() -> None:
    history = clean_history()
    for record in history.replicas:
        record.blocks = [dataclasses.replace(b, hash="", prev_hash="") for b in record.blocks]
    assert run_checks(history)[0] == []
    history.replicas[2].blocks[1] = dataclasses.replace(history.replicas[2].blocks[1],
                                                        digest=h("another batch"))
    assert violations_of(history)["agreement"][0].heights == (2,)


def test_byzantine_replicas_are_not_judged() -> None:
    history = clean_history()
    _splice_fork(history)
    _set(history.replicas[3], honest=False, view=5, in_view_change=True, supply_bpc=0)
    assert violations_of(history) == {}


# -- exactly once, no fabrication -------------------------------------------------------------
def test_acknowledged_tx_at_another_height_or_beyond_every_chain() -> None:
    for receipts in (True, False):
        history = clean_history(receipts)
        history.submissions["c"].height = 2
        history.submissions["future"] = Submission("future", "load", "c", 9, 6.0,
                                                   "acknowledged", 9, "ok", 6.5)
        messages = [v.message for v in violations_of(history)["exactly_once"]]
        assert any("another height" in m for m in messages)
        assert any("no honest node reached" in m for m in messages)


def test_replica_behind_is_not_blamed_for_later_acknowledgements() -> None:
    history = clean_history()
    history.replicas[1].blocks = history.replicas[1].blocks[:2]
    assert "exactly_once" not in violations_of(history)


def test_a_refused_duplicate_is_not_a_second_execution_but_a_repeat_without_receipts_is() -> None:
    with_dup = [*TXS[:3], ["d", "e", "a"]]
    history = clean_history()
    for record in history.replicas:
        record.blocks = make_chain(with_dup)
        record.receipts = receipts_of(with_dup)[:-1] + [Receipt("a", 4, False,
                                                                "DuplicateTransaction")]
    assert "exactly_once" not in violations_of(history)
    for record in history.replicas:
        record.receipts = None
    (v, *_) = violations_of(history)["exactly_once"]
    assert v.heights == (2, 4) and v.evidence["examples"] == {"a": [2, 4]}
    for record in history.replicas:  # a fault run: the node named where it executed "a"
        record.refused_repeats = {("a", 4)}
    assert "exactly_once" not in violations_of(history)
    history.replicas[1].refused_repeats = {("a", 2)}  # it says it executed the later copy
    (v, *_) = violations_of(history)["exactly_once"]
    assert v.nodes == (1,) and "another height" in v.message


def test_the_client_told_another_refusal_is_caught() -> None:
    history = clean_history()
    history.submissions["b"].code = "NonceUsed"
    assert "exactly_once" in violations_of(history)


def test_the_probe_and_a_late_committed_unknown_are_not_fabrications() -> None:
    history = clean_history(receipts=False)
    for record in history.replicas:
        record.blocks = make_chain([*TXS[:2], ["c", "x"], ["d", "e"]])
        record.state_root = record.blocks[-1].result_root
    assert violations_of(history) == {}
    history.probe_ids.clear()
    assert violations_of(history)["no_fabrication"][0].evidence["examples"][0]["tx"] == "probe"


# -- conservation -------------------------------------------------------------------------------
@pytest.mark.parametrize("supply,balances,expected", [
    (SUPPLY + 1, {"org-a": 601, "org-b": 400}, "supply changed"),
    (SUPPLY, {"org-a": 1_010, "org-b": -10}, "negative balance"),
    (SUPPLY, {"org-a": 600, "org-b": 399}, "balances sum to 999"),
], ids=["minted", "negative", "leak"])
def test_conservation_violations(supply: int, balances: dict[str, int], expected: str) -> None:
    history = clean_history()
    _set(history.replicas[2], supply_bpc=supply, balances_bpc=balances)
    found = violations_of(history)["conservation"]
    assert any(expected in v.message and v.nodes == (2,) for v in found), found


# -- liveness and views -------------------------------------------------------------------------
def test_slow_or_no_recovery_violates_liveness() -> None:
    history = clean_history()
    history.submissions["e"].t_done = 30.0
    assert "recovery took 20.0s" in violations_of(history)["liveness"][0].message
    history.submissions["e"].height = None
    assert "no transaction submitted after the heal committed" in \
        violations_of(history)["liveness"][0].message
    history.liveness.heal_t = None
    assert "never reached its heal" in violations_of(history)["liveness"][0].message


def test_a_retrying_client_must_get_every_answer() -> None:
    """The simulator's client retries forever: an unknown outcome is a liveness failure
    there, while the fault run's load generator may give up."""
    history = clean_history()
    history.liveness.every_request_answered = True
    (v,) = violations_of(history)["liveness"]
    assert "never answered" in v.message
    history.submissions["x"].height, history.submissions["x"].outcome = 3, "acknowledged"
    history.submissions["late"] = Submission("late", "liveness", "c", 9, 11.0, "acknowledged",
                                             4, "ok", 40.0)
    (v,) = violations_of(history)["liveness"]
    assert "1 of 2 requests submitted after the heal" in v.message


def test_up_to_f_honest_replicas_may_lag_only_when_allowed() -> None:
    history = clean_history()
    history.replicas[3].height = 2
    (v,) = violations_of(history)["liveness"]
    assert v.nodes == (3,) and v.evidence["heights"][3] == 2
    history.liveness.max_lagging = 1
    assert violations_of(history) == {}


def test_an_unreachable_honest_replica_has_not_converged() -> None:
    history = clean_history()
    history.replicas[2].up = False
    (v,) = violations_of(history)["liveness"]
    assert "unreachable: [2]" in v.message


def test_views_must_agree_and_no_view_change_may_linger() -> None:
    history = clean_history()
    history.replicas[0].in_view_change = True
    (v,) = violations_of(history)["view_convergence"]
    assert v.nodes == (0,) and "still in a view change" in v.message
    history.replicas[0].in_view_change = False
    for record in history.replicas[:3]:
        record.view = 2
    (v,) = violations_of(history)["view_convergence"]
    assert v.nodes == (0, 1, 2, 3) and v.evidence["views"][3] == "view 0"


def test_a_violation_reads_the_same_from_both_tools(tmp_path) -> None:
    """The simulator's result and the fault run's summary print `Violation.describe()`."""
    from ipchain.sim.faults import FaultPlan
    from ipchain.sim.run import RunResult, SimConfig
    from tests.faults.test_report import fake_run
    history = clean_history()
    history.replicas[3].view = 1
    violations, _ = run_checks(history, seed=3)
    line = violations[0].describe()
    assert line.startswith("VIOLATION view_convergence: honest nodes ended in views [0, 1]")
    sim = RunResult(3, SimConfig(), FaultPlan(3, "none", ()), violations).describe()
    report = fake_run(history, violations, tmp_path)
    assert line in sim and line in (tmp_path / "summary.txt").read_text()
    assert report["violations"][0] == {**violations[0].to_json()}
