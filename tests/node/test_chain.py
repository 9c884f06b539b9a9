"""The block recipe shared by the node and the simulator (node.chain)."""

from __future__ import annotations

import hashlib

import nacl.signing

from contracts.genesis import init_state
from contracts.runtime import BlockContext
from contracts.token.ledger import balance_of, mint
from contracts.tx import Transaction, sign_tx
from node.chain import DUPLICATE, iter_receipts

CHAIN = "chain-test"
POOR, RICH = nacl.signing.SigningKey(b"\x01" * 32), nacl.signing.SigningKey(b"\x02" * 32)


def genesis() -> dict:
    return {"chain_id": CHAIN, "genesis_time_ms": 0,
            "validators": [{"id": "n0", "index": 0, "public_key": "00" * 32}],
            "organisations": [
                {"id": "poor", "roles": ["member"], "keys": [bytes(POOR.verify_key).hex()], "bpc": 0},
                {"id": "rich", "roles": ["member"], "keys": [bytes(RICH.verify_key).hex()],
                 "bpc": 100}]}


def run(state, height: int, txs: list[Transaction], committed: set[bytes]) -> list:
    raws = tuple(tx.to_bytes() for tx in txs)
    ids = [hashlib.sha256(raw).digest() for raw in raws]
    return list(iter_receipts(state, BlockContext(CHAIN, height, height * 1000), raws, ids,
                              committed, lambda _id: None, Transaction.signature_ok))


def test_a_refused_transaction_cannot_be_replayed_once_it_could_succeed():
    """A refusal leaves the sender's nonce unused (the root must not move), but the id
    is in the chain from then on: the same bytes ordered again are a duplicate."""
    state = init_state(genesis())
    pay = sign_tx(POOR, CHAIN, 0, "token.transfer", {"to": "rich", "amount": 50})
    (refused,) = run(state, 1, [pay], committed=set())
    assert (refused.ok, refused.code) == (False, "InsufficientFunds")
    mint(state, "BPC", "poor", 50)  # now the transfer would succeed
    root = state.root()
    (again,) = run(state, 2, [pay], committed={bytes.fromhex(pay.id)})
    assert (again.ok, again.code) == (False, DUPLICATE)
    assert state.root() == root and balance_of(state, "BPC", "poor") == 50


def test_the_same_transaction_twice_in_one_batch_takes_effect_once():
    state = init_state(genesis())
    pay = sign_tx(RICH, CHAIN, 0, "token.transfer", {"to": "poor", "amount": 10})
    first, second = run(state, 1, [pay, pay], committed=set())
    assert first.ok and (second.ok, second.code) == (False, DUPLICATE)
    assert balance_of(state, "BPC", "poor") == 10


def test_the_receipt_leaf_is_the_canonical_encoding_of_the_documented_map():
    """docs/protocol.md §3.1: the fast builder must give exactly codec.encode's bytes,
    whatever order a contract built its event data in."""
    from contracts import codec
    from contracts.runtime import Event, Receipt
    from node.chain import RECEIPT_LEAF_FIELDS, receipt_leaf
    for receipt in (Receipt("ab" * 32, 7, 3, True, "ok", "moved", (
                        Event("token", "transfer", {"to": "b", "amount": 5, "from": "a"}),
                        Event("pool", "paid", {"z": [1, {"y": 2, "x": b"\x01"}]}))),
                    Receipt("cd" * 32, 7, 0, False, "InsufficientFunds", "no money")):
        value = receipt.to_value()
        assert receipt_leaf(receipt) == codec.encode({k: value[k] for k in RECEIPT_LEAF_FIELDS})


def test_the_stored_receipt_is_the_canonical_encoding_of_the_receipt():
    """The stored record is built with its keys in order (hot path): the same bytes as
    codec.encode of Receipt.to_value, whatever order the event data came in."""
    from contracts import codec
    from contracts.runtime import Event, Receipt
    from node.chain import receipt_record
    for receipt in (Receipt("ab" * 32, 7, 3, True, "ok", "moved", (
                        Event("token", "transfer", {"to": "b", "amount": 5, "from": "a"}),
                        Event("pool", "paid", {"z": [1, {"y": 2, "x": b"\x01"}]}))),
                    Receipt("cd" * 32, 2**40, 0, False, "InsufficientFunds", "no money")):
        assert receipt_record(receipt) == codec.encode(receipt.to_value())


def test_receipt_bytes_are_the_leaf_and_the_record_built_separately():
    """receipt_bytes joins both byte strings from packed parts: each must still be
    codec.encode of its map, for any code, message, index, height and events."""
    from contracts import codec
    from contracts.runtime import Event, Receipt
    from node.chain import RECEIPT_LEAF_FIELDS, receipt_bytes, receipt_leaf, receipt_record
    for receipt in (Receipt("ab" * 32, 7, 3, True, "ok", "moved", (
                        Event("token", "transfer", {"to": "b", "amount": 5, "from": "a"}),)),
                    Receipt("cd" * 32, 2**40, 70_000, False, "InsufficientFunds",
                            "n\u00e9 " * 40),
                    Receipt("ef" * 32, 1, 0, True, "ok")):
        value = receipt.to_value()
        assert receipt_bytes(receipt) == (receipt_leaf(receipt), receipt_record(receipt))
        assert receipt_bytes(receipt) == (
            codec.encode({k: value[k] for k in RECEIPT_LEAF_FIELDS}), codec.encode(value))


