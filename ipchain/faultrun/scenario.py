"""Fault scenarios: a TOML file read into a checked `Scenario`, or an error naming the
file, the line and the field.

A scenario is a schedule (at t=... do ...), a load profile, how long the run lasts,
when everything heals, how quickly the cluster must recover, and whether it is a
negative control (a run that MUST end in a violation, proving the checker can see
one). Every field is checked before any process starts: a typo'd key, a node that
the cluster will not have, or more simultaneously faulty replicas than N = 3f+1
tolerates is refused up front, with the line it came from.

The format (configs/faults/*.toml hold worked examples):

    name, description           strings (name defaults to the file name)
    nodes = 4                   cluster size (--nodes overrides)
    duration_s = 20             seconds of client load
    heal_at_s = 14              everything healed here (default: when the last timed
                                fault ends; required if a fault has no for_s)
    liveness_bound_s = 15       after the heal a new tx must commit, and after the load
                                the honest nodes must converge, within this
    negative_control = false    true: the run MUST report a violation (budget unchecked)
    seed = 1                    load, fault RNGs and selectors (--seed overrides)
    [load]       rate_tps, clients, commit_timeout_ms, retries, max_inflight
    [consensus]  node overrides: request_timeout_ms, checkpoint_interval_blocks, ...
    [[events]]   at_s = 4, action = ..., and per action:
      kill | stop | pause      node = 1 | "primary" | "backup"; for_s (then start/resume)
      start | resume           node
      restart                  node; signal = "TERM" | "KILL"; down_s
      rules                    nodes = [..] | "all"; for_s; rules = [{ action = "drop" |
                               "delay" | "duplicate" | "reorder", probability, direction =
                               "out" | "in" | "both", peers = [..], kinds = ["PP", "P", "C",
                               "CP", "VC", "NV"], delay_ms, jitter_ms, distribution = "fixed" |
                               "uniform" | "normal" | "exponential", copies, window,
                               window_ms }]
      partition                groups = [[0, 1, 2], [3]] or [[3], "others"]; for_s
      byzantine                node; mode = a behaviour of node/byzantine.py (equivocate,
                               wrong_digest, ...) or "none"; targets; kinds;
                               probability; interval_ms; for_s
      clear                    nodes (network and Byzantine faults only)
      heal                     everything, now
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from node.byzantine import BEHAVIOURS
from node.faults import RULE_FIELDS, FaultSpecError, parse_byzantine, parse_rule
from ipchain.faultrun.locate import Reader, ScenarioError

SCENARIO_DIR = Path(__file__).resolve().parents[2] / "configs" / "faults"
PROCESS_ACTIONS = ("kill", "stop", "start", "restart", "pause", "resume")
NETWORK_ACTIONS = ("rules", "partition", "byzantine", "clear")
ACTIONS = PROCESS_ACTIONS + NETWORK_ACTIONS + ("heal",)
SELECTORS = ("primary", "backup", "all")
FAULTY_ACTIONS = {"kill": "crashed", "stop": "stopped", "pause": "paused",
                  "byzantine": "Byzantine", "restart": "restarting"}
"""Actions whose node counts against f while the fault lasts."""
BYZANTINE_KEYS = {"mode", "targets", "kinds", "probability", "interval_ms"}
EVENT_KEYS = {"at_s", "action", "node", "nodes", "for_s", "down_s", "signal", "rules",
              "groups", "note"} | BYZANTINE_KEYS
TOP_KEYS = {"name", "description", "nodes", "duration_s", "heal_at_s", "liveness_bound_s",
            "negative_control", "seed", "load", "consensus", "events"}
LOAD_KEYS = {"rate_tps", "clients", "commit_timeout_ms", "retries", "max_inflight"}
CONSENSUS_KEYS = {"max_batch_txs", "max_batch_bytes", "batch_delay_ms", "window_blocks",
                  "checkpoint_interval_blocks", "request_timeout_ms"}
BYZANTINE_MODES = (*BEHAVIOURS, "none")


@dataclass(frozen=True)
class Load:
    rate_tps: float = 30.0
    clients: int = 8
    commit_timeout_ms: int = 4000
    retries: int = 2
    """Further attempts, on other nodes, after an unreachable node or a 5xx."""
    max_inflight: int = 256


@dataclass(frozen=True)
class Event:
    index: int
    at_s: float
    action: str
    nodes: tuple[int | str, ...] = ()
    """Replica indices or selectors ("primary", "backup", "all"), resolved at run time."""
    for_s: float | None = None
    """Undo the fault this long after it began (None: it lasts until the heal)."""
    down_s: float = 0.0
    signal: str = "TERM"
    rules: tuple[dict[str, Any], ...] = ()
    groups: tuple[tuple[int, ...], ...] = ()
    byzantine: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    def label(self) -> str:
        who = ",".join(str(n) for n in self.nodes)
        if self.action == "partition":
            return "partition " + "|".join("{" + ",".join(map(str, g)) + "}" for g in self.groups)
        if self.action == "byzantine":
            return f"byzantine {self.byzantine.get('mode')} @{who}"
        if self.action == "rules":
            kinds = "+".join(sorted({r["action"] for r in self.rules}))
            return f"{kinds} @{who}"
        return f"{self.action} {who}".strip()


@dataclass(frozen=True)
class Scenario:
    name: str
    path: str
    description: str
    nodes: int
    duration_s: float
    heal_at_s: float
    liveness_bound_s: float
    negative_control: bool
    seed: int
    load: Load
    consensus: dict[str, int]
    events: tuple[Event, ...]

    @property
    def f(self) -> int:
        return (self.nodes - 1) // 3

    @property
    def byzantine_nodes(self) -> set[int]:
        return {n for e in self.events if e.action == "byzantine"
                and e.byzantine.get("mode") != "none" for n in e.nodes if isinstance(n, int)}

    @property
    def expected(self) -> str:
        return "violation" if self.negative_control else "pass"


def load_scenario(path: str | Path, nodes: int | None = None, seed: int | None = None) -> Scenario:
    """Read and check a scenario; `nodes`/`seed` override the file's values."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ScenarioError(str(path), None, "", f"cannot read: {exc.strerror}") from exc
    return parse_scenario(text, str(path), nodes, seed)


