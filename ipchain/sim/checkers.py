"""Checkers: what must hold of a run, judged from its recorded history alone.

Each checker is a pure function `History -> list[Violation]`, so it can be fed a
hand-made bad history in a unit test (a checker that cannot fail is a defect) and the
real history of a run in the same way. Only honest replicas are judged: a Byzantine
replica may say anything, a crashed one is honest but may be behind.

1. agreement      no two honest replicas deliver different digests at one sequence number
                  (and no replica delivers two at one, or skips one)
   certificates   every delivered block carries 2f+1 commits for exactly its pre-prepare
                  (else peers that fetch it, and clients checking a proof, reject it)
2. state_roots    honest replicas have equal state roots at every height they share
3. exactly_once   every acknowledged transaction is executed exactly once, where and how
                  (height, ok, code) the client was told, on every honest replica that
                  reached that height
4. no_fabrication nothing executes that no client submitted
5. conservation   BPC supply equals the sum of balances; no balance is negative
6. liveness       after healing: new requests commit within the bound, every submitted
                  request is acknowledged, and the honest replicas that are up converge
                  (all of them; up to f may lag when some replica is Byzantine)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from node.chain import DUPLICATE
from ipchain.sim.workload import Ack

MAX_DETAILS_PER_CHECKER = 5


@dataclass(frozen=True)
class Violation:
    checker: str
    detail: str
    seed: int | None = None

    def to_value(self) -> dict[str, object]:
        return {"seed": self.seed, "checker": self.checker, "detail": self.detail}


@dataclass
class ReplicaRecord:
    index: int
    honest: bool = True
    up: bool = True
    digests: dict[int, bytes] = field(default_factory=dict)
    """seq -> digest of the block this replica delivered (and executed) there."""
    roots: dict[int, bytes] = field(default_factory=dict)
    """height -> state root after executing that block."""
    receipts: list[tuple[str, int, bool, str]] = field(default_factory=list)
    """(tx id, height, ok, code) for every tx in every block, duplicates included."""
    supply_bpc: int = 0
    balances_bpc: dict[str, int] = field(default_factory=dict)
    anomalies: list[str] = field(default_factory=list)
    """Deliveries out of sequence or contradicting this replica's own earlier delivery."""
    bad_certificates: list[str] = field(default_factory=list)
    """Delivered blocks whose commits do not certify the delivered pre-prepare."""

    @property
    def height(self) -> int:
        return max(self.digests, default=0)


@dataclass
class History:
    replicas: list[ReplicaRecord]
    submitted: set[str] = field(default_factory=set)
    acked: dict[str, Ack] = field(default_factory=dict)
    liveness_txs: tuple[str, ...] = ()
    heal_ms: int = 0
    end_ms: int = 0
    liveness_bound_ms: int = 0
    max_lagging: int = 0
    """Honest replicas allowed to end behind: a Byzantine primary can keep up to f honest
    replicas out of the normal case (they only catch up on later traffic), so this is f
    when the run has Byzantine replicas and 0 when every replica is honest."""

    def honest(self) -> list[ReplicaRecord]:
        return [r for r in self.replicas if r.honest]


def _short(value: bytes) -> str:
    return value.hex()[:12]


def _capped(checker: str, details: list[str]) -> list[Violation]:
    out = [Violation(checker, d) for d in details[:MAX_DETAILS_PER_CHECKER]]
    if len(details) > MAX_DETAILS_PER_CHECKER:
        out.append(Violation(checker, f"... and {len(details) - MAX_DETAILS_PER_CHECKER} more"))
    return out


def _disagreements(replicas: list[ReplicaRecord], table: Callable[[ReplicaRecord], dict[int, bytes]],
                   what: str) -> list[str]:
    """Compare every replica's value at each key with the first replica that has one."""
    first: dict[int, tuple[int, bytes]] = {}
    found: list[tuple[int, int, str]] = []
    for replica in replicas:
        for key, value in sorted(table(replica).items()):
            seen = first.setdefault(key, (replica.index, value))
            if seen[1] != value:
                found.append((key, replica.index, f"{what} {key}: replica {seen[0]} has "
                              f"{_short(seen[1])}, replica {replica.index} has {_short(value)}"))
    return [detail for _, _, detail in sorted(found)]


