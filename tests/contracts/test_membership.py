"""Membership: governance by more than two thirds of the admins, and key rotation.

Reference: specs/contracts.md, "Membership (genesis + governance)".
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.membership.governance import compute_approvals_needed, compute_rotation_message
from contracts.token.ledger import balance_of

from contract_chain import CHAIN_ID, DAY_MS, Chain, new_chain, signing_key


def pub(name: str) -> str:
    return bytes(signing_key(name).verify_key).hex()


def new_org(org_id: str = "newco", roles: list[str] | None = None) -> dict:
    return {"id": org_id, "name": "New Co", "roles": roles or ["member"], "keys": [pub(org_id)]}


def propose(chain: Chain, action: str, params: dict, by: str = "adm1") -> str:
    receipt = chain.must(by, "member.propose", action=action, params=params)
    return receipt.events[0].data["proposal"]


def status(chain: Chain, proposal: str) -> str:
    return chain.query("proposals", proposal)["status"]


# -- the threshold -------------------------------------------------------------------------


def reference_needed(admins: int) -> int:
    """The dumb way: count up until strictly more than two thirds."""
    k = 0
    while 3 * k <= 2 * admins:
        k += 1
    return k


@pytest.mark.parametrize("admins,needed", [(1, 1), (2, 2), (3, 3), (4, 3), (5, 4), (6, 5),
                                           (7, 5), (10, 7), (31, 21)])
def test_approvals_needed_table(admins, needed):
    assert compute_approvals_needed(admins) == needed == reference_needed(admins)


@given(st.integers(min_value=1, max_value=10_000))
def test_approvals_needed_is_the_least_count_strictly_above_two_thirds(admins):
    needed = compute_approvals_needed(admins)
    assert 3 * needed > 2 * admins
    assert 3 * (needed - 1) <= 2 * admins


@settings(max_examples=25, deadline=None)
@given(admin_count=st.integers(min_value=1, max_value=7), data=st.data())
def test_proposal_executes_exactly_once_when_votes_pass_two_thirds(admin_count, data):
    admins = [f"a{i}" for i in range(admin_count)]
    chain = new_chain([(a, ["admin"], 0) for a in admins] + [("acme", ["member"], 0)])
    votes = data.draw(st.lists(st.booleans(), min_size=admin_count - 1,
                               max_size=admin_count - 1))
    proposal = propose(chain, "grant_role", {"org": "acme", "role": "evaluator"}, by="a0")
    yes, no = 1, 0
    for admin, approve in zip(admins[1:], votes):
        decided = yes * 3 > 2 * admin_count or (admin_count - no) * 3 <= 2 * admin_count
        if decided:
            chain.fails("ProposalClosed", admin, "member.vote", proposal=proposal, approve=approve)
            continue
        chain.must(admin, "member.vote", proposal=proposal, approve=approve)
        yes, no = yes + approve, no + (not approve)
    passed = yes * 3 > 2 * admin_count
    assert status(chain, proposal) == ("executed" if passed else
                                       "rejected" if (admin_count - no) * 3 <= 2 * admin_count
                                       else "open")
    assert ("evaluator" in chain.get("org/acme")["roles"]) == passed
    executed = [r for r in chain.receipts for e in r.events if e.name == "proposal_executed"]
    assert len(executed) == (1 if passed else 0)


# -- proposals and votes ---------------------------------------------------------------------


def test_add_org_needs_three_of_four_admins_and_then_the_org_can_sign(chain):
    proposal = propose(chain, "add_org", new_org("newco", ["member"]))
    chain.must("adm2", "member.vote", proposal=proposal, approve=True)
    assert status(chain, proposal) == "open" and chain.get("org/newco") is None
    receipt = chain.must("adm3", "member.vote", proposal=proposal, approve=True)
    assert [e.name for e in receipt.events] == ["voted", "proposal_executed"]
    assert chain.get("org/newco") == {"id": "newco", "name": "New Co", "roles": ["member"],
                                      "keys": [pub("newco")]}
    assert chain.get(f"key/{pub('newco')}") == "newco"
    chain.keys["newco"] = signing_key("newco")
    chain.must("acme", "token.transfer", to="newco", amount=10)
    chain.must("newco", "token.transfer", to="acme", amount=4)
    chain.fails("ProposalClosed", "adm4", "member.vote", proposal=proposal, approve=True)


def test_a_single_admin_governs_alone(make_chain):
    chain = make_chain([("solo", ["admin"], 0), ("acme", ["member"], 0)])
    proposal = propose(chain, "grant_role", {"org": "acme", "role": "office"}, by="solo")
    assert status(chain, proposal) == "executed"
    assert chain.get("org/acme")["roles"] == ["member", "office"]


def test_enough_no_votes_reject_the_proposal(chain):
    proposal = propose(chain, "mint", {"to": "acme", "amount": 5})
    chain.must("adm2", "member.vote", proposal=proposal, approve=False)
    assert status(chain, proposal) == "open"
    chain.must("adm3", "member.vote", proposal=proposal, approve=False)
    assert status(chain, proposal) == "rejected"
    chain.fails("ProposalClosed", "adm4", "member.vote", proposal=proposal, approve=True)
    assert balance_of(chain.state, "BPC", "acme") == 1_000_000


def test_each_admin_votes_once(chain):
    proposal = propose(chain, "mint", {"to": "acme", "amount": 5})
    chain.fails("AlreadyVoted", "adm1", "member.vote", proposal=proposal, approve=True)
    chain.must("adm2", "member.vote", proposal=proposal, approve=False)
    chain.fails("AlreadyVoted", "adm2", "member.vote", proposal=proposal, approve=True)


def test_a_proposal_expires_after_its_ttl(chain):
    proposal = propose(chain, "mint", {"to": "acme", "amount": 5})
    chain.advance(days=7)
    assert status(chain, proposal) == "expired"
    chain.fails("ProposalClosed", "adm2", "member.vote", proposal=proposal, approve=True)


def test_the_ttl_comes_from_genesis(make_chain):
    chain = make_chain(contracts={"proposal_ttl_ms": 10_000})
    proposal = propose(chain, "mint", {"to": "acme", "amount": 5})
    chain.must("adm2", "member.vote", proposal=proposal, approve=True)
    chain.advance(ms=9_000)
    chain.fails("ProposalClosed", "adm3", "member.vote", proposal=proposal, approve=True)


def test_only_admins_propose_and_vote(chain):
    chain.fails("Unauthorized", "acme", "member.propose", action="mint",
                params={"to": "acme", "amount": 5})
    proposal = propose(chain, "mint", {"to": "acme", "amount": 5})
    chain.fails("Unauthorized", "reg", "member.vote", proposal=proposal, approve=True)
    chain.fails("NotFound", "adm2", "member.vote", proposal="0" * 16, approve=True)
    chain.fails("BadArguments", "adm2", "member.vote", proposal=proposal, approve=1)


def test_an_action_that_became_impossible_closes_as_failed(chain):
    first = propose(chain, "add_org", new_org("twin"))
    second = propose(chain, "add_org", {**new_org("twin"), "keys": [pub("twin-2")]})
    for admin in ("adm2", "adm3"):
        chain.must(admin, "member.vote", proposal=first, approve=True)
    chain.must("adm2", "member.vote", proposal=second, approve=True)
    receipt = chain.must("adm3", "member.vote", proposal=second, approve=True)
    assert receipt.events[-1].name == "proposal_failed"
    closed = chain.query("proposals", second)
    assert closed["status"] == "failed" and closed["reason"].startswith("OrgExists")
    assert chain.get(f"key/{pub('twin-2')}") is None


def test_votes_of_organisations_that_are_no_longer_admins_do_not_count(chain):
    proposal = propose(chain, "mint", {"to": "acme", "amount": 7})
    chain.must("adm2", "member.vote", proposal=proposal, approve=True)
    chain.govern("revoke_role", {"org": "adm2", "role": "admin"})
    tally = chain.query("proposals", proposal)["tally"]
    assert tally == {"admins": 3, "needed": 3, "yes": 1, "no": 0}
    chain.fails("Unauthorized", "adm2", "member.vote", proposal=proposal, approve=True)
    chain.must("adm3", "member.vote", proposal=proposal, approve=True)
    assert status(chain, proposal) == "open"
    chain.must("adm4", "member.vote", proposal=proposal, approve=True)
    assert status(chain, proposal) == "executed"


# -- the actions, table-driven ------------------------------------------------------------------

BAD_PROPOSALS = [
    ("unknown action", "dissolve", {}, "BadArguments"),
    ("params not exact", "mint", {"to": "acme", "amount": 5, "memo": "x"}, "BadArguments"),
    ("org id taken", "add_org", new_org("acme"), "OrgExists"),
    ("org id with a slash", "add_org", new_org("a/b"), "BadArguments"),
    ("org id with a newline", "add_org", new_org("ab\n"), "BadArguments"),
    ("key with a newline", "add_org", {**new_org("x"), "keys": [pub("x") + "\n"]},
     "BadArguments"),
    ("unknown role", "add_org", new_org("x", ["king"]), "BadArguments"),
    ("no roles", "add_org", {**new_org("x"), "roles": []}, "BadArguments"),
    ("a role that is a list", "add_org", new_org("x", [["admin"]]), "BadArguments"),
    ("grant a role that is a map", "grant_role", {"org": "acme", "role": {}}, "BadArguments"),
    ("key in use", "add_org", {**new_org("x"), "keys": [pub("acme")]}, "KeyInUse"),
    ("key not hex", "add_org", {**new_org("x"), "keys": ["zz" * 32]}, "BadArguments"),
    ("no keys", "add_org", {**new_org("x"), "keys": []}, "BadArguments"),
    ("remove unknown org", "remove_org", {"id": "ghost"}, "NotFound"),
    ("grant a held role", "grant_role", {"org": "acme", "role": "member"}, "RoleHeld"),
    ("revoke a role not held", "revoke_role", {"org": "acme", "role": "office"}, "RoleNotHeld"),
    ("mint nothing", "mint", {"to": "acme", "amount": 0}, "BadArguments"),
    ("mint a bool", "mint", {"to": "acme", "amount": True}, "BadArguments"),
    ("mint past the codec's range", "mint", {"to": "acme", "amount": 2**63 - 1}, "BadArguments"),
    ("mint to nobody", "mint", {"to": "ghost", "amount": 5}, "NotFound"),
]


@pytest.mark.parametrize("name,action,params,code", BAD_PROPOSALS,
                         ids=[b[0] for b in BAD_PROPOSALS])
def test_a_bad_proposal_is_refused_when_proposed(chain, name, action, params, code):
    chain.fails(code, "adm1", "member.propose", action=action, params=params)


@pytest.mark.parametrize("action,params", [
    ("remove_org", {"id": "solo"}),
    ("revoke_role", {"org": "solo", "role": "admin"}),
])
def test_the_last_admin_cannot_be_removed(make_chain, action, params):
    chain = make_chain([("solo", ["admin"], 0)])
    chain.fails("LastAdmin", "solo", "member.propose", action=action, params=params)


def test_grant_and_revoke_a_role_change_what_the_org_may_do(chain):
    pid = chain.deposit("acme", "1")
    chain.fails("Unauthorized", "acme", "patent.set_status", patent=pid, status="PUBLISHED")
    chain.govern("grant_role", {"org": "acme", "role": "office"})
    chain.must("acme", "patent.set_status", patent=pid, status="PUBLISHED")
    chain.govern("revoke_role", {"org": "acme", "role": "office"})
    chain.fails("Unauthorized", "acme", "patent.set_status", patent=pid, status="GRANTED")


def test_mint_is_the_only_way_bpc_supply_grows(chain):
    supply = chain.query("supply")["bpc"]
    chain.must("acme", "token.transfer", to="bolt", amount=100)
    assert chain.query("supply")["bpc"] == supply
    chain.govern("mint", {"to": "univ", "amount": 2_500})
    assert chain.query("supply")["bpc"] == supply + 2_500
    assert balance_of(chain.state, "BPC", "univ") == 1_002_500


def test_a_removed_org_keeps_its_record_but_can_never_sign_or_come_back(chain):
    chain.govern("remove_org", {"id": "bolt"})
    record = chain.query("orgs", "bolt")
    assert record["removed"] and not record["active"]
    assert record["roles"] == [] and record["keys"] == []
    assert chain.get(f"key/{pub('bolt')}") is None
    chain.fails("UnknownAccount", "bolt", "token.transfer", to="acme", amount=1)
    chain.fails("UnknownAccount", "acme", "token.transfer", to="bolt", amount=1)
    chain.fails("OrgExists", "adm1", "member.propose", action="add_org", params=new_org("bolt"))
    chain.fails("KeyInUse", "adm1", "member.propose", action="add_org",
                params={**new_org("other"), "keys": [pub("bolt")]})
    chain.fails("NotFound", "adm1", "member.propose", action="grant_role",
                params={"org": "bolt", "role": "member"})


# -- key rotation ---------------------------------------------------------------------------------


def rotation_args(org: str, old: str, new_name: str, *, signer: str | None = None,
                  proof_org: str | None = None, chain_id: str = CHAIN_ID) -> dict:
    new = pub(new_name)
    message = compute_rotation_message(chain_id, proof_org or org, old, new)
    return {"old": old, "new": new,
            "proof": signing_key(signer or new_name).sign(message).signature.hex()}


def test_rotate_key_replaces_the_key_and_retires_the_old_one(chain):
    old = pub("acme")
    chain.must("acme", "member.rotate_key", **rotation_args("acme", old, "acme-2"))
    assert chain.get("org/acme")["keys"] == [pub("acme-2")]
    assert chain.get(f"key/{pub('acme-2')}") == "acme"
    assert chain.get(f"key/{old}") is None
    chain.fails("UnknownAccount", "acme", "token.transfer", to="bolt", amount=1)
    chain.keys["acme"] = signing_key("acme-2")
    chain.must("acme", "token.transfer", to="bolt", amount=1)
    chain.fails("KeyInUse", "acme", "member.rotate_key",
                **rotation_args("acme", pub("acme-2"), "acme"))


@pytest.mark.parametrize("name,args,code", [
    ("proof by another key", dict(signer="mallory"), "BadProof"),
    ("proof made for another org", dict(proof_org="bolt"), "BadProof"),
    ("proof made for another chain", dict(chain_id="other-chain"), "BadProof"),
])
def test_rotate_key_needs_the_new_keys_own_signature(chain, name, args, code):
    chain.fails(code, "acme", "member.rotate_key",
                **rotation_args("acme", pub("acme"), "acme-2", **args))


def test_rotate_key_refusals(chain):
    chain.fails("Unauthorized", "acme", "member.rotate_key",
                **rotation_args("acme", pub("bolt"), "acme-2"))
    chain.fails("KeyInUse", "acme", "member.rotate_key",
                **rotation_args("acme", pub("acme"), "bolt"))
    # A proof that is not even a signature's hex is the schema's refusal, by field name.
    receipt = chain.fails("BadArguments", "acme", "member.rotate_key",
                          **{**rotation_args("acme", pub("acme"), "acme-2"), "proof": "not hex"})
    assert "args.proof" in receipt.message


# -- queries --------------------------------------------------------------------------------------


def test_queries_list_orgs_and_proposals(chain):
    orgs = chain.query("orgs")
    assert [o["id"] for o in orgs] == sorted(o["id"] for o in orgs)
    assert chain.query("orgs", "acme")["active"] is True
    with pytest.raises(Exception, match="no organisation"):
        chain.query("orgs", "ghost")
    proposal = propose(chain, "mint", {"to": "acme", "amount": 5})
    listed = chain.query("proposals")
    assert [p["id"] for p in listed] == [proposal]
    assert listed[0]["tally"] == {"admins": 4, "needed": 3, "yes": 1, "no": 0}
    assert chain.query("proposals", proposal)["proposer"] == "adm1"


def test_a_proposal_expires_at_its_blocks_time_plus_the_ttl(chain):
    proposal = propose(chain, "mint", {"to": "acme", "amount": 5})
    expires = chain.get(f"proposal/{proposal}")["expires_ms"]
    assert expires == chain.timestamp_ms + 7 * DAY_MS