def parse_scenario(text: str, path: str = "<scenario>", nodes: int | None = None,
                   seed: int | None = None) -> Scenario:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = re.search(r"line (\d+)", str(exc))
        raise ScenarioError(path, int(found.group(1)) if found else None, "",
                            f"TOML syntax error: {exc}") from exc
    r = Reader(path, text)
    r.unknown(raw, TOP_KEYS, r.at_top)
    n = nodes if nodes is not None else r.number(raw, "nodes", r.at_top("nodes"), 4, 1,
                                                 integer=True)
    if n < 4 and nodes is not None:
        raise ScenarioError(path, None, "--nodes", "a BFT cluster needs at least 4 nodes")
    if n < 4:
        raise r.fail(r.at_top("nodes"), "nodes", "a BFT cluster needs at least 4 nodes")
    duration = r.number(raw, "duration_s", r.at_top("duration_s"), 20.0, 1.0, 3600.0)
    events = tuple(_parse_event(r, k, item, n) for k, item in enumerate(_event_tables(r, raw)))
    open_ended = [e for e in events if e.for_s is None and e.action in
                  ("kill", "stop", "pause", "rules", "partition", "byzantine")]
    if open_ended and "heal_at_s" not in raw:
        raise r.fail(r.at_event(open_ended[0].index, "action", label="heal_at_s"), "heal_at_s",
                     f"needed: events[{open_ended[0].index}] has no for_s, so it lasts "
                     f"until the heal; set heal_at_s (or give the event a for_s)")
    default_heal = max([e.at_s + (e.for_s or e.down_s or 0.0) for e in events] + [0.0])
    heal = r.number(raw, "heal_at_s", r.at_top("heal_at_s"), min(default_heal, duration),
                    0.0, duration)
    for e in events:
        if e.at_s > heal:
            raise r.fail(r.at_event(e.index, "at_s"), "at_s",
                         f"event at {e.at_s:g}s comes after the heal at {heal:g}s")
    scenario = Scenario(
        name=_text(r, raw, "name", Path(path).stem), path=path,
        description=_text(r, raw, "description", ""), nodes=n, duration_s=float(duration),
        heal_at_s=float(heal),
        liveness_bound_s=float(r.number(raw, "liveness_bound_s", r.at_top("liveness_bound_s"),
                                        15.0, 1.0, 600.0)),
        negative_control=_flag(r, raw, "negative_control"),
        seed=seed if seed is not None else r.number(raw, "seed", r.at_top("seed"), 1, 0,
                                                    integer=True),
        load=_parse_load(r, raw.get("load", {})),
        consensus=_parse_consensus(r, raw.get("consensus", {})), events=events)
    check_fault_budget(scenario, r)
    return scenario


