"""The simulated clients: their keys, the genesis that funds them, and their transfers.

Transactions are real `token.transfer`s signed with Ed25519 once, up front, so that
equal state roots across replicas mean the contracts really ran the same way. In the
fast mode the executor does not re-verify those signatures (that would dominate the
run time); it trusts the set of ids the clients signed instead — labelled
FAST_TX_SIGNATURES wherever it is used. Anything else (say a transaction a Byzantine
replica made up) fails that check, as it would fail a real signature check.

The client behaves like `ipchain/sdk/client.py` against a real cluster: it sends a burst to
one node, waits for that node's receipt, and re-sends what is still unacknowledged to
another node after a timeout.
"""

from __future__ import annotations

import functools
import hashlib
import random
from dataclasses import dataclass, field
from typing import Any, Callable

import nacl.bindings
import nacl.signing

from contracts.codec import pack
from contracts.tx import SIG_ENTRY_HEAD, TX_DOMAIN, Transaction

FAST_TX_SIGNATURES = "fast-insecure-sim"
"""Label of the trusted-set signature check used instead of Ed25519 in fast mode."""
GENESIS_TIME_MS = 1_704_067_200_000
INITIAL_BPC = 1_000_000
OVERDRAFT_PERCENT = 5
"""Share of transfers that ask for more than any client holds: deterministic rejections."""


@functools.lru_cache(maxsize=None)
def client_key(index: int) -> nacl.signing.SigningKey:
    return nacl.signing.SigningKey(hashlib.sha256(f"ipchain-sim/client/{index}".encode()).digest())


@functools.lru_cache(maxsize=None)
def client_secret_key(index: int) -> bytes:
    """libsodium's 64-byte secret key of `client_key(index)` (seed || public key)."""
    return nacl.bindings.crypto_sign_seed_keypair(bytes(client_key(index)))[1]


@functools.lru_cache(maxsize=None)
def client_public_key(index: int) -> bytes:
    return bytes(client_key(index).verify_key)


@functools.lru_cache(maxsize=None)
def client_public_key_hex(index: int) -> str:
    return client_public_key(index).hex()


@functools.lru_cache(maxsize=None)
def validator_seed(index: int) -> bytes:
    return hashlib.sha256(f"ipchain-sim/validator/{index}".encode()).digest()


@functools.lru_cache(maxsize=None)
def validator_public_key(index: int) -> bytes:
    return bytes(nacl.signing.SigningKey(validator_seed(index)).verify_key)


def client_org(index: int) -> str:
    return f"client-{index:03d}"


def build_genesis(chain_id: str, n: int, clients: int) -> dict[str, Any]:
    validators = [{"id": f"node{i}", "index": i, "public_key": validator_public_key(i).hex()}
                  for i in range(n)]
    organisations = [{"id": client_org(i), "name": client_org(i), "roles": ["member"],
                      "keys": [client_public_key(i).hex()], "bpc": INITIAL_BPC}
                     for i in range(clients)]
    return {"chain_id": chain_id, "genesis_time_ms": GENESIS_TIME_MS, "validators": validators,
            "organisations": organisations, "contracts": {}}


@dataclass(frozen=True)
class ClientTx:
    tx: Transaction
    raw: bytes
    id_bytes: bytes
    id_hex: str


def make_bursts(rng: random.Random, chain_id: str, clients: int, bursts: int,
                per_burst: int) -> list[list[ClientTx]]:
    """Every transaction of the run, signed now, grouped by the burst that submits it."""
    nonces = [0] * clients
    out: list[list[ClientTx]] = []
    for _ in range(bursts):
        burst = []
        for _ in range(per_burst):
            sender = rng.randrange(clients)
            target = rng.randrange(clients - 1) if clients > 1 else 0
            target += 1 if clients > 1 and target >= sender else 0
            amount = (10 * INITIAL_BPC * clients if rng.randrange(100) < OVERDRAFT_PERCENT
                      else rng.randint(1, 1000))
            tx = _signed_transfer(sender, chain_id, nonces[sender], amount, client_org(target))
            nonces[sender] += 1
            burst.append(ClientTx(tx, tx.encoded, tx.id_bytes, tx.id))
        out.append(burst)
    return out


