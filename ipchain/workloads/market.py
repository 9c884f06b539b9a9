"""The demo's market chapter: the IP exchange, after the licensing, pool and deal story.

North University sells its threshold-signature patent to Acme Electronics through the
exchange: it lists the patent, OpenLedger bids lower (its BPC escrowed) and later
withdraws the bid (escrow returned), Acme buys at the listed price, and one transaction
pays the clearing fee to the secretariat and the price to the university and makes
Acme the owner. The patent carries licences A and C and sits in the pool: both
licences and the pool membership survive the sale.

Minim Devices, a small company, deposits two utility models (granted without
publication), has them appraised, and borrows against both from East Commercial Bank:
the first loan runs 180 days and Minim repays one instalment; the second is due on
demand, is not repaid, and the bank enforces it, taking the patent and recording the
shortfall. The parties' credit ratings are read before the chapter and after it.

Everything here is pure (steps in, views in, rows out); demo.py does the I/O.
"""

from __future__ import annotations

import datetime
from typing import Any, Awaitable, Callable

from ipchain.workloads.story import PatentSpec, Phase, Ref, Step

CHAPTER = "market"
"""Every phase of the chapter is named "market: ...": the demo reads the ratings
"before" at the first of them."""
SELLER, BUYER, BIDDER = "north-university", "acme-electronics", "openledger-community"
BORROWER, LENDER = "minim-devices", "east-commercial-bank"
SOLD_PATENT_ID = "CN:202310001234.5"
"""The story's first patent (threshold signatures): licensed as A and C, pooled."""
PRICE = 6_000_003
BID = 4_000_000
LISTING_DAYS = 30
LOAN_PATENTS = (
    PatentSpec(BORROWER, "202320011111.3", "utility_model",
               "Low-cost NFC tag for supply-chain seals", ("G06K19",), "2024-02-10",
               ("Liu Yang",)),
    PatentSpec(BORROWER, "202320022222.7", "utility_model",
               "Solar charger housing with tamper switch", ("H02J7",), "2024-05-18",
               ("Liu Yang", "He Ping")),
)
APPRAISALS = (1_000_000, 600_000)
LOANS = {
    "loan_1": (LOAN_PATENTS[0], 400_000, 600, 180),
    "loan_2": (LOAN_PATENTS[1], 250_000, 900, 0),
}
"""name: (collateral, principal, rate bps a year, term days). 40 % and 41.7 % of the
appraisals, under the 50 % LTV cap. The second loan is due on demand (term 0), so the
bank can enforce it minutes later, on a live cluster."""
INSTALMENT = 100_000
RATED = (SELLER, BUYER, BIDDER, BORROWER)
"""The parties whose credit ratings the demo shows before and after the chapter."""


def deposit_step(patent: PatentSpec) -> Step:
    meta = {"title": patent.title, "kind": patent.kind, "filing_date": patent.filing_date,
            "ipc": list(patent.ipc), "applicants": ["Minim Devices Ltd."],
            "inventors": list(patent.inventors), "owners": [[patent.owner, 10_000]]}
    return Step(patent.owner, "patent.deposit",
                {"office": "CN", "application_no": patent.application_no,
                 "doc_hash": patent.doc_hash, "meta": meta}, f"deposit {patent.id}")


def market_phases(today: datetime.date) -> list[Phase]:
    expires = (today + datetime.timedelta(days=LISTING_DAYS)).isoformat()
    return [
        Phase(f"{CHAPTER}: listing and collateral", (
            Step(SELLER, "market.list",
                 {"patent": SOLD_PATENT_ID, "price": PRICE, "expires": expires},
                 f"the university lists {SOLD_PATENT_ID} at {PRICE}", binds="listing"),
            Step(BIDDER, "market.offer",
                 {"patent": SOLD_PATENT_ID, "price": BID, "expires": expires},
                 f"OpenLedger bids {BID}, escrowed", binds="bid"),
            *(deposit_step(p) for p in LOAN_PATENTS),
        )),
        Phase(f"{CHAPTER}: sale", (
            Step(BUYER, "market.buy", {"listing": Ref("listing"), "price": PRICE},
                 "Acme buys: fee, then the university, then ownership, in one tx"),
            *(Step("cnipa", "patent.set_status", {"patent": p.id, "status": "GRANTED"},
                   f"grant utility model {p.id} (no publication)") for p in LOAN_PATENTS),
        )),
        Phase(f"{CHAPTER}: appraisal", (
            Step(BIDDER, "market.cancel", {"offer": Ref("bid")},
                 "OpenLedger withdraws its bid; escrow returned"),
            *(Step("ip-appraisal-center", "appraisal.post",
                   {"patent": p.id, "value": value, "basis": "cost approach"},
                   f"appraise {p.id} at {value}")
              for p, value in zip(LOAN_PATENTS, APPRAISALS)),
        )),
        Phase(f"{CHAPTER}: loan requests", tuple(
            Step(BORROWER, "loan.request",
                 {"patent": patent.id, "principal": principal, "rate_bps": rate,
                  "term_days": term},
                 f"Minim asks {principal} at {rate} bps for {term} days on {patent.id}",
                 binds=name)
            for name, (patent, principal, rate, term) in LOANS.items())),
        Phase(f"{CHAPTER}: funding", tuple(
            Step(LENDER, "loan.fund", {"loan": Ref(name)},
                 f"the bank funds {name}: principal out, pledge in")
            for name in LOANS)),
        Phase(f"{CHAPTER}: repayment and enforcement", (
            Step(BORROWER, "loan.repay", {"loan": Ref("loan_1"), "amount": INSTALMENT},
                 f"Minim repays an instalment of {INSTALMENT} on loan_1"),
            Step(LENDER, "loan.enforce", {"loan": Ref("loan_2")},
                 "loan_2 is past due and unpaid: the bank enforces"),
        )),
    ]


