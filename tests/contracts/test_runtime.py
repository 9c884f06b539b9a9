"""The runtime's own rules, before any contract handler runs (contracts.md, Membership)."""

from __future__ import annotations

import pytest

from contracts.token.ledger import mint


@pytest.mark.parametrize("op, args", [
    ("token.transfer", {"to": "acme", "amount": 1}),
    ("patent.cite", {"citing": "CN:1", "cited": "CN:2"}),
    ("member.propose", {"action": "grant_role", "params": {"org": "reg", "role": "member"}}),
])
def test_a_regulator_reads_everything_and_writes_nothing(chain, op, args):
    mint(chain.state, "BPC", "reg", 100)  # even with funds of its own
    chain.state.take_dirty()
    chain.fails("Unauthorized", "reg", op, **args)
