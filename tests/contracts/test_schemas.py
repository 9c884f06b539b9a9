"""Typed op arguments (contracts/schema.py): refused by name before a handler runs.

`check_args` is what the node calls at admission; `apply_block` calls it again, so a
transaction a faulty primary orders anyway is refused the same, with the state root
unmoved.
"""

from __future__ import annotations

import pytest

from contracts import errors
from contracts.catalogue import OPS
from contracts.runtime import check_args
from contracts.schema import AMOUNT_MAX
from contracts.tx import sign_tx
from contract_chain import CHAIN_ID, signing_key


def tx_with(op: str, **args):
    return sign_tx(signing_key("acme"), CHAIN_ID, 1, op, args)


def refusal(op: str, **args) -> str:
    with pytest.raises(errors.BadArguments) as info:
        check_args(tx_with(op, **args))
    return str(info.value)


def test_a_good_transfer_decodes_to_its_struct():
    args = check_args(tx_with("token.transfer", to="bolt", amount=5))
    assert (args.to, args.amount) == ("bolt", 5)


@pytest.mark.parametrize("args, field", [
    ({"to": "bolt", "amount": 5, "memo": "x"}, "memo"),          # unknown key
    ({"to": "bolt", "amonut": 5}, "amonut"),                      # misspelt key
    ({"to": "bolt"}, "amount"),                                  # missing
    ({"to": "bolt", "amount": "5"}, "args.amount"),              # wrong type
    ({"to": "bolt", "amount": True}, "args.amount"),             # bool is not an int
    ({"to": "bolt", "amount": 0}, "args.amount"),                # below the range
    ({"to": "bolt", "amount": AMOUNT_MAX + 1}, "args.amount"),   # above the range
    ({"to": "no/slash", "amount": 1}, "args.to"),                # bad format
])
def test_a_bad_transfer_argument_is_refused_naming_the_field(args, field):
    message = refusal("token.transfer", **args)
    assert message.startswith("token.transfer: ") and field in message


def test_the_amount_range_is_inclusive_of_its_maximum():
    assert check_args(tx_with("token.transfer", to="bolt", amount=AMOUNT_MAX)).amount == AMOUNT_MAX


def test_a_transfer_to_oneself_is_refused_and_moves_nothing(chain):
    root = chain.state.root()
    chain.fails("BadArguments", "acme", "token.transfer", to="acme", amount=1)
    assert chain.state.root() == root


def test_a_misspelt_argument_ordered_anyway_is_rejected_in_the_block(chain):
    receipt = chain.fails("BadArguments", "acme", "token.transfer", to="bolt", amonut=1)
    assert "amonut" in receipt.message


@pytest.mark.parametrize("op, args, field", [
    ("licence.accept", {"licence": "0123456789abcdef", "extra": 1}, "extra"),
    ("licence.withdraw", {"licence": "XYZ"}, "args.licence"),
    ("patent.withdraw", {"patent": "cn-1"}, "args.patent"),
])
def test_other_ops_refuse_bad_arguments_by_name(op, args, field):
    assert field in refusal(op, **args)


def test_every_op_declares_a_schema():
    missing = sorted(name for name, op in OPS.items() if op.args is None)
    assert missing == [], f"ops without an argument schema: {missing}"


def test_a_proposals_params_are_typed_per_action():
    message = refusal("member.propose", action="mint", params={"too": "bolt", "amount": 1})
    assert "params of mint" in message and "too" in message
    assert check_args(tx_with("member.propose", action="mint",
                              params={"to": "bolt", "amount": 1})).params == {"to": "bolt",
                                                                              "amount": 1}


def test_genesis_contract_settings_have_a_schema_and_their_defaults_live_there():
    from contracts.genesis import DEFAULT_CONTRACT_CONFIG, ContractConfig, check_contract_config

    assert DEFAULT_CONTRACT_CONFIG["advance_rate_bps"] == ContractConfig().advance_rate_bps
    assert check_contract_config({"breach_periods": 5}) == {"breach_periods": 5}
    for bad, field in [({"advance_rate": 9000}, "advance_rate"),
                       ({"advance_rate_bps": 10_001}, "contracts.advance_rate_bps"),
                       ({"citation_bands": [[0, 0, 1]]}, "contracts.citation_bands"),
                       ({"patent_term_years": {"invention": "20"}}, "contracts.patent_term_years")]:
        with pytest.raises(errors.BadArguments) as info:
            check_contract_config(bad)
        assert field in str(info.value)
