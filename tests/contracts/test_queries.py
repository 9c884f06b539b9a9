"""The query router: GET /v1/state/{kind}/{parts...} -> the contract's query function."""

from __future__ import annotations

import pytest

from contracts import errors, queries


@pytest.mark.parametrize("kind, parts, code", [
    ("no-such-kind", [], "NotFound"),
    ("balances", [], "BadArguments"),             # needs the account
    ("balances", ["acme", "extra"], "BadArguments"),
    ("supply", ["extra"], "BadArguments"),
    ("pool_licensed", ["acme"], "BadArguments"),  # needs holder and patent
])
def test_a_bad_path_is_a_named_refusal(chain, kind, parts, code) -> None:
    with pytest.raises(errors.ContractError) as caught:
        chain.query(kind, *parts)
    assert caught.value.code == code


def test_a_good_path_answers(chain) -> None:
    assert chain.query("balances", "acme") == {"account": "acme", "bpc": 1_000_000, "bpr": 0}
    assert chain.query("supply")["bpc"] == sum(v for _, v in chain.state.items("bal/BPC/"))


def test_a_query_bug_is_not_reported_as_the_clients_bad_path(chain, monkeypatch) -> None:
    """A TypeError raised inside a query is a bug to surface, not a BadArguments."""
    def broken(state, now_ms, account):
        return len(None)  # type: ignore[arg-type]

    monkeypatch.setitem(queries.get_queries(), "broken", broken)
    with pytest.raises(TypeError):
        chain.query("broken", "acme")
