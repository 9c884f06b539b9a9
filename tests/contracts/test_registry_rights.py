"""Ownership changes and pledges: every current owner signs; a pledgee co-signs.

Reference: specs/contracts.md, "Registry": patent.assign, patent.pledge / release /
enforce (Civil Code Art. 444).
"""

from __future__ import annotations

import pytest

from contracts import registry

from contract_chain import Chain

CO_OWNED = [["acme", 6_000], ["bolt", 4_000]]
TO_UNIV = [["univ", 10_000]]


def owners(chain: Chain, pid: str) -> list:
    return registry.get_owners(chain.state, pid)


def pledge(chain: Chain, pid: str, signers: list[str], until: str = "2024-06-30") -> None:
    for org in signers:
        chain.must(org, "patent.pledge", patent=pid, pledgee="fund", amount=300_000, until=until)


# -- assignment --------------------------------------------------------------------------


def test_a_sole_owner_assigns_in_one_transaction(chain):
    pid = chain.deposit("acme", "1")
    receipt = chain.must("acme", "patent.assign", patent=pid, to=TO_UNIV)
    assert owners(chain, pid) == TO_UNIV
    assert receipt.events[-1].data == {"patent": pid, "previous": [["acme", 10_000]],
                                       "owners": TO_UNIV}
    chain.fails("NotOwner", "acme", "patent.assign", patent=pid, to=[["acme", 10_000]])


def test_co_owners_must_all_sign_the_same_terms(chain):
    pid = chain.deposit("acme", "1", owners=CO_OWNED)
    chain.must("acme", "patent.assign", patent=pid, to=TO_UNIV)
    assert owners(chain, pid) == CO_OWNED
    assert chain.query("patents", pid)["pending"]["assign"] == {
        "terms": {"to": TO_UNIV}, "approvals": ["acme"]}
    chain.fails("AssignmentMismatch", "bolt", "patent.approve_assign", patent=pid,
                to=[["univ", 5_000], ["bolt", 5_000]])
    chain.fails("AlreadyApproved", "acme", "patent.approve_assign", patent=pid, to=TO_UNIV)
    chain.must("bolt", "patent.approve_assign", patent=pid, to=TO_UNIV)
    assert owners(chain, pid) == TO_UNIV
    assert chain.get(f"consent/assign/{pid}") is None


def test_new_terms_replace_the_pending_ones_and_their_signatures(chain):
    pid = chain.deposit("acme", "1", owners=CO_OWNED)
    chain.must("acme", "patent.assign", patent=pid, to=TO_UNIV)
    split = [["bolt", 5_000], ["univ", 5_000]]
    chain.must("bolt", "patent.assign", patent=pid, to=split)
    assert owners(chain, pid) == CO_OWNED
    assert chain.get(f"consent/assign/{pid}")["approvals"] == ["bolt"]
    chain.must("acme", "patent.approve_assign", patent=pid, to=list(reversed(split)))
    assert owners(chain, pid) == split


@pytest.mark.parametrize("name,sender,op,to,code", [
    ("stranger proposes", "univ", "patent.assign", TO_UNIV, "NotOwner"),
    ("stranger approves", "univ", "patent.approve_assign", TO_UNIV, "Unauthorized"),
    ("nothing pending", "bolt", "patent.approve_assign", TO_UNIV, "NoPendingAssignment"),
    ("same owners", "acme", "patent.assign", CO_OWNED, "BadArguments"),
    ("shares short", "acme", "patent.assign", [["univ", 9_999]], "BadArguments"),
    ("unknown org", "acme", "patent.assign", [["ghost", 10_000]], "UnknownAccount"),
    ("to a regulator", "acme", "patent.assign", [["reg", 10_000]], "Unauthorized"),
    ("not a list of pairs", "acme", "patent.assign", ["univ"], "BadArguments"),
])
def test_assignment_refusals(chain, name, sender, op, to, code):
    pid = chain.deposit("acme", "1", owners=CO_OWNED)
    chain.fails(code, sender, op, patent=pid, to=to)


def test_a_pledged_patent_moves_only_when_the_pledgee_co_signs(chain):
    pid = chain.grant(chain.deposit("acme", "1"))
    pledge(chain, pid, ["acme"])
    chain.must("acme", "patent.assign", patent=pid, to=TO_UNIV)
    assert owners(chain, pid) == [["acme", 10_000]]
    chain.must("fund", "patent.approve_assign", patent=pid, to=TO_UNIV)
    assert owners(chain, pid) == TO_UNIV
    assert registry.get_pledge(chain.state, pid)["pledgee"] == "fund"
    chain.must("fund", "patent.release", patent=pid)


def test_assigning_to_the_pledgee_ends_the_pledge(chain):
    pid = chain.grant(chain.deposit("acme", "1"))
    pledge(chain, pid, ["acme"])
    chain.must("acme", "patent.assign", patent=pid, to=[["fund", 10_000]])
    chain.must("fund", "patent.approve_assign", patent=pid, to=[["fund", 10_000]])
    assert owners(chain, pid) == [["fund", 10_000]]
    assert not registry.is_pledged(chain.state, pid)