def test_the_executor_seals_the_header_the_recipe_gives_from_scratch():
    """The executor hands seal_header the tx and receipts roots it already holds (ids,
    receipt leaves); repair and peers seal from the block alone: same header, same hash."""
    from consensus import events as ev
    from consensus import messages as wire
    from node.chain import Executor, seal_header
    from node.memory_storage import MemoryStorage
    executor = Executor(MemoryStorage(), genesis())
    head, state_before = executor.head, init_state(genesis())
    txs = [sign_tx(RICH, CHAIN, 0, "token.transfer", {"to": "poor", "amount": 10}),
           sign_tx(POOR, CHAIN, 0, "token.transfer", {"to": "rich", "amount": 99}),  # refused
           sign_tx(RICH, CHAIN, 1, "token.transfer", {"to": "poor", "amount": 5})]
    raws = tuple(tx.to_bytes() for tx in txs)
    block = ev.Deliver(wire.Signed(wire.PrePrepare(0, 1, bytes(32), 1000, raws + raws[:1]), 0,
                                   bytes(64)), ())
    run_ = executor.begin(block, lambda _id: None, Transaction.signature_ok)
    assert run_.advance()
    header, receipts = executor.commit(run_)
    assert [r.code for r in receipts] == ["ok", "InsufficientFunds", "ok", DUPLICATE]
    replayed = run(state_before, 1, txs + txs[:1], committed=set())
    assert seal_header(head, block, state_before, replayed) == header


def test_batch_hashes_give_the_ids_and_root_the_recipe_computes_and_hash_a_batch_once():
    from node.chain import BatchHashes, digest_batch, tx_root
    calls = []
    hashes = BatchHashes(keep_batches=2)
    real = hashlib.sha256

    def counting(data: bytes):
        calls.append(data)
        return real(data)

    first = (b"tx-a", b"tx-b", b"tx-c")
    hashlib.sha256 = counting
    try:
        assert hashes.digest_batch(7, first) == digest_batch(7, first)
        hashed = len(calls)
        ids, root = hashes.ids_and_root(first)
        assert len(calls) == hashed  # the executor's look-up hashes nothing again
        equal_copy = tuple(bytes(raw) for raw in first)  # same bytes, another tuple
        hashes.ids_and_root(equal_copy)
        assert len(calls) > hashed  # only the very tuple hashed is answered from memory
    finally:
        hashlib.sha256 = real
    assert ids == tuple(hashlib.sha256(raw).digest() for raw in first)
    assert root == tx_root(first)
    for n in range(3):  # evicts the oldest beyond keep_batches, answers stay right
        batch = (bytes([n]),)
        assert hashes.ids_and_root(batch)[1] == tx_root(batch)
    assert len(hashes._recent) == 2
    assert hashes.ids_and_root(first)[1] == tx_root(first)


def test_every_executor_of_one_genesis_starts_from_its_own_copy_of_one_genesis_state():
    """Executors of one genesis copy the state built for it once (node.chain.genesis_state_of):
    the same entries and root as init_state, and one replica's blocks leave the others'."""
    from node.chain import Executor, genesis_state_of
    from node.memory_storage import MemoryStorage
    first, second = Executor(MemoryStorage(), genesis()), Executor(MemoryStorage(), genesis())
    fresh = init_state(genesis())
    assert first.state is not second.state
    assert first.state.raw_items() == fresh.raw_items() == second.state.raw_items()
    assert first.head == second.head and first.head.state_root == fresh.root()
    first.state.put("bal/BPC/rich", 7)
    assert second.state.get("bal/BPC/rich") == 100 and second.state.root() == fresh.root()
    assert genesis_state_of(genesis()).raw_items() == fresh.raw_items()


def test_batch_hashes_by_content_answer_an_equal_batch_in_another_tuple_without_hashing():
    """The simulator's one BatchHashes (by_content): the primary's proposal and the copy
    its wire decoded for everyone else are one batch, hashed once; another batch is not
    answered from it."""
    from node.chain import BatchHashes, tx_root
    hashes = BatchHashes(keep_batches=2, by_content=True)
    first = (b"tx-a", b"tx-b")
    ids, root = hashes.ids_and_root(first)
    calls = []
    real = hashlib.sha256
    hashlib.sha256 = lambda data=b"": calls.append(data) or real(data)
    try:
        again = hashes.ids_and_root(tuple(bytes(raw) for raw in first))  # same bytes
    finally:
        hashlib.sha256 = real
    assert again == (ids, root) and calls == []
    from node.chain import digest_batch
    for timestamp_ms in (7, 7, 8, 7):  # a batch's digest at each time asked, kept or not
        assert hashes.digest_batch(timestamp_ms, first) == digest_batch(timestamp_ms, first)
    other = (b"tx-a", b"tx-c")
    assert hashes.ids_and_root(other) == (tuple(real(raw).digest() for raw in other),
                                          tx_root(other))
