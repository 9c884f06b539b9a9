"""The invariants a fault run checks, as pure functions over what the run recorded.

Input is a `History`: every honest node's final chain (block hashes, roots, tx ids),
every client submission with its outcome, the final state each node reported, and
when the cluster recovered. Output is a list of `Violation`s naming the invariant, the
nodes, the heights and the evidence. Nothing here talks to a node, so each check is
unit-tested on planted bad histories (a fork, a lost acknowledged transaction, a
transaction nobody sent, a negative balance, a slow recovery).

Only honest nodes are judged: a replica the scenario made Byzantine may hold any
chain it likes. Crashed, paused and partitioned replicas are honest.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable

EVIDENCE_HEIGHTS = 5
"""Heights whose per-node details go into a violation's evidence (all are listed)."""
MAX_LISTED = 50


@dataclass(frozen=True)
class Block:
    height: int
    hash: str
    prev_hash: str
    state_root: str
    """Root after the previous block (the header field)."""
    result_root: str
    """Root after this block."""
    view: int
    timestamp_ms: int
    tx_ids: tuple[str, ...]
    digest: str = ""
    """The batch digest the quorum agreed on (time and tx Merkle root)."""
    tx_root: str = ""

    def header_fields(self) -> dict[str, Any]:
        return {"view": self.view, "prev_hash": self.prev_hash, "state_root": self.state_root,
                "tx_root": self.tx_root, "timestamp_ms": self.timestamp_ms,
                "digest": self.digest}


@dataclass
class Submission:
    """One signed transaction a client sent, and what the cluster told it."""

    id: str
    kind: str
    """"load", or "liveness" for the post-heal probes."""
    sender: str
    nonce: int
    t_submit: float
    outcome: str = "unknown"
    """acknowledged (committed receipt), rejected (refused, or a failed receipt), unknown
    (timeout or no answer)."""
    height: int | None = None
    """The block height named by the receipt, when there was one."""
    code: str | None = None
    t_done: float | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    final_status: str | None = None
    """For unknown outcomes: what the nodes said after the run (committed / pending / ...)."""


@dataclass
class NodeFinal:
    index: int
    honest: bool
    reachable: bool
    height: int = 0
    view: int = 0
    state_root: str = ""
    supply_bpc: int | None = None
    balances_bpc: dict[str, int] = field(default_factory=dict)


@dataclass
class Liveness:
    bound_s: float
    heal_t: float | None
    recovered_t: float | None
    """When the first transaction submitted after the heal committed (run clock)."""
    converged: bool
    converge_s: float | None = None
    detail: str = ""


@dataclass
class History:
    nodes: int
    honest: list[int]
    chains: dict[int, list[Block]]
    submissions: dict[str, Submission]
    probe_ids: set[str]
    genesis_supply_bpc: int
    finals: dict[int, NodeFinal]
    liveness: Liveness


@dataclass(frozen=True)
class Violation:
    invariant: str
    message: str
    nodes: tuple[int, ...] = ()
    heights: tuple[int, ...] = ()
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"invariant": self.invariant, "message": self.message, "nodes": list(self.nodes),
                "heights": list(self.heights), "evidence": self.evidence}


def _honest_chains(history: History) -> dict[int, dict[int, Block]]:
    return {i: {b.height: b for b in history.chains.get(i, [])} for i in history.honest}


def _short(value: str) -> str:
    return value[:16]


