"""The demo's story of the alliance, as phases of signed operations.

Each phase's steps are independent of one another (they may commit in any order, on
any node); a phase starts only after the previous one committed, because it builds on
it (a patent is granted only after it was deposited). The story grows with the
contracts: a phase is included only when every op it uses is registered, so the demo
runs the whole story once the contract families land and just the transfers before.

The story: members fund each other; four patents are deposited, published, granted,
appraised and cited; two licences are offered, accepted and pay royalties; a patent
pool is created, three patents are attested and join, implementers buy BPR and the
pool distributes its treasury; a trustee securitizes one licence (senior and junior
tranches), investors subscribe, the deal closes (true sale), the licensee's royalty
now flows into the deal, and the waterfall pays the investors.

Records created on chain are named by the creating tx's id (licence, pool, deal: its
first 16 hex chars), so a step can `bind` a name to its tx and later steps refer to
it with `Ref(name)` in their arguments; `resolve` fills those in before signing.
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass
from typing import Any

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


def licensing_phases(today: datetime.date) -> list[Phase]:
    """Two non-exclusive licences (they may coexist with the pool), both starting with
    the last ended quarter so it can be reported; licence A's royalty waits for the deal."""
    period, start = get_previous_quarter(today)
    end = start.replace(year=start.year + 5).isoformat()
    terms = {"kind": "non_exclusive", "start_date": start.isoformat(), "end_date": end}
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
        )),
        Phase("licence acceptance", (
            Step("acme-electronics", "licence.accept", {"licence": Ref("licence_a")},
                 "Acme accepts and pays the fee"),
            Step("openledger-community", "licence.accept", {"licence": Ref("licence_b")},
                 "OpenLedger accepts and pays the fee"),
        )),
        Phase("royalty report", (
            Step("openledger-community", "royalty.report",
                 {"licence": Ref("licence_b"), "period": period, "net_sales": 2_000_000,
                  "units": 400}, f"OpenLedger reports {period} sales"),
        )),
        Phase("royalty payment", (
            Step("openledger-community", "royalty.pay",
                 {"licence": Ref("licence_b"), "period": period},
                 f"OpenLedger pays {period} royalty to the institute"),
        )),
    ]


def pool_phases(today: datetime.date) -> list[Phase]:
    period, _ = get_previous_quarter(today)
    pooled = (PATENTS[0], PATENTS[1], PATENTS[3])
    return [
        Phase("pool creation", (
            Step("alliance-secretariat", "pool.create",
                 {"name": "Consortium ledger patent pool", "admin_fee_bps": 500,
                  "bpr_ratio": [1, 100]}, "BPSA pool, 1 BPR per 100 BPC", binds="pool"),
        )),
        Phase("essentiality", tuple(
            Step("ip-appraisal-center", "pool.attest", {"pool": Ref("pool"), "patent": p.id,
                                                        "basis": "claim chart v1"},
                 f"attest {p.id} essential") for p in pooled)),
        Phase("pool joining", tuple(
            Step(p.owner, "pool.join", {"pool": Ref("pool"), "patent": p.id},
                 f"{p.owner} contributes {p.id}") for p in pooled)),
        Phase("BPR purchase", (
            Step("institute-advanced-tech", "pool.convert",
                 {"pool": Ref("pool"), "bpc_amount": 100_000}, "institute buys 1000 BPR"),
            Step("acme-electronics", "pool.convert",
                 {"pool": Ref("pool"), "bpc_amount": 55_050}, "Acme buys 550 BPR"),
        )),
        Phase("pool distribution", (
            Step("alliance-secretariat", "pool.distribute",
                 {"pool": Ref("pool"), "period": period}, f"distribute the {period} treasury"),
        )),
    ]


def securitization_phases(today: datetime.date) -> list[Phase]:
    """Licence A's royalties back a two-tranche deal (3.5M against a 5M appraisal at the
    80 % advance rate); its first royalty is paid after closing, so into the deal."""
    period, _ = get_previous_quarter(today)
    deal = Ref("deal")
    return [
        Phase("deal creation", (
            Step("trust-and-custody", "deal.create",
                 {"originator": "north-university", "assets": [Ref("licence_a")],
                  "tranches": [{"name": "senior", "principal": 2_500_000, "coupon_bps": 150},
                               {"name": "junior", "principal": 1_000_000, "coupon_bps": 400}],
                  "fees_per_period": 5_000},
                 "IP-ABS over licence A", binds="deal"),
        )),
        Phase("subscriptions", (
            Step("harbor-capital", "deal.subscribe",
                 {"deal": deal, "tranche": "senior", "amount": 2_500_000}, "Harbor buys senior"),
            Step("summit-ventures", "deal.subscribe",
                 {"deal": deal, "tranche": "junior", "amount": 1_000_000}, "Summit buys junior"),
        )),
        Phase("closing", (
            Step("trust-and-custody", "deal.close", {"deal": deal},
                 "true sale: proceeds to the university"),
        )),
        Phase("royalty into the deal", (
            Step("acme-electronics", "royalty.report",
                 {"licence": Ref("licence_a"), "period": period, "net_sales": 10_000_000,
                  "units": 1_000}, f"Acme reports {period} sales"),
        )),
        Phase("collection", (
            Step("acme-electronics", "royalty.pay", {"licence": Ref("licence_a"),
                                                     "period": period},
                 "Acme pays; the deal collects"),
        )),
        Phase("waterfall", (
            Step("trust-and-custody", "deal.distribute", {"deal": deal, "period": 1},
                 "period 1: fees, interest, principal"),
        )),
    ]


def story(available_ops: set[str], today: datetime.date | None = None) -> list[Phase]:
    """The phases whose ops all exist, family by family; a missing op ends the story
    there (later phases build on earlier ones)."""
    today = today or datetime.datetime.now(datetime.timezone.utc).date()
    phases = [funding_phase()]
    families = (registry_phases(), licensing_phases(today), pool_phases(today),
                securitization_phases(today))
    for family in families:
        for phase in family:
            if not phase.ops <= available_ops:
                return phases
            phases.append(phase)
    return phases


def get_available_ops() -> set[str]:
    """The ops this checkout's contracts register (the nodes run the same code)."""
    try:
        from contracts.runtime import get_ops
        return set(get_ops())
    except Exception:  # a contract module mid-edit must not break the demo's transfers
        return {"token.transfer"}
