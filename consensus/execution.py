"""Certified execution: replicas sign what they computed, and a dissenter stops.

COMMITs certify the order of a batch, not its results. After the host executes block h
it hands the replica the header hash (which covers the state root and the receipts
root, docs/protocol.md §6); the replica signs EXECUTED(h, block_hash) and gossips it.
2f+1 matching votes are the block's execution certificate: the host stores them and
every proof carries them, so a reader trusts a quorum, not the node that answered.

The vote travels after execution and nothing in ordering waits for it, so the pipeline
(ordering block h+1 while h executes) is unchanged. A replica whose own hash differs
from a quorum's has executed differently from the honest majority (a non-deterministic
contract, a damaged disk): it fail-stops — `Replica.step` does nothing more — because
every later root it computed is built on the wrong state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from consensus import events as ev
from consensus.messages import Executed, Signed
from consensus.state import by_sender

if TYPE_CHECKING:
    from consensus.replica import Replica

RESEND_AFTER_BLOCKS = 8
"""Our vote for a block still uncertified this many blocks later is sent again (a lost
vote would otherwise leave the block without a certificate)."""
MAX_RESENDS_PER_BLOCK = 4
REANSWER_AFTER_MS = 1_000
MAX_TIMED_REANSWERS = 3
"""A settled replica answers the same peer's vote again after this long even without new
blocks (a restarted peer re-votes blocks whose certificates died with it, on an idle
chain), but only this many times per block and peer: two settled replicas answering
each other's answers must stop."""


