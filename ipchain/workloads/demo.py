"""`ipchain demo`: a fresh cluster, the alliance story spread over every node, results.

It shows what a user should see from a consortium chain: each transaction committed
(or refused, with the contract's error code) whichever node it went to; then, read
back through the state API, what the story did: a BPR holder licensed for every pooled
patent, the licences (one bought on open terms), the royalties reported and paid, the
pool's distribution, the three-tranche deal, each distribution's disclosure report and
the final one after the default in full; the market chapter (a sale through the
exchange, a loan repaid in part and one enforced, credit ratings before and after); the
balances that follow; and every node holding the same latest block and state root.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import json
import sys
from typing import Any, Awaitable, Callable

from ipchain.sdk import client
from ipchain.cluster import layout
from ipchain.workloads import market
from ipchain.workloads import story as workload
from ipchain.cluster.manager import Cluster, ClusterError, start_and_wait
from ipchain.render import Progress, print_table, say
from ipchain.workloads.demo_summary import summarize

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
                    refs: dict[str, str], bar: Progress | None = None) -> list[list[Any]]:
    rows: list[list[Any]] = []
    sent = 0

    async def counted(step: Awaitable[list[Any]], phase: str) -> list[Any]:
        row = await step
        if bar is not None:
            bar.update(advance=1, note=phase)
        return row

    for phase in phases:
        jobs = []
        for step in phase.steps:
            jobs.append(counted(run_step(session, cluster, step, phase.name, sent % cluster.n,
                                         refs), phase.name))
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


Getter = Callable[..., Awaitable[Any]]
"""`get(kind, *parts)`: one `GET /v1/state/{kind}/{parts...}` answer, None if refused."""


def make_getter(session: Any, url: str) -> Getter:
    async def get(*parts: str) -> Any:
        try:
            return await client.get_state(session, url, *parts)
        except client.ApiError as exc:
            say(f"demo: GET /v1/state/{'/'.join(parts)} refused: {exc.code}")
            return None
    return get


POOL_LICENCE_HOLDERS = (workload.BPR_BUYER, "harbor-capital")
"""The BPR buyer, and for contrast an organisation holding no BPR (and no patent)."""


async def get_pool_licences(get: Getter, pool: dict[str, Any]) -> list[dict[str, Any]]:
    """`pool_licensed/<holder>/<patent>` for POOL_LICENCE_HOLDERS over every pooled
    patent and one patent outside the pool."""
    pooled = [member["patent"] for member in pool["members"]]
    answers = []
    for holder in POOL_LICENCE_HOLDERS:
        balance = await get("balances", holder) or {}
        for pid in [*pooled, workload.OPEN_PATENT.id]:
            answer = await get("pool_licensed", holder, pid)
            if answer is not None:
                answers.append({**answer, "bpr": balance.get("bpr"), "pooled": pid in pooled})
    return answers


async def get_story_views(get: Getter, refs: dict[str, str],
                          ratings_before: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the story's tables show, read back from the chain; a record whose creating
    step did not commit is simply absent. `ratings_before`: the credit ratings read
    before the market chapter ran."""
    views: dict[str, Any] = {"licences": {}, "royalties": {}, "pool": None,
                             "pool_licensed": [], "deal": None, "reports": []}
    for name in workload.LICENCES:
        if name in refs:
            views["licences"][name] = await get("licences", refs[name])
            views["royalties"][name] = await get("royalties", refs[name])
    if "pool" in refs:
        views["pool"] = await get("pools", refs["pool"])
        if views["pool"] is not None:
            views["pool_licensed"] = await get_pool_licences(get, views["pool"])
    if "deal" in refs:
        views["deal"] = await get("deals", refs["deal"])
        # the list keeps each report's own height (a single report's is the node's)
        listed = await get("deal_reports", refs["deal"])
        views["reports"] = listed["result"] if listed else []
    views["market"] = {**await market.get_market_views(get, refs),
                       "before": ratings_before or {}, "after": await market.get_ratings(get)}
    return views


# -- the story's tables (pure: views in, rows out) ------------------------------------