def test_after_a_release_the_owners_signatures_suffice(chain):
    pid = chain.grant(chain.deposit("acme", "1"))
    pledge(chain, pid, ["acme"])
    chain.must("acme", "patent.assign", patent=pid, to=TO_UNIV)
    chain.must("fund", "patent.release", patent=pid)
    chain.must("acme", "patent.approve_assign", patent=pid, to=TO_UNIV)
    assert owners(chain, pid) == TO_UNIV


def test_new_owners_void_half_signed_consents(chain):
    pid = chain.deposit("acme", "1", owners=CO_OWNED)
    chain.must("acme", "patent.withdraw", patent=pid)
    chain.must("acme", "patent.pledge", patent=pid, pledgee="fund", amount=1, until="2025-01-01")
    chain.must("acme", "patent.assign", patent=pid, to=[["acme", 5_000], ["bolt", 5_000]])
    chain.must("bolt", "patent.approve_assign", patent=pid,
               to=[["acme", 5_000], ["bolt", 5_000]])
    pending = chain.query("patents", pid)["pending"]
    assert pending == {"assign": None, "pledge": None, "withdraw": None}


# -- pledges ------------------------------------------------------------------------------------


def test_every_owner_signs_a_pledge(chain):
    pid = chain.grant(chain.deposit("acme", "1", owners=CO_OWNED))
    pledge(chain, pid, ["acme"])
    assert not registry.is_pledged(chain.state, pid)
    chain.fails("AlreadyApproved", "acme", "patent.pledge", patent=pid, pledgee="fund",
                amount=300_000, until="2024-06-30")
    pledge(chain, pid, ["bolt"])
    record = chain.query("pledges", pid)
    assert (record["pledgee"], record["amount"], record["until"], record["pledgors"]) == (
        "fund", 300_000, "2024-06-30", CO_OWNED)
    assert chain.query("pledges") == {pid: record}


@pytest.mark.parametrize("name,args,code", [
    ("pledgee unknown", dict(pledgee="ghost"), "UnknownAccount"),
    ("pledgee is an owner", dict(pledgee="acme"), "BadArguments"),
    ("pledgee is a regulator", dict(pledgee="reg"), "Unauthorized"),
    ("nothing secured", dict(amount=0), "BadArguments"),
    ("until today", dict(until="2024-01-01"), "BadArguments"),
    ("until not a date", dict(until="soon"), "BadArguments"),
])
def test_pledge_refusals(chain, name, args, code):
    pid = chain.grant(chain.deposit("acme", "1"))
    full = {"patent": pid, "pledgee": "fund", "amount": 5, "until": "2025-01-01", **args}
    chain.fails(code, "acme", "patent.pledge", **full)


def test_a_patent_is_pledged_once_and_not_while_inactive(chain):
    pid = chain.grant(chain.deposit("acme", "1"))
    pledge(chain, pid, ["acme"])
    chain.fails("PatentPledged", "acme", "patent.pledge", patent=pid, pledgee="trust", amount=5,
                until="2025-01-01")
    lapsed = chain.grant(chain.deposit("acme", "2"))
    chain.must("cnipa", "patent.set_status", patent=lapsed, status="LAPSED")
    chain.fails("PatentInactive", "acme", "patent.pledge", patent=lapsed, pledgee="fund",
                amount=5, until="2025-01-01")
    chain.fails("NotOwner", "bolt", "patent.pledge", patent=pid, pledgee="fund", amount=5,
                until="2025-01-01")


def test_a_pledged_application_cannot_be_withdrawn(chain):
    pid = chain.deposit("acme", "1")
    pledge(chain, pid, ["acme"])
    chain.fails("PatentPledged", "acme", "patent.withdraw", patent=pid)


def test_only_the_pledgee_releases(chain):
    pid = chain.grant(chain.deposit("acme", "1"))
    chain.fails("NotPledged", "fund", "patent.release", patent=pid)
    pledge(chain, pid, ["acme"])
    chain.fails("NotPledgee", "acme", "patent.release", patent=pid)
    chain.fails("NotFound", "fund", "patent.release", patent="CN:404")
    chain.must("fund", "patent.release", patent=pid)
    assert not registry.is_pledged(chain.state, pid)
    assert owners(chain, pid) == [["acme", 10_000]]


def test_enforce_moves_the_patent_to_the_pledgee_only_after_until(chain):
    pid = chain.grant(chain.deposit("acme", "1", owners=CO_OWNED))
    pledge(chain, pid, ["acme", "bolt"], until="2024-01-10")
    chain.fails("NotPledgee", "trust", "patent.enforce", patent=pid)
    chain.advance(days=9)  # the next block is on 2024-01-10: still within the term
    chain.fails("PledgeNotDue", "fund", "patent.enforce", patent=pid)
    chain.advance(days=1)
    receipt = chain.must("fund", "patent.enforce", patent=pid)
    assert owners(chain, pid) == [["fund", 10_000]]
    assert not registry.is_pledged(chain.state, pid)
    assert receipt.events[0].data["previous"] == CO_OWNED