def _signed_transfer(sender: int, chain_id: str, nonce: int, amount: int,
                     to: str) -> Transaction:
    """`sign_tx(client_key(sender), chain_id, nonce, "token.transfer", {"amount": amount,
    "to": to})`, the same bytes and signature (a test compares them), without the
    codec's canonical walk or a second encoding: the body map is built with every key
    in canonical order and holds only a str and an int in range, so packing it as it
    stands IS its canonical encoding, and the transaction's is that map with the
    signature entry appended ("sig" sorts last: `Transaction.signing_bytes` cuts it
    off the same way). Signed by libsodium directly, as `SigningKey.sign` is (a quarter
    of its cost is the wrapper's objects). The id, hashed here once, and the sender's
    hex are stored with the fields, as `from_canonical_bytes` stores them: every
    replica's executor and admission read them."""
    args = {"amount": amount, "to": to}
    public_key = client_public_key(sender)
    body = pack({"args": args, "chain": chain_id, "nonce": nonce, "op": "token.transfer",
                 "sender": public_key})
    sig = nacl.bindings.crypto_sign(TX_DOMAIN + body, client_secret_key(sender))[:64]
    encoded = _SIGNED_TX_HEAD + body[1:] + SIG_ENTRY_HEAD + sig
    id_bytes = hashlib.sha256(encoded).digest()
    tx = object.__new__(Transaction)  # what the frozen dataclass's __init__ stores, at once
    object.__setattr__(tx, "__dict__", {
        "chain": chain_id, "sender": public_key, "nonce": nonce, "op": "token.transfer",
        "args": args, "sig": sig, "encoded": encoded, "id_bytes": id_bytes,
        "id": id_bytes.hex(), "sender_hex": client_public_key_hex(sender)})
    return tx


_SIGNED_TX_HEAD = b"\x86"
"""A transaction's map header (fixmap of 6 entries): the body's five and the signature."""


def trusted_signatures(bursts: list[list[ClientTx]]) -> Callable[[Transaction], bool]:
    """FAST_TX_SIGNATURES: accept exactly the transactions our clients signed (by id)."""
    signed = frozenset(ctx.id_hex for burst in bursts for ctx in burst)

    def signature_ok(tx: Transaction) -> bool:
        return tx.id in signed

    return signature_ok


@dataclass(frozen=True)
class Ack:
    """A receipt a client got from an honest node: what it believes about its tx."""

    host: int
    height: int
    ok: bool
    code: str
    at_ms: int


@dataclass
class Submission:
    ctx: ClientTx
    phase: str
    first_ms: int
    last_ms: int
    asked: list[int] = field(default_factory=list)


class Client:
    """All simulated clients as one: bursts to one node, retries elsewhere, acks."""

    def __init__(self, rng: random.Random, n: int, retry_ms: int,
                 send: Callable[[int, list[ClientTx]], None],
                 is_honest: Callable[[int], bool], now_ms: Callable[[], int]) -> None:
        self.rng = rng
        self.n = n
        self.retry_ms = retry_ms
        self.send = send
        self.is_honest = is_honest
        self.now_ms = now_ms
        self.submissions: dict[str, Submission] = {}
        self.acked: dict[str, Ack] = {}

    def submit(self, burst: list[ClientTx], phase: str) -> None:
        host = self.rng.randrange(self.n)
        now = self.now_ms()
        for ctx in burst:
            self.submissions[ctx.id_hex] = Submission(ctx, phase, now, now, [host])
        self.send(host, burst)

    def retry_due(self) -> None:
        """Re-send every transaction unacknowledged for `retry_ms`, all to one new node."""
        now = self.now_ms()
        due = [s for tx_id, s in self.submissions.items()
               if tx_id not in self.acked and now - s.last_ms >= self.retry_ms]
        if not due:
            return
        host = self.rng.randrange(self.n)
        for sub in due:
            sub.last_ms = now
            if host not in sub.asked:
                sub.asked.append(host)
        self.send(host, [s.ctx for s in due])

    def on_receipt(self, host: int, tx_id: str, height: int, ok: bool, code: str) -> None:
        sub = self.submissions.get(tx_id)
        if sub is None or tx_id in self.acked or host not in sub.asked:
            return
        if self.is_honest(host):
            self.acked[tx_id] = Ack(host, height, ok, code, self.now_ms())

    def unacked(self, phase: str | None = None) -> list[str]:
        return [tx_id for tx_id, s in self.submissions.items()
                if tx_id not in self.acked and (phase is None or s.phase == phase)]
