"""What a fault run leaves behind: report.json (machine-readable: `passed`, `violations`,
every number), summary.txt (the same for people, also printed), submissions.jsonl
(every client submission and its outcome) and timeline.svg.

`passed` means every invariant held. A negative control is expected NOT to pass;
`as_expected` says whether the run ended the way its scenario declared, and that is
what the command's exit status reports.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from ipchain.checks import LIVENESS, History, Submission, Violation
from ipchain.checks.progress import first_commit_after_heal
from ipchain.faultrun.scenario import Scenario
from ipchain.faultrun.timeline import Shade, TimelineData, render_svg


def build_report(scenario: Scenario, history: History, data: Any, controller: Any,
                 violations: list[Violation], held: dict[str, bool], out_dir: Path,
                 elapsed_s: float) -> dict[str, Any]:
    passed = not violations
    expected_pass = not scenario.negative_control
    live = history.liveness
    first = first_commit_after_heal(history)
    recovered = (None if first is None or live.heal_t is None
                 else round(first.t_done - live.heal_t, 2))
    load = summarize_outcomes(history.submissions)
    load.update(rate_tps=scenario.load.rate_tps, clients=scenario.load.clients,
                commit_timeout_ms=scenario.load.commit_timeout_ms)
    return {
        "scenario": scenario.name, "path": scenario.path, "description": scenario.description,
        "nodes": scenario.nodes, "f": scenario.f, "seed": scenario.seed,
        "negative_control": scenario.negative_control, "expected": scenario.expected,
        "passed": passed, "as_expected": passed == expected_pass,
        "violations": [v.to_json() for v in violations],
        "invariants": held,
        "safety_held": not any(v.invariant not in LIVENESS for v in violations),
        "liveness": {"bound_s": live.bound_s, "heal_t": _round(live.heal_t),
                     "recovered_after_s": recovered,
                     "converged": held.get("liveness", True)
                     and held.get("view_convergence", True),
                     "converged_after_s": _round(live.converge_s), "detail": live.detail},
        "load": load,
        "cluster": {"honest": history.honest,
                    "byzantine": sorted(set(range(history.nodes)) - set(history.honest)),
                    "final": {str(r.index): {"reachable": r.up, "height": r.height,
                                             "view": r.view, "in_view_change": r.in_view_change,
                                             "state_root": r.state_root}
                              for r in history.replicas},
                    "chain_lengths": {str(r.index): len(r.blocks) for r in history.replicas},
                    "data_dir": str(out_dir / "cluster")},
        "probe_txs": sorted(history.probe_ids),
        "events": [{"index": a.index, "label": a.label, "at_s": a.at_s,
                    "started_t": _round(a.started_t), "nodes": a.nodes, "error": a.error}
                   for a in controller.applied],
        "fault_windows": [{"label": w.label, "kind": w.kind, "nodes": list(w.nodes),
                           "start_t": _round(w.start), "end_t": _round(w.end)}
                          for w in controller.windows],
        "diagnostics": data.diagnostics,
        "timeline_svg": str(out_dir / "timeline.svg"),
        "elapsed_s": round(elapsed_s, 1),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def format_summary(report: dict[str, Any]) -> str:
    verdict = "PASSED" if report["passed"] else "FAILED"
    expectation = "as expected" if report["as_expected"] else "NOT as expected"
    load, live = report["load"], report["liveness"]
    lines = [f"ipchain fault run: {report['scenario']}  ({report['nodes']} nodes, f={report['f']}, "
             f"seed {report['seed']})"]
    if report["description"]:
        lines.append(report["description"])
    lines += [
        f"RESULT: {verdict} (expected: {report['expected']}) - {expectation}",
        f"load: {load['submitted']} submitted at {load['rate_tps']:g} tx/s: "
        f"{load['acknowledged']} acknowledged, {load['rejected']} rejected, "
        f"{load['unknown']} unknown" + (f" (afterwards: {_counts(load['unknown_resolved_as'])})"
                                        if load["unknown"] else "")
        + f"; {load['retried']} retried on another node",
    ]
    if load["rejection_codes"]:
        lines.append(f"rejections: {_counts(load['rejection_codes'])}")
    recovered = live["recovered_after_s"]
    lines.append(f"liveness: healed at {live['heal_t']}s; "
                 + (f"a new tx committed {recovered}s later" if recovered is not None
                    else "no new tx committed") + f" (bound {live['bound_s']:g}s); "
                 + ("converged" if live["converged"] else "did NOT converge")
                 + (f" after {live['converged_after_s']}s" if live["converged_after_s"]
                    is not None else ""))
    finals = report["cluster"]["final"]
    lines.append("final: " + ", ".join(
        f"node{i} h={f['height']} v={f['view']}{' (in view change)' if f['in_view_change'] else ''}"
        if f["reachable"] else f"node{i} unreachable" for i, f in finals.items())
        + (f"; Byzantine: {report['cluster']['byzantine']}" if report["cluster"]["byzantine"]
           else ""))
    lines.append("invariants: " + ", ".join(f"{name} {'ok' if ok else 'VIOLATED'}"
                                            for name, ok in report["invariants"].items()))
    for v in report["violations"]:
        lines.append(f"  {Violation(**v).describe()}")
        if v["evidence"].get("diagnosis"):
            lines.append(f"    diagnosis: {v['evidence']['diagnosis']}")
    lines.append("schedule:")
    for w in report["fault_windows"]:
        lines.append(f"  {w['start_t']:>6}s - {w['end_t'] if w['end_t'] is not None else '?':>6}s"
                     f"  {w['label']}")
    for e in report["events"]:
        if e["error"]:
            lines.append(f"  event {e['index']} ({e['label']}) failed: {e['error']}")
    lines += [f"timeline: {report['timeline_svg']}", f"report:   "
              f"{Path(report['timeline_svg']).with_name('report.json')}"]
    return "\n".join(lines) + "\n"


def summarize_outcomes(submissions: dict[str, Submission]) -> dict[str, Any]:
    counts = Counter(s.outcome for s in submissions.values())
    unknown_final = Counter(s.final_status or "unknown" for s in submissions.values()
                            if s.outcome == "unknown")
    codes = Counter(s.code for s in submissions.values() if s.outcome == "rejected")
    return {"submitted": len(submissions), "acknowledged": counts["acknowledged"],
            "rejected": counts["rejected"], "unknown": counts["unknown"],
            "unknown_resolved_as": dict(unknown_final), "rejection_codes": dict(codes),
            "retried": sum(1 for s in submissions.values() if len(s.attempts) > 1)}


def _counts(counter: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counter.items()))


def timeline_data(report: dict[str, Any], history: History, data: Any,
                  controller: Any) -> TimelineData:
    reference = max(history.honest_records(), key=lambda r: len(r.blocks), default=None)
    per_second: Counter[int] = Counter()
    for block in reference.blocks if reference is not None else []:
        second = (block.timestamp_ms - data.wall0_ms) // 1000
        if second >= 0:
            per_second[second] += len(block.tx_ids)
    views: dict[int, list[tuple[float, int]]] = {i: [] for i in range(history.nodes)}
    up: dict[int, list[tuple[float, bool]]] = {i: [] for i in range(history.nodes)}
    for s in sorted(data.samples, key=lambda sample: sample.t):
        up[s.node].append((s.t, s.up))
        if s.up:
            views[s.node].append((s.t, s.view))
    end = data.end_t or max((s.t for s in data.samples), default=1.0)
    shades = [Shade(w.label, w.kind, w.start, w.end if w.end is not None else end)
              for w in controller.windows]
    verdict = "passed" if report["passed"] else "FAILED"
    return TimelineData(f"{report['scenario']} - {report['nodes']} nodes, seed {report['seed']}"
                        f" - {verdict}", end, sorted(per_second.items()), views, up, shades,
                        data.heal_t, data.load_end_t)


def write_outputs(report: dict[str, Any], history: History, data: Any, controller: Any,
                  out_dir: Path) -> None:
    (out_dir / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (out_dir / "summary.txt").write_text(format_summary(report))
    (out_dir / "timeline.svg").write_text(render_svg(timeline_data(report, history, data,
                                                                   controller)))
    with open(out_dir / "submissions.jsonl", "w") as handle:
        for sub in sorted(history.submissions.values(), key=lambda s: s.t_submit):
            handle.write(json.dumps({"id": sub.id, "kind": sub.kind, "sender": sub.sender,
                                     "nonce": sub.nonce, "t_submit": round(sub.t_submit, 3),
                                     "t_done": _round(sub.t_done), "outcome": sub.outcome,
                                     "height": sub.height, "code": sub.code,
                                     "final_status": sub.final_status,
                                     "attempts": sub.attempts}) + "\n")
