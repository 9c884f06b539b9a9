"""`ipchain demo --json`: the demo's outcome as one JSON object."""

from __future__ import annotations

from typing import Any

from ipchain.cluster import layout
from ipchain.cluster.manager import Cluster
from ipchain.workloads import market

STEP_COLUMNS = ("tx", "phase", "op", "what", "node", "height", "status")
BALANCE_COLUMNS = ("account", "roles", "genesis_bpc", "bpc", "change", "bpr")


def summarize(cluster: Cluster, rows: list[list[Any]], views: dict[str, Any],
              balances: list[list[Any]], heads: list[dict[str, Any]], ok: bool,
              story_checks: list[list[Any]]) -> dict[str, Any]:
    """The demo's outcome as one JSON object; `story_checks` are the story's
    [claim, "yes"/"no"] rows (the market chapter's are computed here)."""
    chapter = views.get("market") or {}
    market_checks = (market.compute_market_checks(chapter, chapter["before"], chapter["after"])
                     if chapter.get("patent") is not None else [])
    return {
        "ok": ok, "data_dir": str(cluster.data_dir), "chain_id": cluster.chain_id,
        "nodes": [{"id": layout.node_id(i), "url": url} for i, url in enumerate(cluster.urls)],
        "agreed": len({(b["hash"], b["state_root"]) for b in heads}) == 1,
        "heads": [{"node": layout.node_id(i), "height": b["height"], "hash": b["hash"],
                   "state_root": b["state_root"]} for i, b in enumerate(heads)],
        "committed": sum(1 for row in rows if row[-1] == "committed"),
        "transactions": [dict(zip(STEP_COLUMNS, row)) for row in rows],
        "checks": [{"claim": claim, "holds": holds == "yes"}
                   for claim, holds in story_checks + market_checks],
        "balances": [dict(zip(BALANCE_COLUMNS, row)) for row in balances],
    }
