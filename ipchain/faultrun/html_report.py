"""report.html: a fault run for people, in the explorer's style, opened straight from disk.

One self-contained file (the explorer's style sheet and the timeline SVG inlined, no
script), so it can be attached to a CI run or mailed. Every value from the run is
escaped: violation evidence quotes what nodes said, and a node may be Byzantine.
"""

from __future__ import annotations

import html
import json
from typing import Any, Iterable

from node.explorer import STATIC_DIR

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>{css}</style></head>
<body><header><span class="brand">ipchain</span><nav><span>fault run report</span></nav></header>
<main>{body}</main>
<footer>Written by <code>ipchain faults run</code> beside report.json (the same facts,
machine-readable).</footer></body></html>
"""


def esc(value: Any) -> str:
    return html.escape("—" if value is None else str(value))


def table(headers: list[str], rows: Iterable[list[Any]], raw_columns: tuple[int, ...] = ()) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c if i in raw_columns else esc(c)}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    empty = f'<tr><td colspan="{len(headers)}" class="muted">none</td></tr>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body or empty}</tbody></table>"


def card(title: str, *parts: str) -> str:
    return f'<section class="card"><h2>{esc(title)}</h2>{"".join(parts)}</section>'


def badge(ok: bool, yes: str = "ok", no: str = "VIOLATED") -> str:
    return f'<span class="badge {"good" if ok else "bad"}">{esc(yes if ok else no)}</span>'


def _verdict(report: dict[str, Any]) -> str:
    verdict = "PASSED" if report["passed"] else "FAILED"
    expectation = "as expected" if report["as_expected"] else "NOT as expected"
    cls = "good" if report["as_expected"] else "bad"
    return (f'<p class="pass-banner {cls}">{verdict} (expected: {esc(report["expected"])}) '
            f"— {expectation}</p>")


def _overview(report: dict[str, Any]) -> str:
    load, live = report["load"], report["liveness"]
    pairs = [("nodes / f / seed", f"{report['nodes']} / {report['f']} / {report['seed']}"),
             ("load", f"{load['submitted']} submitted at {load['rate_tps']:g} tx/s: "
                      f"{load['acknowledged']} acknowledged, {load['rejected']} rejected, "
                      f"{load['unknown']} unknown, {load['retried']} retried"),
             ("liveness", f"healed at {live['heal_t']} s; new tx committed after "
                          f"{live['recovered_after_s']} s (bound {live['bound_s']:g} s); "
                          + ("converged" if live["converged"] else "did NOT converge")),
             ("run time", f"{report['elapsed_s']} s")]
    items = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in pairs)
    return f'<dl class="kv">{items}</dl>'


def _violations(report: dict[str, Any]) -> str:
    if not report["violations"]:
        return '<p class="muted">none</p>'
    parts = []
    for v in report["violations"]:
        parts.append(f'<h3>{badge(False, no=v["invariant"])} {esc(v["message"])}</h3>'
                     f'<p>nodes {esc(v["nodes"])}, heights {esc(v["heights"])}</p>'
                     f'<pre class="json">{esc(json.dumps(v["evidence"], indent=2))}</pre>')
    return "".join(parts)


def render_html(report: dict[str, Any], timeline_svg: str) -> str:
    """The whole page; `timeline_svg` is the run's timeline.svg text (our own output)."""
    finals = report["cluster"]["final"]
    body = "".join([
        card(f"{report['scenario']}", f"<p>{esc(report['description'])}</p>", _verdict(report),
             _overview(report)),
        card("Timeline", f'<div class="timeline">{timeline_svg}</div>'),
        card("Invariants", table(["invariant", "held"], [
            [name, badge(ok)] for name, ok in report["invariants"].items()], raw_columns=(1,))),
        card(f"Violations ({len(report['violations'])})", _violations(report)),
        card("Fault schedule", table(["start s", "end s", "kind", "fault", "nodes"], [
            [w["start_t"], w["end_t"], w["kind"], w["label"], w["nodes"]]
            for w in report["fault_windows"]]),
            table(["#", "at s", "event", "nodes", "error"], [
                [e["index"], e["at_s"], e["label"], e["nodes"], e["error"] or ""]
                for e in report["events"]])),
        card("Nodes at the end", table(["node", "reachable", "height", "view", "state root"], [
            [f"node{i}", "yes" if f["reachable"] else "no", f["height"], f["view"],
             (f["state_root"] or "")[:16]] for i, f in finals.items()])),
    ])
    if timeline_svg.startswith("<?xml"):  # an XML declaration means nothing inside HTML
        timeline_svg = timeline_svg.split("?>", 1)[1]
    css = (STATIC_DIR / "style.css").read_text()
    return PAGE.format(title=esc(f"ipchain fault run: {report['scenario']}"), css=css, body=body)