# -- 1. agreement -----------------------------------------------------------------------
def check_agreement(history: History) -> list[Violation]:
    """No two honest nodes hold different blocks at the same height."""
    chains = _honest_chains(history)
    conflicts: dict[int, dict[str, list[int]]] = {}
    for height in sorted({h for chain in chains.values() for h in chain}):
        by_hash: dict[str, list[int]] = defaultdict(list)
        for node, chain in sorted(chains.items()):
            if height in chain:
                by_hash[chain[height].hash].append(node)
        if len(by_hash) > 1:
            conflicts[height] = dict(by_hash)
    if not conflicts:
        return []
    heights = sorted(conflicts)
    nodes = sorted({n for groups in conflicts.values() for ns in groups.values() for n in ns})
    evidence = {str(h): {"blocks": [{"hash": hash_, "nodes": ns,
                                     "tx_count": len(chains[ns[0]][h].tx_ids),
                                     **chains[ns[0]][h].header_fields()}
                                    for hash_, ns in sorted(conflicts[h].items())],
                         "differing_fields": _differing(chains, h, conflicts[h])}
                for h in heights[:EVIDENCE_HEIGHTS]}
    first = evidence[str(heights[0])]
    return [Violation("agreement", f"honest nodes committed different blocks at {len(heights)} "
                      f"height(s), first at {heights[0]}", tuple(nodes),
                      tuple(heights[:MAX_LISTED]), {"diagnosis": _diagnose(first),
                                                    "first_conflicts": evidence,
                                                    "conflicting_heights": len(heights)})]


def _differing(chains: dict[int, dict[int, Block]], height: int,
               groups: dict[str, list[int]]) -> list[str]:
    fields = [chains[ns[0]][height].header_fields() for ns in groups.values()]
    differ = [k for k in fields[0] if len({repr(f[k]) for f in fields}) > 1]
    if len({tuple(chains[ns[0]][height].tx_ids) for ns in groups.values()}) > 1:
        differ.append("tx_ids")
    return differ


def _diagnose(first: dict[str, Any]) -> str:
    """Say which kind of fork this is: another batch, or the same batch in other headers."""
    differ = set(first["differing_fields"])
    if differ & {"digest", "tx_ids", "tx_root"}:
        return "different batches were committed at the same height (a fork of the agreed value)"
    if not differ:
        return "the headers hash differently though every recorded field matches"
    return (f"the same batch (same digest and transactions) sits in headers that differ in "
            f"{sorted(differ)}: the nodes agree on the value but not on the block identity")


def check_chain_links(history: History) -> list[Violation]:
    """Each honest chain is contiguous from 1 and each block names its parent's hash."""
    found = []
    for node, chain in sorted(_honest_chains(history).items()):
        for height in sorted(chain):
            block, parent = chain[height], chain.get(height - 1)
            if height > 1 and parent is None:
                found.append(Violation("chain_integrity", f"node {node} has block {height} "
                                       f"without block {height - 1}", (node,), (height,)))
                break
            if parent is not None and block.prev_hash != parent.hash:
                found.append(Violation(
                    "chain_integrity", f"node {node}: block {height} does not link to its parent",
                    (node,), (height,), {"prev_hash": block.prev_hash,
                                         "parent_hash": parent.hash}))
                break
    return found


# -- 2. state roots ---------------------------------------------------------------------
def check_state_roots(history: History) -> list[Violation]:
    """The same state root after every height two honest nodes share, and at the end."""
    chains = _honest_chains(history)
    diverged: dict[int, dict[str, list[int]]] = {}
    for height in sorted({h for chain in chains.values() for h in chain}):
        roots: dict[str, list[int]] = defaultdict(list)
        for node, chain in sorted(chains.items()):
            if height in chain:
                roots[chain[height].result_root].append(node)
        if len(roots) > 1:
            diverged[height] = dict(roots)
    found = []
    if diverged:
        heights = sorted(diverged)
        found.append(Violation(
            "state_root", f"honest nodes hold different state roots after {len(heights)} "
            f"height(s), first after {heights[0]}",
            tuple(sorted({n for r in diverged.values() for ns in r.values() for n in ns})),
            tuple(heights[:MAX_LISTED]),
            {str(h): {_short(root): ns for root, ns in diverged[h].items()}
             for h in heights[:EVIDENCE_HEIGHTS]}))
    finals: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for node in history.honest:
        final = history.finals.get(node)
        if final is not None and final.reachable and final.state_root:
            finals[final.height][final.state_root].append(node)
    for height, roots in sorted(finals.items()):
        if len(roots) > 1:
            found.append(Violation(
                "state_root", f"honest nodes at final height {height} report different "
                f"state roots", tuple(sorted(n for ns in roots.values() for n in ns)), (height,),
                {_short(root): ns for root, ns in roots.items()}))
    return found


