"""Scenario files: every refusal names the file, the line and the field, before any
process starts; the shipped scenarios all load; the fault budget (N = 3f+1) is enforced
unless the scenario declares itself a negative control."""

from __future__ import annotations

import pytest

from ipchain.faultrun.scenario import (SCENARIO_DIR, ScenarioError, find_scenario, list_scenarios,
                                     max_simultaneous_faults, parse_scenario)

GOOD = """\
name = "good"
nodes = 4
duration_s = 10
heal_at_s = 8

[load]
rate_tps = 10

[[events]]
at_s = 1
action = "kill"
node = 3
for_s = 2

[[events]]
at_s = 4
action = "rules"
rules = [
  { action = "drop", probability = 0.2 },
  { action = "delay", delay_ms = 50, jitter_ms = 10, distribution = "uniform" },
]
"""


def test_good_scenario_loads_with_its_values() -> None:
    scenario = parse_scenario(GOOD, "good.toml")
    assert (scenario.nodes, scenario.f, scenario.heal_at_s) == (4, 1, 8.0)
    assert [e.action for e in scenario.events] == ["kill", "rules"]
    assert scenario.events[0].nodes == (3,) and scenario.events[0].for_s == 2.0
    assert scenario.events[1].nodes == ("all",)
    assert scenario.load.rate_tps == 10.0 and scenario.expected == "pass"


# (what is wrong, the text to change, what replaces it, expected line, field in message)
ERRORS = [
    ("syntax error", 'duration_s = 10', 'duration_s = = 10', 3, ""),
    ("unknown top-level key", 'duration_s = 10', 'durration_s = 10', 3, "durration_s"),
    ("wrong type", 'duration_s = 10', 'duration_s = "ten"', 3, "duration_s"),
    ("unknown load key", 'rate_tps = 10', 'rate = 10', 7, "load.rate"),
    ("negative rate", 'rate_tps = 10', 'rate_tps = -1', 7, "load.rate_tps"),
    ("unknown action", 'action = "kill"', 'action = "kil"', 11, "events[0].action"),
    ("node out of range", 'node = 3', 'node = 9', 12, "events[0].node"),
    ("unknown event key", 'for_s = 2', 'for_secs = 2', 13, "events[0].for_secs"),
    ("probability above 1", 'probability = 0.2', 'probability = 1.5', 19,
     "events[1].rules[0].probability"),
    ("unknown rule action", '{ action = "drop"', '{ action = "lose"', 19,
     "events[1].rules[0].action"),
    ("unknown rule field", 'jitter_ms = 10', 'jitter = 10', 20, "events[1].rules[1].jitter"),
    ("second rule's bad probability", 'delay_ms = 50,', 'delay_ms = 50, probability = 7,', 20,
     "events[1].rules[1].probability"),
    ("event after the heal", 'at_s = 4', 'at_s = 9', 16, "events[1].at_s"),
]


@pytest.mark.parametrize("what,old,new,line,field", ERRORS, ids=[e[0] for e in ERRORS])
def test_invalid_scenario_names_line_and_field(what: str, old: str, new: str, line: int,
                                               field: str) -> None:
    assert old in GOOD
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(GOOD.replace(old, new, 1), "bad.toml")
    error = caught.value
    assert error.line == line, str(error)
    assert field in error.field, str(error)
    assert str(error).startswith(f"bad.toml:{line}: "), str(error)


def test_missing_action_points_at_the_event_header() -> None:
    text = GOOD.replace('action = "kill"\n', "", 1)
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "bad.toml")
    assert caught.value.line == 9 and caught.value.field == "events[0].action"


def test_open_ended_fault_needs_a_heal_time() -> None:
    text = GOOD.replace("heal_at_s = 8\n", "").replace("for_s = 2\n", "")
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "bad.toml")
    assert caught.value.field == "heal_at_s" and caught.value.line == 10


def test_overlapping_partition_groups_are_refused() -> None:
    text = GOOD + '\n[[events]]\nat_s = 5\naction = "partition"\ngroups = [[0, 1], [1, 2, 3]]\n'
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "bad.toml")
    assert caught.value.field == "events[2].groups" and caught.value.line == 26
    assert "[1]" in caught.value.message


def test_others_group_keeps_a_partition_minority_under_more_nodes() -> None:
    text = GOOD + '\n[[events]]\nat_s = 5\naction = "partition"\ngroups = [[3], "others"]\n'
    assert parse_scenario(text, "ok.toml").events[2].groups == ((3,), (0, 1, 2))
    assert parse_scenario(text, "ok.toml", nodes=7).events[2].groups == ((3,), (0, 1, 2, 4, 5, 6))


