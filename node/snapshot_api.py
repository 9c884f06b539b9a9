"""Peer endpoints that serve snapshots to a restoring node (node/snapshot_sync.py).

    GET /p2p/snapshots                          {"snapshots": [[height, manifest sha256]]}
    GET /p2p/snapshot/{height}/manifest         {"manifest": bytes, "certificate": [vote]}
    GET /p2p/snapshot/{height}/state/{index}    one state chunk
    GET /p2p/snapshot/history?from=&to=         blocks from..to: headers and tx ids

All msgpack, and only for a validator's signed request (node/peer_auth.py): chunks are
megabytes, and only a validator restores state. Nothing served here is trusted by the
reader: every byte is checked against an execution certificate.
"""

from __future__ import annotations

import os

import msgpack
from aiohttp import web

from contracts import codec
from node import http_input as inp
from node.http_input import InputError

MSGPACK = "application/msgpack"
MAX_HISTORY_BLOCKS = 4_096
PLANTED_TAMPER_ENV = "IPCHAIN_PLANTED_SNAPSHOT_TAMPER"
"""Test hook: set to 1 and this node serves every state chunk with one byte changed (a
Byzantine peer), so a restoring node's per-chunk check can be shown live."""


def add_snapshot_routes(app: web.Application, runtime: object) -> None:
    tamper = os.environ.get(PLANTED_TAMPER_ENV) == "1"

    def service():
        if runtime.snapshot_service is None:
            raise InputError(404, "NoSnapshots", "this node serves no snapshots")
        return runtime.snapshot_service

    def require_peer(request: web.Request) -> None:
        if "X-Ipchain-Signature" not in request.headers:  # checked by peer_guard_middleware
            raise InputError(401, "PeerAuthRequired", "snapshots are served to validators only")

    async def list_snapshots(request: web.Request) -> web.Response:
        require_peer(request)
        offers = service().offers() if runtime.snapshot_service is not None else []
        return _msgpack({"snapshots": [[h, digest] for h, digest in offers]})

    async def get_manifest(request: web.Request) -> web.Response:
        require_peer(request)
        height = inp.parse_int(request.match_info["height"], "height")
        manifest = service().store.manifest(height)
        cert = runtime.storage.exec_cert(height)
        if manifest is None or cert is None:
            raise InputError(404, "NoSuchSnapshot", f"no certified snapshot at height {height}")
        return _msgpack({"manifest": manifest, "certificate": codec.decode(cert[1])})

    async def get_state_chunk(request: web.Request) -> web.Response:
        require_peer(request)
        height = inp.parse_int(request.match_info["height"], "height")
        index = inp.parse_int(request.match_info["index"], "index")
        chunk = service().store.state_chunk(height, index)
        if chunk is None:
            raise InputError(404, "NoSuchChunk", f"no state chunk {index} at height {height}")
        if tamper:
            chunk = chunk[:-1] + bytes([chunk[-1] ^ 1])
        return web.Response(body=chunk, content_type=MSGPACK)

    async def get_history(request: web.Request) -> web.Response:
        require_peer(request)
        first = inp.query_int(request, "from", 1, low=1)
        last = inp.query_int(request, "to", first, low=first)
        if last - first + 1 > MAX_HISTORY_BLOCKS:
            raise InputError(400, "RangeTooLarge", f"at most {MAX_HISTORY_BLOCKS} blocks at once")
        chunk = service().store.history_chunk(first, last)
        if chunk is None:
            raise InputError(404, "NoSuchHistory", f"this node lacks blocks {first}..{last}")
        return web.Response(body=chunk, content_type=MSGPACK)

    app.router.add_get("/p2p/snapshots", list_snapshots)
    app.router.add_get("/p2p/snapshot/history", get_history)
    app.router.add_get("/p2p/snapshot/{height}/manifest", get_manifest)
    app.router.add_get("/p2p/snapshot/{height}/state/{index}", get_state_chunk)


def _msgpack(value: object) -> web.Response:
    return web.Response(body=msgpack.packb(value, use_bin_type=True), content_type=MSGPACK)
