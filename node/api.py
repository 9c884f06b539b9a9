"""The HTTP API: client endpoints under /v1, peer endpoints under /p2p.

Handlers are thin: decode, validate, hand to the runtime, encode the answer. Every
error is JSON `{"error": {"code", "message"}}` with a 4xx (or 5xx for our own
trouble); a body over the configured limit is refused from its Content-Length before
it is read.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from functools import partial
from typing import Any

from aiohttp import web

from consensus import messages as wire
from contracts import codec, errors
from contracts.queries import run_query
from contracts.tx import Transaction
from node.chain import Header, read_certificate
from node.events import install as install_events
from node.explorer import add_explorer_routes
from node.logs import Event
from node.openapi import DOCUMENT
from node.serving import add_block_serving
from node.proofs import NotCertified, anchor, build_tx_proof, state_entry_proof
from node.typed_api import add_typed_routes
from node.snapshot_api import add_snapshot_routes
from node.snapshot_service import pruned_message
from node.admin import add_admin_routes
from node.config import PEER_BODY_BYTES
from node.peer_auth import pair_keys
from node.peer_stream import add_peer_stream_routes
from node import http_input as inp
from node import admission, block_waits, limits
from node.runtime import MempoolFull, Runtime, ShuttingDown

log = logging.getLogger("ipchain.api")
RUNTIME = web.AppKey("runtime", Runtime)
BLOCK_WAITS = web.AppKey("block_waits", block_waits.BlockWaits)
MSGPACK = "application/msgpack"
DEFAULT_WAIT_MS = 10_000
CERTIFICATE_WAIT_S = 5.0
"""How long a proof request waits for a fresh block's execution certificate."""
CERTIFICATE_POLL_S = 0.05
REFUSED_WHEN_DIVERGED = ("/v1/tx", "/v1/state", "/v1/proof", "/p2p/blocks")
"""What a node whose results a quorum refuted (or whose disk is damaged) no longer serves.
Its /v1/blocks stay readable: they are the evidence of what it executed."""
MAX_WAIT_MS = 600_000
ADMIT_SLICE_TXS = 50


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


@web.middleware
async def errors_middleware(request: web.Request, handler) -> web.StreamResponse:
    limit = (PEER_BODY_BYTES if request.path.startswith("/p2p/")
             else request.app[RUNTIME].cfg.max_body_bytes)
    if request.content_length is not None and request.content_length > limit:
        return error_response(413, "BodyTooLarge", f"body over {limit} bytes")
    if request.body_exists and request.content_length is None:
        return error_response(411, "LengthRequired", "send a Content-Length")
    diverged = request.app[RUNTIME].diverged
    if diverged is not None and request.path.startswith(REFUSED_WHEN_DIVERGED):
        return error_response(503, "Diverged", f"this node stopped at height {diverged['height']}"
                              f" ({diverged['reason']}); ask another node")
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message)
    except MempoolFull as exc:
        return error_response(503, exc.code, str(exc))
    except ShuttingDown as exc:
        return error_response(503, "ShuttingDown", str(exc))
    except errors.NotFound as exc:
        return error_response(404, exc.code, str(exc))
    except errors.ContractError as exc:
        return error_response(400, exc.code, str(exc))
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, "BodyTooLarge", f"body over {limit} bytes")
    except web.HTTPException as exc:
        return error_response(exc.status, exc.reason.replace(" ", ""), exc.text or exc.reason)
    except Exception:
        log.exception(Event("handler_crash", path=request.path))
        return error_response(500, "InternalError", "the node failed to handle this request")


async def read_json(request: web.Request) -> Any:
    return await inp.read_json(request)


async def read_one_tx(request: web.Request) -> Transaction:
    return await inp.read_one_tx(request, MSGPACK)


async def read_tx_batch(request: web.Request) -> list[Transaction | errors.ContractError]:
    """POST /v1/txs: a msgpack array (items: encoded txs or tx maps) or {"txs": [...]};
    the item count is capped and decoding gives the loop back (node/http_input.py)."""
    return await inp.read_tx_batch(request, limits.MAX_CLIENT_BATCH_TXS, MSGPACK)


