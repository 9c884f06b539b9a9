"""`ipchain proof tx ID` / `ipchain proof state KIND KEY` fetch a portable proof;
`ipchain verify-proof FILE` checks one offline, with nothing but the genesis file: no
node is trusted or needed, and it says in one sentence what the proof establishes."""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ipchain.cluster import layout
from ipchain.cluster.manager import Cluster
from ipchain.sdk import client
from scripts.argtypes import base_port
from scripts.oneline import explain
from node.proofs import ProofError, verify_proof


def add_parsers(sub: Any) -> None:
    fetch = sub.add_parser(
        "proof", help="fetch a portable proof: proof tx ID | proof state KIND KEY",
        description="proof tx ID: what became of a transaction (committed or rejected); "
                    "proof state KIND KEY: the value, or absence, of the state key KIND/KEY "
                    "(e.g. patent CN:2023..., bal BPR/org-a, deal D1). `proof ID` also works.")
    fetch.add_argument("target", nargs="+", metavar="WHAT",
                       help="tx ID | state KIND KEY | ID")
    _where(fetch)
    fetch.add_argument("--node", default=None, help="node URL to ask (default: node 0 of the "
                       "cluster in --data-dir, else base-port)")
    fetch.add_argument("--out", type=Path, help="write the proof here (default: stdout)")
    check = sub.add_parser("verify-proof", help="check a proof offline against the genesis")
    check.add_argument("proof", type=Path, help="a proof file written by `ipchain proof`")
    _where(check)
    check.add_argument("--genesis", type=Path, default=None,
                       help="the chain's genesis.json (default: DATA_DIR/genesis.json)")


def _where(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=layout.DEFAULT_DATA_DIR, type=Path,
                        help="cluster data directory (default: %(default)s under the cwd)")
    parser.add_argument("--base-port", type=base_port, default=None,
                        help=f"node i listens on base-port + i (default: {layout.DEFAULT_BASE_PORT})")


def proof_path(target: list[str]) -> str:
    """The API path for `proof`'s positional words; ValueError names the right forms."""
    if len(target) == 2 and target[0] == "tx":
        return f"/v1/proof/tx/{quote(target[1], safe='')}"
    if len(target) == 3 and target[0] == "state":
        return f"/v1/proof/state/{quote(target[1], safe='')}/{quote(target[2], safe='/:')}"
    if len(target) == 1 and target[0] not in ("tx", "state"):
        return f"/v1/proof/tx/{quote(target[0], safe='')}"
    raise ValueError("expected `proof tx ID` or `proof state KIND KEY`")


def _node_url(args: argparse.Namespace) -> str:
    if args.node:
        return args.node.rstrip("/")
    if args.base_port is None and Cluster.exists(args.data_dir):
        return Cluster.load(args.data_dir).urls[0]
    return layout.node_url(args.base_port or layout.DEFAULT_BASE_PORT, 0)


def cmd_proof(args: argparse.Namespace) -> int:
    try:
        path = proof_path(args.target)
    except ValueError as exc:
        print(f"ipchain proof: {exc}", file=sys.stderr)
        return 2

    async def fetch() -> dict[str, Any]:
        async with client.open_session() as session:
            _, body = await client.request(session, "GET", _node_url(args) + path)
            return body

    try:
        proof = asyncio.run(fetch())
    except client.ApiError as exc:
        print(f"ipchain proof: error: {explain(exc)}", file=sys.stderr)
        return 1
    text = json.dumps(proof, indent=2, sort_keys=True)
    if args.out:
        args.out.write_text(text + "\n")
        print(f"{proof['kind']} proof at height {proof['header']['height']} written to {args.out}")
    else:
        print(text)
    return 0


def cmd_verify_proof(args: argparse.Namespace) -> int:
    genesis_path = args.genesis or Path(args.data_dir) / "genesis.json"
    try:
        proof = json.loads(args.proof.read_text())
        genesis = json.loads(genesis_path.read_text())
        facts = verify_proof(proof, genesis)
    except (OSError, ValueError) as exc:  # ProofError is a ValueError
        kind = "invalid" if isinstance(exc, ProofError) else "unreadable"
        print(f"proof {kind}: {exc}", file=sys.stderr)
        return 1
    print(describe(facts))
    return 0


def describe(facts: dict[str, Any]) -> str:
    """One sentence: what the verified proof establishes, and on whose word."""
    when = datetime.datetime.fromtimestamp(facts["timestamp_ms"] / 1000, datetime.timezone.utc)
    anchor = (f"at height {facts['height']} (block time {when:%Y-%m-%d %H:%M:%S} UTC), "
              f"certified by validators {facts['signers']} of {facts['validators']}")
    if facts["kind"] == "tx":
        outcome = ("was committed" if facts["status"] == "committed"
                   else f"was REJECTED with code {facts['code']}")
        return f"valid: transaction {facts['tx_id']} ({facts['op']}) {outcome} {anchor}"
    if not facts["present"]:
        return f"valid: state key {facts['key']} does not exist {anchor}"
    return f"valid: {describe_value(facts['key'], facts['value'])} {anchor}"


def describe_value(key: str, value: Any) -> str:
    kind, _, rest = key.partition("/")
    if kind == "patent" and isinstance(value, dict):
        owners = ", ".join(f"{org} ({bps / 100:g}%)" for org, bps in value.get("owners", []))
        return f"patent {rest} is {value.get('status')}, owned by {owners or 'nobody'},"
    if kind == "bal" and isinstance(value, int):
        asset, _, account = rest.partition("/")
        return f"account {account} holds {value} {asset} (minor units)"
    if kind == "pledge" and isinstance(value, dict):
        return (f"patent {rest} is pledged to {value.get('pledgee')} for {value.get('amount')} "
                f"until {value.get('until')},")
    if kind == "deal" and isinstance(value, dict):
        tranches = ", ".join(f"{t['name']} balance {t['balance']}"
                             for t in value.get("tranches", []))
        return f"deal {rest} ({value.get('state')}) has tranches {tranches},"
    text = json.dumps(value, sort_keys=True)
    return f"state key {key} holds {text[:300] + '…' if len(text) > 300 else text}"
