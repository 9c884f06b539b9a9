"""The exchange's state reads over real HTTP: `GET /v1/state/credit/{org}`, listings,
offers, loans and the market summary, with named 404s for what does not exist."""

from __future__ import annotations

import pytest


async def get(cluster, path: str, node: int = 0) -> tuple[int, dict]:
    async with cluster.session.get(cluster.url(node) + path) as resp:
        return resp.status, await resp.json()


async def test_credit_rating_of_an_organisation_is_served_with_its_components(local_cluster):
    cluster = await local_cluster(1)
    status, body = await get(cluster, "/v1/state/credit/org-a")
    assert status == 200
    assert (body["org"], body["score"], body["band"], body["history"]) == ("org-a", 50, "C",
                                                                          False)
    assert sorted(body["components"]) == ["loans", "royalties", "securitization"]
    assert isinstance(body["read_height"], int)


async def test_market_lists_read_as_json(local_cluster):
    cluster = await local_cluster(1)
    for path in ("/v1/state/listings", "/v1/state/offers", "/v1/state/loans"):
        status, body = await get(cluster, path)
        assert (status, body["result"]) == (200, []), path
    status, body = await get(cluster, "/v1/state/market")
    assert status == 200 and (body["escrow"], body["open_offers_total"]) == (0, 0)


@pytest.mark.parametrize("path, code", [
    ("/v1/state/credit/nobody", "NotFound"),
    ("/v1/state/loans/0123456789abcdef", "LoanNotFound"),
    ("/v1/state/listings/0123456789abcdef", "ListingNotFound"),
    ("/v1/state/offers/0123456789abcdef", "OfferNotFound"),
])
async def test_missing_exchange_records_are_named_404s(local_cluster, path, code):
    cluster = await local_cluster(1)
    status, body = await get(cluster, path)
    assert (status, body["error"]["code"]) == (404, code)
