"""The demo's story of the alliance, as phases of signed operations.

Each phase's steps are independent of one another (they may commit in any order, on
any node); a phase starts only after the previous one committed, because it builds on
it (a patent is granted only after it was deposited). The story grows with the
contracts: a phase is included only when every op it uses is registered, so the demo
runs the whole story once the contract families land and just the transfers before.

The story: members fund each other; four patents are deposited, published, granted,
appraised and cited; three bilateral licences are offered and accepted, an open licence
is declared and bought by paying its price, and licence B reports and pays two ended
quarters of royalties; a patent pool is created, three patents are attested and join,
a member converts BPC into BPR (a licence to every pooled patent) and the pool
distributes its treasury; a trustee securitizes licences A and C in a senior /
mezzanine / equity deal, investors subscribe, the deal closes (true sale), the
licensees' royalties now flow into the deal and two periods distribute; then C's
licensee stops paying, the trustee writes C off, recovers part of it, and a third
distribution shows the write-down, the tests and the trigger; finally the market chapter
(market.py): the university sells the licensed, pooled patent to Acme through the
exchange, and a small company borrows against two utility models, repays one loan in
part and has the other enforced.

Records created on chain are named by the creating tx's id (licence, pool, deal: its
first 16 hex chars), so a step can `bind` a name to its tx and later steps refer to
it with `Ref(name)` in their arguments; `resolve` fills those in before signing.
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass
from typing import Any, Callable

RECORD_ID_HEX = 16
"""Licence, pool and deal ids are the creating transaction's id, first 16 hex chars."""


@dataclass(frozen=True)
class Ref:
    """A placeholder for the id of a record created by an earlier step."""

    name: str


class UnresolvedRef(KeyError):
    """An argument names a record whose creating step did not commit."""


@dataclass(frozen=True)
class Step:
    org: str
    op: str
    args: dict[str, Any]
    what: str
    binds: str | None = None
    """Name under which this step's record id (tx id prefix) is known to later steps."""


def resolve(value: Any, refs: dict[str, str]) -> Any:
    """`value` with every Ref replaced by the record id it names."""
    if isinstance(value, Ref):
        if value.name not in refs:
            raise UnresolvedRef(value.name)
        return refs[value.name]
    if isinstance(value, dict):
        return {key: resolve(item, refs) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, refs) for item in value]
    return value


def record_id(tx_id: str) -> str:
    return tx_id[:RECORD_ID_HEX]


@dataclass(frozen=True)
class Phase:
    name: str
    steps: tuple[Step, ...]

    @property
    def ops(self) -> set[str]:
        return {step.op for step in self.steps}


@dataclass(frozen=True)
class PatentSpec:
    owner: str
    application_no: str
    kind: str
    title: str
    ipc: tuple[str, ...]
    filing_date: str
    inventors: tuple[str, ...]

    @property
    def id(self) -> str:
        return f"CN:{self.application_no}"

    @property
    def doc_hash(self) -> str:
        """Stands in for the SHA-256 of the disclosure document."""
        return hashlib.sha256(f"{self.id}\n{self.title}".encode()).hexdigest()


PATENTS = (
    PatentSpec("north-university", "202310001234.5", "invention",
               "Threshold signature scheme for consortium ledgers", ("H04L9",), "2023-03-01",
               ("Li Wei", "Chen Jing")),
    PatentSpec("acme-electronics", "202310005678.1", "invention",
               "Low-power secure element for connected devices", ("G06F21", "H04L9"),
               "2023-04-12", ("Wang Fang",)),
    PatentSpec("institute-advanced-tech", "202320009876.2", "utility_model",
               "Tamper-evident archive for patent disclosures", ("G06F16",), "2023-05-20",
               ("Zhao Lei", "Sun Mei")),
    PatentSpec("openledger-community", "202310004321.9", "invention",
               "Verifiable timestamps for open-source contributions", ("H04L9", "G06F21"),
               "2023-06-30", ("Open Ledger contributors",)),
)

ORG_NAMES = {
    "north-university": "North University", "acme-electronics": "Acme Electronics Co.",
    "institute-advanced-tech": "Institute of Advanced Technology",
    "openledger-community": "OpenLedger Foundation",
}


