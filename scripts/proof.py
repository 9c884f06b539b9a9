"""`ipchain proof TXID` fetches a transaction's portable proof; `ipchain verify-proof`
checks one offline, with nothing but the genesis file: no node is trusted or needed."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from node.proofs import ProofError, verify_proof
from ipchain.sdk import client
from ipchain.cluster import layout


def add_parsers(sub: Any) -> None:
    fetch = sub.add_parser("proof", help="fetch a committed transaction's portable proof")
    fetch.add_argument("tx_id", help="transaction id (64 hex)")
    fetch.add_argument("--node", default=f"http://127.0.0.1:{layout.DEFAULT_BASE_PORT}",
                       help="node to ask (default %(default)s)")
    fetch.add_argument("--out", type=Path, help="write the proof here (default: stdout)")
    check = sub.add_parser("verify-proof", help="check a proof offline against the genesis")
    check.add_argument("proof", type=Path, help="a proof file written by `ipchain proof`")
    check.add_argument("--genesis", type=Path, default=Path(layout.DEFAULT_DATA_DIR) / "genesis.json",
                       help="the chain's genesis.json (default %(default)s)")


def cmd_proof(args: argparse.Namespace) -> int:
    async def fetch() -> dict[str, Any]:
        async with client.open_session() as session:
            _, body = await client.request(session, "GET", f"{args.node.rstrip('/')}/v1/proof/tx/{args.tx_id}")
            return body

    try:
        proof = asyncio.run(fetch())
    except client.ApiError as exc:
        print(f"ipchain proof: {exc}", file=sys.stderr)
        return 1
    text = json.dumps(proof, indent=2, sort_keys=True)
    if args.out:
        args.out.write_text(text + "\n")
        print(f"proof of {args.tx_id} at height {proof['height']} written to {args.out}")
    else:
        print(text)
    return 0


def cmd_verify_proof(args: argparse.Namespace) -> int:
    try:
        proof = json.loads(args.proof.read_text())
        genesis = json.loads(args.genesis.read_text())
        summary = verify_proof(proof, genesis)
    except (OSError, ValueError) as exc:  # ProofError is a ValueError
        kind = "invalid" if isinstance(exc, ProofError) else "unreadable"
        print(f"proof {kind}: {exc}", file=sys.stderr)
        return 1
    print(f"valid: tx {summary['tx_id']} committed at height {summary['height']}, "
          f"signed by replicas {summary['signers']} of {len(genesis['validators'])}")
    return 0
