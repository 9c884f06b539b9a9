"""The browser explorer: static files at `/`, the public cluster map, CORS on reads.

The explorer is a page that reads only the public API and the event stream, so it
works against any node and offline: the files ship inside the package (no build step,
nothing fetched from a CDN). `GET /v1/peers` exists so a page served by one node can
find every other node's API; `GET /v1/genesis` so it can check proofs against the
validators' keys (a careful reader compares the genesis hash shown with their own copy).

CORS: read endpoints (GET/HEAD, and the preflight for them) carry
Access-Control-Allow-Origin for the configured origins so another site's page can read
the chain; writes, peer traffic and /admin never do — a browser on some other page must
not be able to drive a validator.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web


STATIC_DIR = Path(__file__).with_name("static")
STATIC_PREFIX = "/explorer/"
READ_METHODS = ("GET", "HEAD")
CORS_PREFIXES = ("/v1/", "/openapi.json", "/metrics")
"""Paths whose GETs may be read cross-origin; /admin and /p2p are never among them."""


def cors_origin(allowed: tuple[str, ...], origin: str | None) -> str | None:
    """The Access-Control-Allow-Origin value for this request's Origin, or None."""
    if not origin or not allowed:
        return None
    if "*" in allowed:
        return "*"
    return origin if origin in allowed else None


def origin_of(url: str) -> str:
    """scheme://host[:port] of a URL, the form a browser sends in Origin."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def is_cors_path(path: str) -> bool:
    return path.startswith(CORS_PREFIXES)


def make_cors_hook(allowed: tuple[str, ...]):
    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        """Runs for every response, streams (SSE) included, just before headers go out."""
        if request.method not in (*READ_METHODS, "OPTIONS") or not is_cors_path(request.path):
            return
        value = cors_origin(allowed, request.headers.get("Origin"))
        if value is None:
            return
        response.headers["Access-Control-Allow-Origin"] = value
        if value != "*":
            response.headers.add("Vary", "Origin")
    return on_prepare


async def preflight(request: web.Request) -> web.Response:
    """OPTIONS for read endpoints: GET/HEAD only, so a page elsewhere cannot POST a tx."""
    allowed = request.app[EXPLORER].cors_allowed_origins
    if cors_origin(allowed, request.headers.get("Origin")) is None:
        return web.json_response({"error": {"code": "Forbidden",
                                            "message": "origin not allowed"}}, status=403)
    return web.Response(status=204, headers={
        "Access-Control-Allow-Methods": "GET, HEAD",
        "Access-Control-Allow-Headers": "Last-Event-ID, Accept",
        "Access-Control-Max-Age": "600"})


class ExplorerInfo:
    """What the explorer endpoints need from the node's config, read once."""

    def __init__(self, cfg: Any) -> None:
        self.nodes = sorted([{"id": cfg.node_id, "index": cfg.index,
                              "url": f"http://{cfg.host}:{cfg.port}", "self": True}]
                            + [{"id": p.id, "index": p.index, "url": p.url, "self": False}
                               for p in cfg.peers], key=lambda n: n["index"])
        # the cluster's own pages always may read: the explorer served by one node reads
        # every other node's status, whatever list of outside origins is configured
        own = tuple(origin_of(n["url"]) for n in self.nodes)
        self.cors_allowed_origins: tuple[str, ...] = tuple(
            getattr(cfg, "cors_allowed_origins", ("*",))) + own
        self.chain_id = cfg.chain_id
        self.genesis_bytes = json.dumps(cfg.genesis, sort_keys=True).encode()


EXPLORER = web.AppKey("explorer", ExplorerInfo)

PAGE_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               "connect-src 'self' http: https:; object-src 'none'; base-uri 'none'; "
               "frame-ancestors 'none'")
"""The page shows what any transaction carries: only our own scripts may run, whatever a
record contains; connect-src stays open because the cluster page reads the other nodes."""


async def get_index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={
        "Cache-Control": "no-cache", "Content-Security-Policy": PAGE_POLICY,
        "X-Content-Type-Options": "nosniff"})


async def get_peers(request: web.Request) -> web.Response:
    info = request.app[EXPLORER]
    return web.json_response({"chain_id": info.chain_id, "nodes": info.nodes})


async def get_genesis(request: web.Request) -> web.Response:
    info = request.app[EXPLORER]
    return web.Response(body=info.genesis_bytes, content_type="application/json", headers={
        "X-Genesis-SHA256": hashlib.sha256(info.genesis_bytes).hexdigest()})


def add_explorer_routes(app: web.Application, cfg: Any) -> None:
    info = ExplorerInfo(cfg)
    app[EXPLORER] = info
    app.router.add_get("/", get_index)
    app.router.add_static(STATIC_PREFIX, STATIC_DIR, follow_symlinks=False)
    app.router.add_get("/v1/peers", get_peers)
    app.router.add_get("/v1/genesis", get_genesis)
    app.router.add_route("OPTIONS", "/v1/{tail:.*}", preflight)
    app.on_response_prepare.append(make_cors_hook(info.cors_allowed_origins))
