"""The OpenAPI 3.1 description served at GET /openapi.json.

Request and response schemas for every route and method. The transaction body is a
`oneOf` over the ops, each naming its `op` and the op's argument schema, generated
from the same msgspec structs the nodes decode with (contracts.catalogue), so the
document cannot drift from what admission accepts. Tests check that every route the
application registers is described here and that the document validates.
"""

from __future__ import annotations

from typing import Any

from contracts.catalogue import describe_ops

ERROR = {"$ref": "#/components/schemas/Error"}
HEX32 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
OBJECT: dict[str, Any] = {"type": "object"}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], text: str) -> dict[str, Any]:
    return {"description": text, "content": {"application/json": {"schema": schema}}}


def _op(summary: str, responses: dict[str, Any], *, body: dict[str, Any] | None = None,
        params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An operation; a response given as text is an error (its body is Error)."""
    op: dict[str, Any] = {"summary": summary, "responses": {
        code: _json(ERROR, answer) if isinstance(answer, str) else answer
        for code, answer in responses.items()}}
    if body is not None:
        op["requestBody"] = {"required": True, **body}
    if params:
        op["parameters"] = params
    return op


def _path(name: str, text: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": text,
            "schema": schema or {"type": "string"}}


def _query(name: str, text: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": text,
            "schema": schema or {"type": "string"}}


TX_BODY = {"description": "the signed transaction: JSON form (sender, sig as hex) or its "
                          "canonical msgpack bytes",
           "content": {"application/json": {"schema": ref("Transaction")},
                       "application/msgpack": {"schema": {"type": "string",
                                                          "format": "binary"}}}}
MSGPACK_BODY = {"description": "a msgpack array", "content": {
    "application/msgpack": {"schema": {"type": "string", "format": "binary"}}}}
ADMIN_ERRORS = {"401": "missing or wrong admin token", "403": "not from loopback"}


def _client_paths() -> dict[str, dict[str, Any]]:
    return {**_submit_paths(), **_read_paths(), **_proof_paths(), **_node_paths()}


def _submit_paths() -> dict[str, dict[str, Any]]:
    return {
        "/v1/tx": {"post": _op("Submit one signed transaction", {
            "200": _json(ref("TxAnswer"), "with wait=commit (or already committed): receipt"),
            "202": _json(ref("TxAnswer"), "admitted: {id, status: pending}"),
            "400": "refused at admission (code names why: BadArguments names the field)",
            "411": "no Content-Length", "413": "body over the limit",
            "503": "mempool full or shutting down", "504": "not committed in time"},
            body=TX_BODY,
            params=[_query("wait", "commit: answer with the receipt", {"enum": ["commit"]}),
                    _query("timeout_ms", "how long to wait for the commit",
                           {"type": "string", "pattern": "^[0-9]+$"})])},
        "/v1/txs": {"post": _op("Submit a batch", {
            "202": _json(ref("BatchAnswer"), "each transaction accepted or refused"),
            "400": "malformed batch", "411": "no Content-Length", "413": "body over the limit",
            "503": "mempool full or shutting down"},
            body={"description": 'JSON {"txs": [...]} or a msgpack array of encoded txs',
                  "content": {"application/json": {"schema": {
                      "type": "object", "required": ["txs"],
                      "properties": {"txs": {"type": "array", "items": ref("Transaction")}}}},
                      "application/msgpack": {"schema": {"type": "string",
                                                         "format": "binary"}}}})},
    }


def _read_paths() -> dict[str, dict[str, Any]]:
    return {
        "/v1/tx/{id}": {"get": _op("Status and receipt of a transaction", {
            "200": _json(ref("TxAnswer"), "{id, status, receipt}"),
            "400": "not a 64-hex id", "410": "its block is pruned on this node"},
            params=[_path("id", "transaction id (hex)")])},
        "/v1/blocks/{height}": {"get": _op("A block header, its tx ids and commit certificate", {
            "200": _json(ref("Block"), "the block"),
            "400": "not a height, or a bad wait_ms (or wait_ms with 'latest')",
            "404": "no such block (after wait_ms, if given)",
            "410": "pruned on this node (the message names the lowest retained height)"},
            params=[_path("height", "a height or 'latest'"),
                    _query("wait_ms", "long poll: wait up to this many ms (0..5000) for a "
                                      "height not stored yet, answering as soon as it is",
                           {"type": "string", "pattern": "^[0-9]+$"})])},
        "/v1/state/{kind}/{path}": {"get": _op(
            "Contract queries: balances, supply, orgs, proposals, patents, families, quality, "
            "licences, open_licences, royalties, pools, pool_licensed, deals, deal_reports, "
            "listings, offers, market, loans, credit",
            {"200": _json(ref("StateAnswer"), "the result, with the height it was read at"),
             "400": "bad path", "404": "unknown query or record"},
            params=[_path("kind", "query name"), _path("path", "its key parts, '/'-separated")])},
    }


def _proof_paths() -> dict[str, dict[str, Any]]:
    return {
        "/v1/proof/tx/{id}": {"get": _op(
            "Portable proof: the tx and its receipt (committed, or rejected with its code) with "
            "Merkle paths, the header and its execution certificate (docs/protocol.md §8); "
            "verify offline with `ipchain verify-proof` and the genesis file", {
                "200": _json(ref("Proof"), "the proof"), "400": "not a 64-hex id",
                "404": "not committed", "410": "its block is pruned on this node",
                "503": "not certified yet"},
            params=[_path("id", "transaction id (hex)")])},
        "/v1/proof/state/{kind}/{key}": {"get": _op(
            "Portable state proof: one state key's value or absence with a Merkle path to a "
            "certified state root (docs/protocol.md §9), at this node's latest height", {
                "200": _json(OBJECT, "the proof (docs/protocol.md §9)"), "404": "height not kept",
                "503": "not certified yet"},
            params=[_path("kind", "first segment of the state key (patent, bal, deal, ...)"),
                    _path("key", "the rest of the state key"),
                    _query("height", "must be the latest height (past states are not kept)")])},
    }


def _node_paths() -> dict[str, dict[str, Any]]:
    return {
        "/v1/ops": {"get": _op("The op catalogue: roles, argument schemas, errors", {
            "200": _json(ref("OpsCatalogue"), "every op")})},
        "/v1/ops/{name}": {"get": _op("One op of the catalogue", {
            "200": _json(ref("OpDescription"), "the op"), "404": "no such op"},
            params=[_path("name", "op name, e.g. token.transfer")])},
        "/v1/accounts/{key}": {"get": _op("A sender key's organisation and next nonce", {
            "200": _json(ref("Account"), "the account"), "400": "not a 64-hex key"},
            params=[_path("key", "sender public key (hex)")])},
        "/v1/status": {"get": _op("Node id, view, primary, heights, peers, mempool", {
            "200": _json(ref("Status"), "status")})},
        "/v1/evidence": {"get": _op("Conflicting signed messages caught from one replica", {
            "200": _json({"type": "object", "required": ["count", "evidence"], "properties": {
                "count": {"type": "integer"}, "evidence": {"type": "array"}}}, "evidence")})},
        "/v1/events": {"get": _op(
            "Server-sent events: committed blocks and contract events; resume with "
            "Last-Event-ID", {"200": {"description": "text/event-stream", "content": {
                "text/event-stream": {"schema": {"type": "string"}}}},
                "400": "bad Last-Event-ID or from_height"},
            params=[_query("from_height", "replay from this height")])},
        "/metrics": {"get": _op("Prometheus text format", {"200": {
            "description": "metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}})},
        "/openapi.json": {"get": _op("This document", {
            "200": _json(OBJECT, "OpenAPI 3.1")})},
    }


def _explorer_paths() -> dict[str, dict[str, Any]]:
    """The page node/explorer.py serves, and the two reads it adds for it."""
    return {
        "/": {"get": _op("The block explorer (a single page; its files are under /explorer/)", {
            "200": {"description": "the page", "content": {"text/html": {
                "schema": {"type": "string"}}}}})},
        "/v1/peers": {"get": _op("Every node of the cluster with its API URL (this one included)", {
            "200": _json(OBJECT, "{chain_id, nodes: [{id, index, url, self}]}")})},
        "/v1/genesis": {"get": _op(
            "The genesis this node runs: chain id, validators' public keys, organisations "
            "(compare it with your own copy before trusting it)", {
                "200": _json(OBJECT, "the genesis")})},
        "/explorer": {"get": _op("The explorer's static files (/explorer/<file>)", {
            "200": {"description": "a file", "content": {"*/*": {"schema": {"type": "string"}}}},
            "404": "no such file"})},
    }


def _snapshot_paths() -> dict[str, dict[str, Any]]:
    """Peer endpoints for state sync (node/snapshot_api.py): validators only."""
    binary = {"200": {"description": "msgpack", "content": {
        "application/msgpack": {"schema": {"type": "string", "format": "binary"}}}},
        "401": "not a validator's signed request", "404": "not kept here"}
    height = _path("height", "the snapshot's block height")
    return {
        "/p2p/snapshots": {"get": _op("Peer endpoint: the certified snapshots offered, "
                                      "[[height, manifest sha256]]", binary)},
        "/p2p/snapshot/{height}/manifest": {"get": _op(
            "Peer endpoint: a snapshot's manifest and its block's execution certificate",
            binary, params=[height])},
        "/p2p/snapshot/{height}/state/{index}": {"get": _op(
            "Peer endpoint: one state chunk of a snapshot", binary,
            params=[height, _path("index", "the chunk's index")])},
        "/p2p/snapshot/history": {"get": _op(
            "Peer endpoint: block headers and transaction ids for a height range",
            {**binary, "400": "bad range"},
            params=[_query("from", "first height"), _query("to", "last height")])},
    }


def _peer_and_admin_paths() -> dict[str, dict[str, Any]]:
    faults = _json(ref("Faults"), "the fault rules")
    return {
        "/p2p/messages": {"post": _op("Peer endpoint: signed replica messages", {
            "202": {"description": "queued"}, "400": "not a msgpack array of bytes",
            "411": "no Content-Length", "413": "body over the limit"}, body=MSGPACK_BODY)},
        "/p2p/txs": {"post": _op("Peer endpoint: relayed transactions", {
            "202": {"description": "queued"}, "400": "not a msgpack array of bytes",
            "411": "no Content-Length", "413": "body over the limit"}, body=MSGPACK_BODY)},
        "/p2p/stream/{kind}": {"get": _op(
            "Peer endpoint: a WebSocket carrying what /p2p/messages (kind messages) or "
            "/p2p/txs (kind txs) would, one MAC-authenticated frame per batch "
            "(node/peer_stream.py); opened only with a validator's MAC envelope", {
                "101": {"description": "switching to the WebSocket protocol; then binary "
                                       "frames, each a 32-byte MAC and a msgpack array",
                        "content": {"application/octet-stream": {
                            "schema": {"type": "string", "format": "binary"}}}},
                "400": "not a WebSocket upgrade", "401": "no validator MAC envelope",
                "404": "unknown kind", "503": "the node is stopping"},
            params=[_path("kind", "messages or txs",
                          {"type": "string", "enum": ["messages", "txs"]})])},
        "/p2p/blocks": {"get": _op(
            "Peer endpoint for state transfer: blocks with certificates and the stable "
            "checkpoint proof", {"200": {"description": "msgpack", "content": {
                "application/msgpack": {"schema": {"type": "string", "format": "binary"}}}},
                "400": "bad range",
                "429": "rate limited, or a range for this peer is already being served"},
            params=[_query("from", "first height"), _query("to", "last height")])},
        **_snapshot_paths(),
        "/admin/faults": {
            "get": _op("Fault-injection rules (admin token)", {"200": faults, **ADMIN_ERRORS}),
            "post": _op("Install fault-injection rules (admin token)", {
                "200": _json(OBJECT, "{installed, faults}"), "400": "bad rule", **ADMIN_ERRORS},
                body={"description": "rules", "content": {"application/json": {
                    "schema": OBJECT}}}),
            "delete": _op("Clear every rule (admin token)", {
                "200": _json(OBJECT, "{cleared, faults}"), **ADMIN_ERRORS})},
        "/admin/log-level": {
            "get": _op("The running node's log level (admin token)", {
                "200": _json(OBJECT, "{level}"), **ADMIN_ERRORS}),
            "put": _op("Change the running node's log level (admin token)", {
                "200": _json(OBJECT, "{level, before}"), "400": "unknown level",
                **ADMIN_ERRORS}, body={"description": '{"level": "debug"}', "content": {
                    "application/json": {"schema": OBJECT}}})},
        "/admin/faults/{rule_id}": {"delete": _op("Clear one rule (admin token)", {
            "200": _json(OBJECT, "{cleared, faults}"), "400": "not a rule id",
            "404": "no such rule", **ADMIN_ERRORS}, params=[_path("rule_id", "rule id")])},
    }


def _transaction_schema(ops: dict[str, Any]) -> dict[str, Any]:
    """`oneOf` over the ops: the envelope with `op` fixed and `args` the op's schema."""
    envelope = {"chain": {"type": "string"}, "sender": HEX32,
                "nonce": {"type": "integer", "minimum": 0, "maximum": 2**64 - 1},
                "sig": {"type": "string", "pattern": "^[0-9a-f]{128}$"}}
    variants = [{"type": "object", "required": ["chain", "sender", "nonce", "op", "args", "sig"],
                 "properties": {**envelope, "op": {"const": name}, "args": op["args"]}}
                for name, op in ops.items()]
    return {"description": "a signed transaction; `op` selects the argument schema",
            "oneOf": variants}


def _component_schemas(catalogue: dict[str, Any]) -> dict[str, Any]:
    receipt = {"type": "object",
               "required": ["tx_id", "height", "index", "status", "code", "message", "events"],
               "properties": {"tx_id": HEX32, "height": {"type": "integer"},
                              "index": {"type": "integer"},
                              "status": {"enum": ["committed", "rejected"]},
                              "code": {"type": "string"}, "message": {"type": "string"},
                              "events": {"type": "array", "items": ref("Event")}}}
    op_description = {"type": "object", "required": ["doc", "roles", "args", "errors"],
                      "properties": {"name": {"type": "string"}, "doc": {"type": "string"},
                                     "roles": {"type": ["array", "null"],
                                               "items": {"type": "string"}},
                                     "args": OBJECT, "errors": {"type": "array",
                                                                "items": {"type": "string"}}}}
    return {
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "message"], "properties": {
                "code": {"type": "string"}, "message": {"type": "string"}}}}},
        "Transaction": _transaction_schema(catalogue["ops"]),
        "Event": {"type": "object", "required": ["contract", "name", "data"], "properties": {
            "contract": {"type": "string"}, "name": {"type": "string"}, "data": OBJECT}},
        "Receipt": receipt,
        "TxAnswer": {"type": "object", "required": ["id", "status"], "properties": {
            "id": HEX32, "status": {"enum": ["pending", "committed", "rejected", "unknown"]},
            "receipt": {"oneOf": [ref("Receipt"), {"type": "null"}]}}},
        "BatchAnswer": {"type": "object", "required": ["accepted", "rejected"], "properties": {
            "accepted": {"type": "array", "items": HEX32},
            "rejected": {"type": "array", "items": {
                "type": "object", "required": ["index", "error"], "properties": {
                    "index": {"type": "integer"}, "id": {"type": ["string", "null"]},
                    "error": {"type": "object"}}}}}},
        "Block": {"type": "object", "required": ["height", "hash", "tx_ids"], "properties": {
            "height": {"type": "integer"}, "hash": HEX32,
            "tx_ids": {"type": "array", "items": HEX32},
            "certificate": {"type": ["object", "null"]}}},
        "StateAnswer": {"type": "object", "required": ["read_height"], "properties": {
            "read_height": {"type": "integer"}}},
        "Proof": {"type": "object", "required": ["tx", "tx_id"], "properties": {
            "tx": {"type": "string"}, "tx_id": HEX32}},
        "Status": {"type": "object", "required": ["node_id", "chain_id", "view", "height",
                                                  "state_root"], "properties": {
            "node_id": {"type": "string"}, "chain_id": {"type": "string"},
            "view": {"type": "integer"}, "height": {"type": "integer"},
            "state_root": HEX32, "peers": {"type": "array", "items": {"type": "string"}},
            "mempool": {"type": "integer"}}},
        "Account": {"type": "object", "required": ["key", "org", "next_nonce", "read_height"],
                    "properties": {"key": HEX32, "org": {"type": ["string", "null"]},
                                   "highest_nonce": {"type": "integer"},
                                   "next_nonce": {"type": "integer"},
                                   "nonce_window": {"type": "integer"},
                                   "read_height": {"type": "integer"}}},
        "OpDescription": op_description,
        "OpsCatalogue": {"type": "object", "required": ["ops", "schemas"], "properties": {
            "ops": {"type": "object", "additionalProperties": op_description},
            "schemas": OBJECT, "admission_errors": {"type": "array"}, "limits": OBJECT}},
        "Faults": OBJECT,
        **catalogue["schemas"],
    }


def build_document() -> dict[str, Any]:
    catalogue = describe_ops()
    return {
        "openapi": "3.1.0",
        "info": {"title": "ipchain node API", "version": "1",
                 "description": "Each validator node's HTTP API (docs/api.md). Errors are "
                                '{"error": {"code", "message"}} with a 4xx or 5xx status.'},
        "paths": {**_client_paths(), **_explorer_paths(), **_peer_and_admin_paths()},
        "components": {"schemas": _component_schemas(catalogue)},
    }


DOCUMENT: dict[str, Any] = build_document()