def split_chapter(phases: list[Phase]) -> tuple[list[Phase], list[Phase]]:
    """(the phases before the market chapter, the chapter)."""
    for i, phase in enumerate(phases):
        if phase.name.startswith(f"{CHAPTER}:"):
            return phases[:i], phases[i:]
    return phases, []


# -- reading it back ------------------------------------------------------------------------

Getter = Callable[..., Awaitable[Any]]


async def get_ratings(get: Getter) -> dict[str, Any]:
    return {org: await get("credit", org) for org in RATED}


async def get_market_views(get: Getter, refs: dict[str, str]) -> dict[str, Any]:
    views: dict[str, Any] = {"patent": await get("patents", SOLD_PATENT_ID),
                             "listing": None, "bid": None, "loans": {},
                             "market": await get("market")}
    if "listing" in refs:
        views["listing"] = await get("listings", refs["listing"])
    if "bid" in refs:
        views["bid"] = await get("offers", refs["bid"])
    for name in LOANS:
        if name in refs:
            views["loans"][name] = await get("loans", refs[name])
    views["collateral"] = {p.id: await get("patents", p.id) for p in LOAN_PATENTS}
    licences = await get("licences", "patent", SOLD_PATENT_ID)
    views["licences_on_patent"] = licences["result"] if licences else []
    return views


def format_owners(shares: list[list[Any]]) -> str:
    return ", ".join(org if bps == 10_000 else f"{org} {bps}bps" for org, bps in shares)


def compute_sale_rows(views: dict[str, Any]) -> list[list[Any]]:
    listing, bid = views["listing"], views["bid"]
    rows = []
    if listing:
        rows.append(["listing", listing["id"], format_owners(listing["sellers"]),
                     listing["price"], listing["state"], listing.get("buyer", "")])
    if bid:
        rows.append(["bid", bid["id"], bid["buyer"], bid["price"], bid["state"], ""])
    return rows


def compute_loan_rows(views: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for name, loan in views["loans"].items():
        if loan is None:
            continue
        rows.append([name, loan["id"], loan["patent"], loan.get("lender") or "",
                     loan["principal"], loan["rate_bps"], loan["term_days"], loan["state"],
                     loan.get("principal_paid", 0), loan.get("interest_paid", 0),
                     loan.get("outstanding", ""), loan.get("shortfall") or 0])
    return rows


def compute_rating_rows(before: dict[str, Any], after: dict[str, Any]) -> list[list[Any]]:
    def describe(credit: dict[str, Any] | None) -> str:
        if credit is None:
            return "?"
        return f"{credit['score']} {credit['band']}"

    def parts(credit: dict[str, Any] | None) -> str:
        if credit is None:
            return ""
        return "; ".join(f"{name} {c['good']}/{c['late']}/{c['bad']}"
                         for name, c in credit["components"].items()
                         if c["score"] is not None) or "no history"
    return [[org, describe(before.get(org)), describe(after.get(org)), parts(after.get(org))]
            for org in RATED]


def compute_market_checks(views: dict[str, Any], before: dict[str, Any],
                          after: dict[str, Any]) -> list[list[Any]]:
    """The issue's claims about the chapter, each answered from what the chain says."""
    patent = views["patent"] or {}
    licences = {licence["id"] for licence in (views.get("licences_on_patent") or [])}
    loans = views["loans"]
    loan_1, loan_2 = loans.get("loan_1") or {}, loans.get("loan_2") or {}
    collateral = views["collateral"].get(LOAN_PATENTS[1].id) or {}
    market = views["market"] or {}
    checks = [
        ("the university sold the patent to the manufacturer",
         patent.get("owners") == [[BUYER, 10_000]]
         and (views["listing"] or {}).get("state") == "sold"),
        ("its licences survived the sale", bool(licences) and all(
            lic["state"] == "active" for lic in views.get("licences_on_patent") or [])),
        ("the withdrawn bid's escrow was returned",
         (views["bid"] or {}).get("state") == "cancelled" and market.get("escrow") == 0),
        ("a loan was repaid in part and runs on",
         loan_1.get("state") == "active" and loan_1.get("principal_paid", 0) > 0),
        ("a loan was enforced: the lender owns the collateral",
         loan_2.get("state") == "enforced"
         and collateral.get("owners") == [[LENDER, 10_000]]),
        ("the borrower's rating fell", bool(before.get(BORROWER)) and bool(after.get(BORROWER))
         and after[BORROWER]["score"] < before[BORROWER]["score"]),
    ]
    return [[claim, "yes" if ok else "no"] for claim, ok in checks]
