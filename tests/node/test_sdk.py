"""The SDK against in-process nodes: two clients sharing one key both get their
transactions in (nonce resync on NonceUsed); builders refuse bad arguments before
signing; the generated builders are up to date with the schemas."""

from __future__ import annotations

from pathlib import Path

import pytest

from contracts import errors
from ipchain.sdk import AsyncClient, Signer, builders
from ipchain.sdk.generate import render

ROOT = Path(__file__).resolve().parents[2]


def test_the_generated_builders_are_up_to_date():
    package = ROOT / "ipchain" / "sdk" / "builders"
    expected = render()
    committed = {path.name: path.read_text(encoding="utf-8") for path in package.glob("*.py")}
    assert sorted(committed) == sorted(expected), "run `python -m ipchain.sdk.generate`"
    for name, text in expected.items():
        assert committed[name] == text, f"{name} is stale: run `python -m ipchain.sdk.generate`"


def test_every_op_has_exactly_one_builder():
    from contracts.catalogue import OPS
    functions = [name for name in builders.__all__ if name.islower()]
    assert functions == sorted(op.replace(".", "_") for op in OPS)
    assert all(callable(getattr(builders, name)) for name in builders.__all__)
    assert builders.PatentMeta.__module__ == "contracts.registry.schemas"  # docs/sdk.md uses it


def test_a_builder_refuses_a_bad_argument_by_name():
    with pytest.raises(errors.BadArguments, match="args.amount"):
        builders.token_transfer(to="org-b", amount=0)
    with pytest.raises(errors.BadArguments, match="args.meta.kind"):
        builders.patent_deposit(office="CN", application_no="1", doc_hash="ab" * 32,
                                meta={"title": "t", "kind": "gadget", "filing_date": "2024-01-01"})


async def test_two_clients_sharing_a_key_both_commit(local_cluster):
    cluster = await local_cluster(4)
    signer = Signer(cluster.keys["org-a"])
    first = AsyncClient(cluster.url(0), signer=signer)
    second = AsyncClient(cluster.url(1), signer=signer)
    try:
        answers = []
        for round_ in range(3):  # each client caches the same next nonce: one must resync
            answers.append(await first.submit(builders.token_transfer(to="org-b", amount=1)))
            answers.append(await second.submit(builders.token_transfer(to="org-c", amount=1)))
        assert [a["status"] for a in answers] == ["committed"] * 6
        assert (await first.account())["next_nonce"] == 6
        block = await first.block(answers[-1]["receipt"]["height"])
        assert answers[-1]["id"] in block["tx_ids"]
        tx = await second.tx(answers[0]["id"])
        assert tx["status"] == "committed"
    finally:
        await first.close()
        await second.close()
