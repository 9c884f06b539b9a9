"""The safety invariants: what no fault of at most f replicas may ever break.

Only honest replicas are judged (a Byzantine one may hold any chain); crashed, paused
and partitioned replicas are honest but may be behind, so every comparison is made
only where two replicas both have a value.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from ipchain.checks.history import (EVIDENCE_HEIGHTS, MAX_LISTED, Block, History,
                                    ReplicaRecord, Violation)
from node.chain import DUPLICATE


def _chains(history: History) -> dict[int, dict[int, Block]]:
    return {r.index: r.by_height() for r in history.honest_records()}


def _short(value: str) -> str:
    return value[:16]


def _identity(block: Block) -> str:
    return block.hash or block.digest


# -- agreement ------------------------------------------------------------------------------
def check_agreement(history: History) -> list[Violation]:
    """No two honest replicas hold different blocks at one height, and none contradicts
    its own earlier delivery."""
    chains = _chains(history)
    conflicts: dict[int, dict[str, list[int]]] = {}
    for height in sorted({h for chain in chains.values() for h in chain}):
        by_block: dict[str, list[int]] = defaultdict(list)
        for node, chain in sorted(chains.items()):
            if height in chain:
                by_block[_identity(chain[height])].append(node)
        if len(by_block) > 1:
            conflicts[height] = dict(by_block)
    found = [_fork(chains, conflicts)] if conflicts else []
    anomalies = [(r.index, a) for r in history.honest_records() for a in r.anomalies]
    if anomalies:
        found.append(Violation("agreement", f"{len(anomalies)} anomaly(ies) in a replica's own "
                               f"conduct, first: {anomalies[0][1]}",
                               tuple(sorted({i for i, _ in anomalies})), (),
                               {"examples": [a for _, a in anomalies[:10]]}))
    return found


def _fork(chains: dict[int, dict[int, Block]], conflicts: dict[int, dict[str, list[int]]]) -> Violation:
    heights = sorted(conflicts)
    nodes = sorted({n for groups in conflicts.values() for ns in groups.values() for n in ns})
    evidence = {str(h): {"blocks": [{"hash": ident, "nodes": ns,
                                     "tx_count": len(chains[ns[0]][h].tx_ids),
                                     **chains[ns[0]][h].header_fields()}
                                    for ident, ns in sorted(conflicts[h].items())],
                         "differing_fields": _differing(chains, h, conflicts[h])}
                for h in heights[:EVIDENCE_HEIGHTS]}
    first = evidence[str(heights[0])]
    return Violation("agreement", f"honest nodes committed different blocks at {len(heights)} "
                     f"height(s), first at {heights[0]}", tuple(nodes),
                     tuple(heights[:MAX_LISTED]), {"diagnosis": _diagnose(first),
                                                   "first_conflicts": evidence,
                                                   "conflicting_heights": len(heights)})


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


# -- certificates ---------------------------------------------------------------------------
def check_certificates(history: History) -> list[Violation]:
    """Every block an honest replica holds carries 2f+1 valid commits for exactly its
    batch (else peers that fetch it, and clients checking a proof, reject it)."""
    bad = [(r.index, b) for r in history.honest_records() for b in r.bad_certificates]
    if not bad:
        return []
    return [Violation("certificates", f"{len(bad)} block(s) without a valid commit certificate",
                      tuple(sorted({i for i, _ in bad})), (),
                      {"examples": [b for _, b in bad[:10]]})]


# -- chain integrity --------------------------------------------------------------------------
def check_chain_integrity(history: History) -> list[Violation]:
    """Each honest chain is contiguous from 1 and each block names its parent's hash."""
    found = []
    for node, chain in sorted(_chains(history).items()):
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


# -- state roots ----------------------------------------------------------------------------
def check_state_roots(history: History) -> list[Violation]:
    """The same state root after every height two honest replicas share, and at the end."""
    chains = _chains(history)
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
            "state_roots", f"honest nodes hold different state roots after {len(heights)} "
            f"height(s), first after {heights[0]}",
            tuple(sorted({n for r in diverged.values() for ns in r.values() for n in ns})),
            tuple(heights[:MAX_LISTED]),
            {str(h): {_short(root): ns for root, ns in diverged[h].items()}
             for h in heights[:EVIDENCE_HEIGHTS]}))
    finals: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for record in history.honest_records():
        if record.up and record.state_root:
            finals[record.height][record.state_root].append(record.index)
    for height, roots in sorted(finals.items()):
        if len(roots) > 1:
            found.append(Violation(
                "state_roots", f"honest nodes at final height {height} report different "
                f"state roots", tuple(sorted(n for ns in roots.values() for n in ns)), (height,),
                {_short(root): ns for root, ns in roots.items()}))
    return found


# -- exactly once ------------------------------------------------------------------------------
def _executions(record: ReplicaRecord) -> dict[str, list[tuple[int, bool | None, str | None]]]:
    """tx id -> (height, ok, code) of each time the replica executed it (a DUPLICATE
    receipt is a repeat the executor refused, so not an execution). Without receipts
    every appearance in a block counts, but for the copies the replica said it refused."""
    runs: dict[str, list[tuple[int, bool | None, str | None]]] = defaultdict(list)
    if record.receipts is not None:
        for tx_id, height, ok, code in record.receipts:
            if code != DUPLICATE:
                runs[tx_id].append((height, ok, code))
        return runs
    for block in sorted(record.blocks, key=lambda b: b.height):
        for tx_id in block.tx_ids:
            if (tx_id, block.height) not in record.refused_repeats:
                runs[tx_id].append((block.height, None, None))
    return runs


