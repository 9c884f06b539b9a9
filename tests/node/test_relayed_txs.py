"""`http_input.relayed_txs`, the decode of a peer's relayed frame, keeps the verdicts of
the per-item loop it replaced: the same transactions in the same order, every item
that is not a transaction's canonical bytes dropped and counted, nothing else."""

from __future__ import annotations

import collections
import hashlib
from typing import Any

import msgpack
import nacl.signing
from hypothesis import given, settings, strategies as st

from contracts import errors
from contracts.tx import sign_tx
from node import http_input as inp

KEY = nacl.signing.SigningKey(hashlib.sha256(b"ipchain-test/relayed").digest())
GOOD = [sign_tx(KEY, "c", n, "token.transfer", {"to": "org-b", "amount": n + 1}).to_bytes()
        for n in range(4)]
NESTED = sign_tx(KEY, "c", 9, "x.y", {"list": [1, {"k": b"v"}]}).to_bytes()
UNSORTED = msgpack.packb(dict(reversed(list(msgpack.unpackb(GOOD[0]).items()))),
                         use_bin_type=True)  # a transaction, but not its canonical bytes
BAD = [b"", b"\xc1", GOOD[1][:-1], GOOD[2] + b"\x00", UNSORTED, msgpack.packb([1, 2])]


def reference(raws: list[bytes], counters: Any) -> list[Any]:
    """take_txs's loop as it was: each item the short way, else the long way's verdict."""
    txs = []
    for raw in raws:
        try:
            txs.append(inp.tx_from_canonical_bytes(raw))
        except errors.ContractError:
            counters["relayed_tx_malformed"] += 1
    return txs


def flipped(raw: bytes, at: int) -> bytes:
    data = bytearray(raw)
    data[at % len(data)] ^= 0x01
    return bytes(data)


ITEMS = st.one_of(st.sampled_from(GOOD + [NESTED] + BAD),
                  st.builds(flipped, st.sampled_from(GOOD + [NESTED]), st.integers(0, 400)))


@settings(max_examples=300, deadline=None)
@given(raws=st.lists(ITEMS, max_size=12))
def test_relayed_txs_gives_the_per_item_verdicts(raws: list[bytes]) -> None:
    expected_counts: collections.Counter[str] = collections.Counter()
    got_counts: collections.Counter[str] = collections.Counter()
    expected = reference(raws, expected_counts)
    got = inp.relayed_txs(raws, got_counts)
    assert [tx.encoded for tx in got] == [tx.encoded for tx in expected]
    assert got == expected
    assert got_counts == expected_counts


def test_a_frame_with_junk_keeps_its_good_transactions_in_order() -> None:
    counters: collections.Counter[str] = collections.Counter()
    raws = [GOOD[0], BAD[1], GOOD[1], UNSORTED, NESTED, GOOD[2]]
    got = inp.relayed_txs(raws, counters)
    assert [tx.encoded for tx in got] == [GOOD[0], GOOD[1], NESTED, GOOD[2]]
    assert counters["relayed_tx_malformed"] == 2
