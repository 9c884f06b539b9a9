"""Registry: deposits as existence proofs, corrections, the status machine, citations
and appraisals.

Reference: specs/contracts.md, "Registry (patent deposit)".
"""

from __future__ import annotations

import hashlib

import pytest

from contracts import errors, registry
from contracts.registry import get_effective_status

from contract_chain import DAY_MS, START_MS, Chain

PID = "CN:202310001234.5"


def doc(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def deposit_args(**overrides) -> dict:
    meta = {"title": "Consensus ledger", "kind": "invention", "filing_date": "2023-03-01",
            "priorities": [{"number": "US63/100", "date": "2022-04-01", "office": "US"}],
            "ipc": ["H04L 9/32"], "applicants": ["Acme Ltd"], "inventors": ["A. Inventor"],
            "owners": [["acme", 6_000], ["bolt", 4_000]]}
    args = {"office": "CN", "application_no": "202310001234.5", "doc_hash": doc("ledger"),
            "meta": meta}
    for key, value in overrides.items():
        if key in meta or key in ("publication_date", "grant_date"):
            meta[key] = value
        else:
            args[key] = value
    return args


# -- deposit ------------------------------------------------------------------------------


def test_deposit_records_the_document_and_when_it_was_seen(chain):
    receipt = chain.must("acme", "patent.deposit", **deposit_args())
    record = registry.get_patent(chain.state, PID)
    assert record["status"] == "FILED" and record["version"] == 1
    assert record["owners"] == [["acme", 6_000], ["bolt", 4_000]]
    assert record["height"] == receipt.height == chain.height
    assert record["timestamp_ms"] == chain.timestamp_ms
    event = receipt.events[0]
    assert (event.name, event.data["height"], event.data["timestamp_ms"]) == (
        "deposited", chain.height, chain.timestamp_ms)
    assert chain.get(f"doc/{doc('ledger')}") == PID


def test_owners_are_stored_sorted_whatever_order_they_came_in(chain):
    chain.must("bolt", "patent.deposit", **deposit_args(owners=[["bolt", 4_000], ["acme", 6_000]]))
    assert registry.get_owners(chain.state, PID) == [["acme", 6_000], ["bolt", 4_000]]


BAD_DEPOSITS = [
    ("office not ST.3", dict(office="cn"), "BadArguments"),
    ("application number with a slash", dict(application_no="PCT/US2019/1"), "BadArguments"),
    ("hash not lowercase hex", dict(doc_hash=doc("x").upper()), "BadArguments"),
    ("hash too short", dict(doc_hash="ab" * 16), "BadArguments"),
    ("hash with a trailing newline", dict(doc_hash=doc("x") + "\n"), "BadArguments"),
    ("application number with a newline", dict(application_no="12\n"), "BadArguments"),
    ("unknown kind", dict(kind="software"), "BadArguments"),
    ("date not ISO", dict(filing_date="2023-3-1"), "BadArguments"),
    ("basic ISO date", dict(filing_date="20230301"), "BadArguments"),
    ("week date", dict(filing_date="2023-W09-3"), "BadArguments"),
    ("impossible date", dict(filing_date="2023-02-30"), "BadArguments"),
    ("blank title", dict(title="  "), "BadArguments"),
    ("shares below 10000", dict(owners=[["acme", 6_000], ["bolt", 3_999]]), "BadArguments"),
    ("zero share", dict(owners=[["acme", 10_000], ["bolt", 0]]), "BadArguments"),
    ("owner twice", dict(owners=[["acme", 5_000], ["acme", 5_000]]), "BadArguments"),
    ("owner unknown", dict(owners=[["acme", 5_000], ["ghost", 5_000]]), "UnknownAccount"),
    ("depositor not an owner", dict(owners=[["bolt", 10_000]]), "NotOwner"),
    ("regulator as owner", dict(owners=[["acme", 5_000], ["reg", 5_000]]), "Unauthorized"),
    ("priority after filing", dict(priorities=[{"number": "1", "date": "2023-03-02",
                                                "office": "US"}]), "DatesOutOfOrder"),
    ("priority claimed twice", dict(priorities=[{"number": "1", "date": "2022-03-02",
                                                 "office": "US"}] * 2), "BadArguments"),
    ("priority without office", dict(priorities=[{"number": "1", "date": "2022-03-02"}]),
     "BadArguments"),
    ("publication before filing", dict(publication_date="2023-02-01"), "DatesOutOfOrder"),
    ("grant before publication", dict(publication_date="2023-09-01", grant_date="2023-08-01"),
     "DatesOutOfOrder"),
    ("filed after the block", dict(filing_date="2024-06-01"), "DatesOutOfOrder"),
    ("unknown meta field", dict(colour="blue"), "BadArguments"),
]


@pytest.mark.parametrize("name,overrides,code", BAD_DEPOSITS, ids=[b[0] for b in BAD_DEPOSITS])
def test_a_bad_deposit_is_refused_and_changes_nothing(chain, name, overrides, code):
    args = deposit_args()
    if "colour" in overrides:
        args["meta"]["colour"] = overrides["colour"]
    else:
        args = deposit_args(**overrides)
    chain.fails(code, "acme", "patent.deposit", **args)


def test_missing_meta_and_roles_are_refused(chain):
    args = deposit_args()
    del args["meta"]["title"]
    chain.fails("BadArguments", "acme", "patent.deposit", **args)
    chain.fails("Unauthorized", "eval", "patent.deposit", **deposit_args())
    chain.fails("Unauthorized", "cnipa", "patent.deposit", **deposit_args())


def test_a_key_and_a_document_register_once(chain):
    chain.must("acme", "patent.deposit", **deposit_args())
    chain.fails("PatentExists", "acme", "patent.deposit", **deposit_args(doc_hash=doc("other")))
    chain.fails("DuplicateDocument", "bolt", "patent.deposit",
                **deposit_args(application_no="2", owners=[["bolt", 10_000]]))
    chain.must("acme", "patent.deposit", **deposit_args(application_no="2", doc_hash=doc("2")))


# -- corrections ------------------------------------------------------------------------------


def test_a_same_id_correction_keeps_the_old_version_readable(chain):
    chain.must("acme", "patent.deposit", **deposit_args())
    chain.grant(PID)
    receipt = chain.must("bolt", "patent.deposit", **deposit_args(title="Consensus ledgers",
                                                                  supersedes=PID))
    current = registry.get_patent(chain.state, PID)
    assert (current["title"], current["version"], current["supersedes"]) == (
        "Consensus ledgers", 2, PID)
    assert current["status"] == "GRANTED" and current["grant_date"] is not None
    assert receipt.events[0].data["version"] == 2
    versions = chain.query("patents", PID)["versions"]
    assert [(v["title"], v["version"]) for v in versions] == [("Consensus ledger", 1)]
    assert registry.is_in_force(chain.state, PID, chain.timestamp_ms)


def test_a_correction_under_another_id_retires_the_old_record(chain):
    old = chain.deposit("acme", "202310001234.6", filing_date="2023-03-01")
    chain.must("acme", "patent.deposit", **deposit_args(owners=None, supersedes=old))
    assert chain.get(f"superseded/{old}") == PID
    assert not registry.is_active(chain.state, old, chain.timestamp_ms)
    assert registry.is_active(chain.state, PID, chain.timestamp_ms)
    assert registry.get_owners(chain.state, PID) == [["acme", 10_000]]
    chain.fails("AlreadySuperseded", "acme", "patent.deposit",
                **deposit_args(application_no="7", doc_hash=doc("7"), owners=None,
                               supersedes=old))
    chain.fails("PatentInactive", "cnipa", "patent.set_status", patent=old, status="PUBLISHED")


@pytest.mark.parametrize("name,setup,args,code", [
    ("not an owner", None, dict(supersedes=PID, owners=None), "NotOwner"),
    ("changes owners", None, dict(supersedes=PID, owners=[["acme", 10_000]]), "BadArguments"),
    ("unknown target", None, dict(supersedes="CN:404", owners=None), "NotFound"),
    ("pledged", "pledge", dict(supersedes=PID, owners=None), "PatentPledged"),
    ("document of another patent", "other", dict(supersedes=PID, owners=None,
                                                   doc_hash=doc("other")), "DuplicateDocument"),
])
def test_correction_refusals(chain, name, setup, args, code):
    chain.must("acme", "patent.deposit", **deposit_args())
    if setup == "pledge":
        for owner in ("acme", "bolt"):
            chain.must(owner, "patent.pledge", patent=PID, pledgee="fund", amount=5,
                       until="2025-01-01")
    if setup == "other":
        chain.must("univ", "patent.deposit", **deposit_args(
            application_no="9", doc_hash=doc("other"), owners=[["univ", 10_000]]))
    sender = "univ" if name == "not an owner" else "acme"
    chain.fails(code, sender, "patent.deposit", **deposit_args(**args))


# -- the status machine ---------------------------------------------------------------------------

STATUS_PATHS = [
    # (kind, statuses the office sets in turn, the error of the last one or None)
    ("invention", ["PUBLISHED", "GRANTED", "LAPSED"], None),
    ("invention", ["PUBLISHED", "GRANTED", "INVALIDATED"], None),
    ("invention", ["PUBLISHED", "REJECTED"], None),
    ("invention", ["REJECTED"], None),
    ("invention", ["GRANTED"], "BadStatusTransition"),
    ("utility_model", ["GRANTED"], None),
    ("design", ["GRANTED", "LAPSED"], None),
    ("utility_model", ["REJECTED"], None),
    ("design", ["GRANTED", "INVALIDATED"], None),
    ("utility_model", ["PUBLISHED"], "BadStatusTransition"),
    ("design", ["PUBLISHED"], "BadStatusTransition"),
    ("invention", ["PUBLISHED", "PUBLISHED"], "BadStatusTransition"),
    ("invention", ["PUBLISHED", "GRANTED", "PUBLISHED"], "BadStatusTransition"),
    ("invention", ["PUBLISHED", "GRANTED", "REJECTED"], "BadStatusTransition"),
    ("invention", ["PUBLISHED", "GRANTED", "LAPSED", "GRANTED"], "BadStatusTransition"),
    ("invention", ["REJECTED", "PUBLISHED"], "BadStatusTransition"),
    ("invention", ["WITHDRAWN"], "BadStatusTransition"),
    ("invention", ["EXPIRED"], "BadStatusTransition"),
    ("invention", ["FILED"], "BadStatusTransition"),
    ("invention", ["ALIVE"], "BadArguments"),  # not a status at all: the schema refuses it
]


@pytest.mark.parametrize("kind,path,code", STATUS_PATHS)
def test_status_machine(chain, kind, path, code):
    pid = chain.deposit("acme", "1", kind=kind)
    for status in path[:-1]:
        chain.must("cnipa", "patent.set_status", patent=pid, status=status)
    if code is None:
        chain.must("cnipa", "patent.set_status", patent=pid, status=path[-1])
        assert registry.get_patent(chain.state, pid)["status"] == path[-1]
    else:
        chain.fails(code, "cnipa", "patent.set_status", patent=pid, status=path[-1])


def test_only_an_office_moves_status(chain):
    pid = chain.deposit("acme", "1")
    chain.fails("Unauthorized", "acme", "patent.set_status", patent=pid, status="PUBLISHED")
    chain.fails("Unauthorized", "reg", "patent.set_status", patent=pid, status="PUBLISHED")
    chain.fails("NotFound", "cnipa", "patent.set_status", patent="CN:404", status="PUBLISHED")


def test_status_dates_default_to_the_declared_date_then_the_block_date(chain):
    pid = chain.deposit("acme", "1", publication_date="2023-09-01")
    chain.must("cnipa", "patent.set_status", patent=pid, status="PUBLISHED")
    chain.fails("DatesOutOfOrder", "cnipa", "patent.set_status", patent=pid, status="GRANTED",
                date="2023-08-31")
    chain.fails("DatesOutOfOrder", "cnipa", "patent.set_status", patent=pid, status="GRANTED",
                date="2024-02-01")
    chain.fails("BadArguments", "cnipa", "patent.set_status", patent=pid, status="GRANTED",
                date="tomorrow")
    chain.must("cnipa", "patent.set_status", patent=pid, status="GRANTED", date="2023-12-20")
    record = registry.get_patent(chain.state, pid)
    assert (record["publication_date"], record["grant_date"]) == ("2023-09-01", "2023-12-20")
    other = chain.deposit("acme", "2", kind="design")
    chain.must("cnipa", "patent.set_status", patent=other, status="GRANTED")
    assert registry.get_patent(chain.state, other)["grant_date"] == "2024-01-01"


# -- derived expiry ------------------------------------------------------------------------------

EXPIRY_TABLE = [
    # (kind, filing date, today, effective status of a GRANTED record)
    ("invention", "2004-03-01", "2024-02-29", "GRANTED"),
    ("invention", "2004-03-01", "2024-03-01", "EXPIRED"),
    ("utility_model", "2014-03-01", "2024-02-29", "GRANTED"),
    ("utility_model", "2014-03-01", "2024-03-01", "EXPIRED"),
    ("design", "2009-03-01", "2024-03-01", "EXPIRED"),
    ("design", "2009-03-02", "2024-03-01", "GRANTED"),
    ("invention", "2000-02-29", "2020-02-28", "GRANTED"),
    ("invention", "2000-02-29", "2020-02-29", "EXPIRED"),
    ("invention", "2004-02-29", "2024-02-28", "GRANTED"),
    ("utility_model", "2012-02-29", "2022-02-28", "EXPIRED"),
]


def ms_of(day: str) -> int:
    import datetime

    return (datetime.date.fromisoformat(day) - datetime.date(1970, 1, 1)).days * DAY_MS


@pytest.mark.parametrize("kind,filing,today,expected", EXPIRY_TABLE)
def test_expiry_is_derived_from_filing_date_and_term(kind, filing, today, expected):
    patent = {"kind": kind, "filing_date": filing, "status": "GRANTED"}
    assert get_effective_status(patent, ms_of(today)) == expected
    assert get_effective_status(patent, ms_of(today) + DAY_MS - 1) == expected


@pytest.mark.parametrize("stored", ["REJECTED", "WITHDRAWN", "LAPSED", "INVALIDATED"])
def test_terminal_statuses_are_not_rewritten_as_expired(stored):
    patent = {"kind": "invention", "filing_date": "1990-01-01", "status": stored}
    assert get_effective_status(patent, ms_of("2024-01-01")) == stored


def test_an_expired_patent_reads_expired_on_chain_and_can_still_be_invalidated(chain):
    pid = chain.grant(chain.deposit("acme", "1", filing_date="2004-01-05"))
    assert registry.is_in_force(chain.state, pid, chain.timestamp_ms)
    chain.advance(days=4)
    assert chain.query("patents", pid)["effective_status"] == "EXPIRED"
    assert not registry.is_active(chain.state, pid, chain.timestamp_ms)
    chain.fails("BadStatusTransition", "cnipa", "patent.set_status", patent=pid, status="LAPSED")
    chain.must("cnipa", "patent.set_status", patent=pid, status="INVALIDATED")


def test_the_term_comes_from_genesis(make_chain):
    chain = make_chain(contracts={"patent_term_years": {"invention": 1}})
    pid = chain.grant(chain.deposit("acme", "1", filing_date="2023-01-05"))
    assert chain.query("patents", pid)["expiry_date"] == "2024-01-05"
    assert chain.query("patents", pid)["effective_status"] == "GRANTED"
    chain.advance(days=4)
    assert chain.query("patents", pid)["effective_status"] == "EXPIRED"


# -- withdrawal ------------------------------------------------------------------------------------


def test_a_sole_owner_withdraws_at_once(chain):
    pid = chain.deposit("acme", "1")
    chain.must("acme", "patent.withdraw", patent=pid)
    assert registry.get_patent(chain.state, pid)["status"] == "WITHDRAWN"
    chain.fails("BadStatusTransition", "acme", "patent.withdraw", patent=pid)


def test_co_owners_must_all_withdraw(chain):
    pid = chain.deposit("acme", "1", owners=[["acme", 5_000], ["bolt", 5_000]])
    receipt = chain.must("acme", "patent.withdraw", patent=pid)
    assert receipt.events[0].name == "withdraw_approved"
    assert registry.get_patent(chain.state, pid)["status"] == "FILED"
    chain.fails("AlreadyApproved", "acme", "patent.withdraw", patent=pid)
    chain.fails("NotOwner", "univ", "patent.withdraw", patent=pid)
    chain.must("bolt", "patent.withdraw", patent=pid)
    assert registry.get_patent(chain.state, pid)["status"] == "WITHDRAWN"
    assert chain.get(f"consent/withdraw/{pid}") is None


def test_a_granted_patent_cannot_be_withdrawn(chain):
    pid = chain.grant(chain.deposit("acme", "1"))
    chain.fails("BadStatusTransition", "acme", "patent.withdraw", patent=pid)


# -- citations ------------------------------------------------------------------------------------


def test_citations_by_office_or_citing_owner(chain):
    old = chain.deposit("acme", "1", filing_date="2020-01-01")
    new = chain.deposit("bolt", "2", filing_date="2023-01-01")
    chain.must("bolt", "patent.cite", citing=new, cited=old)
    third = chain.deposit("univ", "3", filing_date="2023-06-01")
    chain.must("cnipa", "patent.cite", citing=third, cited=old)
    assert chain.query("patents", old)["cited_by"] == [new, third]
    chain.fails("CitationExists", "cnipa", "patent.cite", citing=new, cited=old)
    chain.fails("Unauthorized", "acme", "patent.cite", citing=third, cited=new)
    chain.fails("DatesOutOfOrder", "cnipa", "patent.cite", citing=old, cited=new)
    chain.fails("BadArguments", "cnipa", "patent.cite", citing=old, cited=old)
    chain.fails("NotFound", "cnipa", "patent.cite", citing="CN:404", cited=old)


# -- appraisals -----------------------------------------------------------------------------------


def test_the_latest_appraisal_wins(chain):
    pid = chain.deposit("acme", "1")
    assert registry.get_appraisal(chain.state, pid) is None
    chain.must("eval", "appraisal.post", patent=pid, value=500_000, basis="income approach")
    chain.must("eval", "appraisal.post", patent=pid, value=420_000, basis="market comparables")
    assert registry.get_appraisal(chain.state, pid) == 420_000
    record = chain.query("appraisals", pid)
    assert (record["evaluator"], record["basis"], record["height"]) == (
        "eval", "market comparables", chain.height)


def test_appraisal_refusals(make_chain):
    chain = make_chain([("acme", ["member", "evaluator"], 0), ("eval", ["evaluator"], 0),
                        ("bolt", ["member"], 0)])
    pid = chain.deposit("acme", "1")
    chain.fails("ConflictOfInterest", "acme", "appraisal.post", patent=pid, value=1, basis="x")
    chain.fails("Unauthorized", "bolt", "appraisal.post", patent=pid, value=1, basis="x")
    chain.fails("BadArguments", "eval", "appraisal.post", patent=pid, value=-1, basis="x")
    chain.fails("BadArguments", "eval", "appraisal.post", patent=pid, value=1, basis="")
    chain.fails("NotFound", "eval", "appraisal.post", patent="CN:404", value=1, basis="x")
    chain.must("acme", "patent.withdraw", patent=pid)
    chain.fails("PatentInactive", "eval", "appraisal.post", patent=pid, value=1, basis="x")


# -- the read interface other families use --------------------------------------------------------


def test_read_interface_follows_the_lifecycle(chain: Chain):
    pid = chain.deposit("acme", "1")
    now = chain.timestamp_ms
    assert registry.is_active(chain.state, pid, now)
    assert not registry.is_in_force(chain.state, pid, now)
    chain.grant(pid)
    now = chain.timestamp_ms
    assert registry.is_in_force(chain.state, pid, now) and not registry.is_pledged(chain.state, pid)
    chain.must("cnipa", "patent.set_status", patent=pid, status="LAPSED")
    now = chain.timestamp_ms
    assert not registry.is_active(chain.state, pid, now)
    assert registry.get_status(chain.state, pid, now) == "LAPSED"
    with pytest.raises(errors.ContractError) as info:
        registry.get_patent(chain.state, "CN:404")
    assert info.value.code == "NotFound"


def test_patent_queries(chain):
    pid = chain.deposit("acme", "1")
    listed = chain.query("patents")
    assert listed == [{"id": pid, "title": f"Patent {pid}", "owners": [["acme", 10_000]],
                       "status": "FILED"}]
    full = chain.query("patents", pid)
    assert full["quality"]["score"] == 10 and full["pending"]["assign"] is None
    assert chain.query("pledges") == {} and chain.query("pledges", pid) is None
    assert chain.query("families", pid)["members"] == [pid]
    assert chain.query("quality", pid) == full["quality"]
    with pytest.raises(errors.ContractError):
        chain.query("appraisals", "CN:404")


def test_start_of_test_chain_is_2024():
    assert ms_of("2024-01-01") == START_MS


def test_every_status_records_the_day_it_took_effect(chain):
    pid = chain.deposit("acme", "1", filing_date="2023-03-01")
    assert registry.get_patent(chain.state, pid)["status_date"] == "2023-03-01"
    chain.must("cnipa", "patent.set_status", patent=pid, status="PUBLISHED", date="2023-09-01")
    chain.must("cnipa", "patent.set_status", patent=pid, status="GRANTED", date="2023-12-01")
    chain.fails("DatesOutOfOrder", "cnipa", "patent.set_status", patent=pid, status="LAPSED",
                date="2023-11-30")
    chain.fails("DatesOutOfOrder", "cnipa", "patent.set_status", patent=pid, status="LAPSED",
                date="2024-01-02")
    receipt = chain.must("cnipa", "patent.set_status", patent=pid, status="LAPSED",
                         date="2023-12-15")
    assert receipt.events[0].data["date"] == "2023-12-15"
    assert registry.get_patent(chain.state, pid)["status_date"] == "2023-12-15"
    other = chain.deposit("acme", "2")
    chain.must("acme", "patent.withdraw", patent=other)
    assert registry.get_patent(chain.state, other)["status_date"] == "2024-01-01"


def test_an_application_past_its_term_can_no_longer_be_granted(chain):
    pid = chain.deposit("acme", "1", filing_date="2003-06-01")
    assert chain.query("patents", pid)["effective_status"] == "EXPIRED"
    chain.fails("BadStatusTransition", "cnipa", "patent.set_status", patent=pid,
                status="PUBLISHED")
