"""`ipchain sim`: explore many seeds, or replay one.

    ipchain sim --nodes 4 --blocks 50 --seeds 200            # explore seeds 1..200
    ipchain sim --seeds 50 --seed-start 1000 --json         # JSON summary only
    ipchain sim --faulty 2 --byzantine collude --seeds 5    # negative control (f+1 liars)
    ipchain sim --seed 17 --nodes 4 --blocks 50             # replay seed 17: plan + outcome
    ipchain sim --seeds 100000 --scheduler tcp://h:8786 --out r.jsonl [--resume]

Exploring prints one JSON summary (seeds, violations as ipchain.checks writes them:
{invariant, message, nodes, heights, evidence, seed}, seeds_per_min, ...) and, without
--json, each failing seed's plan on stderr. The exit status is 1 when any invariant was
violated, so a CI job can run a swarm as is.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from ipchain.sim.faults import MIXES
from ipchain.sim.run import SimConfig, mix_with, resolve_mix, run_seed
from ipchain.sim.sweep import progress_bar
from ipchain.sim.sweep import sweep as run_sweep
from node.byzantine import BEHAVIOURS
from scripts.argtypes import non_negative, positive

EXIT_OK, EXIT_VIOLATION, EXIT_USAGE = 0, 1, 2
DEFAULTS = SimConfig()


def _behaviours(text: str) -> tuple[str, ...]:
    names = tuple(sorted({n.strip() for n in text.split(",") if n.strip()}))
    unknown = [n for n in names if n not in BEHAVIOURS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown behaviour(s) {unknown}; choose from "
                                         f"{', '.join(BEHAVIOURS)}")
    return names


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ipchain sim", description="Deterministic simulation of N real replicas "
        "under one seed: faults on (safety), then healed (liveness), then checkers.")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--seed", type=non_negative, help="replay this one seed, printing its plan")
    which.add_argument("--seeds", type=positive, default=10,
                       help="explore this many seeds (default 10)")
    parser.add_argument("--seed-start", type=non_negative, default=1,
                        help="first seed to explore (default 1)")
    parser.add_argument("--nodes", type=positive, default=4, help="replicas (default 4)")
    parser.add_argument("--blocks", type=positive, default=50,
                        help="client bursts in the safety phase, about one block each (default 50)")
    parser.add_argument("--txs-per-block", type=positive, default=4)
    parser.add_argument("--mix", choices=[m for m in MIXES if m != "collude"], default="full",
                        help="fault mix: full (primary faults and view changes included), "
                        "normal (no primary faults) or none (default full)")
    parser.add_argument("--faulty", type=non_negative, default=None,
                        help="replicas the plan may fault (default f; above f expects violations)")
    parser.add_argument("--byzantine", type=_behaviours, default=None, metavar="KINDS",
                        help="make every faulty replica Byzantine with one of these comma-separated "
                        f"behaviours: {', '.join(BEHAVIOURS)}")
    parser.add_argument("--ed25519", action="store_true",
                        help="real Ed25519 signatures (default: fast-insecure-sim keyed hashes)")
    parser.add_argument("--liveness-bound-ms", type=positive, default=DEFAULTS.liveness_bound_ms)
    parser.add_argument("--request-timeout-ms", type=positive,
                        default=DEFAULTS.request_timeout_ms)
    parser.add_argument("--rewrite-rate", type=float, default=0.0, metavar="P",
                        help="share of packets a keyless adversary forges by rewriting their "
                             "unsigned parts (must change nothing; default 0)")
    parser.add_argument("--no-shared-execution", dest="share_execution", action="store_false",
                        help="every replica executes every block itself, as a node does "
                        "(slower; no outcome changes: by default a seed's replicas with "
                        "identical inputs replay one execution)")
    parser.add_argument("--jobs", type=positive, default=1,
                        help="worker processes: 1 runs in this process, more start an embedded "
                        "Dask cluster of that many single-threaded workers (default 1)")
    parser.add_argument("--scheduler", metavar="tcp://HOST:PORT", default=None,
                        help="run the seeds as tasks on this dask.distributed scheduler")
    parser.add_argument("--out", type=Path, default=None, metavar="FILE",
                        help="append one JSON line per seed to FILE as each finishes")
    parser.add_argument("--resume", action="store_true",
                        help="with --out: skip the seeds FILE already holds")
    parser.add_argument("--json", action="store_true", help="machine-readable output only")
    return parser


def config_from(args: argparse.Namespace) -> SimConfig:
    if args.faulty is not None and args.faulty > args.nodes:
        raise ValueError(f"--faulty {args.faulty} exceeds --nodes {args.nodes}")
    base = MIXES["collude"] if args.byzantine and "collude" in args.byzantine else resolve_mix(args.mix)
    mix = mix_with(base, args.faulty, args.byzantine, args.nodes)
    return replace(DEFAULTS, nodes=args.nodes, blocks=args.blocks,
                   txs_per_block=args.txs_per_block, mix=mix, ed25519=args.ed25519,
                   liveness_bound_ms=args.liveness_bound_ms,
                   request_timeout_ms=args.request_timeout_ms, rewrite_rate=args.rewrite_rate,
                   share_execution=args.share_execution, cli_flags=replay_flags(args, mix.name))


def replay_flags(args: argparse.Namespace, mix_name: str) -> str:
    """The flags that rebuild this config."""
    flags = [f"--nodes {args.nodes}", f"--blocks {args.blocks}",
             f"--txs-per-block {args.txs_per_block}"]
    if not (args.byzantine and "collude" in args.byzantine):
        flags.append(f"--mix {mix_name.split('+')[0]}")
    if args.faulty is not None:
        flags.append(f"--faulty {args.faulty}")
    if args.byzantine:
        flags.append(f"--byzantine {','.join(args.byzantine)}")
    if args.ed25519:
        flags.append("--ed25519")
    if args.liveness_bound_ms != DEFAULTS.liveness_bound_ms:
        flags.append(f"--liveness-bound-ms {args.liveness_bound_ms}")
    if args.request_timeout_ms != DEFAULTS.request_timeout_ms:
        flags.append(f"--request-timeout-ms {args.request_timeout_ms}")
    if args.rewrite_rate:
        flags.append(f"--rewrite-rate {args.rewrite_rate}")
    return " ".join(flags)


def check_out_file(args: argparse.Namespace) -> None:
    """Appending a second sweep to a results file would mix two runs: say so instead."""
    if args.resume and args.out is None:
        raise ValueError("--resume needs --out FILE (the results to continue)")
    if args.out is not None and args.out.exists() and not args.resume and args.seed is None:
        raise ValueError(f"{args.out} exists; add --resume to continue it, or choose another file")


def replay(seed: int, cfg: SimConfig, as_json: bool) -> int:
    result = run_seed(seed, cfg)
    if as_json:
        print(json.dumps({**result.to_value(), "digests": result.digests}, indent=2))
    else:
        print(result.describe())
    return EXIT_OK if result.ok else EXIT_VIOLATION


def sweep(args: argparse.Namespace, cfg: SimConfig) -> int:
    seeds = range(args.seed_start, args.seed_start + args.seeds)
    update, close = progress_bar()
    try:
        summary = run_sweep(cfg, seeds, out=args.out, resume=args.resume,
                            scheduler=args.scheduler, jobs=0 if args.jobs == 1 else args.jobs,
                            progress=update)
    finally:
        close()
    failures = summary.pop("failures")
    if not args.json:
        for text in failures:
            print(text + "\n", file=sys.stderr)
    print(json.dumps(summary, indent=2))
    return EXIT_VIOLATION if summary["violations"] else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cfg = config_from(args)
        check_out_file(args)
    except ValueError as exc:
        parser.print_usage(sys.stderr)
        print(f"ipchain sim: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.seed is not None:
        return replay(args.seed, cfg, args.json)
    return sweep(args, cfg)


if __name__ == "__main__":
    sys.exit(main())
