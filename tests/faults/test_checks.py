"""The invariant checks on planted histories: a clean history passes every check, and
each planted fault (a fork, a lost acknowledged tx, a tx nobody sent, a negative
balance, a slow recovery...) is reported under its invariant with the right nodes and
heights."""

from __future__ import annotations

import dataclasses

import pytest

from ipchain.faultrun.checks import History, Submission, run_checks, summarize_outcomes
from tests.faults.planted import SUPPLY, clean_history, h, make_chain

def violations_of(history: History) -> dict[str, list]:
    found, _ = run_checks(history)
    by_invariant: dict[str, list] = {}
    for v in found:
        by_invariant.setdefault(v.invariant, []).append(v)
    return by_invariant


def test_clean_history_passes_every_check() -> None:
    found, held = run_checks(clean_history())
    assert found == []
    assert all(held.values()) and set(held) >= {"agreement", "state_root", "exactly_once",
                                                 "no_phantom_txs", "conservation", "liveness"}


def test_fork_between_honest_nodes_is_an_agreement_violation() -> None:
    history = clean_history()
    history.chains[3] = make_chain([["probe"], ["a", "b"], ["c"], ["d", "e"]][:2]) + \
        make_chain([["probe"], ["a", "b"], ["c"], ["d", "e"]], salt="fork")[2:]
    found = violations_of(history)
    (fork,) = found["agreement"]
    assert fork.heights == (3, 4) and fork.nodes == (0, 1, 2, 3)
    blocks = fork.evidence["first_conflicts"]["3"]["blocks"]
    assert sorted(len(b["nodes"]) for b in blocks) == [1, 3]
    assert "state_root" in found  # the forked blocks also end in other roots
    assert "chain_integrity" in found  # block 3 of the spliced chain names the old parent
    assert fork.evidence["diagnosis"].startswith("different batches")
    assert "digest" in fork.evidence["first_conflicts"]["3"]["differing_fields"]


def test_same_batch_in_headers_of_another_view_is_diagnosed_as_such() -> None:
    """After a view change re-proposes a prepared batch, two nodes may commit the same
    digest at one height in headers that differ only in their view: the value agrees,
    the block identity does not — still a violation, with the cause named."""
    history = clean_history()
    last = history.chains[1][-1]
    history.chains[1][-1] = dataclasses.replace(last, view=2, hash=h("view-2 header"))
    (fork,) = violations_of(history)["agreement"]
    assert fork.heights == (4,) and fork.nodes == (0, 1, 2, 3)
    assert fork.evidence["first_conflicts"]["4"]["differing_fields"] == ["view"]
    assert "same batch" in fork.evidence["diagnosis"] and "['view']" in fork.evidence["diagnosis"]


def test_byzantine_nodes_chain_is_not_judged() -> None:
    history = clean_history()
    history.chains[3] = make_chain([["probe"], ["z"]], salt="lies")
    history.honest = [0, 1, 2]
    assert violations_of(history) == {}


def test_divergent_state_root_with_same_blocks_is_reported() -> None:
    history = clean_history()
    last = history.chains[2][-1]
    history.chains[2][-1] = dataclasses.replace(last, result_root=h("other"))
    (v,) = violations_of(history)["state_root"]
    assert v.heights == (4,) and set(v.nodes) == {0, 1, 2, 3}


def test_final_state_roots_are_compared() -> None:
    history = clean_history()
    history.finals[1].state_root = h("drifted")
    (v,) = violations_of(history)["state_root"]
    assert v.heights == (4,) and "final height 4" in v.message


def test_lost_acknowledged_tx_is_reported() -> None:
    history = clean_history()
    history.submissions["lost"] = Submission("lost", "load", "client-002", 0, 2.0,
                                             "acknowledged", 3)
    (v,) = violations_of(history)["acknowledged_present"]
    assert v.heights == (3,) and v.nodes == (0, 1, 2, 3)
    assert v.evidence["examples"][0]["tx"] == "lost"


