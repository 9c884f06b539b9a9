"""The one record of a run that every invariant reads: the simulator (`ipchain sim`) and
the fault runner (`ipchain faults run`) each fill a `History`, and the same functions
judge it, so a violation means and reads the same from both tools.

Times are seconds on the run's own clock (simulated or wall); hashes and roots are hex.
A field one recorder cannot know stays at its "unknown" value (an empty string, None)
and the checks that need it skip it rather than guess: the fault runner does not see
per-node receipts, so `receipts` is None there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

MAX_LISTED = 50
"""Heights listed in a violation (all of them are counted)."""
EVIDENCE_HEIGHTS = 5
"""Heights whose per-replica details go into a violation's evidence."""


@dataclass(frozen=True)
class Block:
    height: int
    hash: str
    """The header hash (the block's identity)."""
    prev_hash: str
    state_root: str
    """Root after the previous block (the header field)."""
    result_root: str
    """Root after this block."""
    view: int
    """The view of the pre-prepare it was committed with (not part of the header hash)."""
    timestamp_ms: int
    tx_ids: tuple[str, ...]
    digest: str = ""
    """The batch digest the quorum agreed on (time and tx Merkle root)."""
    tx_root: str = ""

    def header_fields(self) -> dict[str, Any]:
        return {"view": self.view, "prev_hash": self.prev_hash, "state_root": self.state_root,
                "tx_root": self.tx_root, "timestamp_ms": self.timestamp_ms,
                "digest": self.digest}


class Receipt(NamedTuple):
    """A tuple, not a frozen dataclass: the simulator records one per transaction on
    every replica, and a frozen dataclass's constructor costs several times more."""

    tx_id: str
    height: int
    ok: bool
    code: str


@dataclass
class ReplicaRecord:
    """One replica at the end of the run: its chain and what it reported about itself."""

    index: int
    honest: bool = True
    """False for a replica that was Byzantine at any time: it may hold any chain it likes."""
    up: bool = True
    """Running (sim) or answering its status (fault run) at the end."""
    blocks: list[Block] = field(default_factory=list)
    receipts: list[Receipt] | None = None
    """Every receipt of every block, duplicates included; None when not recorded."""
    refused_repeats: set[tuple[str, int]] = field(default_factory=set)
    """(tx id, height) of a block's copy of a tx this replica executed at another height
    (fault run, where receipts are not recorded: the node's stored receipt names the one
    execution, so its executor refused this copy as a duplicate)."""
    height: int = 0
    """The height it reported (its chain may have been fetched shorter)."""
    state_root: str = ""
    """Root after `height`, as it reported it."""
    view: int = 0
    in_view_change: bool = False
    supply_bpc: int | None = None
    balances_bpc: dict[str, int] = field(default_factory=dict)
    anomalies: list[str] = field(default_factory=list)
    """What the simulator's witness saw this replica's engine do wrong (sim): a vote sent
    before it was durable, two votes for one slot, a WAL that lost an unsettled vote."""
    bad_certificates: list[str] = field(default_factory=list)
    """Blocks whose commits do not certify the block it holds (2f+1, its digest)."""

    def by_height(self) -> dict[int, Block]:
        return {b.height: b for b in self.blocks}


@dataclass
class Submission:
    """One signed transaction a client sent, and what the cluster told it."""

    id: str
    kind: str
    """"load", or "liveness" for the requests sent after the heal."""
    sender: str
    nonce: int
    t_submit: float
    outcome: str = "unknown"
    """acknowledged (committed, ok receipt), rejected (refused, or a failed receipt),
    unknown (timeout or no answer)."""
    height: int | None = None
    """The block height named by the receipt, when there was one."""
    code: str | None = None
    t_done: float | None = None
    attempts: list[dict[str, Any]] = field(default_factory=list)
    final_status: str | None = None
    """For unknown outcomes: what the nodes said after the run (committed / pending / ...)."""

    @property
    def committed(self) -> bool:
        """The client holds a receipt naming a block (ok or a failed execution)."""
        return self.height is not None


@dataclass
class Liveness:
    """When the faults ended and what the run promises after that."""

    bound_s: float
    """Every post-heal promise (recovery, convergence, views) must hold this soon."""
    heal_t: float | None
    every_request_answered: bool = False
    """The client retries until it is answered (sim), so a request never answered is a
    liveness failure; the fault run's load generator gives up after its timeout."""
    max_lagging: int = 0
    """Honest replicas allowed to end behind: a Byzantine primary can keep up to f honest
    replicas out of the normal case, so this is f when the run has a Byzantine replica."""
    converge_s: float | None = None
    """How long the recorder waited for convergence (reported, not judged)."""
    detail: str = ""


@dataclass
class History:
    replicas: list[ReplicaRecord]
    submissions: dict[str, Submission]
    liveness: Liveness
    genesis_supply_bpc: int | None = None
    """None: the supply is only compared with the balances, not with genesis."""
    probe_ids: set[str] = field(default_factory=set)
    """Transactions the harness itself sent (the cluster's readiness probe)."""

    @property
    def nodes(self) -> int:
        return len(self.replicas)

    @property
    def honest(self) -> list[int]:
        return [r.index for r in self.replicas if r.honest]

    def honest_records(self) -> list[ReplicaRecord]:
        return [r for r in self.replicas if r.honest]


@dataclass(frozen=True)
class Violation:
    invariant: str
    message: str
    nodes: tuple[int, ...] = ()
    heights: tuple[int, ...] = ()
    evidence: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None

    def describe(self) -> str:
        """The one line both tools print."""
        heights = list(self.heights[:8])
        more = "..." if len(self.heights) > 8 else ""
        where = f" (nodes {list(self.nodes)}, heights {heights}{more})" if (
            self.nodes or self.heights) else ""
        return f"VIOLATION {self.invariant}: {self.message}{where}"

    def to_json(self) -> dict[str, Any]:
        value: dict[str, Any] = {"invariant": self.invariant, "message": self.message,
                                 "nodes": list(self.nodes), "heights": list(self.heights),
                                 "evidence": self.evidence}
        if self.seed is not None:
            value["seed"] = self.seed
        return value
