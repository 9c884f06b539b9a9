"""`Runtime.admit`, made cheaper per relayed transaction, gives the verdicts it gave
before: the same refusal (class and message) for each transaction, the same mempool,
the same signature-verification count, the same refusal counters and the same
transactions handed to consensus. The reference below is the admission loop as it was
written before (one call chain per transaction); both run on real Runtimes over the
same random slices of good and corrupted transactions (wrong chain, unknown op, bad
signature, bad arguments, unknown sender, reused nonce, duplicates, already committed
ids, a full mempool)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any, Iterator

import nacl.signing
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from consensus import events as ev
from contracts import errors
from contracts.runtime import check_args, check_nonce
from contracts.tx import Transaction, from_canonical_bytes, sign_tx
from ipchain.sim.workload import build_genesis, client_key, client_org, validator_seed
from node.config import NodeConfig
from node.runtime import (SIGNATURE_VERIFICATIONS, MempoolFull, Runtime,
                          refuse_unknown_sender)

CHAIN = "admit-verdicts"
CLIENTS = 3


def reference_admit(runtime: Runtime, txs: list[Transaction]) -> list[Any]:
    """The admission loop as it was: ids, the store asked about those not pending, then
    per transaction the checks in order, each through its own call."""
    results: list[Any] = []
    fresh: list[tuple[bytes, bytes]] = []
    ids = [tx.id_bytes for tx in txs]
    committed = runtime.storage.known_tx_ids([i for i in ids if i not in runtime.mempool])
    for tx, tx_id in zip(txs, ids):
        try:
            if tx_id not in runtime.mempool and tx_id not in committed:
                reference_check(runtime, tx)
                runtime.mempool[tx_id] = tx
                fresh.append((tx_id, tx.to_bytes()))
            results.append(None)
        except errors.ContractError as exc:
            runtime.counters[f"tx_refused:{exc.code}"] += 1
            results.append(exc)
    if fresh:
        runtime.events.put_nowait(ev.RequestsArrived(tuple(fresh)))
    return results


def reference_check(runtime: Runtime, tx: Transaction) -> None:
    if len(runtime.mempool) >= runtime.cfg.max_mempool_txs:
        raise MempoolFull(f"mempool holds {len(runtime.mempool)} transactions")
    if tx.chain != runtime.cfg.chain_id:
        raise errors.WrongChain(f"transaction is for chain {tx.chain!r}")
    from contracts.runtime import get_ops
    if tx.op not in get_ops():
        raise errors.UnknownOp(f"unknown op {tx.op!r}")
    runtime.counters[SIGNATURE_VERIFICATIONS] += 1
    if not tx.signature_ok():
        raise errors.BadSignature("signature does not verify")
    check_args(tx)
    refuse_unknown_sender(runtime.executor.state, tx)
    check_nonce(runtime.executor.state, tx.sender_hex, tx.nonce)


def make_runtime(data_dir: Path, max_mempool_txs: int, committed: set[bytes]) -> Runtime:
    cfg = NodeConfig(node_id="node1", index=1, host="127.0.0.1", port=0, data_dir=data_dir,
                     signing_key=nacl.signing.SigningKey(validator_seed(1)),
                     genesis=build_genesis(CHAIN, 4, CLIENTS), admin_token="t" * 32,
                     peers=(), max_mempool_txs=max_mempool_txs, state_sync=False)
    runtime = Runtime(cfg)
    runtime.storage.screen_ids_with(runtime.committed_ids)
    sender_hex = bytes(client_key(0).verify_key).hex()  # client 0 has used nonces 0 and 1
    runtime.executor.state.put(f"nonce/{sender_hex}", [1, b"\x03"])
    runtime.committed_ids.add_all(committed)  # "committed": the filter and the store agree
    asked = runtime.storage.known_tx_ids

    def known_tx_ids(ids: list[bytes]) -> set[bytes]:
        return asked(ids) | (set(ids) & committed)
    runtime.storage.known_tx_ids = known_tx_ids  # type: ignore[method-assign]
    return runtime


def variants() -> Iterator[Transaction]:
    """Good transfers and every kind of refusal admission gives, some sharing nonces."""
    outsider = nacl.signing.SigningKey(b"\x07" * 32)
    for sender in range(CLIENTS):
        key, to = client_key(sender), client_org((sender + 1) % CLIENTS)
        for nonce in range(3):
            yield sign_tx(key, CHAIN, nonce, "token.transfer", {"to": to, "amount": 5})
        yield sign_tx(key, CHAIN, 1, "token.transfer", {"to": to, "amount": 6})  # nonce reused
        yield sign_tx(key, "other-chain", 4, "token.transfer", {"to": to, "amount": 5})
        yield sign_tx(key, CHAIN, 5, "token.mint_everything", {})
        yield sign_tx(key, CHAIN, 6, "token.transfer", {"to": to, "amount": 0})
        yield sign_tx(key, CHAIN, 7, "token.transfer", {"to": "no such org!", "amount": 1})
        good = sign_tx(key, CHAIN, 8, "token.transfer", {"to": to, "amount": 9})
        forged = bytearray(good.sig)
        forged[sender] ^= 1
        yield dataclasses.replace(good, sig=bytes(forged), encoded=b"")
    yield sign_tx(outsider, CHAIN, 0, "token.transfer", {"to": client_org(0), "amount": 1})


POOL = [from_canonical_bytes(tx.to_bytes()) or tx for tx in variants()]


def fresh_copies(txs: list[Transaction]) -> list[Transaction]:
    """New objects (as each node decodes its own): nothing cached on them is shared."""
    return [from_canonical_bytes(tx.to_bytes()) for tx in txs]


def verdicts(results: list[Any]) -> list[Any]:
    return [None if r is None else (type(r).__name__, str(r)) for r in results]


def queued(runtime: Runtime) -> list[Any]:
    out = []
    while not runtime.events.empty():
        out.append(runtime.events.get_nowait())
    return out


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(slices=st.lists(st.lists(st.sampled_from(range(len(POOL))), max_size=12), max_size=5),
       committed_picks=st.sets(st.sampled_from(range(len(POOL))), max_size=4),
       max_mempool_txs=st.sampled_from([2, 5, 1000]))
def test_admit_gives_the_verdicts_of_the_per_transaction_loop(
        tmp_path_factory: pytest.TempPathFactory, slices: list[list[int]],
        committed_picks: set[int], max_mempool_txs: int) -> None:
    committed = {POOL[i].id_bytes for i in committed_picks}

    async def run() -> None:
        old = make_runtime(tmp_path_factory.mktemp("old"), max_mempool_txs, committed)
        new = make_runtime(tmp_path_factory.mktemp("new"), max_mempool_txs, committed)
        try:
            for picks in slices:
                batch = [POOL[i] for i in picks]
                expected = reference_admit(old, fresh_copies(batch))
                got = new.admit(fresh_copies(batch), relay=False)
                assert verdicts(got) == verdicts(expected)
                assert list(new.mempool) == list(old.mempool)
                assert new.counters == old.counters
                assert queued(new) == queued(old)
        finally:
            for runtime in (old, new):
                runtime.snapshots.close()
                runtime.storage.close()
    asyncio.run(run())


def test_every_kind_of_refusal_is_exercised(tmp_path: Path) -> None:
    """The pool above really holds each refusal (else the comparison proves little)."""
    async def run() -> set[str]:
        runtime = make_runtime(tmp_path, 1000, {POOL[0].id_bytes})
        try:
            results = runtime.admit(fresh_copies(POOL), relay=False)
            return {type(r).__name__ for r in results if r is not None}
        finally:
            runtime.snapshots.close()
            runtime.storage.close()
    assert asyncio.run(run()) == {"NonceUsed", "WrongChain", "UnknownOp", "BadArguments",
                                  "BadSignature", "UnknownAccount"}
