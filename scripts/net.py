"""`ipchain net init --hosts "HOST[:N],..." --out DIR`: bundles for a cluster across hosts.

    ipchain net init --hosts "10.0.0.1:2,10.0.0.2,10.0.0.3" --out alliance-net
    scp -r alliance-net/node0 10.0.0.1:    # then, on that host, inside the bundle:
    python -m node --config config.toml

Prints the inventory (JSON with --json, else a table) and where each bundle went.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from ipchain.cluster import bundle, deploy, layout
from ipchain.render import print_table, say
from scripts.argtypes import non_negative, positive


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ipchain net", description="clusters across hosts")
    sub = parser.add_subparsers(dest="action", required=True)
    init = sub.add_parser("init", help="write one self-contained bundle per node")
    where = init.add_mutually_exclusive_group(required=True)
    where.add_argument("--hosts", metavar="HOST[:N],...",
                       help="hosts and how many nodes each runs, e.g. '10.0.0.1:2,10.0.0.2'")
    where.add_argument("--compose", type=positive, metavar="N",
                       help="N containers (hosts node0..): also write compose.yaml")
    where.add_argument("--kubernetes", type=positive, metavar="N",
                       help="a StatefulSet of N pods (hosts ipchain-<i>.ipchain): also write "
                       "kubernetes.yaml (it holds every node's keys: 0600)")
    init.add_argument("--out", type=Path, required=True, help="new directory for the bundles")
    init.add_argument("--api-port", type=positive, default=bundle.DEFAULT_API_PORT,
                      help=f"client API port of a host's first node (default {bundle.DEFAULT_API_PORT})")
    init.add_argument("--p2p-port", type=positive, default=bundle.DEFAULT_P2P_PORT,
                      help=f"mutual-TLS peer port of a host's first node (default {bundle.DEFAULT_P2P_PORT})")
    init.add_argument("--chain-id", default=layout.CHAIN_ID)
    init.add_argument("--clients", type=non_negative, default=0,
                      help="extra load-client organisations in genesis (default 0)")
    init.add_argument("--client-tls", action="store_true",
                      help="serve the client API over TLS as well (server certificate only)")
    init.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    init.add_argument("--json", action="store_true", help="print the inventory as JSON")
    return parser


def cmd_init(args: argparse.Namespace) -> int:
    if args.compose:
        hosts, api_port, p2p_port = deploy.compose_hosts(args.compose), deploy.API_PORT, deploy.P2P_PORT
    elif args.kubernetes:
        hosts, api_port, p2p_port = (deploy.kubernetes_hosts(args.kubernetes), deploy.API_PORT,
                                     deploy.P2P_PORT)
    else:
        hosts, api_port, p2p_port = bundle.parse_hosts(args.hosts), args.api_port, args.p2p_port
    slots = bundle.plan_nodes(hosts, api_port, p2p_port)
    inventory = bundle.write_bundles(args.out, slots, chain_id=args.chain_id,
                                     clients=args.clients, client_tls=args.client_tls,
                                     log_level=args.log_level)
    if args.compose:
        say(f"wrote {deploy.write_compose(args.out, args.compose)} (docker compose up -d)")
    if args.kubernetes:
        say(f"wrote {deploy.write_kubernetes(args.out, args.kubernetes)} (kubectl apply -f)")
    if args.json:
        print(json.dumps(inventory, indent=2))
        return 0
    print_table("cluster bundles", ["node", "host", "API", "peers (mutual TLS)", "bundle"],
                [[n["id"], n["host"], n["api_url"], n["p2p_url"], str(args.out / n["bundle"])]
                 for n in inventory["nodes"]])
    say(f"certificates expire {inventory['certificates_expire']}; the CA key is "
        f"{args.out / 'ca' / 'ca.key'} (keep it offline). Start a node inside its bundle: "
        "python -m node --config config.toml")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return cmd_init(args)
    except (bundle.BundleError, OSError) as exc:
        print(f"ipchain net {args.action}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