def _text(r: Reader, raw: dict[str, Any], key: str, default: str) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str):
        raise r.fail(r.at_top(key), key, "must be a string")
    return value


def _flag(r: Reader, raw: dict[str, Any], key: str) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        raise r.fail(r.at_top(key), key, "must be true or false")
    return value


def _event_tables(r: Reader, raw: dict[str, Any]) -> list[dict[str, Any]]:
    events = raw.get("events", [])
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise r.fail(r.at_top("events"), "events", "write events as [[events]] tables")
    return events


def _parse_load(r: Reader, table: Any) -> Load:
    if not isinstance(table, dict):
        raise r.fail(r.at_top("load"), "load", "must be a [load] table")
    r.unknown(table, LOAD_KEYS, lambda k: r.at_table("load", k))
    d = Load()
    at = lambda k: r.at_table("load", k)  # noqa: E731
    return Load(rate_tps=float(r.number(table, "rate_tps", at("rate_tps"), d.rate_tps, 0.0, 2000)),
                clients=r.number(table, "clients", at("clients"), d.clients, 2, 64, True),
                commit_timeout_ms=r.number(table, "commit_timeout_ms", at("commit_timeout_ms"),
                                           d.commit_timeout_ms, 100, 60_000, True),
                retries=r.number(table, "retries", at("retries"), d.retries, 0, 10, True),
                max_inflight=r.number(table, "max_inflight", at("max_inflight"),
                                      d.max_inflight, 1, 4096, True))


def _parse_consensus(r: Reader, table: Any) -> dict[str, int]:
    if not isinstance(table, dict):
        raise r.fail(r.at_top("consensus"), "consensus", "must be a [consensus] table")
    r.unknown(table, CONSENSUS_KEYS, lambda k: r.at_table("consensus", k))
    return {k: r.number(table, k, r.at_table("consensus", k), None, 1, integer=True)
            for k in table}


def _parse_event(r: Reader, k: int, item: dict[str, Any], n: int) -> Event:
    r.unknown(item, EVENT_KEYS, lambda key: r.at_event(k, key))
    if "at_s" not in item:
        raise r.fail(r.at_event(k, None, label=f"events[{k}].at_s"), "at_s", "missing")
    at = float(r.number(item, "at_s", r.at_event(k, "at_s"), None, 0.0))
    action = item.get("action")
    if action not in ACTIONS:
        where = r.at_event(k, "action" if "action" in item else None,
                           label=f"events[{k}].action")
        raise r.fail(where, "action", f"{'missing' if action is None else repr(action)}; "
                                      f"expected one of {list(ACTIONS)}")
    for_s = r.number(item, "for_s", r.at_event(k, "for_s"), None, 0.0)
    if for_s is not None and action in ("start", "resume", "clear", "heal", "restart"):
        raise r.fail(r.at_event(k, "for_s"), "for_s", f"a {action} event has no duration")
    signal = item.get("signal", "TERM")
    if signal not in ("TERM", "KILL"):
        raise r.fail(r.at_event(k, "signal"), "signal", "must be TERM or KILL")
    return Event(index=k, at_s=at, action=action, nodes=_parse_nodes(r, k, item, action, n),
                 for_s=None if for_s is None else float(for_s),
                 down_s=float(r.number(item, "down_s", r.at_event(k, "down_s"), 0.0, 0.0, 600)),
                 signal=signal, rules=_parse_rules(r, k, item, action, n),
                 groups=_parse_groups(r, k, item, action, n),
                 byzantine=_parse_byzantine(r, k, item, action, n),
                 note=str(item.get("note", "")))