def yes_no(value: Any) -> str:
    return "yes" if value else "no"


def get_licence_label(views: dict[str, Any], lid: str) -> str:
    for name, licence in views["licences"].items():
        if licence and licence["id"] == lid:
            return workload.LICENCES[name][0]
    return lid


def format_shares(shares: list[list[Any]]) -> str:
    return ", ".join(org if bps == 10_000 else f"{org} {bps / 100:g}%" for org, bps in shares)


def compute_pool_licence_rows(views: dict[str, Any]) -> list[list[Any]]:
    return [[a["holder"], a["bpr"], a["patent"], yes_no(a["pooled"]), yes_no(a["licensed"]),
             ",".join(a["pools"])] for a in views["pool_licensed"]]


def compute_licence_rows(views: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for name, licence in views["licences"].items():
        if licence is not None:
            label, what = workload.LICENCES[name]
            rows.append([label, licence["id"], format_shares(licence["licensors"]),
                         licence["licensee"], ",".join(licence["patents"]), licence["kind"],
                         licence["fee"], licence["royalty_bps"],
                         f"{licence['start_date']}..{licence['end_date']}",
                         "open offer" if licence["open_offer"] else "offer+accept",
                         yes_no(licence["in_force"]), what])
    return rows


def compute_royalty_rows(views: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for name, answer in views["royalties"].items():
        licence = views["licences"].get(name)
        for report in (answer or {}).get("reports", []):
            rows.append([workload.LICENCES[name][0], licence["licensee"] if licence else "",
                         report["period"], report["net_sales"], report["units"],
                         report["earned"], report["due"],
                         "paid" if report["paid"] else "UNPAID", report["paid_to"] or "",
                         report["height"], report["paid_height"]])
    return rows


def compute_pool_distribution_rows(views: dict[str, Any]) -> list[list[Any]]:
    pool = views["pool"]
    rows = []
    for period, dist in sorted((pool or {}).get("distributions", {}).items()):
        rows.append([period, "admin fee", pool["admin"], dist["fee"]])
        rows += [[period, "contributor", org, amount] for org, amount in dist["payouts"].items()]
        rows.append([period, "total", "", dist["amount"]])
    return rows


def compute_tranche_rows(deal: dict[str, Any]) -> list[list[Any]]:
    return [[t["name"], t["principal"], t["coupon_bps"], t["sold"], t["balance"],
             t["interest_unpaid"], t["written_down"], t["written_back"],
             ", ".join(f"{org} {pos['units']}u/{pos['balance']}"
                       for org, pos in t["holders"].items())] for t in deal["tranches"]]


def compute_asset_rows(views: dict[str, Any]) -> list[list[Any]]:
    return [[get_licence_label(views, lid), lid, ",".join(asset["patents"]),
             yes_no(asset["defaulted"]), asset["loss"], asset["recovered"]]
            for lid, asset in views["deal"]["assets"].items()]


def format_tests(tests: dict[str, Any]) -> str:
    parts = [f"OC {name} {oc['value_bps']}/{oc['min_bps']}" for name, oc in tests["oc"].items()]
    coverage = tests["coverage"]
    parts.append(f"coverage {coverage['value_bps']}/{coverage['min_bps']}")
    return "; ".join(parts) + (" pass" if tests["all_pass"] else " BREACH")


def format_trigger(trigger: dict[str, Any]) -> str:
    state = (f"FIRED in period {trigger['fired_period']}" if trigger["triggered"]
             else "not fired")
    return f"{state} (breaches {trigger['breach_count']}/{trigger['breach_periods']})"


def compute_report_rows(reports: list[dict[str, Any]]) -> list[list[Any]]:
    """One row per disclosure report: where the period's cash went, tests, trigger."""
    rows = []
    for report in reports:
        steps = report["steps"]
        paid = {kind: sum(s["paid"] for s in steps if s["kind"] == kind)
                for kind in ("interest", "principal", "residual")}
        unpaid = sum(s["unpaid"] for s in steps if s["kind"] in ("fees", "interest"))
        rows.append([report["period"], report["height"], report["mode"],
                     report["collections"], report["fees_paid"], paid["interest"],
                     paid["principal"], paid["residual"], unpaid,
                     sum(t["written_down"] for t in report["tranches"]),
                     format_tests(report["tests"]), format_trigger(report["trigger"])])
    return rows


def compute_payment_rows(reports: list[dict[str, Any]]) -> list[list[Any]]:
    return [[report["period"], tranche, org, amount]
            for report in reports for tranche, paid in report["payments"].items()
            for org, amount in paid.items()]


def compute_step_rows(report: dict[str, Any]) -> list[list[Any]]:
    return [[i, s["kind"], s["tranche"] or "", s["due"], s["paid"], s["unpaid"]]
            for i, s in enumerate(report["steps"], start=1)]


def compute_report_tranche_rows(report: dict[str, Any]) -> list[list[Any]]:
    return [[t["name"], t["balance_start"], t["interest_due"], t["interest_paid"],
             t["interest_unpaid"], t["principal_paid"], t["residual"], t["balance_end"],
             t["written_down"]] for t in report["tranches"]]


def compute_test_rows(tests: dict[str, Any]) -> list[list[Any]]:
    rows = [[f"overcollateralization {name}", oc["value_bps"], oc["min_bps"],
             "pass" if oc["pass"] else "BREACH"] for name, oc in tests["oc"].items()]
    coverage = tests["coverage"]
    rows.append(["coverage", coverage["value_bps"], coverage["min_bps"],
                 "pass" if coverage["pass"] else "BREACH"])
    return rows


def compute_story_checks(views: dict[str, Any]) -> list[list[Any]]:
    """The issue's claims about the story, each answered from what the chain says."""
    buyer = [a for a in views["pool_licensed"] if a["holder"] == workload.BPR_BUYER]
    pooled = [a for a in buyer if a["pooled"]]
    open_licence = views["licences"].get("open_licence") or {}
    royalty_reports = [report for answer in views["royalties"].values()
                       for report in (answer or {}).get("reports", [])]
    deal = views["deal"] or {"tranches": [], "assets": {}}
    before = [r for r in views["reports"]
              if not any(t["written_down"] for t in r["tranches"])]
    final = views["reports"][-1] if views["reports"] else {"tranches": []}
    checks = [
        ("a BPR holder is licensed for every pooled patent",
         bool(pooled) and all(a["licensed"] for a in pooled)),
        ("an open licence was bought", open_licence.get("state") == "active"
         and bool(open_licence.get("open_offer"))),
        ("royalties were reported and paid", any(r["paid"] for r in royalty_reports)),
        ("the deal has senior, mezzanine and equity tranches",
         [t["name"] for t in deal["tranches"]] == ["senior", "mezzanine", "equity"]),
        ("two periods distributed before the default", len(before) >= 2),
        ("an asset defaulted", any(a["defaulted"] for a in deal["assets"].values())),
        ("the final report shows the write-down",
         any(t["written_down"] for t in final["tranches"])),
    ]
    return [[claim, yes_no(ok)] for claim, ok in checks]


async def get_agreed_heads(session: Any, urls: list[str],
                           deadline_s: float = 20.0) -> list[dict[str, Any]]:
    """Each node's block at the highest height any node reports, once all have it."""
    statuses = [await client.get_status(session, url) for url in urls]
    target = max(status["height"] for status in statuses)
    blocks = await client.wait_for_blocks(session, urls, target, deadline_s=deadline_s)
    missing = [url for url, block in zip(urls, blocks) if block is None]
    if missing:
        raise ClusterError(f"nodes {missing} did not reach height {target} in time")
    return blocks


async def run_demo(cluster: Cluster, phases: list[workload.Phase],
                   bar: Progress | None = None) -> tuple[Any, ...]:
    async with client.open_session() as session:
        refs: dict[str, str] = {}
        before, chapter = market.split_chapter(phases)
        rows = await run_story(session, cluster, before, refs, bar)
        await get_agreed_heads(session, cluster.urls)
        ratings_before = await market.get_ratings(make_getter(session, cluster.urls[0]))
        rows += await run_story(session, cluster, chapter, refs, bar)
        # first every node at the last step's height, so node0 answers for all of it
        heads = await get_agreed_heads(session, cluster.urls)
        views = await get_story_views(make_getter(session, cluster.urls[0]), refs,
                                      ratings_before)
        balances = await get_balances(session, cluster, refs)
    return rows, views, balances, heads


def report_licensing(views: dict[str, Any]) -> None:
    if views["pool_licensed"]:
        print_table("pool licences (GET /v1/state/pool_licensed/<holder>/<patent>)",
                    ["holder", "BPR", "patent", "in pool", "licensed", "via pool"],
                    compute_pool_licence_rows(views))
    if views["licences"]:
        print_table("licences", ["licence", "id", "licensors", "licensee", "patents", "kind",
                                 "fee", "royalty bps", "term", "made by", "in force", "what"],
                    compute_licence_rows(views))
    if views["royalties"]:
        print_table("royalties reported and paid (GET /v1/state/royalties/<licence>)",
                    ["licence", "licensee", "period", "net sales", "units", "earned", "due",
                     "status", "paid to", "reported at", "paid at"],
                    compute_royalty_rows(views))
    if views["pool"]:
        print_table("pool distribution", ["period", "as", "account", "BPC"],
                    compute_pool_distribution_rows(views))


def report_deal(views: dict[str, Any]) -> None:
    deal, reports = views["deal"], views["reports"]
    if deal is None:
        return
    say(f"deal {deal['id']} ({deal['state']}): originator {deal['originator']}, trustee "
        f"{deal['trustee']}, collateral {deal['collateral_value']}, performing "
        f"{deal['performing_value']}, collected {deal['collected']}, paid {deal['paid']}, "
        f"losses {deal['losses']}, recoveries {deal['recoveries']}, trigger "
        f"{format_trigger(deal['trigger'])}")
    print_table("deal assets", ["licence", "id", "patents", "defaulted", "loss", "recovered"],
                compute_asset_rows(views))
    print_table("deal tranches (GET /v1/state/deals/<id>)",
                ["tranche", "principal", "coupon bps", "sold", "balance", "interest unpaid",
                 "written down", "written back", "holders units/balance"],
                compute_tranche_rows(deal))
    if not reports:
        return
    print_table("disclosure reports (GET /v1/state/deal_reports/<id>)",
                ["period", "height", "mode", "collections", "fees", "interest", "principal",
                 "residual", "unpaid fees+interest", "written down net", "tests (value/min bps)",
                 "trigger"],
                compute_report_rows(reports))
    print_table("payments to holders", ["period", "tranche", "holder", "BPC"],
                compute_payment_rows(reports))
    final = reports[-1]
    say(f"final disclosure report, period {final['period']} (height {final['height']}): "
        f"collections {final['collections']}, cash {final['cash']}, paid "
        f"{final['total_paid']}, reserve {final['reserve_out']}, mode {final['mode']}")
    print_table(f"period {final['period']} waterfall", ["step", "kind", "tranche", "due",
                                                          "paid", "unpaid"],
                compute_step_rows(final))
    print_table(f"period {final['period']} balances",
                ["tranche", "balance start", "interest due", "interest paid",
                 "interest unpaid", "principal paid", "residual", "balance end",
                 "written down net"], compute_report_tranche_rows(final))
    print_table(f"period {final['period']} tests (performing value "
                f"{final['tests']['performing_value']})",
                ["test", "value bps", "min bps", "result"], compute_test_rows(final["tests"]))
    say(f"trigger: {format_trigger(final['trigger'])}")


def report(rows: list[list[Any]], views: dict[str, Any], balances: list[list[Any]],
           heads: list[dict[str, Any]], complete: bool = True) -> bool:
    """Print everything; True when the nodes agree, every step committed and, if the
    whole story ran (every contract family registered), each of its claims holds."""
    print_table("transactions", ["tx", "phase", "op", "what", "node", "height", "status"], rows)
    report_licensing(views)
    report_deal(views)
    market_checks = report_market(views.get("market"))
    print_table("balances on node0", ["account", "roles", "genesis BPC", "BPC", "change",
                                      "BPR"], balances)
    checks = compute_story_checks(views)
    print_table("the story, checked on chain", ["claim", "holds"], checks)
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
    return (agreed and committed == len(rows)
            and (not complete or all(holds == "yes" for _, holds in checks + market_checks)))


def report_market(chapter: dict[str, Any] | None) -> list[list[Any]]:
    """The market chapter's tables; its checks (empty when the chapter did not run)."""
    if not chapter or chapter.get("patent") is None:
        return []
    patent = chapter["patent"]
    say(f"exchange: {patent['id']} owned by {market.format_owners(patent['owners'])}; "
        f"escrow {(chapter['market'] or {}).get('escrow')} BPC, clearing fee "
        f"{(chapter['market'] or {}).get('clearing_fee_bps')} bps to "
        f"{(chapter['market'] or {}).get('clearing_account')}")
    print_table("exchange: listing and bid (GET /v1/state/listings|offers/<id>)",
                ["kind", "id", "from", "price", "state", "buyer"],
                market.compute_sale_rows(chapter))
    print_table(f"licences on {patent['id']} after the sale",
                ["licence", "licensors", "licensee", "state"],
                [[lic["id"], format_shares(lic["licensors"]), lic["licensee"], lic["state"]]
                 for lic in chapter["licences_on_patent"]])
    print_table("pledge loans (GET /v1/state/loans/<id>)",
                ["loan", "id", "patent", "lender", "principal", "rate bps", "term days",
                 "state", "principal paid", "interest paid", "outstanding", "shortfall"],
                market.compute_loan_rows(chapter))
    print_table("credit ratings (GET /v1/state/credit/<org>)",
                ["organisation", "before", "after", "components good/late/bad"],
                market.compute_rating_rows(chapter["before"], chapter["after"]))
    checks = market.compute_market_checks(chapter, chapter["before"], chapter["after"])
    print_table("the market chapter, checked on chain", ["claim", "holds"], checks)
    return checks


def run(args: argparse.Namespace) -> int:
    """The demo; with --json the human output goes to stderr and stdout gets one JSON
    object, so `ipchain demo --json | jq` reads the outcome alone."""
    if not getattr(args, "json", False):
        return _run(args, None)
    out = sys.stdout
    summary: dict[str, Any] = {}
    with contextlib.redirect_stdout(sys.stderr):
        code = _run(args, summary)
    if summary:
        print(json.dumps(summary, indent=2), file=out, flush=True)
    return code


def _run(args: argparse.Namespace, summary: dict[str, Any] | None) -> int:
    base_port = args.base_port or layout.DEFAULT_BASE_PORT
    cluster = Cluster.create(args.data_dir, args.n, base_port, 0, fresh=True)
    say(f"demo: starting a fresh {args.n}-node cluster in {cluster.data_dir}")
    start_and_wait(cluster, args.timeout)
    for i, url in enumerate(cluster.urls):
        say(f"  {layout.node_id(i)}  {url}")
    today = datetime.datetime.now(datetime.timezone.utc).date()
    phases = workload.story(workload.get_available_ops(), today)
    complete = len(phases) == len(workload.full_story(today))
    say(f"demo: story phases: {', '.join(p.name for p in phases)}")
    ok = False
    steps = sum(len(phase.steps) for phase in phases)
    try:
        with Progress("demo transactions", total=steps) as bar:
            results = asyncio.run(run_demo(cluster, phases, bar))
        ok = report(*results, complete=complete)
        if summary is not None:
            summary.update(summarize(cluster, *results, ok, compute_story_checks(results[1])))
    finally:
        if args.down:
            cluster.stop()
            say("demo: cluster stopped")
        else:
            say(f"demo: cluster left running; inspect with `ipchain status --data-dir "
                f"{args.data_dir}`, stop with `ipchain down --data-dir {args.data_dir}`")
    return 0 if ok else 1
