"""`ipchain demo`: a fresh cluster, the alliance story spread over every node, results.

It shows what a user should see from a consortium chain: each transaction committed
(or refused, with the contract's error code) whichever node it went to, the balances
that follow, and every node holding the same latest block and state root.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from scripts import client, layout, workload
from scripts.cluster import Cluster, ClusterError, start_and_wait
from scripts.render import print_table, say

STEP_TIMEOUT_MS = 10_000


async def run_step(session: Any, cluster: Cluster, step: workload.Step, phase: str,
                   node: int, refs: dict[str, str]) -> list[Any]:
    """Sign, send to `node`, wait for commit; one table row whatever happens. A step
    that creates a record binds its id in `refs` for the phases after it."""
    row = [None, phase, step.op, step.what, layout.node_id(node), None]
    try:
        args = workload.resolve(step.args, refs)
    except workload.UnresolvedRef as exc:
        return row + [f"skipped: no {exc.args[0]}"]
    key = cluster.client_key(step.org)
    nonce = cluster.nonces.reserve(client.sender_hex(key))
    tx = client.sign(key, cluster.chain_id, nonce, step.op, args)
    row[0] = tx.id[:12]
    url = cluster.urls[node]
    try:
        answer = await client.submit(session, url, tx, wait=True, timeout_ms=STEP_TIMEOUT_MS)
    except client.ApiError as exc:
        if exc.status != 504:
            return row + [f"refused: {exc.code}"]
        answer = await client.wait_for_tx(session, url, tx.id, deadline_s=30.0)
    receipt = answer.get("receipt") or {}
    row[5] = receipt.get("height")
    if answer["status"] != "committed":
        return row + [f"{answer['status']}: {receipt.get('code')}"]
    if step.binds:
        refs[step.binds] = workload.record_id(tx.id)
    return row + ["committed"]


async def run_story(session: Any, cluster: Cluster, phases: list[workload.Phase],
                    refs: dict[str, str]) -> list[list[Any]]:
    rows: list[list[Any]] = []
    sent = 0
    for phase in phases:
        jobs = []
        for step in phase.steps:
            jobs.append(run_step(session, cluster, step, phase.name, sent % cluster.n, refs))
            sent += 1
        rows += await asyncio.gather(*jobs)
    return rows


CONTRACT_ACCOUNTS = {"pool": "pool", "deal": "deal"}
"""Story records whose contract accounts hold BPC: the pool treasury, the deal account."""


async def get_balances(session: Any, cluster: Cluster,
                       refs: dict[str, str]) -> list[list[Any]]:
    """Every organisation's and contract account's balances, then the totals row: the
    BPC column must add up to the genesis supply (nothing created, nothing lost)."""
    url = cluster.urls[0]
    rows = []
    for org in cluster.genesis["organisations"]:
        balance = await client.get_state(session, url, "balances", org["id"])
        rows.append([org["id"], ",".join(org["roles"]), org["bpc"], balance["bpc"],
                     balance["bpc"] - org["bpc"], balance["bpr"]])
    for ref, prefix in CONTRACT_ACCOUNTS.items():
        if ref in refs:
            balance = await client.get_state(session, url, "balances", f"{prefix}:{refs[ref]}")
            rows.append([f"{prefix}:{refs[ref]}", "contract", 0, balance["bpc"],
                         balance["bpc"], balance["bpr"]])
    supply = await client.get_state(session, url, "supply")
    rows.append(["total", "", sum(r[2] for r in rows), sum(r[3] for r in rows),
                 sum(r[4] for r in rows), sum(r[5] for r in rows)])
    rows.append(["supply (/v1/state/supply)", "", "", supply["bpc"], "", supply["bpr"]])
    return rows


async def get_agreed_heads(session: Any, urls: list[str],
                           deadline_s: float = 20.0) -> list[dict[str, Any]]:
    """Each node's block at the highest height any node reports, once all have it."""
    statuses = [await client.get_status(session, url) for url in urls]
    target = max(status["height"] for status in statuses)
    deadline = time.monotonic() + deadline_s
    while True:
        blocks = [await client.get_block(session, url, target) for url in urls]
        if all(blocks):
            return blocks
        if time.monotonic() >= deadline:
            missing = [url for url, block in zip(urls, blocks) if block is None]
            raise ClusterError(f"nodes {missing} did not reach height {target} in time")
        await asyncio.sleep(0.1)


async def run_demo(cluster: Cluster, phases: list[workload.Phase]) -> tuple[Any, ...]:
    async with client.open_session() as session:
        refs: dict[str, str] = {}
        rows = await run_story(session, cluster, phases, refs)
        balances = await get_balances(session, cluster, refs)
        heads = await get_agreed_heads(session, cluster.urls)
    return rows, balances, heads


def report(rows: list[list[Any]], balances: list[list[Any]],
           heads: list[dict[str, Any]]) -> bool:
    print_table("transactions", ["tx", "phase", "op", "what", "node", "height", "status"], rows)
    print_table("balances on node0", ["account", "roles", "genesis BPC", "BPC", "change",
                                      "BPR"], balances)
    print_table("latest block on each node", ["node", "height", "hash", "state root"],
                [[layout.node_id(i), b["height"], b["hash"][:16], b["state_root"][:16]]
                 for i, b in enumerate(heads)])
    agreed = len({(b["hash"], b["state_root"]) for b in heads}) == 1
    if agreed:
        say(f"all {len(heads)} nodes agree at height {heads[0]['height']}: "
            f"block {heads[0]['hash']} state root {heads[0]['state_root']}")
    else:
        say("NODES DISAGREE on the latest block or state root (see the table above)")
    committed = sum(1 for row in rows if row[-1] == "committed")
    say(f"{committed} of {len(rows)} transactions committed")
    return agreed and committed == len(rows)


def run(args: argparse.Namespace) -> int:
    base_port = args.base_port or layout.DEFAULT_BASE_PORT
    cluster = Cluster.create(args.data_dir, args.n, base_port, 0, fresh=True)
    say(f"demo: starting a fresh {args.n}-node cluster in {cluster.data_dir}")
    start_and_wait(cluster, args.timeout)
    for i, url in enumerate(cluster.urls):
        say(f"  {layout.node_id(i)}  {url}")
    phases = workload.story(workload.get_available_ops())
    say(f"demo: story phases: {', '.join(p.name for p in phases)}")
    ok = False
    try:
        ok = report(*asyncio.run(run_demo(cluster, phases)))
    finally:
        if args.down:
            cluster.stop()
            say("demo: cluster stopped")
        else:
            say(f"demo: cluster left running; inspect with `ipchain status --data-dir "
                f"{args.data_dir}`, stop with `ipchain down --data-dir {args.data_dir}`")
    return 0 if ok else 1
