"""The OpenAPI document: every route and method the node serves is described, with a
request and a response schema; the document validates as OpenAPI 3.1; the transaction
body is a oneOf over every op, generated from the op schemas."""

from __future__ import annotations

import pytest

from contracts.catalogue import OPS
from node.openapi import DOCUMENT

METHODS = ("get", "post", "put", "delete", "patch")


def documented_path(route_path: str) -> str:
    """aiohttp's path as the document spells it (the state route's tail is {path})."""
    return route_path.replace("{tail}", "/{path}")


def served_routes(app) -> set[tuple[str, str]]:
    return {(documented_path(r.resource.canonical), r.method.lower())
            for r in app.router.routes() if r.method.lower() in METHODS}


async def test_every_served_route_and_method_is_documented(local_cluster):
    cluster = await local_cluster(1)
    served = served_routes(cluster.node(0).app)
    documented = {(path, method) for path, item in DOCUMENT["paths"].items()
                  for method in item if method in METHODS}
    assert ("/admin/faults", "delete") in served and ("/v1/ops", "get") in served
    assert served - documented == set(), "routes served but not documented"
    assert documented - served == set(), "routes documented but not served"


def test_every_operation_has_request_and_response_schemas():
    for path, item in DOCUMENT["paths"].items():
        for method, op in item.items():
            for code, answer in op["responses"].items():
                assert "content" in answer or code in ("202",), (path, method, code)
            if method == "post":
                assert op["requestBody"]["content"], (path, method)


def test_the_document_validates_as_openapi_3_1():
    openapi_spec_validator = pytest.importorskip(
        "openapi_spec_validator", reason="openapi-spec-validator is not installed (.ci/run)")
    openapi_spec_validator.validate(DOCUMENT)
    assert DOCUMENT["openapi"] == "3.1.0"


def test_the_transaction_body_is_one_of_every_op():
    variants = DOCUMENT["components"]["schemas"]["Transaction"]["oneOf"]
    assert sorted(v["properties"]["op"]["const"] for v in variants) == sorted(OPS)
    transfer = next(v for v in variants if v["properties"]["op"]["const"] == "token.transfer")
    assert transfer["properties"]["args"] == {"$ref": "#/components/schemas/TransferArgs"}