# -- 3. exactly once, nothing invented ---------------------------------------------------
def _positions(chain: dict[int, Block]) -> dict[str, list[int]]:
    where: dict[str, list[int]] = defaultdict(list)
    for height in sorted(chain):
        for tx_id in chain[height].tx_ids:
            where[tx_id].append(height)
    return where


def check_exactly_once(history: History) -> list[Violation]:
    """Every acknowledged tx is in each honest chain that reached its height, once, at the
    height its receipt named; and no tx appears twice in any honest chain."""
    chains = _honest_chains(history)
    positions = {node: _positions(chain) for node, chain in chains.items()}
    tops = {node: max(chain, default=0) for node, chain in chains.items()}
    missing, misplaced, beyond = [], [], []
    for sub in sorted(history.submissions.values(), key=lambda s: s.t_submit):
        if sub.height is None:
            continue
        reached = [n for n in chains if tops[n] >= sub.height]
        if not reached:
            beyond.append(sub)
        for node in reached:
            at = positions[node].get(sub.id, [])
            if not at:
                missing.append((node, sub))
            elif sub.height not in at:
                misplaced.append((node, sub, at))
    found = []
    if missing:
        found.append(Violation(
            "acknowledged_present", f"{len({s.id for _, s in missing})} acknowledged tx(s) "
            f"missing from honest chains", tuple(sorted({n for n, _ in missing})),
            tuple(sorted({s.height for _, s in missing}))[:MAX_LISTED],
            {"examples": [{"tx": s.id, "node": n, "receipt_height": s.height,
                           "outcome": s.outcome} for n, s in missing[:10]]}))
    if misplaced:
        found.append(Violation(
            "acknowledged_present", f"{len(misplaced)} acknowledged tx(s) sit at another "
            f"height than their receipt named", tuple(sorted({n for n, _, _ in misplaced})),
            tuple(sorted({s.height for _, s, _ in misplaced}))[:MAX_LISTED],
            {"examples": [{"tx": s.id, "node": n, "receipt_height": s.height, "found_at": at}
                          for n, s, at in misplaced[:10]]}))
    if beyond:
        found.append(Violation(
            "acknowledged_present", f"{len(beyond)} acknowledged tx(s) name heights no honest "
            f"node reached", tuple(history.honest),
            tuple(sorted({s.height for s in beyond}))[:MAX_LISTED],
            {"examples": [{"tx": s.id, "receipt_height": s.height} for s in beyond[:10]],
             "honest_heights": tops}))
    for node, where in sorted(positions.items()):
        repeated = {tx: hs for tx, hs in where.items() if len(hs) > 1}
        if repeated:
            found.append(Violation(
                "exactly_once", f"node {node}: {len(repeated)} tx(s) appear in more than one "
                f"block (or twice in one)", (node,),
                tuple(sorted({h for hs in repeated.values() for h in hs}))[:MAX_LISTED],
                {"examples": {tx: hs for tx, hs in list(repeated.items())[:10]}}))
    return found


def check_no_phantoms(history: History) -> list[Violation]:
    """Nothing is in an honest chain that no client sent (the cluster's probe excepted)."""
    known = set(history.submissions) | history.probe_ids
    phantoms: dict[str, tuple[int, int]] = {}
    for node, chain in sorted(_honest_chains(history).items()):
        for height in sorted(chain):
            for tx_id in chain[height].tx_ids:
                if tx_id not in known:
                    phantoms.setdefault(tx_id, (node, height))
    if not phantoms:
        return []
    return [Violation("no_phantom_txs", f"{len(phantoms)} tx(s) in the chain that no client "
                      f"submitted", tuple(sorted({n for n, _ in phantoms.values()})),
                      tuple(sorted({h for _, h in phantoms.values()}))[:MAX_LISTED],
                      {"examples": [{"tx": tx, "node": n, "height": h}
                                    for tx, (n, h) in list(phantoms.items())[:10]]})]


