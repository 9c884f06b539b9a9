"""`ipchain ops` / `ipchain ops OP`: the op catalogue as a table (ipchain/catalogue.py).

Read from the local contracts' schemas (the same ones every node runs), or with
`--node URL` from a node's GET /v1/ops. `--json` prints the catalogue itself.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from contracts.catalogue import describe_ops
from ipchain.catalogue import detail_rows, records_of, summary_rows
from ipchain.render import print_table


def add_parser(sub: Any) -> None:
    ops = sub.add_parser("ops", help="the op catalogue: every op, its roles and arguments")
    ops.add_argument("op", nargs="?", help="one op in detail, e.g. licence.offer")
    ops.add_argument("--node", help="read GET /v1/ops from this node instead of local schemas")
    ops.add_argument("--json", action="store_true", help="print JSON instead of a table")


def load_catalogue(node: str | None) -> dict[str, Any]:
    if node is None:
        return describe_ops()
    from ipchain.sdk.sync import Client  # only when asked: keeps `ipchain ops` offline

    with Client(node) as api:
        return api.ops()


def cmd_ops(args: argparse.Namespace) -> int:
    catalogue = load_catalogue(args.node)
    if args.op is None:
        if args.json:
            print(json.dumps(catalogue, indent=2))
        else:
            print_table(f"{len(catalogue['ops'])} ops", ["op", "roles", "arguments", "what"],
                        summary_rows(catalogue))
        return 0
    if args.op not in catalogue["ops"]:
        print(f"ipchain ops: unknown op {args.op!r}; `ipchain ops` lists them")
        return 2
    op = catalogue["ops"][args.op]
    if args.json:
        names = records_of(catalogue, args.op) + [op["args"]["$ref"].rsplit("/", 1)[1]]
        print(json.dumps({"name": args.op, **op,
                          "schemas": {n: catalogue["schemas"][n] for n in names}}, indent=2))
        return 0
    roles = ", ".join(op["roles"] or ["any member organisation"])
    print(f"{args.op}: {op['doc']}\nroles: {roles}")
    print_table(args.op, ["argument", "type", "", "meaning"], detail_rows(catalogue, args.op))
    print("may be refused with: " + ", ".join(op["errors"]))
    return 0