TWO_CRASHES = GOOD + '\n[[events]]\nat_s = 2\naction = "pause"\nnode = 1\nfor_s = 3\n'


def test_more_faults_than_f_is_refused_before_starting() -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(TWO_CRASHES, "bad.toml")
    message = str(caught.value)
    assert "2 replicas are faulty at t=2s" in message and "f=1" in message
    assert "negative_control" in message
    assert caught.value.line == 24  # the at_s of the event that broke the budget


def test_negative_control_may_exceed_the_budget() -> None:
    scenario = parse_scenario("negative_control = true\n" + TWO_CRASHES, "neg.toml")
    assert scenario.expected == "violation"
    assert max_simultaneous_faults(scenario)[0] == 2


def test_more_nodes_raise_the_budget() -> None:
    scenario = parse_scenario(TWO_CRASHES, "ok.toml", nodes=7)
    assert scenario.nodes == 7 and scenario.f == 2


def test_sequential_faults_do_not_add_up() -> None:
    text = GOOD + '\n[[events]]\nat_s = 3.5\naction = "pause"\nnode = 1\nfor_s = 1\n'
    count, _, _ = max_simultaneous_faults(parse_scenario(text, "ok.toml"))
    assert count == 1


def test_byzantine_node_counts_against_f() -> None:
    text = GOOD + '\n[[events]]\nat_s = 2\naction = "byzantine"\nnode = 0\nmode = "mute"\n'
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "bad.toml")
    assert "Byzantine" in str(caught.value)


def test_unknown_byzantine_mode_names_its_line() -> None:
    text = GOOD + '\n[[events]]\nat_s = 5\naction = "byzantine"\nnode = 0\nmode = "evil"\n'
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "bad.toml")
    assert caught.value.field == "events[2].mode" and caught.value.line == 27


def test_too_few_nodes_is_refused() -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(GOOD.replace("nodes = 4", "nodes = 3"), "bad.toml")
    assert caught.value.line == 2 and caught.value.field == "nodes"


def test_every_shipped_scenario_loads() -> None:
    loaded = list_scenarios()
    errors = [str(item) for item in loaded if isinstance(item, ScenarioError)]
    assert errors == []
    names = {item.name for item in loaded}
    assert {"primary-crash", "rolling-restarts", "minority-partition", "majority-partition-heal",
            "lossy-network", "byzantine-primary-equivocates", "f-byzantine-mixed",
            "f-plus-one-byzantine"} <= names
    negatives = [item.name for item in loaded if item.negative_control]
    assert negatives == ["f-plus-one-byzantine"]


def test_scenarios_are_found_by_name_or_path() -> None:
    assert find_scenario("lossy-network") == SCENARIO_DIR / "lossy-network.toml"
    assert find_scenario(str(SCENARIO_DIR / "lossy-network.toml")).name == "lossy-network.toml"
    with pytest.raises(ScenarioError, match="known: .*lossy-network"):
        find_scenario("no-such-scenario")


# (what is wrong, the replacement for the first rule, the field in the message)
BAD_RULE_VALUES = [
    ("kinds as a string", '{ action = "drop", probability = 0.2, kinds = "PP" }', "kinds"),
    ("kinds as a number", '{ action = "drop", probability = 0.2, kinds = 5 }', "kinds"),
    ("unknown direction", '{ action = "drop", probability = 0.2, direction = "sideways" }',
     "direction"),
    ("delay as text", '{ action = "drop", probability = 0.2, delay_ms = "50" }', "delay_ms"),
    ("too many copies", '{ action = "duplicate", copies = 99 }', "events[1].rules[0]"),
]


@pytest.mark.parametrize("what,rule,field", BAD_RULE_VALUES, ids=[e[0] for e in BAD_RULE_VALUES])
def test_a_rule_the_node_would_refuse_is_refused_before_starting(what: str, rule: str,
                                                                 field: str) -> None:
    """Checked against the node's own rule parser, so a run never starts with a fault that
    every node's admin API would then refuse (the run would silently have no fault)."""
    text = GOOD.replace('{ action = "drop", probability = 0.2 }', rule, 1)
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "bad.toml")
    assert caught.value.line == 19, str(caught.value)
    assert field in caught.value.field, str(caught.value)


@pytest.mark.parametrize("extra", ['kinds = "PP"', "kinds = 3", "interval_ms = 5",
                                   'targets = "all"'])
def test_a_byzantine_spec_the_node_would_refuse_is_refused(extra: str) -> None:
    text = GOOD + f'\n[[events]]\nat_s = 5\naction = "byzantine"\nnode = 0\nmode = "mute"\n{extra}\n'
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "bad.toml", nodes=7)
    assert caught.value.line == 28, str(caught.value)
    assert extra.split(" ")[0] in caught.value.field, str(caught.value)
