"""A keyless network adversary: it rewrites what no signature covers, and nothing else.

A PRE-PREPARE is signed over its header only (the digest binds the transactions), a
fetched block's certificate is a list of votes no one signs as a whole, and the sender
field names a key but is not itself signed. Whoever sits on the network — or anyone
replaying a real PRE-PREPARE served by `GET /p2p/blocks` (issue 17, B2) — can change
those parts without any key. This adversary does so to a share of the packets and
delivers its forgery *ahead of* the genuine packet, which still arrives: the replicas
must drop the forgeries, and the run must look as if it never happened — no view
change, no evidence, no lost request.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from consensus.messages import PrePrepare, Signed


class UnsignedRewriter:
    def __init__(self, rng: random.Random, n: int) -> None:
        self.rng = rng
        self.n = n
        self.stats = {"rewritten_preprepare": 0, "rewritten_sender": 0, "rewritten_blocks": 0}

    def __call__(self, src: int, dst: int, packet: tuple[Any, ...]) -> tuple[Any, ...] | None:
        """The forged copy of `packet`, or None if it has nothing unsigned worth changing."""
        kind = packet[0]
        if kind == "msg":
            return ("msg", self.rewrite_message(packet[1]))
        if kind == "blocks" and packet[1]:
            self.stats["rewritten_blocks"] += 1
            return ("blocks", tuple((self.rewrite_txs(pp), self.rewrite_certificate(cert))
                                    for pp, cert in packet[1]))
        return None

    def rewrite_message(self, msg: Signed) -> Signed:
        if isinstance(msg.body, PrePrepare):
            return self.rewrite_txs(msg)
        self.stats["rewritten_sender"] += 1
        other = (msg.sender + 1 + self.rng.randrange(max(1, self.n - 1))) % self.n
        return type(msg)(msg.body, other, msg.sig)

    def rewrite_txs(self, msg: Signed) -> Signed:
        """Same header and signature, other transactions."""
        self.stats["rewritten_preprepare"] += 1
        txs = msg.body.txs
        junk = self.rng.randbytes(1 + self.rng.randrange(64))
        choice = self.rng.randrange(5)
        if choice == 0 and txs:
            swapped = txs[:-1]
        elif choice == 1:
            swapped = txs + (junk,)
        elif choice == 2 and len(txs) > 1:
            swapped = tuple(reversed(txs))
        elif choice == 3 and txs:
            swapped = (junk,) + txs[1:]
        else:
            swapped = (junk,)
        return type(msg)(replace(msg.body, txs=swapped), msg.sender, msg.sig)

    def rewrite_certificate(self, certificate: tuple[Signed, ...]) -> tuple[Signed, ...]:
        """Votes dropped, repeated or reordered: the list itself is not signed."""
        votes = list(certificate)
        choice = self.rng.randrange(3)
        if choice == 0 and votes:
            votes.pop(self.rng.randrange(len(votes)))
        elif choice == 1 and votes:
            votes += [votes[0]] * 3
        else:
            self.rng.shuffle(votes)
        return tuple(votes)
