"""`ipchain faults list` and `ipchain faults run SCENARIO [--nodes N] [--seed S] [--out DIR]`.

`faults run` narrates on stderr (a progress bar on a terminal) and prints its summary,
or with --json the report, on stdout.

Exit status: 0 when the run ended as its scenario declared (a normal scenario passed,
a negative control reported a violation), 1 when it did not, 2 for an unusable
scenario (the message names the file, line and field).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Sequence

from ipchain.sdk.client import ApiError
from ipchain.cluster.manager import ClusterError
from ipchain.render import Progress, print_table
from scripts.argtypes import base_port
from node.logs import LEVELS as LOG_LEVELS

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
DEFAULT_OUT = Path("faults-out")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ipchain faults", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = sub.add_parser("list", help="the scenarios in configs/faults/")
    listing.add_argument("--json", action="store_true", help="print the scenarios as JSON")
    run = sub.add_parser("run", help="run one scenario on a fresh cluster and check it")
    run.add_argument("scenario", help="a scenario file, or a name from `ipchain faults list`")
    run.add_argument("--nodes", type=int, default=None, help="override the scenario's node count")
    run.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    run.add_argument("--out", type=Path, default=None,
                     help=f"output directory (default {DEFAULT_OUT}/<scenario>-s<seed>-<time>)")
    run.add_argument("--base-port", type=base_port, default=None,
                     help="node i listens on base-port + i (default: a free range)")
    run.add_argument("--log-level", default="warning", choices=LOG_LEVELS,
                     help="the nodes' log level (default %(default)s; logs in "
                          "OUT/cluster/node<i>/node.log)")
    run.add_argument("--json", action="store_true",
                     help="print the report as one JSON object on stdout (progress on stderr)")
    return parser


def cmd_list(as_json: bool = False) -> int:
    from ipchain.faultrun.scenario import SCENARIO_DIR, ScenarioError, list_scenarios
    rows, bad = [], []
    found = list_scenarios()
    if not found:  # an install without its package data: say so instead of an empty table
        print(f"ipchain faults list: error: no scenario files in {SCENARIO_DIR}", file=sys.stderr)
        return 2
    for item in found:
        if isinstance(item, ScenarioError):
            bad.append(str(item))
            continue
        rows.append([item.name, item.nodes, f"{item.duration_s:g}s", f"{item.heal_at_s:g}s",
                     item.expected, len(item.events), item.description])
    columns = ["name", "nodes", "duration", "heal", "expect", "events", "description"]
    if as_json:
        print(json.dumps({"scenarios": [dict(zip(columns, row)) for row in rows],
                          "invalid": bad}, indent=2))
    else:
        print_table("fault scenarios", columns, rows)
    for message in bad:
        print(f"invalid: {message}", file=sys.stderr)
    return EXIT_FAIL if bad else EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from ipchain.faultrun.report import format_summary
    from ipchain.faultrun.runner import run_scenario
    from ipchain.faultrun.scenario import ScenarioError, find_scenario, load_scenario
    try:
        scenario = load_scenario(find_scenario(args.scenario), args.nodes, args.seed)
    except ScenarioError as exc:
        print(f"ipchain faults: invalid scenario: {exc}", file=sys.stderr)
        return EXIT_USAGE
    out = args.out or DEFAULT_OUT / (f"{scenario.name}-s{scenario.seed}-"
                                     f"{time.strftime('%Y%m%d-%H%M%S')}")
    planned_s = scenario.duration_s + scenario.liveness_bound_s
    with Progress(f"faults run {scenario.name}", total=planned_s, unit="s") as bar:
        def progress(t: float, line: str) -> None:
            bar.update(completed=min(t, planned_s), note=line.split("] ", 1)[-1])
        report = run_scenario(scenario, out, bar.log, base_port=args.base_port,
                              progress=progress, log_level=args.log_level)
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        print(format_summary(report), end="", flush=True)
    return EXIT_OK if report["as_expected"] else EXIT_FAIL


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return cmd_list(args.json) if args.action == "list" else cmd_run(args)
    except (ClusterError, ApiError, OSError) as exc:
        print(f"ipchain faults: error: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        print("ipchain faults: interrupted (cluster stopped)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
