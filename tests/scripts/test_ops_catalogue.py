"""The op catalogue: generated from the schemas, never written twice.

docs/ops.md must equal what `python -m ipchain.catalogue` renders now; `ipchain ops`
lists every op; `ipchain submit` refuses a misspelt argument before any network call.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contracts.catalogue import OPS, describe_ops, op_errors
from ipchain.catalogue import render_markdown
from scripts.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_docs_ops_md_is_generated_from_the_schemas():
    committed = (ROOT / "docs" / "ops.md").read_text(encoding="utf-8")
    assert committed == render_markdown(describe_ops()), \
        "docs/ops.md is stale: run `python -m ipchain.catalogue > docs/ops.md`"


def test_every_op_is_documented_with_its_arguments():
    text = render_markdown(describe_ops())
    for name in OPS:
        assert f"### `{name}`" in text
    assert "| `amount` | int 1..2^62 | required |" in text
    assert "`Tranche`:" in text and "`PatentMeta`:" in text


def test_the_catalogue_names_each_ops_own_errors():
    assert "LicenceNotOffered" in op_errors(OPS["licence.accept"])
    assert "TrancheFull" in op_errors(OPS["deal.subscribe"])
    assert "TrancheFull" not in op_errors(OPS["token.transfer"])


def test_ipchain_ops_lists_every_op(capsys):
    assert main(["ops", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert sorted(listed["ops"]) == sorted(OPS)
    assert main(["ops", "pool.create"]) == 0
    out = capsys.readouterr().out
    assert "bpr_ratio" in out and "admin_fee_bps" in out
    assert main(["ops", "pool.creat"]) == 2


@pytest.mark.parametrize("op_args, expected", [
    ('{"to": "org-b", "amonut": 1}', "amonut"),
    ('{"to": "org-b", "amount": -1}', "args.amount"),
])
def test_submit_refuses_a_typo_before_reaching_a_node(capsys, op_args, expected):
    # Port 1 on loopback: if the CLI tried to reach a node the error would be a refused
    # connection, not the schema's BadArguments.
    code = main(["submit", "token.transfer", "--args", op_args, "--node", "http://127.0.0.1:1",
                 "--key", "/nonexistent"])
    assert code != 0
    err = capsys.readouterr().err
    assert "BadArguments" in err and expected in err