# -- 4. contract conservation -----------------------------------------------------------
def check_conservation(history: History) -> list[Violation]:
    """BPC supply equals genesis (transfers only move value); no balance is negative; the
    balances add up to the supply."""
    found = []
    for node in history.honest:
        final = history.finals.get(node)
        if final is None or not final.reachable or final.supply_bpc is None:
            continue
        if final.supply_bpc != history.genesis_supply_bpc:
            found.append(Violation("conservation", f"node {node}: BPC supply changed",
                                   (node,), (final.height,),
                                   {"genesis": history.genesis_supply_bpc,
                                    "now": final.supply_bpc}))
        negative = {acct: bal for acct, bal in final.balances_bpc.items() if bal < 0}
        if negative:
            found.append(Violation("conservation", f"node {node}: negative balance(s)", (node,),
                                   (final.height,), {"negative": negative}))
        total = sum(final.balances_bpc.values())
        if final.balances_bpc and total != final.supply_bpc:
            found.append(Violation("conservation", f"node {node}: balances sum to {total}, "
                                   f"supply is {final.supply_bpc}", (node,), (final.height,),
                                   {"sum": total, "supply": final.supply_bpc}))
    return found


# -- 5. liveness ------------------------------------------------------------------------
def check_liveness(history: History) -> list[Violation]:
    """After the heal a new transaction commits, and all honest nodes converge, in bound."""
    live = history.liveness
    found = []
    if live.heal_t is None:
        return [Violation("liveness", "the run never reached its heal", (), (),
                          {"detail": live.detail})]
    took = None if live.recovered_t is None else live.recovered_t - live.heal_t
    if took is None or took > live.bound_s:
        found.append(Violation(
            "liveness", "no transaction submitted after the heal committed within "
            f"{live.bound_s:g}s" if took is None else
            f"recovery took {took:.1f}s, over the {live.bound_s:g}s bound",
            tuple(history.honest), (), {"heal_t": round(live.heal_t, 2),
                                        "recovered_after_s": None if took is None
                                        else round(took, 2), "detail": live.detail}))
    if not live.converged:
        heights = {n: f.height for n, f in history.finals.items() if n in history.honest}
        found.append(Violation(
            "convergence", f"honest nodes did not reach one height and state root within "
            f"{live.bound_s:g}s of the load ending", tuple(history.honest),
            tuple(sorted(set(heights.values()))), {"heights": heights, "detail": live.detail}))
    return found


CHECKS: dict[str, Callable[[History], list[Violation]]] = {
    "agreement": check_agreement,
    "chain_integrity": check_chain_links,
    "state_root": check_state_roots,
    "exactly_once": check_exactly_once,
    "no_phantom_txs": check_no_phantoms,
    "conservation": check_conservation,
    "liveness": check_liveness,
}
SAFETY = ("agreement", "chain_integrity", "state_root", "acknowledged_present", "exactly_once",
          "no_phantom_txs", "conservation")


def run_checks(history: History) -> tuple[list[Violation], dict[str, bool]]:
    """All violations, and per check whether it held."""
    violations: list[Violation] = []
    held: dict[str, bool] = {}
    for name, check in CHECKS.items():
        found = check(history)
        held[name] = not found
        violations.extend(found)
    return violations, held


def summarize_outcomes(submissions: dict[str, Submission]) -> dict[str, Any]:
    counts = Counter(s.outcome for s in submissions.values())
    unknown_final = Counter(s.final_status or "unknown" for s in submissions.values()
                            if s.outcome == "unknown")
    codes = Counter(s.code for s in submissions.values() if s.outcome == "rejected")
    return {"submitted": len(submissions), "acknowledged": counts["acknowledged"],
            "rejected": counts["rejected"], "unknown": counts["unknown"],
            "unknown_resolved_as": dict(unknown_final), "rejection_codes": dict(codes),
            "retried": sum(1 for s in submissions.values() if len(s.attempts) > 1)}