# -- client endpoints -----------------------------------------------------------------------
async def post_tx(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    tx = await read_one_tx(request)
    tx_id = bytes.fromhex(tx.id)
    if future_wanted := request.query.get("wait") == "commit":  # checked before admitting
        inp.query_int(request, "timeout_ms", DEFAULT_WAIT_MS, high=MAX_WAIT_MS)
    future = runtime.wait_for(tx_id) if future_wanted else None
    try:
        (failure,) = runtime.admit([tx], relay=True)
        if failure is not None:
            raise failure
        stored = runtime.storage.tx(tx_id)
        if stored is not None:  # already in the chain: say so, whether or not the client waits
            receipt = codec.decode(stored[2])
            return web.json_response({"id": tx.id, "status": receipt["status"],
                                      "receipt": receipt})
        if future is None:
            return web.json_response({"id": tx.id, "status": "pending"}, status=202)
        timeout_ms = inp.query_int(request, "timeout_ms", DEFAULT_WAIT_MS, high=MAX_WAIT_MS)
        try:
            receipt = (await asyncio.wait_for(future, timeout_ms / 1000)).to_value()
        except asyncio.TimeoutError:
            raise ApiError(504, "Timeout", f"not committed within {timeout_ms} ms; still pending")
        return web.json_response({"id": tx.id, "status": receipt["status"], "receipt": receipt})
    finally:
        if future is not None:
            runtime.forget_waiter(tx_id, future)


async def post_txs(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    items = await read_tx_batch(request)
    txs = [item for item in items if isinstance(item, Transaction)]
    admitted = iter(await admit_in_slices(runtime, txs))
    accepted, rejected = [], []
    for index, item in enumerate(items):
        failure = item if isinstance(item, errors.ContractError) else next(admitted)
        if failure is None:
            accepted.append(item.id)
        else:
            rejected.append({"index": index, "id": getattr(item, "id", None),
                             "error": {"code": failure.code, "message": str(failure)}})
    return web.json_response({"accepted": accepted, "rejected": rejected}, status=202)


async def admit_in_slices(runtime: Runtime, txs: list[Transaction], relay: bool = True
                          ) -> list[errors.ContractError | None]:
    """Admission checks signatures (~0.1 ms each): a full batch in slices, loop given back."""
    results: list[errors.ContractError | None] = []
    for start in range(0, len(txs), ADMIT_SLICE_TXS):
        results += runtime.admit(txs[start:start + ADMIT_SLICE_TXS], relay=relay)
        if start + ADMIT_SLICE_TXS < len(txs):
            await asyncio.sleep(0)
    return results


async def get_tx(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    tx_id = _hex32(request.match_info["id"])
    stored = runtime.storage.tx(tx_id)
    if stored is not None and not stored[2]:
        raise_pruned(runtime, stored[0], f"transaction {tx_id.hex()} is in block {stored[0]}")
    if stored is not None:
        receipt = codec.decode(stored[2])
        return web.json_response({"id": tx_id.hex(), "status": receipt["status"],
                                  "receipt": receipt})
    status = "pending" if tx_id in runtime.mempool else "unknown"
    return web.json_response({"id": tx_id.hex(), "status": status, "receipt": None})


def block_json(runtime: Runtime, height: int, tx_ids: list[str] | None = None
               ) -> dict[str, Any]:
    """`tx_ids`: the block's ids if known (a recent block's receipts), else hashed here."""
    if height == 0:
        genesis = runtime.executor.genesis
        return {**_hexed(genesis.to_value()), "hash": genesis.hash.hex(),
                "result_root": genesis.state_root.hex(), "tx_ids": [], "certificate": None}
    raise_pruned(runtime, height)
    row = runtime.storage.block(height)
    if row is None:
        raise ApiError(404, "NotFound", f"no block at height {height}")
    block_hash, header_bytes, result_root, preprepare, certificate = row
    header = Header.decode(header_bytes)
    pp = wire.decode(preprepare)
    votes = read_certificate(certificate)
    return {**_hexed(header.to_value()), "hash": block_hash.hex(), "result_root": result_root.hex(),
            "view": pp.body.view,
            "digest": pp.body.digest.hex(),
            "tx_ids": tx_ids if tx_ids is not None and len(tx_ids) == len(pp.body.txs)
            else [hashlib.sha256(raw).hexdigest() for raw in pp.body.txs],
            "certificate": {"view": pp.body.view, "seq": pp.body.seq,
                            "digest": pp.body.digest.hex(),
                            "commits": [{"replica": v.sender, "sig": v.sig.hex()} for v in votes]}}


async def get_block(request: web.Request) -> web.Response:
    """With ?wait_ms=N a height not stored yet is waited for, at most N ms: a follower's
    long poll (node/block_waits.py); then the block, or the usual 404."""
    runtime = request.app[RUNTIME]
    raw = request.match_info["height"]
    height = runtime.executor.height if raw == "latest" else inp.parse_int(raw, "height")
    if "wait_ms" in request.query:
        if raw == "latest":
            raise ApiError(400, "BadArguments", "wait_ms needs a numeric height to wait for")
        wait_ms = inp.query_int(request, "wait_ms", 0, high=block_waits.MAX_BLOCK_WAIT_MS)
        if height > runtime.executor.height and wait_ms > 0:
            await request.app[BLOCK_WAITS].wait(height, wait_ms / 1000)
    return web.json_response(block_json(runtime, height, request.app[BLOCK_WAITS].tx_ids(height)))


async def get_proof(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    tx_id = _hex32(request.match_info["id"])
    stored = runtime.storage.tx(tx_id)
    if stored is not None:
        raise_pruned(runtime, stored[0], f"transaction {tx_id.hex()} is in block {stored[0]}")
    deadline = asyncio.get_running_loop().time() + CERTIFICATE_WAIT_S
    while True:
        try:
            proof = build_tx_proof(runtime.storage, runtime.cfg.chain_id, tx_id)
            break
        except NotCertified as exc:
            await _wait_or_give_up(deadline, exc)
    if proof is None:
        raise ApiError(404, "NotFound", "no committed transaction with this id on this node")
    return web.json_response(proof)


async def get_state_proof(request: web.Request) -> web.Response:
    """The value (or absence) of one state key with a path to a certified state root.

    Only the latest state is kept, so the proof is at this node's height; the entry is
    cut under the executor's lock (state and header agree), then we wait for that
    block's execution certificate, which follows execution by one gossip round."""
    runtime = request.app[RUNTIME]
    key = f"{request.match_info['kind']}/{request.match_info['key']}"
    asked = request.query.get("height")
    async with runtime.executor.lock:
        height, header = runtime.executor.height, runtime.executor.head
        entry = state_entry_proof(runtime.executor.state, key)
    if asked is not None and inp.parse_int(asked, "height") != height:
        raise ApiError(404, "StateNotKept", f"this node keeps only its latest state "
                       f"(height {height}); ask without ?height or with ?height={height}")
    deadline = asyncio.get_running_loop().time() + CERTIFICATE_WAIT_S
    while True:
        try:
            return web.json_response({**anchor(runtime.storage, runtime.cfg.chain_id, height,
                                               header), **entry})
        except NotCertified as exc:
            await _wait_or_give_up(deadline, exc)


async def _wait_or_give_up(deadline: float, exc: NotCertified) -> None:
    if asyncio.get_running_loop().time() > deadline:
        raise ApiError(503, "NotCertified", f"{exc}; retry shortly") from exc
    await asyncio.sleep(CERTIFICATE_POLL_S)


async def get_evidence(request: web.Request) -> web.Response:
    """Conflicting signed messages this node caught, decoded for people and kept as hex."""
    items = []
    for kind, sender, first, second in request.app[RUNTIME].storage.evidence():
        a, b = wire.decode(first), wire.decode(second)
        items.append({"kind": kind, "replica": sender,
                      "first": {**_message_json(a), "wire": first.hex()},
                      "second": {**_message_json(b), "wire": second.hex()}})
    return web.json_response({"count": len(items), "evidence": items})


async def get_openapi(request: web.Request) -> web.Response:
    return web.json_response(DOCUMENT)


async def get_status(request: web.Request) -> web.Response:
    return web.json_response(request.app[RUNTIME].status())


async def get_state(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    parts = [p for p in request.match_info["tail"].split("/") if p]
    async with runtime.executor.lock:
        result = run_query(runtime.executor.state, runtime.executor.head.timestamp_ms,
                           request.match_info["kind"], parts)
        height = runtime.executor.height
    # `read_height`, not `height`: records carry their own height (the block that wrote them)
    return web.json_response({"read_height": height, "result": result}
                             if not isinstance(result, dict) else {**result, "read_height": height})


# -- peer endpoints -------------------------------------------------------------------------
async def p2p_messages(request: web.Request) -> web.Response:
    await take_messages(request.app[RUNTIME], await _msgpack_list(request))
    return web.Response(status=202)


async def take_messages(runtime: Runtime, raws: list[bytes]) -> None:
    """Consensus messages from a peer (a POST or a stream frame, node/peer_stream.py)."""
    for start in range(0, len(raws), PEER_SLICE_ITEMS):  # decoding verifies nothing yet,
        runtime.on_peer_messages(raws[start:start + PEER_SLICE_ITEMS])  # but it is not free
        await asyncio.sleep(0)


async def p2p_txs(request: web.Request) -> web.Response:
    await take_txs(request.app[RUNTIME], await _msgpack_list(request))
    return web.Response(status=202)


async def take_txs(runtime: Runtime, raws: list[bytes]) -> None:
    """Transactions relayed by a peer (a POST or a stream frame), admitted without relay."""
    txs = []
    yielder = inp.Yielder()
    for start in range(0, len(raws), ADMIT_SLICE_TXS):  # the clock read per slice, not per tx
        txs += inp.relayed_txs(raws[start:start + ADMIT_SLICE_TXS], runtime.counters)
        await yielder.maybe_yield()
    await admit_in_slices(runtime, txs, relay=False)


# -- helpers --------------------------------------------------------------------------------
def raise_pruned(runtime: Runtime, height: int, what: str = "") -> None:
    """410 Gone for a height this node pruned (retain_blocks, or restored from a snapshot)."""
    message = pruned_message(runtime.storage, height)
    if message is not None:
        raise ApiError(410, "Pruned", f"{what}; {message}" if what else message)


PEER_SLICE_ITEMS = 256


async def _msgpack_list(request: web.Request) -> list[bytes]:
    """A peer body: a msgpack array of byte strings, its item count capped."""
    return await inp.read_byte_strings(request, limits.MAX_PEER_ITEMS, PEER_BODY_BYTES)


def _message_json(msg: wire.Signed) -> dict[str, Any]:
    fields = {k: v for k, v in vars(msg.body).items() if isinstance(v, (int, bytes))}
    return {"type": type(msg.body).__name__, "sender": msg.sender, "sig": msg.sig.hex(),
            **_hexed(fields)}


def _hexed(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v.hex() if isinstance(v, bytes) else v for k, v in value.items()}


def _hex32(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise ApiError(400, "BadId", "a transaction id is 64 hex characters")
    return raw


async def _released(waits: block_waits.BlockWaits) -> None:
    """On shutdown, long polls answer at once instead of holding the stop up."""
    waits.release_all()


def build_app(runtime: Runtime) -> web.Application:
    connections = limits.ConnectionGuard.for_this_process()
    app = web.Application(middlewares=[connections.middleware, admission.install(runtime),
                                       errors_middleware,
                                       inp.input_errors_middleware,
                                       limits.peer_guard_middleware],
                          client_max_size=PEER_BODY_BYTES)
    app[RUNTIME] = runtime
    app[limits.CONNECTIONS] = connections
    app[BLOCK_WAITS] = waits = block_waits.install(runtime)
    app.on_shutdown.append(lambda _app: _released(waits))
    cfg = runtime.cfg
    app[limits.PEER_REQUESTS] = limits.PeerRequests(
        cfg.chain_id, cfg.validator_keys,
        pair_keys=pair_keys(cfg.signing_key, cfg.index, cfg.validator_keys, cfg.chain_id))
    app.router.add_post("/v1/tx", post_tx)
    app.router.add_post("/v1/txs", post_txs)
    app.router.add_get("/v1/tx/{id}", get_tx)
    app.router.add_get("/v1/blocks/{height}", get_block)
    app.router.add_get("/v1/status", get_status)
    app.router.add_get("/v1/evidence", get_evidence)
    app.router.add_get("/v1/proof/tx/{id}", get_proof)
    app.router.add_get("/v1/proof/state/{kind}/{key:.+}", get_state_proof)
    app.router.add_get("/openapi.json", get_openapi)
    app.router.add_get(r"/v1/state/{kind}{tail:(/.*)?}", get_state)
    app.router.add_post("/p2p/messages", p2p_messages)
    app.router.add_post("/p2p/txs", p2p_txs)
    add_peer_stream_routes(app, {"messages": partial(take_messages, runtime),  # GET /p2p/stream/
                                 "txs": partial(take_txs, runtime)}, runtime.counters)
    add_block_serving(app, runtime.cfg.data_dir / "db.sqlite")  # GET /p2p/blocks (node/serving.py)
    add_typed_routes(app, runtime)  # /v1/ops, /v1/accounts (node/typed_api.py)
    add_admin_routes(app, runtime)  # /admin/faults (node/admin.py)
    install_events(app, runtime)  # /v1/events, /metrics, MQTT (node/events.py)
    add_snapshot_routes(app, runtime)  # /p2p/snapshot... (node/snapshot_api.py)
    add_explorer_routes(app, runtime.cfg)  # GET /, /v1/peers, /v1/genesis, CORS (node/explorer.py)
    return app
