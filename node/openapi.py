"""The OpenAPI 3.1 description served at GET /openapi.json.

Written as data next to the handlers it describes; tests check that every route the
application registers is described here, so the two cannot drift apart silently.
"""

from __future__ import annotations

from typing import Any

ERROR = {"$ref": "#/components/schemas/Error"}


def _op(summary: str, responses: dict[str, str], *, body: str | None = None,
        params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {
        code: {"description": text, "content": {"application/json": {"schema": ERROR}}}
        if code.startswith(("4", "5")) else {"description": text}
        for code, text in responses.items()}}
    if body:
        op["requestBody"] = {"required": True, "description": body, "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/msgpack": {"schema": {"type": "string", "format": "binary"}}}}
    if params:
        op["parameters"] = params
    return op


def _path(name: str, text: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": text,
            "schema": {"type": "string"}}


def _query(name: str, text: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": text,
            "schema": {"type": "string"}}


PATHS: dict[str, dict[str, Any]] = {
    "/v1/tx": {"post": _op(
        "Submit one signed transaction", {"202": "accepted: {id, status: pending}",
                                          "200": "with wait=commit: {id, status, receipt}",
                                          "400": "invalid transaction (code names why)",
                                          "413": "body over the limit",
                                          "503": "mempool full", "504": "not committed in time"},
        body="the transaction: JSON form (sender, sig as hex) or canonical msgpack",
        params=[_query("wait", "commit: answer with the receipt"),
                _query("timeout_ms", "how long to wait for the commit")])},
    "/v1/txs": {"post": _op(
        "Submit a batch", {"202": "{accepted: [ids], rejected: [{index, id, error}]}",
                           "400": "malformed batch"},
        body='JSON {"txs": [...]} or a msgpack array of encoded transactions')},
    "/v1/tx/{id}": {"get": _op("Status and receipt of a transaction", {
        "200": "{id, status: pending|committed|rejected|unknown, receipt}",
        "400": "not a 64-hex id"}, params=[_path("id", "transaction id (hex)")])},
    "/v1/blocks/{height}": {"get": _op("A block header, its tx ids and commit certificate", {
        "200": "block", "404": "no such block"},
        params=[_path("height", "a height or 'latest'")])},
    "/v1/state/{kind}/{path}": {"get": _op(
        "Contract queries: balances, supply, orgs, patents, families, quality, licences, "
        "royalties, pools, pool_licensed, deals, deal_reports, ...",
        {"200": "query result with the height it was read at", "404": "unknown query or record",
         "400": "bad path"}, params=[_path("kind", "query name"), _path("path", "its arguments")])},
    "/v1/proof/tx/{id}": {"get": _op(
        "Portable proof: tx and receipt with Merkle paths, header, execution certificate "
        "(docs/protocol.md §8); verify offline with `ipchain verify-proof`",
        {"200": "proof", "404": "not committed", "503": "not certified yet"},
        params=[_path("id", "transaction id (hex)")])},
    "/v1/proof/state/{kind}/{key}": {"get": _op(
        "Portable state proof: one state key's value or absence with a Merkle path to a "
        "certified state root (docs/protocol.md §9), at this node's latest height",
        {"200": "proof", "404": "height not kept", "503": "not certified yet"},
        params=[_path("kind", "first segment of the state key (patent, bal, deal, ...)"),
                _path("key", "the rest of the state key")])},
    "/v1/status": {"get": _op("Node id, view, primary, heights, peers, mempool", {"200": "status"})},
    "/v1/evidence": {"get": _op("Conflicting signed messages caught from one replica",
                                {"200": "{count, evidence}"})},
    "/v1/events": {"get": _op("Server-sent events: committed blocks and contract events; "
                              "resume with Last-Event-ID", {"200": "text/event-stream"})},
    "/metrics": {"get": _op("Prometheus text format", {"200": "metrics"})},
    "/openapi.json": {"get": _op("This document", {"200": "OpenAPI 3.1"})},
    "/p2p/messages": {"post": _op("Peer endpoint: a msgpack array of signed replica messages",
                                  {"202": "queued"}, body="msgpack array of wire messages")},
    "/p2p/txs": {"post": _op("Peer endpoint: relayed transactions", {"202": "queued"},
                             body="msgpack array of encoded transactions")},
    "/p2p/blocks": {"get": _op("Peer endpoint for state transfer: blocks with certificates "
                               "and the stable checkpoint proof", {"200": "msgpack"},
                               params=[_query("from", "first height"), _query("to", "last")])},
    "/admin/faults": {"get": _op("Fault-injection rules (admin token required)",
                                 {"200": "rules", "401": "missing or wrong token"})},
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "ipchain node API", "version": "1",
             "description": "Each validator node's HTTP API. Errors are "
                            '{"error": {"code", "message"}} with a 4xx or 5xx status.'},
    "paths": PATHS,
    "components": {"schemas": {"Error": {"type": "object", "required": ["error"], "properties": {
        "error": {"type": "object", "required": ["code", "message"], "properties": {
            "code": {"type": "string"}, "message": {"type": "string"}}}}}}},
}
