"""Everything a replica remembers, declared once: its fields, and one slot's phase.

The protocol is split by phase into mixins (normal case, checkpoints, catch-up, view
change, pacemaker, execution) that all work on one object. Declaring that object's
fields here, each with what it means, the modules that write it and the modules that
only read it, keeps the split from hiding who owns what; the mixins declare nothing and
initialise nothing. `tests/consensus/test_state.py` reads the mixins' source and fails
if a module writes or reads a field this table does not name, and a simulated run
fails if a replica carries an attribute that is not declared here.

"Writes" means rebinding the field or changing which entries its container holds (the
contents of a `Slot` change only through `Slot.update_phase` and the slot's data
members). Hosts (`node/engine.py`, the simulator, Byzantine behaviours) read `view`,
`in_view_change`, `low_mark`, `stable_root`, `stable_proof`, `slots` and `stats`, and
never write any of them.

A slot's progress was once five flags; it is one `Phase` now, and `TRANSITIONS` lists
every change the protocol makes (h11's `_state.py` is the model): a change it does not
list raises `IllegalSlotTransition` instead of leaving a slot in a state nobody designed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import MISSING, dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Callable

from consensus.quorum import max_faulty, quorum, weak_quorum

if TYPE_CHECKING:
    from consensus import events as ev
    from consensus.crypto import Keyring
    from consensus.messages import PreparedProof, Signed
    from consensus.replica import DigestFn, ReplicaConfig


# -- one slot --------------------------------------------------------------------------------
FACTS = ("prepared", "commit_sent", "certified", "fetched")
"""What a `Phase` value says, in order."""


class Phase(Enum):
    """How far one sequence number has come here, as (prepared, commit_sent, certified,
    fetched). The first two are this replica's votes on the slot's current pre-prepare
    and start again when a NEW-VIEW re-proposes it; the last two say the block is
    committed (2f+1 COMMITs counted here, or a fetched block's certificate checked here)
    and never go back. Only these 11 of the 16 combinations occur."""

    IDLE = (False, False, False, False)
    PREPARED = (True, False, False, False)
    """2f PREPAREs, but our COMMIT withheld: we signed another digest in this view."""
    COMMIT_RESTORED = (False, True, False, False)
    """Our COMMIT came back from the WAL after a restart; we must not sign another."""
    COMMIT_SENT = (True, True, False, False)
    CERTIFIED_UNPREPARED = (False, False, True, False)
    """2f+1 COMMITs came before our prepare quorum, or a NEW-VIEW re-proposed the block."""
    CERTIFIED_PREPARED = (True, False, True, False)
    CERTIFIED_COMMIT_RESTORED = (False, True, True, False)
    CERTIFIED = (True, True, True, False)
    FETCHED_UNPREPARED = (False, False, True, True)
    """A fetched block a NEW-VIEW re-proposed: we vote on it again in the new view."""
    FETCHED_PREPARED = (True, False, True, True)
    FETCHED = (True, True, True, True)
    """Filled by catch-up: proven by the certificate it came with, not by our votes."""

    # The four facts, set on each member below as plain attributes: an Enum property
    # (and `.value` itself) costs a Python-level descriptor call, and the replica reads
    # these for every vote it counts.
    prepared: bool
    commit_sent: bool
    certified: bool
    fetched: bool


for _phase in Phase:
    _phase.prepared, _phase.commit_sent, _phase.certified, _phase.fetched = _phase._value_
del _phase

PHASE_OF_FACTS: dict[tuple[bool, bool, bool, bool], Phase] = {p._value_: p for p in Phase}
"""`Phase(facts)` without the Enum machinery (a dict lookup; None for an unused combination)."""
FACT_NAMES = frozenset(FACTS)


TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    # check_prepared (prepared, then commit_sent), check_committed (certified),
    # on_fetched (all four), install_preprepare (votes start again in a new view)
    Phase.IDLE: frozenset({Phase.PREPARED, Phase.COMMIT_RESTORED, Phase.CERTIFIED_UNPREPARED,
                           Phase.FETCHED}),
    Phase.PREPARED: frozenset({Phase.COMMIT_SENT, Phase.CERTIFIED_PREPARED, Phase.FETCHED,
                               Phase.IDLE}),
    Phase.COMMIT_RESTORED: frozenset({Phase.COMMIT_SENT, Phase.CERTIFIED_COMMIT_RESTORED,
                                      Phase.FETCHED, Phase.IDLE}),
    Phase.COMMIT_SENT: frozenset({Phase.CERTIFIED, Phase.FETCHED, Phase.IDLE}),
    Phase.CERTIFIED_UNPREPARED: frozenset({Phase.CERTIFIED_PREPARED, Phase.FETCHED}),
    Phase.CERTIFIED_PREPARED: frozenset({Phase.CERTIFIED, Phase.FETCHED,
                                         Phase.CERTIFIED_UNPREPARED}),
    Phase.CERTIFIED_COMMIT_RESTORED: frozenset({Phase.CERTIFIED, Phase.FETCHED,
                                                Phase.CERTIFIED_UNPREPARED}),
    Phase.CERTIFIED: frozenset({Phase.FETCHED, Phase.CERTIFIED_UNPREPARED}),
    Phase.FETCHED_UNPREPARED: frozenset({Phase.FETCHED_PREPARED, Phase.FETCHED}),
    Phase.FETCHED_PREPARED: frozenset({Phase.FETCHED, Phase.FETCHED_UNPREPARED}),
    Phase.FETCHED: frozenset({Phase.FETCHED_UNPREPARED}),
}
"""Every phase change the protocol makes, and nothing else. Certified and fetched are
never undone; only restoring from the WAL yields a commit without a prepare."""


class IllegalSlotTransition(Exception):
    """A phase change `TRANSITIONS` does not allow: a bug in the replica, not bad input."""

    def __init__(self, seq: int, current: Phase, wanted: str) -> None:
        super().__init__(f"slot {seq}: {current.name} -> {wanted} is not a legal transition")
        self.seq, self.current, self.wanted = seq, current, wanted


def advance(slot: Slot, to: Phase) -> None:
    """Move `slot` to `to` if the table allows it (the only check of a phase change)."""
    if to not in TRANSITIONS[slot.phase]:
        raise IllegalSlotTransition(slot.seq, slot.phase, to.name)
    slot.phase = to


def phase_after(seq: int, phase: Phase, facts: dict[str, bool]) -> Phase:
    """The phase `facts` lead to from `phase`, checked against `TRANSITIONS`."""
    if not facts.keys() <= FACT_NAMES:
        raise TypeError(f"not a phase fact: {sorted(set(facts) - FACT_NAMES)}")
    get = facts.get
    target = PHASE_OF_FACTS.get((get("prepared", phase.prepared),
                                 get("commit_sent", phase.commit_sent),
                                 get("certified", phase.certified),
                                 get("fetched", phase.fetched)))
    if target is None:
        raise IllegalSlotTransition(seq, phase, repr(facts))
    if target is not phase and target not in TRANSITIONS[phase]:
        raise IllegalSlotTransition(seq, phase, target.name)
    return target


CHECKED_MOVES: dict[tuple[Any, ...], Phase] = {}
"""(phase facts, *facts asked for) -> the phase `phase_after` gave: each distinct change is
checked once, then costs a dict lookup (a replica changes phase at every prepare and
commit quorum). Only legal changes are kept, and the table has at most a few hundred keys."""


@dataclass(slots=True)
class Slot:
    """Everything known about one sequence number in the current log.

    Slots, because the replica reads a slot's fields for every vote it counts, and the
    interpreter does not cache the lookup of an instance attribute that a class-level
    default of a Python type (`phase = Phase.IDLE`) shadows; a slot is a fixed place."""

    seq: int
    preprepare: Signed | None = None
    prepares: dict[tuple[int, bytes], dict[int, Signed]] = field(default_factory=dict)
    commits: dict[tuple[int, bytes], dict[int, Signed]] = field(default_factory=dict)
    phase: Phase = Phase.IDLE
    certificate: tuple[Signed, ...] | None = None
    """2f+1 commits: the block is committed and deliverable (set with `certified`)."""
    certified_preprepare: Signed | None = None
    """The pre-prepare those commits match. A NEW-VIEW may re-propose the same batch in a
    later view (`preprepare` then moves on), but a block is always delivered and stored
    with a pre-prepare and commits of one and the same view."""
    opened_ms: int = 0
    """When this replica first heard of the slot (for retransmission and fetching)."""
    prepared_proof: PreparedProof | None = None
    """The latest view's prepared certificate, carried into VIEW-CHANGE messages."""

    def update_phase(self, **facts: bool) -> None:
        """Move to the phase with these facts changed (a fact already so changes nothing)."""
        key = (self.phase._value_, *facts.items())  # plain tuples: an Enum hashes in Python
        target = CHECKED_MOVES.get(key)
        if target is None:
            target = CHECKED_MOVES[key] = phase_after(self.seq, self.phase, facts)
        self.phase = target

    @property
    def prepared(self) -> bool:
        return self.phase.prepared

    @property
    def commit_sent(self) -> bool:
        return self.phase.commit_sent

    @property
    def certified(self) -> bool:
        return self.phase.certified

    @property
    def fetched(self) -> bool:
        return self.phase.fetched


def by_sender(votes: dict[int, Signed]) -> tuple[Signed, ...]:
    """One voter's message each, in sender order: how certificates and proofs list them."""
    return tuple(map(votes.__getitem__, sorted(votes)))


# -- the replica's fields --------------------------------------------------------------------
MODULES = ("replica", "normal", "checkpoints", "catchup", "viewchange", "pacemaker",
           "execution")
"""The modules of `consensus` whose methods make up `Replica` (`writes`/`reads` name them)."""


def own(initial: Any = MISSING, *, factory: Callable[[], Any] | None = None,
        writes: str = "", reads: str = "", doc: str) -> Any:
    """Declare one replica field: its initial value, the modules that write it after
    construction ("" for set once, at construction), the modules that only read it."""
    meta = {"writes": frozenset(writes.split()), "reads": frozenset(reads.split()), "doc": doc}
    if factory is not None:
        return field(init=False, default_factory=factory, metadata=meta)
    return field(init=False, default=initial, metadata=meta)


def given(doc: str, reads: str) -> Any:
    """A constructor argument or a constant derived from one: never written again."""
    return field(metadata={"writes": frozenset(), "reads": frozenset(reads.split()), "doc": doc})


ALL = " ".join(MODULES)


@dataclass(eq=False, repr=False, slots=True)
class ReplicaState:
    """The fields of `consensus.replica.Replica`, grouped by the phase module owning them.

    Slots, because a replica has more fields than the 30 CPython shares between the
    instances of a class: past that, each replica's attributes sit in a dict of its own,
    and the interpreter's caches for `self.field` and `self.method` miss whenever another
    replica stepped last, as in every simulation (about a tenth of its CPU there). In
    slots every field is at a fixed place. An attribute not declared here still lands
    in the instance's `__dict__`, where tests/consensus/test_state.py finds it."""

    # -- configuration: set at construction, read everywhere --------------------------------
    cfg: ReplicaConfig = given("This replica's configuration.", reads=ALL)
    keys: Keyring = given("Signs as this replica, verifies the others.", reads="replica")
    digest_batch: DigestFn = given("(timestamp_ms, txs) -> batch digest: the host's Merkle "
                                   "root over tx ids.", reads="catchup normal viewchange")
    n: int = own(writes="", reads="replica viewchange", doc="Replicas in the cluster.")
    f: int = own(writes="", doc="Faulty replicas tolerated (n >= 3f + 1).")
    quorum: int = own(writes="", reads="catchup checkpoints execution normal pacemaker viewchange",
                      doc="2f+1: votes that make a certificate.")
    weak_quorum: int = own(writes="", reads="catchup checkpoints pacemaker viewchange",
                           doc="f+1: votes that include at least one honest replica.")

    # -- the step loop (replica.py) ---------------------------------------------------------
    now_ms: int = own(0, writes="replica", reads="execution normal pacemaker viewchange",
                      doc="The latest time the host passed to `step` (never goes back).")
    stats: Counter[str] = own(factory=Counter, writes=ALL,
                              doc="Counters for operators and tests; no decision reads them.")
    evidence: list[ev.Evidence] = own(factory=list, writes="replica",
                                      doc="Proofs of misbehaviour found, up to max_evidence.")
    _out: list[ev.Action] = own(factory=list, writes="replica",
                                doc="Actions of the current step, handed back by it.")
    _timers: set[str] = own(factory=set, writes="replica", reads="viewchange",
                            doc="Timers armed and not yet fired or cancelled.")

    # -- normal case (normal.py) ------------------------------------------------------------
    view: int = own(0, writes="replica viewchange", reads="normal pacemaker",
                    doc="The view we are in, or changing to while in_view_change.")
    slots: dict[int, Slot] = own(factory=dict, writes="checkpoints normal replica viewchange",
                                 doc="seq -> Slot for the log above the low watermark "
                                     "(replica.slot opens them; catchup fills them).")
    pending: dict[bytes, bytes] = own(factory=dict, writes="normal viewchange",
                                      reads="checkpoints pacemaker replica",
                                      doc="Admitted requests not yet in an accepted "
                                          "pre-prepare, in arrival order.")
    pending_bytes: int = own(0, writes="normal viewchange", doc="Size of `pending`.")
    seen: dict[bytes, int] = own(factory=dict, writes="checkpoints normal viewchange",
                                 doc="Request id -> sequence number of the pre-prepare that "
                                     "carried it (pruned one interval below stable).")
    next_seq: int = own(1, writes="checkpoints normal replica viewchange",
                        doc="The sequence number our next pre-prepare gets.")
    last_delivered: int = own(0, writes="checkpoints normal",
                              reads="catchup execution replica viewchange",
                              doc="Highest block handed to the host (in order, no gaps).")
    last_timestamp_ms: int = own(0, writes="normal",
                                 doc="Latest accepted batch time; ours go strictly above it.")
    batch_due: bool = own(False, writes="normal viewchange", reads="checkpoints",
                          doc="The batch delay expired: propose even a partial batch.")

    # -- checkpoints (checkpoints.py) -------------------------------------------------------
    low_mark: int = own(0, writes="checkpoints replica viewchange", reads="catchup",
                        doc="The last stable checkpoint: the low watermark.")
    stable_root: bytes = own(b"", writes="checkpoints replica viewchange",
                             doc="State root at low_mark.")
    stable_proof: tuple[Signed, ...] = own((), writes="checkpoints replica viewchange",
                                           doc="2f+1 CHECKPOINTs for low_mark.")
    last_executed: int = own(0, writes="checkpoints", reads="execution replica viewchange",
                             doc="Highest block the host reported executed.")
    executed_roots: dict[int, bytes] = own(factory=dict, writes="checkpoints",
                                           reads="viewchange",
                                           doc="Our state root per checkpoint not yet stable.")
    checkpoint_votes: dict[int, dict[bytes, dict[int, Signed]]] = own(
        factory=dict, writes="checkpoints", doc="seq -> root -> sender -> CHECKPOINT.")

    # -- catch-up (catchup.py) --------------------------------------------------------------
    target_seq: int = own(0, writes="catchup",
                          doc="Highest sequence number some peer is known to have reached.")
    fetch_attempts: int = own(0, writes="catchup", doc="Fetches without progress in a row.")
    fetch_last: int = own(0, writes="catchup", doc="Last block of the chunk asked for.")
    claims: dict[int, int] = own(factory=dict, writes="catchup",
                                 doc="Per sender, the highest seq beyond our watermarks it named.")
    probing: bool = own(False, writes="catchup",
                        doc="Fetching after a restart without knowing we are behind.")

    # -- view change (viewchange.py) --------------------------------------------------------
    in_view_change: bool = own(False, writes="replica viewchange", reads="normal pacemaker",
                               doc="We left `view - 1` and have no NEW-VIEW for `view` yet.")
    view_changes: dict[int, Signed] = own(factory=dict, writes="replica viewchange",
                                          doc="Latest valid VIEW-CHANGE per sender (one per "
                                              "sender bounds view-change spam).")
    last_new_view: Signed | None = own(None, writes="replica viewchange",
                                       doc="The NEW-VIEW that installed our view, shown to "
                                           "replicas left behind.")
    new_view_sent_ms: dict[int, int] = own(factory=dict, writes="viewchange",
                                           doc="When we last sent a peer our NEW-VIEW.")
    failed_views: int = own(0, writes="normal viewchange", reads="pacemaker",
                            doc="View changes since the last delivery (timeout backoff).")
    working_in: dict[int, set[int]] = own(factory=dict, writes="viewchange",
                                          doc="Senders seen in normal-case traffic for a view "
                                              "we have not installed yet.")
    ahead: dict[int, int] = own(factory=dict, writes="viewchange",
                                doc="Senders seen working in a view above ours, and the "
                                    "highest such view.")
    future: list[Signed] = own(factory=list, writes="viewchange",
                               doc="Normal-case messages for a view we have not installed "
                                   "yet, replayed on entry.")
    future_per_sender: Counter[int] = own(factory=Counter, writes="viewchange",
                                          doc="How many of `future` each sender holds.")

    # -- pacemaker (pacemaker.py) -----------------------------------------------------------
    commit_latency_ms: int | None = own(None, writes="pacemaker",
                                        doc="Smoothed commit latency (None: nothing measured).")
    latency_samples: int = own(0, writes="pacemaker", doc="Blocks measured so far.")
    suspects: dict[int, dict[int, Signed]] = own(factory=dict, writes="pacemaker",
                                                 doc="view -> sender -> SUSPECT(view), for our "
                                                     "current view only.")
    suspect_proof: tuple[Signed, ...] = own((), writes="pacemaker",
                                            doc="The 2f+1 SUSPECTs that made us leave the last "
                                                "view: re-sent while stuck.")
    last_progress_ms: int = own(0, writes="pacemaker",
                                doc="When this view last moved for us: a block delivered "
                                    "or the primary proposed.")
    busy_since_delivery_ms: int | None = own(None, writes="pacemaker",
                                             doc="When the last delivery left more work "
                                                 "outstanding (None: it left none).")

    # -- certified execution (execution.py) -------------------------------------------------
    exec_votes: dict[int, dict[bytes, dict[int, Signed]]] = own(
        factory=dict, writes="execution", doc="height -> block hash -> sender -> EXECUTED.")
    own_exec: dict[int, Signed] = own(factory=dict, writes="execution",
                                      doc="Our vote per executed height not yet certified.")
    exec_resent_at: dict[int, int] = own(factory=dict, writes="execution",
                                         doc="height -> the block at which we last re-sent "
                                             "our vote.")
    exec_settled: dict[int, Signed] = own(factory=dict, writes="execution",
                                          doc="Certified heights with our vote, sent to a "
                                              "replica that votes late.")
    exec_heard: dict[int, set[int]] = own(
        factory=dict, writes="execution",
        doc="Certified heights -> replicas whose vote we have seen: a first vote arriving "
            "after the certificate needs no answer (it came with our broadcast vote).")
    exec_answered: dict[tuple[int, int], tuple[int, int, int]] = own(
        factory=dict, writes="execution",
        doc="(height, replica) -> (our executed height, now_ms, timed answers) when we last "
            "sent it our vote.")
    exec_floor: int = own(0, writes="execution",
                          doc="Votes at or below this height are old news and ignored.")
    exec_heard_ms: int = own(0, writes="execution",
                             doc="When an execution vote (ours or a peer's) last counted: "
                                 "timed re-sends wait until votes stop coming.")
    exec_timer_rounds: int = own(0, writes="execution",
                                 doc="Timed re-sends since our last executed block.")
    diverged: tuple[int, bytes, bytes] | None = own(None, writes="execution", reads="replica",
                                                    doc="(height, our hash, the quorum's hash) "
                                                        "once we disagreed with a quorum: "
                                                        "fail-stop.")

    def __post_init__(self) -> None:
        self.n, self.f = self.cfg.n, max_faulty(self.cfg.n)
        self.quorum, self.weak_quorum = quorum(self.cfg.n), weak_quorum(self.cfg.n)
