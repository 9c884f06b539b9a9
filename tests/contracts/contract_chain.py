"""A small alliance on a test chain: real keys, real signatures, successive blocks.

This module has its own name (not `conftest`) so that test modules can import it even
when pytest is given several test directories, each with a conftest.py of its own: only
one of them can be the module `conftest` at a time.

Use the `chain` fixture (conftest.py) for the default alliance, or
`make_chain(orgs=..., contracts=...)` for another one. Each `chain.run(...)` signs one transaction with the organisation's
key and applies it in a block of its own (height + 1, timestamp + 1 s unless told);
`chain.block([...])` applies several transactions in one block.

    r = chain.run("acme", "patent.deposit", application_no="1", ...)
    chain.ok(r)                       # asserts committed, returns the receipt
    chain.fails("NotOwner", "bolt", "patent.withdraw", patent="CN:1")
                                      # asserts rejected with that code AND that the
                                      # state root did not move
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Callable

import nacl.signing

from contracts.genesis import init_state
from contracts.membership.governance import get_admins
from contracts.runtime import BlockContext, Receipt, apply_block
from contracts.state import State
from contracts.tx import Transaction, sign_tx

CHAIN_ID = "ipchain-test"
START_MS = 1_704_067_200_000
"""2024-01-01T00:00:00Z: late enough that realistic filing dates lie in the past."""
DAY_MS = 86_400_000

DEFAULT_ORGS: list[tuple[str, list[str], int]] = [
    ("adm1", ["admin"], 0),
    ("adm2", ["admin"], 0),
    ("adm3", ["admin"], 0),
    ("adm4", ["admin"], 0),
    ("cnipa", ["office"], 0),
    ("acme", ["member"], 1_000_000),
    ("bolt", ["member"], 1_000_000),
    ("univ", ["member"], 1_000_000),
    ("eval", ["evaluator"], 0),
    ("fund", ["investor"], 10_000_000),
    ("trust", ["trustee"], 0),
    ("reg", ["regulator"], 0),
]
"""(id, roles, initial BPC). Four admins, so a proposal needs three approvals."""


def signing_key(name: str) -> nacl.signing.SigningKey:
    """Deterministic keys, so a failing test replays byte for byte."""
    return nacl.signing.SigningKey(hashlib.sha256(f"ipchain-test/{name}".encode()).digest())


@dataclass
class Chain:
    state: State
    keys: dict[str, nacl.signing.SigningKey]
    """Current signing key per organisation (tests may rotate it)."""
    height: int = 0
    timestamp_ms: int = START_MS
    nonces: dict[bytes, int] = field(default_factory=dict)
    receipts: list[Receipt] = field(default_factory=list)

    # -- building transactions ---------------------------------------------------------
    def tx(self, org: str, op: str, args: dict[str, Any] | None = None, *,
           key: nacl.signing.SigningKey | None = None, nonce: int | None = None) -> Transaction:
        key = key or self.keys[org]
        pub = bytes(key.verify_key)
        if nonce is None:
            nonce = self.nonces.get(pub, 0)
            self.nonces[pub] = nonce + 1
        return sign_tx(key, CHAIN_ID, nonce, op, args or {})

    # -- applying blocks ---------------------------------------------------------------
    def block(self, txs: list[Transaction], *, advance_ms: int = 1000) -> list[Receipt]:
        self.height += 1
        self.timestamp_ms += advance_ms
        receipts = apply_block(self.state, BlockContext(CHAIN_ID, self.height, self.timestamp_ms),
                               txs)
        self.receipts.extend(receipts)
        return receipts

    def run(self, org: str, op: str, *, key: nacl.signing.SigningKey | None = None,
            advance_ms: int = 1000, **args: Any) -> Receipt:
        return self.block([self.tx(org, op, args, key=key)], advance_ms=advance_ms)[0]

    def advance(self, *, days: int = 0, ms: int = 0) -> None:
        """Let time pass without a block (the next block carries the new time)."""
        self.timestamp_ms += days * DAY_MS + ms

    # -- assertions --------------------------------------------------------------------
    @staticmethod
    def ok(receipt: Receipt) -> Receipt:
        assert receipt.ok, f"expected success, got {receipt.code}: {receipt.message}"
        return receipt

    def must(self, org: str, op: str, **args: Any) -> Receipt:
        """Run and assert it committed."""
        return self.ok(self.run(org, op, **args))

    def fails(self, code: str, org: str, op: str, **args: Any) -> Receipt:
        """Run, assert it was refused with `code`, and that the state root did not move:
        a refused transaction rolls back every write, its nonce included."""
        before = self.state.root()
        receipt = self.run(org, op, **args)
        assert not receipt.ok, f"expected {code}, but {op} committed"
        assert receipt.code == code, f"expected {code}, got {receipt.code}: {receipt.message}"
        assert self.state.root() == before, "a refused transaction changed the state"
        return receipt

    # -- registry and governance shortcuts ---------------------------------------------------
    def deposit(self, org: str, application_no: str, *, office: str = "CN",
                owners: list[list[Any]] | None = None, **meta: Any) -> str:
        """Deposit a patent owned by `org` (or `owners`) and return its id."""
        pid = f"{office}:{application_no}"
        full_meta = {"title": f"Patent {pid}", "kind": "invention", "filing_date": "2023-03-01",
                     "owners": owners or [[org, 10_000]], **meta}
        self.must(org, "patent.deposit", office=office, application_no=application_no,
                  doc_hash=hashlib.sha256(f"disclosure of {pid}".encode()).hexdigest(),
                  meta=full_meta)
        return pid

    def grant(self, pid: str, office_org: str = "cnipa") -> str:
        """FILED -> PUBLISHED -> GRANTED through the office, as a real patent goes;
        utility models and designs have no publication stage (FILED -> GRANTED)."""
        if self.get(f"patent/{pid}")["kind"] == "invention":
            self.must(office_org, "patent.set_status", patent=pid, status="PUBLISHED")
        self.must(office_org, "patent.set_status", patent=pid, status="GRANTED")
        return pid

    def govern(self, action: str, params: dict[str, Any]) -> str:
        """Propose as the first admin and approve with as many more as it takes."""
        admins = get_admins(self.state)
        receipt = self.must(admins[0], "member.propose", action=action, params=params)
        proposal = receipt.events[0].data["proposal"]
        for admin in admins[1:]:
            if self.get(f"proposal/{proposal}")["status"] != "open":
                break
            self.must(admin, "member.vote", proposal=proposal, approve=True)
        assert self.get(f"proposal/{proposal}")["status"] == "executed", \
            self.get(f"proposal/{proposal}")
        return proposal

    # -- reads ---------------------------------------------------------------------------
    def get(self, key: str, default: Any = None) -> Any:
        return self.state.get(key, default)

    def query(self, kind: str, *parts: str) -> Any:
        from contracts.queries import run_query

        return run_query(self.state, self.timestamp_ms, kind, list(parts))

    def events(self, receipt: Receipt) -> list[tuple[str, str, dict[str, Any]]]:
        return [(e.contract, e.name, e.data) for e in receipt.events]


def build_genesis(orgs: list[tuple[str, list[str], int]],
                  contracts: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "chain_id": CHAIN_ID,
        "genesis_time_ms": START_MS,
        "validators": [{"id": "n0", "key": signing_key("validator-n0").verify_key.encode().hex()}],
        "organisations": [
            {"id": org, "name": org.upper(), "roles": roles, "bpc": bpc,
             "keys": [bytes(signing_key(org).verify_key).hex()]}
            for org, roles, bpc in orgs
        ],
        "contracts": contracts or {},
    }


def new_chain(orgs: list[tuple[str, list[str], int]] | None = None,
              contracts: dict[str, Any] | None = None) -> Chain:
    orgs = DEFAULT_ORGS if orgs is None else orgs
    state = init_state(build_genesis(orgs, contracts))
    return Chain(state, {org: signing_key(org) for org, _, _ in orgs})


@dataclass
class Case:
    """One row of an op table: pre-state, op, and the expected error or post-state."""

    name: str
    sender: str
    args: dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]]
    code: str | None = None
    """None: the op must commit; else the error code it must be refused with."""
    setup: Callable[[Chain], dict[str, Any]] | None = None
    check: Callable[[Chain, dict[str, Any], Receipt], None] | None = None

    def __str__(self) -> str:
        return self.name


def run_case_in(world: Callable[[], Chain], op: str,
                case: Case) -> tuple[Chain, dict[str, Any], Receipt]:
    """Each family's tables start from their own world; the row logic is the same."""
    chain = world()
    ctx = case.setup(chain) if case.setup else {}
    args = case.args(ctx) if callable(case.args) else case.args
    if case.code is None:
        receipt = chain.must(case.sender, op, **args)
    else:
        receipt = chain.fails(case.code, case.sender, op, **args)
    if case.check is not None:
        case.check(chain, ctx, receipt)
    return chain, ctx, receipt
