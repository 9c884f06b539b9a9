"""What goes into `Replica.step` and what comes out.

Actions come back as one ordered list and are carried out in order by the host:
a `Persist` is durable before any `Send`/`Broadcast` after it (so a restarted replica
never contradicts what it signed), and `Deliver`s are in strictly increasing sequence.
"""

from __future__ import annotations

from dataclasses import dataclass

from consensus.messages import Signed


# -- events (host -> replica) ------------------------------------------------------------
@dataclass(frozen=True, init=False)
class RequestsArrived:
    """Admitted client transactions: (SHA-256 of the bytes, canonical bytes). The replica
    recognises requests by that id when pre-prepares carry them, so it must be exactly
    `messages.request_id(raw)`. Duplicates are ignored."""

    txs: tuple[tuple[bytes, bytes], ...]

    def __init__(self, txs: tuple[tuple[bytes, bytes], ...]) -> None:
        fields = self.__dict__
        fields["txs"] = txs


@dataclass(frozen=True, init=False)
class MessageArrived:
    msg: Signed

    def __init__(self, msg: Signed) -> None:
        """Fields written to __dict__ directly, as in `consensus.messages` (the generated
        frozen __init__'s object.__setattr__ per field, for every event and action of
        every step); still frozen. The same for the other frequent events and actions."""
        fields = self.__dict__
        fields["msg"] = msg


@dataclass(frozen=True, init=False)
class TimerFired:
    name: str

    def __init__(self, name: str) -> None:
        fields = self.__dict__
        fields["name"] = name


@dataclass(frozen=True, init=False)
class BlockExecuted:
    seq: int
    state_root: bytes
    block_hash: bytes = b""
    """The executed block's header hash; when given, the replica signs an execution vote."""

    def __init__(self, seq: int, state_root: bytes, block_hash: bytes = b"") -> None:
        fields = self.__dict__
        fields["seq"] = seq
        fields["state_root"] = state_root
        fields["block_hash"] = block_hash


@dataclass(frozen=True)
class BlockFetched:
    """A committed block a peer served: its pre-prepare and 2f+1 signed commits."""

    preprepare: Signed
    certificate: tuple[Signed, ...]


# -- actions (replica -> host) ------------------------------------------------------------
@dataclass(frozen=True, init=False)
class Persist:
    """Write this signed message to the write-ahead log before what follows is sent."""

    msg: Signed

    def __init__(self, msg: Signed) -> None:
        fields = self.__dict__
        fields["msg"] = msg


@dataclass(frozen=True, init=False)
class Send:
    to: int
    msg: Signed

    def __init__(self, to: int, msg: Signed) -> None:
        fields = self.__dict__
        fields["to"] = to
        fields["msg"] = msg


@dataclass(frozen=True, init=False)
class Broadcast:
    msg: Signed

    def __init__(self, msg: Signed) -> None:
        fields = self.__dict__
        fields["msg"] = msg


@dataclass(frozen=True, init=False)
class Deliver:
    """A committed block, in sequence order, with the certificate that proves it."""

    preprepare: Signed
    certificate: tuple[Signed, ...]

    def __init__(self, preprepare: Signed, certificate: tuple[Signed, ...]) -> None:
        fields = self.__dict__
        fields["preprepare"] = preprepare
        fields["certificate"] = certificate

    @property
    def seq(self) -> int:
        return self.preprepare.body.seq

    @property
    def view(self) -> int:
        return self.preprepare.body.view

    @property
    def timestamp_ms(self) -> int:
        return self.preprepare.body.timestamp_ms

    @property
    def txs(self) -> tuple[bytes, ...]:
        return self.preprepare.body.txs

    @property
    def digest(self) -> bytes:
        return self.preprepare.body.digest


@dataclass(frozen=True, init=False)
class SetTimer:
    name: str
    delay_ms: int

    def __init__(self, name: str, delay_ms: int) -> None:
        fields = self.__dict__
        fields["name"] = name
        fields["delay_ms"] = delay_ms


@dataclass(frozen=True, init=False)
class CancelTimer:
    name: str

    def __init__(self, name: str) -> None:
        fields = self.__dict__
        fields["name"] = name


@dataclass(frozen=True)
class FetchBlocks:
    """Ask peers for committed blocks [first, last] with their certificates."""

    first: int
    last: int


@dataclass(frozen=True)
class CheckpointStable:
    """The log at or below `seq` is settled: the host may prune its WAL and serve `proof`."""

    seq: int
    proof: tuple[Signed, ...]


@dataclass(frozen=True)
class ExecutionCertified:
    """2f+1 replicas signed the same header hash for `height`, and it is ours: the host
    stores `votes` as the block's execution certificate (what proofs carry)."""

    height: int
    block_hash: bytes
    votes: tuple[Signed, ...]


@dataclass(frozen=True)
class Diverged:
    """Our header hash for `height` differs from the one a quorum signed: this replica
    has stopped (it executes and signs nothing more); `votes` are the quorum's."""

    height: int
    mine: bytes
    quorum: bytes
    votes: tuple[Signed, ...]
    own: Signed
    """Our own vote for `height`: with one of `votes`, the evidence of the split."""


@dataclass(frozen=True)
class Evidence:
    """Two validly signed, conflicting messages from one replica."""

    kind: str
    first: Signed
    second: Signed


Event = RequestsArrived | MessageArrived | TimerFired | BlockExecuted | BlockFetched
Action = (Persist | Send | Broadcast | Deliver | SetTimer | CancelTimer | FetchBlocks
          | CheckpointStable | Evidence | ExecutionCertified | Diverged)