def test_acknowledged_tx_at_another_height_is_reported() -> None:
    history = clean_history()
    history.submissions["c"].height = 2
    (v,) = violations_of(history)["acknowledged_present"]
    assert "another height" in v.message and v.evidence["examples"][0]["found_at"] == [3]


def test_acknowledged_tx_beyond_every_honest_chain_is_reported() -> None:
    history = clean_history()
    history.submissions["future"] = Submission("future", "load", "c", 9, 6.0, "acknowledged", 9)
    (v,) = violations_of(history)["acknowledged_present"]
    assert "no honest node reached" in v.message and v.heights == (9,)


def test_node_behind_is_not_blamed_for_later_acknowledgements() -> None:
    history = clean_history()
    history.chains[1] = history.chains[1][:2]  # node1 lags: it only has heights 1..2
    found = violations_of(history)
    assert "acknowledged_present" not in found and "agreement" not in found


def test_tx_included_twice_breaks_exactly_once() -> None:
    history = clean_history()
    chain = make_chain([["probe"], ["a", "b"], ["c"], ["d", "e", "a"]])
    history.chains = {i: list(chain) for i in range(4)}
    (v,) = [x for x in violations_of(history)["exactly_once"] if x.nodes == (0,)]
    assert v.heights == (2, 4) and v.evidence["examples"] == {"a": [2, 4]}


def test_tx_nobody_sent_is_a_phantom_but_the_probe_is_not() -> None:
    history = clean_history()
    chain = make_chain([["probe"], ["a", "b"], ["c", "forged"], ["d", "e"]])
    history.chains = {i: list(chain) for i in range(4)}
    (v,) = violations_of(history)["no_phantom_txs"]
    assert v.heights == (3,) and v.evidence["examples"][0]["tx"] == "forged"
    history.probe_ids.add("forged")
    assert "no_phantom_txs" not in violations_of(history)


def test_unknown_outcome_that_committed_is_not_a_phantom() -> None:
    history = clean_history()
    chain = make_chain([["probe"], ["a", "b"], ["c", "x"], ["d", "e"]])
    history.chains = {i: list(chain) for i in range(4)}
    history.submissions["x"].final_status = "committed"
    assert violations_of(history) == {}


@pytest.mark.parametrize("supply,balances,expected", [
    (SUPPLY + 1, {"org-a": 601, "org-b": 400}, "supply changed"),
    (SUPPLY, {"org-a": 1_010, "org-b": -10}, "negative balance"),
    (SUPPLY, {"org-a": 600, "org-b": 399}, "balances sum to 999"),
], ids=["minted", "negative", "leak"])
def test_conservation_violations(supply: int, balances: dict[str, int], expected: str) -> None:
    history = clean_history()
    history.finals[2].supply_bpc = supply
    history.finals[2].balances_bpc = balances
    found = violations_of(history)["conservation"]
    assert any(expected in v.message and v.nodes == (2,) for v in found), found


def test_slow_recovery_violates_liveness() -> None:
    history = clean_history()
    history.liveness.recovered_t = history.liveness.heal_t + 20.0
    (v,) = violations_of(history)["liveness"]
    assert "recovery took 20.0s" in v.message


def test_no_recovery_at_all_violates_liveness() -> None:
    history = clean_history()
    history.liveness.recovered_t = None
    (v,) = violations_of(history)["liveness"]
    assert "no transaction submitted after the heal committed" in v.message


def test_no_convergence_is_reported_with_heights() -> None:
    history = clean_history()
    history.liveness.converged = False
    history.finals[3].height = 2
    (v,) = violations_of(history)["convergence"]
    assert v.heights == (2, 4) and v.evidence["heights"][3] == 2


def test_outcome_summary_counts_every_submission() -> None:
    summary = summarize_outcomes(clean_history().submissions)
    assert summary["submitted"] == 7 and summary["acknowledged"] == 5
    assert summary["rejected"] == 1 and summary["unknown"] == 1
    assert summary["unknown_resolved_as"] == {"absent": 1}
    assert summary["rejection_codes"] == {"BadSignature": 1}