def check_agreement(history: History) -> list[Violation]:
    honest = history.honest()
    details = _disagreements(honest, lambda r: r.digests, "seq")
    details += [a for r in honest for a in r.anomalies]
    for replica in honest:
        missing = [s for s in range(1, replica.height + 1) if s not in replica.digests]
        if missing:
            details.append(f"replica {replica.index} skipped seq {missing[:5]}")
    return _capped("agreement", details)


def check_certificates(history: History) -> list[Violation]:
    return _capped("certificates", [d for r in history.honest() for d in r.bad_certificates])


def check_state_roots(history: History) -> list[Violation]:
    return _capped("state_roots", _disagreements(history.honest(), lambda r: r.roots, "height"))


def check_exactly_once(history: History) -> list[Violation]:
    details = []
    for replica in history.honest():
        executed: dict[str, list[tuple[int, bool, str]]] = {}
        for tx_id, height, ok, code in replica.receipts:
            if code != DUPLICATE:
                executed.setdefault(tx_id, []).append((height, ok, code))
        for tx_id, runs in sorted(executed.items()):
            if len(runs) > 1:
                details.append(f"replica {replica.index} executed tx {tx_id[:12]} "
                               f"{len(runs)} times (heights {[h for h, _, _ in runs]})")
        for tx_id, ack in sorted(history.acked.items()):
            if replica.height < ack.height:
                continue  # behind; liveness judges whether it catches up
            runs = executed.get(tx_id, [])
            if not runs:
                details.append(f"tx {tx_id[:12]} acknowledged at height {ack.height} by "
                               f"replica {ack.host} is missing on replica {replica.index}")
            elif runs[0] != (ack.height, ack.ok, ack.code):
                details.append(f"tx {tx_id[:12]}: client was told height {ack.height} "
                               f"ok={ack.ok} {ack.code}, replica {replica.index} has height "
                               f"{runs[0][0]} ok={runs[0][1]} {runs[0][2]}")
    return _capped("exactly_once", details)


def check_no_fabrication(history: History) -> list[Violation]:
    details = sorted({f"tx {tx_id[:12]} at height {height} on replica {r.index} was never "
                      f"submitted by a client"
                      for r in history.honest() for tx_id, height, _, _ in r.receipts
                      if tx_id not in history.submitted})
    return _capped("no_fabrication", details)


def check_conservation(history: History) -> list[Violation]:
    details = []
    for replica in history.honest():
        total = sum(replica.balances_bpc.values())
        if total != replica.supply_bpc:
            details.append(f"replica {replica.index}: balances sum to {total} BPC, "
                           f"supply is {replica.supply_bpc}")
        negative = sorted(a for a, v in replica.balances_bpc.items() if v < 0)
        if negative:
            details.append(f"replica {replica.index}: negative balances {negative[:5]}")
    return _capped("conservation", details)


def check_liveness(history: History) -> list[Violation]:
    details = []
    deadline_ms = history.heal_ms + history.liveness_bound_ms
    late = [t for t in history.liveness_txs
            if t not in history.acked or history.acked[t].at_ms > deadline_ms]
    if late:
        details.append(f"{len(late)} of {len(history.liveness_txs)} requests submitted after "
                       f"healing not committed within {history.liveness_bound_ms} ms "
                       f"(first {late[0][:12]})")
    backlog = sorted(history.submitted - set(history.acked) - set(late))
    if backlog:
        details.append(f"{len(backlog)} requests from the faulty phase never acknowledged "
                       f"(first {backlog[0][:12]})")
    live = [r for r in history.honest() if r.up]
    top = max((r.height for r in live), default=0)
    acked_top = max((a.height for a in history.acked.values()), default=0)
    behind = [(r.index, r.height) for r in live if r.height < max(top, acked_top)]
    if len(behind) > history.max_lagging:
        details.append(f"honest replicas did not converge on height {max(top, acked_top)}: "
                       f"(replica, height) {behind[:8]}")
    return _capped("liveness", details)


CHECKERS: tuple[Callable[[History], list[Violation]], ...] = (
    check_agreement, check_certificates, check_state_roots, check_exactly_once, check_no_fabrication,
    check_conservation, check_liveness)


def check_all(history: History, seed: int | None = None) -> list[Violation]:
    return [Violation(v.checker, v.detail, seed) for check in CHECKERS for v in check(history)]