def check_exactly_once(history: History) -> list[Violation]:
    """Every committed (acknowledged) tx is executed exactly once on each honest replica
    that reached its height, at the height — and with the outcome — its receipt named."""
    records = [r for r in history.honest_records()]
    runs = {r.index: _executions(r) for r in records}
    tops = {r.index: max((b.height for b in r.blocks), default=0) for r in records}
    missing, misplaced, beyond = [], [], []
    for sub in sorted(history.submissions.values(), key=lambda s: (s.t_submit, s.id)):
        height = sub.height
        if height is None:
            continue
        ok = sub.outcome == "acknowledged"
        reached = False
        for node, node_runs in runs.items():  # the replicas that reached its height
            if tops[node] < height:
                continue
            reached = True
            at = node_runs.get(sub.id)
            if not at:
                missing.append((node, sub))
            elif at[0][0] != height or (at[0][1] is not None and (
                    at[0][1] != ok or at[0][2] != sub.code)):
                misplaced.append((node, sub, at[0]))
        if not reached:
            beyond.append(sub)
    found = []
    if missing:
        found.append(Violation(
            "exactly_once", f"{len({s.id for _, s in missing})} acknowledged tx(s) missing "
            f"from honest chains", tuple(sorted({n for n, _ in missing})),
            tuple(sorted({s.height for _, s in missing}))[:MAX_LISTED],
            {"examples": [{"tx": s.id, "node": n, "receipt_height": s.height,
                           "outcome": s.outcome} for n, s in missing[:10]]}))
    if misplaced:
        found.append(Violation(
            "exactly_once", f"{len(misplaced)} acknowledged tx(s) executed at another height "
            f"or with another outcome than the client was told",
            tuple(sorted({n for n, _, _ in misplaced})),
            tuple(sorted({s.height for _, s, _ in misplaced}))[:MAX_LISTED],
            {"examples": [{"tx": s.id, "node": n, "told": [s.height, s.outcome, s.code],
                           "found_at": run[0], "found": [run[0], run[1], run[2]]}
                          for n, s, run in misplaced[:10]]}))
    if beyond:
        found.append(Violation(
            "exactly_once", f"{len(beyond)} acknowledged tx(s) name heights no honest "
            f"node reached", tuple(history.honest),
            tuple(sorted({s.height for s in beyond}))[:MAX_LISTED],
            {"examples": [{"tx": s.id, "receipt_height": s.height} for s in beyond[:10]],
             "honest_heights": tops}))
    return found + _repeated(runs)


def _repeated(runs: dict[int, dict[str, list[tuple[int, bool | None, str | None]]]]) -> list[Violation]:
    found = []
    for node, where in sorted(runs.items()):
        repeated = {tx: [h for h, _, _ in rs] for tx, rs in where.items() if len(rs) > 1}
        if repeated:
            found.append(Violation(
                "exactly_once", f"node {node}: {len(repeated)} tx(s) executed more than once",
                (node,), tuple(sorted({h for hs in repeated.values() for h in hs}))[:MAX_LISTED],
                {"examples": {tx: hs for tx, hs in sorted(repeated.items())[:10]}}))
    return found


# -- no fabrication ----------------------------------------------------------------------------
def check_no_fabrication(history: History) -> list[Violation]:
    """Nothing is in an honest chain that no client sent (the harness's probe excepted)."""
    known = set(history.submissions) | history.probe_ids
    invented: dict[str, tuple[int, int]] = {}
    for record in history.honest_records():
        for block in sorted(record.blocks, key=lambda b: b.height):
            for tx_id in block.tx_ids:
                if tx_id not in known:
                    invented.setdefault(tx_id, (record.index, block.height))
    if not invented:
        return []
    return [Violation("no_fabrication", f"{len(invented)} tx(s) in the chain that no client "
                      f"submitted", tuple(sorted({n for n, _ in invented.values()})),
                      tuple(sorted({h for _, h in invented.values()}))[:MAX_LISTED],
                      {"examples": [{"tx": tx, "node": n, "height": h}
                                    for tx, (n, h) in sorted(invented.items())[:10]]})]


# -- conservation ------------------------------------------------------------------------------
def check_conservation(history: History) -> list[Violation]:
    """BPC supply equals genesis (transfers only move value), no balance is negative, and
    the balances add up to the supply."""
    found = []
    for record in history.honest_records():
        node, supply = record.index, record.supply_bpc
        if not record.up or supply is None:
            continue
        genesis = history.genesis_supply_bpc
        if genesis is not None and supply != genesis:
            found.append(Violation("conservation", f"node {node}: BPC supply changed", (node,),
                                   (record.height,), {"genesis": genesis, "now": supply}))
        negative = {acct: bal for acct, bal in sorted(record.balances_bpc.items()) if bal < 0}
        if negative:
            found.append(Violation("conservation", f"node {node}: negative balance(s)", (node,),
                                   (record.height,), {"negative": negative}))
        total = sum(record.balances_bpc.values())
        if record.balances_bpc and total != supply:
            found.append(Violation("conservation", f"node {node}: balances sum to {total}, "
                                   f"supply is {supply}", (node,), (record.height,),
                                   {"sum": total, "supply": supply}))
    return found
