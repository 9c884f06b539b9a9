"""Catching up: a replica that missed a pre-prepare, or fell behind, fetches blocks.

Instead of stalling on a gap, the replica asks its host for the committed blocks it
lacks (`FetchBlocks`); each comes back with its pre-prepare and 2f+1 signed COMMITs,
which the replica checks itself before delivering — a peer cannot feed it a block the
quorum did not commit. The same path carries a restarted or partitioned replica
across many checkpoints (state transfer by replay).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from consensus import events as ev
from consensus.messages import Commit, PrePrepare, Signed

if TYPE_CHECKING:
    from consensus.replica import Replica

MAX_FETCH_ATTEMPTS = 20
PROBE_ATTEMPTS = 3
"""A restarted replica asks for the blocks after its own this many times without answer
before it concludes it is not behind and waits for traffic."""


class CatchUp:
    """Methods only: their fields are declared, with who writes them, in consensus/state.py."""

    def note_claim(self: "Replica", sender: int, seq: int) -> None:
        """A peer's message names `seq`. Within the watermarks that is ordinary traffic
        (fetch if it stays open); beyond them one replica could make us fetch for
        nothing, so we fetch only as far as f+1 distinct replicas show we are behind."""
        high = self.low_mark + self.cfg.log_window_blocks
        if seq <= high:
            self.note_future(seq)
            return
        self.claims[sender] = max(self.claims.get(sender, 0), seq)
        ahead = sorted((s for s in self.claims.values() if s > high), reverse=True)
        if len(ahead) >= self.weak_quorum:
            self.note_future(ahead[self.weak_quorum - 1])
        else:
            self.stats["fetch_deferred_single_claim"] += 1

    def claimed_seq(self: "Replica") -> int:
        """The highest seq that f+1 distinct peers claim (so an honest one does), or 0."""
        ahead = sorted(self.claims.values(), reverse=True)
        return ahead[self.weak_quorum - 1] if len(ahead) >= self.weak_quorum else 0

    def probe_for_blocks(self: "Replica") -> None:
        """After a restart nothing tells us how far the others got until traffic names a
        later block (issue 17: a restarted node sat at height 0). Ask for the next chunk
        at once, and keep going while chunks come back full."""
        self.probing = True
        self.target_seq = max(self.target_seq, self.last_delivered + self.cfg.fetch_chunk_blocks)
        self.request_chunk()

    def note_future(self: "Replica", seq: int) -> None:
        if seq > self.last_delivered:
            self.target_seq = max(self.target_seq, seq)
            self.set_timer("fetch", self.cfg.fetch_timeout_ms)

    def on_fetch_timer(self: "Replica") -> None:
        if self.target_seq <= self.last_delivered:
            self.fetch_attempts = 0
            return
        if self.probing and self.fetch_attempts >= PROBE_ATTEMPTS:
            self.probing = False  # nobody has more: the probe's guess was wrong
            # ... but f+1 peers' claims beyond our watermarks, heard meanwhile, still
            # stand: they were only noted into the guess, and a quiet cluster repeats
            # none of them (normal-mix seeds 475 and 712 sat 3-5 blocks behind).
            self.target_seq = max(self.last_delivered, self.claimed_seq())
            self.fetch_attempts = 0
            if self.target_seq <= self.last_delivered:
                return
        self.fetch_attempts += 1
        if self.fetch_attempts > MAX_FETCH_ATTEMPTS:
            self.stats["fetch_gave_up"] += 1
            self.target_seq, self.fetch_attempts = self.last_delivered, 0
            return
        self.request_chunk()

    def request_chunk(self: "Replica") -> None:
        first = self.last_delivered + 1
        self.fetch_last = min(self.target_seq, first + self.cfg.fetch_chunk_blocks - 1)
        self.emit(ev.FetchBlocks(first, self.fetch_last))
        self.stats["fetch_requests"] += 1
        self.set_timer("fetch", self.cfg.fetch_timeout_ms * max(1, min(self.fetch_attempts, 8)))

    def on_fetched(self: "Replica", preprepare: Signed, certificate: tuple[Signed, ...]) -> None:
        pp = preprepare.body
        if not isinstance(pp, PrePrepare) or pp.seq <= self.last_delivered:
            return
        if pp.seq > self.last_delivered + 4 * self.cfg.fetch_chunk_blocks:
            self.stats["ignored_fetched_far"] += 1
            return
        votes = self.certified_votes(preprepare, certificate)
        if len(votes) < self.quorum:
            self.stats["rejected_fetched_block"] += 1
            return
        slot = self.slot(pp.seq)
        slot.preprepare = preprepare
        slot.certificate = votes  # never a peer's padding or forgeries
        slot.certified_preprepare = preprepare
        slot.update_phase(prepared=True, commit_sent=True, certified=True, fetched=True)
        self.accept_preprepare(preprepare)
        before = self.last_delivered
        self.deliver_ready()
        if self.last_delivered > before:
            self.fetch_attempts = 0
        if self.probing and self.last_delivered >= self.target_seq:
            self.target_seq = self.last_delivered + self.cfg.fetch_chunk_blocks  # more, maybe
        if self.last_delivered >= self.fetch_last and self.target_seq > self.last_delivered:
            self.cancel_timer("fetch")  # this chunk is in: ask for the next one at once
            self.request_chunk()

    def is_valid_certificate(self: "Replica", preprepare: Signed,
                             certificate: tuple[Signed, ...]) -> bool:
        return len(self.certified_votes(preprepare, certificate)) >= self.quorum

    def certified_votes(self: "Replica", preprepare: Signed,
                        certificate: tuple[Signed, ...]) -> tuple[Signed, ...]:
        """The distinct, authentic COMMITs in `certificate` for exactly this block, by sender."""
        pp: PrePrepare = preprepare.body
        if preprepare.sender != self.primary_of(pp.view) or not self.is_authentic(preprepare):
            return ()
        if self.digest_batch(pp.timestamp_ms, pp.txs) != pp.digest:
            return ()
        voters: dict[int, Signed] = {}
        for vote in certificate:
            body = vote.body
            if (isinstance(body, Commit) and (body.view, body.seq, body.digest)
                    == (pp.view, pp.seq, pp.digest) and vote.sender not in voters
                    and self.is_authentic(vote)):
                voters[vote.sender] = vote
        return tuple(voters[i] for i in sorted(voters))