def transfer(source: str, target: str, amount: int, what: str) -> Step:
    return Step(source, "token.transfer", {"to": target, "amount": amount}, what)


def funding_phase() -> Phase:
    return Phase("funding", (
        transfer("harbor-capital", "north-university", 2_000_000, "seed funding for a lab"),
        transfer("summit-ventures", "acme-electronics", 3_000_000, "growth investment"),
        transfer("alliance-secretariat", "openledger-community", 500_000, "community grant"),
        transfer("acme-electronics", "cnipa", 20_000, "filing fee"),
        transfer("institute-advanced-tech", "ip-appraisal-center", 50_000, "appraisal fee"),
        transfer("north-university", "trust-and-custody", 10_000, "custody fee"),
        transfer("harbor-capital", "summit-ventures", 1_000_000, "co-investment"),
        transfer("openledger-community", "north-university", 5_000, "bounty payout"),
    ))


def deposit_step(patent: PatentSpec) -> Step:
    meta = {"title": patent.title, "kind": patent.kind, "filing_date": patent.filing_date,
            "ipc": list(patent.ipc), "applicants": [ORG_NAMES[patent.owner]],
            "inventors": list(patent.inventors), "owners": [[patent.owner, 10_000]]}
    return Step(patent.owner, "patent.deposit",
                {"office": "CN", "application_no": patent.application_no,
                 "doc_hash": patent.doc_hash, "meta": meta},
                f"deposit {patent.id}")


def registry_phases() -> list[Phase]:
    """Deposit, publish (inventions), grant, appraise, cite."""
    inventions = [p for p in PATENTS if p.kind == "invention"]
    return [
        Phase("deposits", tuple(deposit_step(p) for p in PATENTS)),
        Phase("publication", tuple(
            Step("cnipa", "patent.set_status", {"patent": p.id, "status": "PUBLISHED"},
                 f"publish {p.id}") for p in inventions)),
        Phase("grant", tuple(
            Step("cnipa", "patent.set_status", {"patent": p.id, "status": "GRANTED"},
                 f"grant {p.id}") for p in PATENTS)),
        Phase("appraisal", tuple(
            Step("ip-appraisal-center", "appraisal.post",
                 {"patent": p.id, "value": 5_000_000 + 1_000_000 * i, "basis": "income approach"},
                 f"appraise {p.id}") for i, p in enumerate(PATENTS))),
        Phase("citations", (
            Step("cnipa", "patent.cite", {"citing": PATENTS[1].id, "cited": PATENTS[0].id},
                 "secure element cites threshold signatures"),
            Step("cnipa", "patent.cite", {"citing": PATENTS[3].id, "cited": PATENTS[0].id},
                 "timestamps cite threshold signatures"),
        )),
    ]


def get_previous_quarter(today: datetime.date) -> tuple[str, datetime.date]:
    """("YYYY-Qn", first day) of the last quarter that has fully ended by `today`:
    the one period royalties can be reported for and a pool can distribute."""
    year, quarter = today.year, (today.month - 1) // 3 + 1
    year, quarter = (year - 1, 4) if quarter == 1 else (year, quarter - 1)
    return f"{year}-Q{quarter}", datetime.date(year, 3 * quarter - 2, 1)


def get_ended_quarters(today: datetime.date, count: int) -> list[tuple[str, datetime.date]]:
    """The last `count` quarters that have fully ended by `today`, oldest first: royalty
    periods must have ended before they are reported, and are reported in order."""
    quarters = [get_previous_quarter(today)]
    while len(quarters) < count:
        quarters.append(get_previous_quarter(quarters[-1][1]))
    return quarters[::-1]


BPR_BUYER = "institute-advanced-tech"
"""Converts BPC into BPR and so holds a licence to every pooled patent."""
OPEN_LICENSEE = "north-university"
"""Buys the open licence on the institute's (unpooled) archive utility model."""
POOLED = (PATENTS[0], PATENTS[1], PATENTS[3])
OPEN_PATENT = PATENTS[2]
OPEN_PRICE = 30_000
LICENCES = {
    "licence_a": ("A", "threshold signatures to Acme; securitized"),
    "licence_b": ("B", "archive model to OpenLedger"),
    "licence_c": ("C", "threshold signatures to OpenLedger; securitized, defaults"),
    "open_licence": ("open", "archive model to North University, bought on open terms"),
}
"""The story's licences by the name their creating step binds: (label, what it is)."""
DEFAULT_LOSS = 650_000
RECOVERY = 100_000