def _parse_nodes(r: Reader, k: int, item: dict[str, Any], action: str,
                 n: int) -> tuple[int | str, ...]:
    key = "nodes" if "nodes" in item else "node"
    if action in ("partition", "heal"):
        if "node" in item or "nodes" in item:
            raise r.fail(r.at_event(k, key), key, f"a {action} event applies to every node")
        return ()
    default = "all" if action in ("rules", "clear") else None
    value = item.get(key, default)
    if value is None:
        raise r.fail(r.at_event(k, None, label=f"events[{k}].node"), "node",
                     f"a {action} event needs node = <index> or one of {list(SELECTORS[:2])}")
    values = value if isinstance(value, list) else [value]
    for v in values:
        if isinstance(v, str) and v in SELECTORS:
            if v == "all" and action not in ("rules", "clear"):
                raise r.fail(r.at_event(k, key), key, f"'all' is not allowed for {action}")
            continue
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < n:
            raise r.fail(r.at_event(k, key), key,
                         f"{v!r} is not a node of this {n}-node cluster (0..{n - 1}, "
                         f"or one of {list(SELECTORS)})")
    return tuple(values)


def _check_indices(r: Reader, k: int, key: str, values: Any, n: int, inner: tuple = ()) -> None:
    if not isinstance(values, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v < n for v in values):
        raise r.fail(r.at_event(k, key, inner), key,
                     f"must be a list of node indices 0..{n - 1}, not {values!r}")


def _parse_rules(r: Reader, k: int, item: dict[str, Any], action: str,
                 n: int) -> tuple[dict[str, Any], ...]:
    if action != "rules":
        if "rules" in item:
            raise r.fail(r.at_event(k, "rules"), "rules", "only a rules event has rules")
        return ()
    rules = item.get("rules")
    if not isinstance(rules, list) or not rules or not all(isinstance(x, dict) for x in rules):
        raise r.fail(r.at_event(k, "rules" if "rules" in item else None,
                                label=f"events[{k}].rules"), "rules",
                     "needs rules = [{ action = \"drop\", probability = 0.2 }, ...]")
    for j, rule in enumerate(rules):
        label = f"events[{k}].rules[{j}]"
        for key in rule:
            if key not in RULE_FIELDS:
                raise r.fail(r.at_event(k, "rules", (j, key), f"{label}.{key}"), key,
                             f"unknown rule field (known: {sorted(RULE_FIELDS)})")
        _check_node_accepts(r, lambda spec, where: parse_rule(spec, 0, where), rule, label,
                            lambda key: r.at_event(k, "rules", (j, key or "action"),
                                                   f"{label}.{key}" if key else label))
        if "peers" in rule:
            _check_indices(r, k, "rules", rule["peers"], n, (j, "peers"))
    return tuple(dict(x) for x in rules)


def _parse_groups(r: Reader, k: int, item: dict[str, Any], action: str,
                  n: int) -> tuple[tuple[int, ...], ...]:
    """Groups of node indices; one group may be "others" (every node not listed
    elsewhere), so a scenario keeps its meaning under --nodes. A node in no group is cut
    off from everyone."""
    if action != "partition":
        return ()
    groups = item.get("groups")
    where = r.at_event(k, "groups" if "groups" in item else None, label=f"events[{k}].groups")
    if (not isinstance(groups, list) or len(groups) < 2 or groups.count("others") > 1
            or not all(isinstance(g, list) or g == "others" for g in groups)):
        raise r.fail(where, "groups", 'needs groups = [[0, 1, 2], [3]] or [[3], "others"] '
                                      '(two or more groups)')
    seen: set[int] = set()
    for g in groups:
        if g == "others":
            continue
        _check_indices(r, k, "groups", g, n)
        if seen & set(g):
            raise r.fail(where, "groups", f"nodes {sorted(seen & set(g))} are in two groups")
        seen |= set(g)
    others = tuple(i for i in range(n) if i not in seen)
    return tuple(others if g == "others" else tuple(g) for g in groups)


def _parse_byzantine(r: Reader, k: int, item: dict[str, Any], action: str,
                     n: int) -> dict[str, Any]:
    present = {key: item[key] for key in BYZANTINE_KEYS if key in item}
    if action != "byzantine":
        if present:
            key = next(iter(present))
            raise r.fail(r.at_event(k, key), key, "only a byzantine event takes this field")
        return {}
    mode = item.get("mode")
    if mode not in BYZANTINE_MODES:
        raise r.fail(r.at_event(k, "mode" if "mode" in item else None,
                                label=f"events[{k}].mode"), "mode",
                     f"{mode!r}; expected one of {list(BYZANTINE_MODES)}")
    if "targets" in item:
        _check_indices(r, k, "targets", item["targets"], n)
    _check_node_accepts(r, parse_byzantine, present, f"events[{k}]",
                        lambda key: r.at_event(k, key or "mode"))
    return present