class Execution:
    """Methods only: their fields are declared, with who writes them, in consensus/state.py."""

    def on_block_executed(self: "Replica", seq: int, block_hash: bytes) -> None:
        signed = self.sign(Executed(seq, block_hash))
        self.own_exec[seq] = signed
        self.emit(ev.Broadcast(signed))
        self.add_exec_vote(signed)
        self.check_execution(seq)
        if self.diverged is None:
            self.resend_exec_votes(seq)
            self.prune_execution(seq)
            self.exec_timer_rounds = 0
            if self.own_exec:
                self.set_timer("exec_resend", REANSWER_AFTER_MS)

    def on_exec_resend_timer(self: "Replica") -> None:
        """Votes still uncertified once no new vote has come for a while go out again,
        without waiting for new blocks: a restarted replica re-votes on an idle chain,
        and a peer that answered its first re-vote too recently answers this one."""
        pending = sorted(self.own_exec)[-MAX_RESENDS_PER_BLOCK:]
        if not pending or self.diverged is not None:
            return
        if self.now_ms - self.exec_heard_ms < REANSWER_AFTER_MS:
            # Votes are still coming in: the blocks are slow to certify, not stuck. Under
            # load, certifying took longer than this timer, and every replica re-sent
            # every vote about once a block (a third of the execution votes received).
            self.set_timer("exec_resend", REANSWER_AFTER_MS)
            return
        for height in pending:
            self.stats["execution_vote_resent"] += 1
            self.emit(ev.Broadcast(self.own_exec[height]))
        self.exec_timer_rounds += 1
        if self.exec_timer_rounds < MAX_TIMED_REANSWERS:
            self.set_timer("exec_resend", REANSWER_AFTER_MS)

    def on_executed_vote(self: "Replica", msg: Signed) -> None:
        height = msg.body.height
        if height <= self.exec_floor:
            return
        settled = self.exec_settled.get(height)
        if settled is not None:
            # Answered again after a few blocks (a lost answer must not leave it without
            # a certificate for good), not at once: two settled replicas would ping-pong.
            if self.first_late_vote(height, msg.sender):
                return
            if self.should_answer(height, msg.sender):
                self.emit(ev.Send(msg.sender, settled))
            return
        if height > max(self.last_delivered, self.last_executed) + self.cfg.log_window_blocks:
            self.stats["ignored_execution_vote_far"] += 1
            return
        if self.add_exec_vote(msg):
            self.check_execution(height)

    def first_late_vote(self: "Replica", height: int, sender: int) -> bool:
        """A slower replica's first vote after we certified: it has our broadcast vote
        and the others', so answering would only make every settled replica send it a
        copy (at 7 nodes, most execution votes received were such copies). A vote seen
        again is a re-vote (restarted, or ours was lost): that one is answered."""
        heard = self.exec_heard.get(height)
        if heard is None or sender in heard:
            return False
        heard.add(sender)
        return True

    def should_answer(self: "Replica", height: int, sender: int) -> bool:
        last = self.exec_answered.get((height, sender))
        timed = 0
        if last is not None:
            blocks_later = self.last_executed - last[0] >= RESEND_AFTER_BLOCKS
            timed = last[2] + (not blocks_later)
            if not blocks_later and (self.now_ms - last[1] < REANSWER_AFTER_MS
                                     or timed > MAX_TIMED_REANSWERS):
                return False
        self.exec_answered[(height, sender)] = (self.last_executed, self.now_ms, timed)
        return True

    def add_exec_vote(self: "Replica", msg: Signed) -> bool:
        vote: Executed = msg.body
        by_hash = self.exec_votes.setdefault(vote.height, {})
        for block_hash, voters in by_hash.items():
            if block_hash != vote.block_hash and msg.sender in voters:
                self.record_evidence("conflicting-execution", voters[msg.sender], msg)
                return False
        voters = by_hash.setdefault(vote.block_hash, {})
        if msg.sender in voters:
            return False
        voters[msg.sender] = msg
        self.exec_heard_ms = self.now_ms
        return True

    def check_execution(self: "Replica", height: int) -> None:
        """Certify `height` once a quorum agrees and we have executed it ourselves."""
        mine = self.own_exec.get(height)
        if mine is None:
            return  # a quorum may already agree; we judge once our own result exists
        by_hash = self.exec_votes.get(height, {})
        for block_hash, voters in by_hash.items():
            if len(voters) < self.quorum:
                continue
            votes = by_sender(voters)
            if block_hash != mine.body.block_hash:
                self.diverge(mine, block_hash, votes)
                return
            self.stats["execution_certified"] += 1
            self.emit(ev.ExecutionCertified(height, block_hash, votes))
            self.exec_settled[height] = mine
            self.exec_heard[height] = set().union(*by_hash.values())
            for table in (self.exec_votes, self.own_exec, self.exec_resent_at):
                table.pop(height, None)
            return

    def diverge(self: "Replica", own: Signed, quorum_hash: bytes,
                votes: tuple[Signed, ...]) -> None:
        height, mine = own.body.height, own.body.block_hash
        self.diverged = (height, mine, quorum_hash)
        self.stats["execution_diverged"] += 1
        self.emit(ev.Diverged(height, mine, quorum_hash, votes, own))

    def resend_exec_votes(self: "Replica", seq: int) -> None:
        stale = [h for h in sorted(self.own_exec)
                 if h <= seq - RESEND_AFTER_BLOCKS
                 and seq - self.exec_resent_at.get(h, h) >= RESEND_AFTER_BLOCKS]
        for height in stale[:MAX_RESENDS_PER_BLOCK]:
            self.exec_resent_at[height] = seq
            self.stats["execution_vote_resent"] += 1
            self.emit(ev.Broadcast(self.own_exec[height]))

    def prune_execution(self: "Replica", seq: int) -> None:
        floor = seq - self.cfg.log_window_blocks
        if floor <= self.exec_floor:
            return
        self.exec_floor = floor
        for table in (self.exec_votes, self.own_exec, self.exec_resent_at, self.exec_settled,
                      self.exec_heard):
            drop_through(table, floor)
        if self.exec_answered:
            self.exec_answered = {k: v for k, v in self.exec_answered.items() if k[0] > floor}


def drop_through(table: dict[int, object], floor: int) -> None:
    """Delete the heights at or below `floor`. The floor rises one height per executed
    block, so about one key goes each time: min() finds it without a Python loop over
    the window's worth of heights the table holds."""
    while table:
        lowest = min(table)
        if lowest > floor:
            return
        del table[lowest]