def licensing_phases(today: datetime.date) -> list[Phase]:
    """Three non-exclusive licences (they may coexist with the pool) starting with the
    older of the last two ended quarters, so both can be reported; A's and C's royalties
    wait for the deal. B reports both quarters and pays the institute. An open licence
    is declared and bought by paying its price."""
    (first, start), (second, _) = get_ended_quarters(today, 2)
    end = start.replace(year=start.year + 5).isoformat()
    terms = {"kind": "non_exclusive", "start_date": start.isoformat(), "end_date": end}
    b = Ref("licence_b")
    return [
        Phase("licence offers", (
            Step("north-university", "licence.offer",
                 {"licensee": "acme-electronics", "patents": [PATENTS[0].id], "fee": 200_000,
                  "royalty_bps": 300, **terms},
                 "threshold signatures licensed to Acme", binds="licence_a"),
            Step("institute-advanced-tech", "licence.offer",
                 {"licensee": "openledger-community", "patents": [PATENTS[2].id],
                  "fee": 50_000, "royalty_bps": 500, **terms},
                 "archive model licensed to OpenLedger", binds="licence_b"),
            Step("north-university", "licence.offer",
                 {"licensee": "openledger-community", "patents": [PATENTS[0].id],
                  "fee": 20_000, "royalty_bps": 200, **terms},
                 "threshold signatures licensed to OpenLedger", binds="licence_c"),
            Step(OPEN_PATENT.owner, "licence.open_offer",
                 {"patent": OPEN_PATENT.id, "price": OPEN_PRICE, "terms": {"royalty_bps": 100}},
                 f"open licence declared on {OPEN_PATENT.id}"),
        )),
        Phase("licence acceptance", (
            Step("acme-electronics", "licence.accept", {"licence": Ref("licence_a")},
                 "Acme accepts A and pays the fee"),
            Step("openledger-community", "licence.accept", {"licence": b},
                 "OpenLedger accepts B and pays the fee"),
            Step("openledger-community", "licence.accept", {"licence": Ref("licence_c")},
                 "OpenLedger accepts C and pays the fee"),
            Step(OPEN_LICENSEE, "licence.take_open",
                 {"patent": OPEN_PATENT.id, "price": OPEN_PRICE},
                 f"North University buys the open licence for {OPEN_PRICE}",
                 binds="open_licence"),
        )),
        Phase(f"royalty report {first}", (
            Step("openledger-community", "royalty.report",
                 {"licence": b, "period": first, "net_sales": 2_000_000, "units": 400},
                 f"OpenLedger reports {first} sales under B"),
        )),
        Phase(f"royalty report {second}", (
            Step("openledger-community", "royalty.report",
                 {"licence": b, "period": second, "net_sales": 2_400_000, "units": 480},
                 f"OpenLedger reports {second} sales under B"),
        )),
        Phase("royalty payments", tuple(
            Step("openledger-community", "royalty.pay", {"licence": b, "period": period},
                 f"OpenLedger pays B's {period} royalty to the institute")
            for period in (first, second))),
    ]


def pool_phases(today: datetime.date) -> list[Phase]:
    period, _ = get_previous_quarter(today)
    return [
        Phase("pool creation", (
            Step("alliance-secretariat", "pool.create",
                 {"name": "Consortium ledger patent pool", "admin_fee_bps": 500,
                  "bpr_ratio": [1, 100]}, "BPSA pool, 1 BPR per 100 BPC", binds="pool"),
        )),
        Phase("essentiality", tuple(
            Step("ip-appraisal-center", "pool.attest", {"pool": Ref("pool"), "patent": p.id,
                                                        "basis": "claim chart v1"},
                 f"attest {p.id} essential") for p in POOLED)),
        Phase("pool joining", tuple(
            Step(p.owner, "pool.join", {"pool": Ref("pool"), "patent": p.id},
                 f"{p.owner} contributes {p.id}") for p in POOLED)),
        Phase("BPR purchase", (
            Step(BPR_BUYER, "pool.convert",
                 {"pool": Ref("pool"), "bpc_amount": 100_000}, "institute buys 1000 BPR"),
            Step("acme-electronics", "pool.convert",
                 {"pool": Ref("pool"), "bpc_amount": 55_050}, "Acme buys 550 BPR"),
        )),
        Phase("pool distribution", (
            Step("alliance-secretariat", "pool.distribute",
                 {"pool": Ref("pool"), "period": period}, f"distribute the {period} treasury"),
        )),
    ]