def _check_node_accepts(r: Reader, parse: Callable[[Any, str], Any], spec: dict[str, Any],
                        label: str, where_of: Callable[[str | None], tuple]) -> None:
    """Refuse now what every node's admin API would refuse mid-run (the run would then
    go on without the fault): the node's own parser is the one source of those rules."""
    try:
        parse(spec, label)
    except FaultSpecError as exc:
        found = re.match(rf"{re.escape(label)}\.(\w+) (.*)", str(exc), re.S)
        key, message = found.groups() if found else (None, str(exc).removeprefix(f"{label}: "))
        raise r.fail(where_of(key), key or label, message) from exc


# -- the fault budget -------------------------------------------------------------------
def fault_windows(scenario: Scenario) -> list[tuple[float, float, int | str, str, int]]:
    """(start, end, node, what, event index) for every fault that makes a node faulty."""
    windows = []
    for e in scenario.events:
        if e.action not in FAULTY_ACTIONS or e.byzantine.get("mode") == "none":
            continue
        if e.action == "restart":
            end = e.at_s + e.down_s + 1.0  # a restart takes about a second to rejoin
        else:
            end = min(e.at_s + e.for_s if e.for_s is not None else scenario.heal_at_s,
                      scenario.heal_at_s)
        for node in e.nodes:
            windows.append((e.at_s, max(end, e.at_s + 1e-3), node, FAULTY_ACTIONS[e.action],
                            e.index))
    return windows


def max_simultaneous_faults(scenario: Scenario) -> tuple[int, float, list[str]]:
    """The largest number of distinct faulty replicas at one moment, when, and who.

    An explicit undo (start/resume) ends a crash or pause early. Selectors count as one
    replica each ("primary" could coincide with a numbered node; counting it apart is
    the cautious reading)."""
    windows = fault_windows(scenario)
    for e in scenario.events:
        if e.action in ("start", "resume"):
            windows = [(s, min(end, e.at_s) if node in e.nodes and s <= e.at_s else end, node,
                        what, i) for s, end, node, what, i in windows]
    best, when, who = 0, 0.0, []
    for start, *_ in windows:
        live = {(node, what) for s, end, node, what, _ in windows if s <= start < end}
        nodes = {node for node, _ in live}
        if len(nodes) > best:
            best, when = len(nodes), start
            who = sorted(f"{node} ({what})" for node, what in live)
    return best, when, who


def check_fault_budget(scenario: Scenario, r: Reader) -> None:
    if scenario.negative_control:
        return
    count, when, who = max_simultaneous_faults(scenario)
    if count > scenario.f:
        culprit = next((e for e in scenario.events if e.at_s == when
                        and e.action in FAULTY_ACTIONS), scenario.events[0])
        raise r.fail(r.at_event(culprit.index, "at_s"), f"events[{culprit.index}]",
                     f"{count} replicas are faulty at t={when:g}s ({', '.join(who)}) but a "
                     f"{scenario.nodes}-node cluster tolerates f={scenario.f}; use more nodes, "
                     f"or set negative_control = true if a violation is the point")


def find_scenario(name_or_path: str) -> Path:
    """A path to a file, or the name of one in configs/faults/ (with or without .toml)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    for candidate in (SCENARIO_DIR / name_or_path, SCENARIO_DIR / f"{name_or_path}.toml"):
        if candidate.is_file():
            return candidate
    known = ", ".join(p.stem for p in sorted(SCENARIO_DIR.glob("*.toml")))
    raise ScenarioError(name_or_path, None, "", f"no such scenario file; known: {known}")


def list_scenarios() -> list[Scenario | ScenarioError]:
    found: list[Scenario | ScenarioError] = []
    for path in sorted(SCENARIO_DIR.glob("*.toml")):
        try:
            found.append(load_scenario(path))
        except ScenarioError as exc:
            found.append(exc)
    return found