DEAL_TERMS = {
    "originator": "north-university",
    "tranches": [{"name": "senior", "principal": 2_400_000, "coupon_bps": 150},
                 {"name": "mezzanine", "principal": 1_000_000, "coupon_bps": 400},
                 {"name": "equity", "principal": 500_000, "coupon_bps": 0}],
    "fees_per_period": 5_000,
    "principal_per_period": 150_000,
    "tests": {"oc_min_bps": {"senior": 15_000, "mezzanine": 11_000},
              "coverage_min_bps": 20_000},
    "trigger": {"breach_periods": 1},
}
"""3.9M of principal against the 5M appraisal at the 80 % advance rate. Senior
principal amortises 150 000 a period so that the equity tranche's holders see a
residual while the deal performs. A hair trigger (one breached period) so that the
period after the default shows the latch at work: excess cash retires senior principal
and junior interest waits."""

SUBSCRIPTIONS = (("harbor-capital", "senior", 2_400_000),
                 ("summit-ventures", "mezzanine", 1_000_000),
                 ("harbor-capital", "equity", 200_000), ("summit-ventures", "equity", 300_000))
"""(investor, tranche, amount): every tranche sold; the equity shared 40:60."""


def deal_royalty_phases(period: str, sales: dict[str, int], payers: tuple[str, ...],
                        ) -> list[Phase]:
    """The deal's licensees report `period` (net sales by licence); `payers` then pay,
    into the deal's collection account since the closing assigned the royalties."""
    licensee = {"licence_a": "acme-electronics", "licence_c": "openledger-community"}
    return [
        Phase(f"deal royalties {period}", tuple(
            Step(licensee[name], "royalty.report",
                 {"licence": Ref(name), "period": period, "net_sales": amount,
                  "units": amount // 10_000},
                 f"{licensee[name]} reports {period} under {LICENCES[name][0]}")
            for name, amount in sales.items())),
        Phase(f"collection {period}", tuple(
            Step(licensee[name], "royalty.pay", {"licence": Ref(name), "period": period},
                 f"{licensee[name]} pays {LICENCES[name][0]}'s {period}; the deal collects")
            for name in payers)),
    ]


def distribute_phase(period: int, what: str) -> Phase:
    return Phase(f"waterfall period {period}", (
        Step("trust-and-custody", "deal.distribute", {"deal": Ref("deal"), "period": period},
             f"period {period}: {what}"),))


def securitization_phases(today: datetime.date) -> list[Phase]:
    """Licences A and C back a three-tranche deal; investors subscribe; closing assigns
    their royalties to the deal. Two quarters of royalties feed two distributions;
    OpenLedger does not pay C's second quarter, the trustee writes C off (equity first),
    recovers part of the loss from OpenLedger and distributes a third time."""
    (first, _), (second, _) = get_ended_quarters(today, 2)
    deal = Ref("deal")
    return [
        Phase("deal creation", (
            Step("trust-and-custody", "deal.create",
                 {**DEAL_TERMS, "assets": [Ref("licence_a"), Ref("licence_c")]},
                 "IP-ABS over licences A and C", binds="deal"),
        )),
        Phase("subscriptions", tuple(
            Step(investor, "deal.subscribe",
                 {"deal": deal, "tranche": tranche, "amount": amount},
                 f"{investor} buys {amount} {tranche}")
            for investor, tranche, amount in SUBSCRIPTIONS)),
        Phase("closing", (
            Step("trust-and-custody", "deal.close", {"deal": deal},
                 "true sale: proceeds to the university, royalties to the deal"),
        )),
        *deal_royalty_phases(first, {"licence_a": 8_000_000, "licence_c": 2_000_000},
                             ("licence_a", "licence_c")),
        distribute_phase(1, "fees, interest, senior principal, equity residual"),
        *deal_royalty_phases(second, {"licence_a": 10_000_000, "licence_c": 1_500_000},
                             ("licence_a",)),
        distribute_phase(2, "C unpaid; A's royalty alone"),
        Phase("default", (
            Step("trust-and-custody", "deal.default",
                 {"deal": deal, "asset": Ref("licence_c"), "loss": DEFAULT_LOSS},
                 f"C defaults: {DEFAULT_LOSS} written down, equity first"),
            transfer("openledger-community", "trust-and-custody", RECOVERY,
                     "OpenLedger settles part of C with the trustee"),
        )),
        Phase("recovery", (
            Step("trust-and-custody", "deal.recover",
                 {"deal": deal, "asset": Ref("licence_c"), "amount": RECOVERY},
                 f"trustee pays the {RECOVERY} recovery in, senior written back first"),
        )),
        distribute_phase(3, "after the default"),
    ]


def full_story(today: datetime.date) -> list[Phase]:
    from ipchain.workloads.market import market_phases  # it builds on this module's types

    return [funding_phase(), *registry_phases(), *licensing_phases(today),
            *pool_phases(today), *securitization_phases(today), *market_phases(today)]


def story(available_ops: set[str], today: datetime.date | None = None) -> list[Phase]:
    """The phases whose ops all exist, in order; a missing op ends the story there
    (later phases build on earlier ones). The funding transfers always run."""
    today = today or datetime.datetime.now(datetime.timezone.utc).date()
    funding, *rest = full_story(today)
    phases = [funding]
    for phase in rest:
        if not phase.ops <= available_ops:
            break
        phases.append(phase)
    return phases


def sign_story(phases: list[Phase], chain_id: str, get_key: Callable[[str], Any],
               ) -> tuple[list[list[Any]], dict[str, str]]:
    """Every phase's steps signed in order (nonces count from 0 per organisation), and
    the record ids they bind. A record's id is its creating tx's id, known once signed,
    so the whole story signs up front; whether each step commits is the caller's check.
    A phase sees only the records of earlier phases, as in the demo, whose steps of one
    phase run concurrently."""
    from contracts.tx import sign_tx

    nonces: dict[str, int] = {}
    refs: dict[str, str] = {}
    blocks = []
    for phase in phases:
        txs = []
        for step in phase.steps:
            nonce = nonces.get(step.org, 0)
            txs.append(sign_tx(get_key(step.org), chain_id, nonce, step.op,
                               resolve(step.args, refs)))
            nonces[step.org] = nonce + 1
        refs.update({step.binds: record_id(tx.id)
                     for step, tx in zip(phase.steps, txs) if step.binds})
        blocks.append(txs)
    return blocks, refs


@dataclass(frozen=True)
class Replay:
    state: Any
    blocks: list[list[Any]]
    receipts: list[list[Any]]
    """Per block, one receipt per transaction, in the order of `blocks`."""
    refs: dict[str, str]
    timestamp_ms: int
    """The last block's timestamp: the `now` that queries on `state` should read at."""


def replay_story(genesis: dict[str, Any], get_key: Callable[[str], Any], phases: list[Phase],
                 first_timestamp_ms: int, block_interval_ms: int = 1000) -> Replay:
    """The story applied in-process, one block per phase at heights 1, 2, ...: what the
    demo's steps will do on a cluster running this checkout's contracts."""
    from contracts.genesis import init_state
    from contracts.runtime import BlockContext, apply_block

    blocks, refs = sign_story(phases, genesis["chain_id"], get_key)
    state = init_state(genesis)
    receipts = []
    timestamp_ms = first_timestamp_ms
    for height, txs in enumerate(blocks, start=1):
        timestamp_ms = first_timestamp_ms + (height - 1) * block_interval_ms
        receipts.append(apply_block(state, BlockContext(genesis["chain_id"], height,
                                                        timestamp_ms), txs))
    return Replay(state, blocks, receipts, refs, timestamp_ms)


def get_available_ops() -> set[str]:
    """The ops this checkout's contracts register (the nodes run the same code)."""
    try:
        from contracts.runtime import get_ops
        return set(get_ops())
    except Exception:  # a contract module mid-edit must not break the demo's transfers
        return {"token.transfer"}
