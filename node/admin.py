"""The admin API: /admin/faults installs and clears fault-injection rules;
/admin/log-level reads and changes the log level of the running node.

Closed unless the caller shows the node's admin token (compared in constant time),
and answering loopback clients only unless IPCHAIN_ADMIN_ALLOW_REMOTE=1: it can make a
validator lie, so it must never be reachable by accident.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
from typing import Any, Callable

from aiohttp import web

from node.config import ConfigError
from node.faults import FaultEngine, FaultSpecError
from node.http_input import InputError, parse_int, read_json
from node.logs import Event, current_level, set_level

LOOPBACK = ("127.", "::1", "::ffff:127.")
ALLOW_REMOTE_ENV = "IPCHAIN_ADMIN_ALLOW_REMOTE"
FAULTS = web.AppKey("faults", FaultEngine)


def _error(status: int, code: str, message: str) -> web.Response:
    headers = {"WWW-Authenticate": 'Bearer realm="ipchain-admin"'} if status == 401 else None
    return web.json_response({"error": {"code": code, "message": message}}, status=status,
                             headers=headers)


def is_loopback(remote: str | None) -> bool:
    return remote is not None and remote.startswith(LOOPBACK)


def _refusal(request: web.Request, token: str) -> web.Response | None:
    """Why this admin request is refused, or None. Loopback only unless opted in; the
    token is compared in constant time; an empty configured token disables admin."""
    if os.environ.get(ALLOW_REMOTE_ENV) != "1" and not is_loopback(request.remote):
        return _error(403, "Forbidden", "the admin API answers loopback clients only")
    if not token:
        return _error(403, "AdminDisabled", "no admin_token is configured on this node")
    given = request.headers.get("Authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(),
                                                             token.encode()):
        return _error(401, "Unauthorized", "admin requests need 'Authorization: Bearer <token>'")
    return None


def _guarded(handler: Callable[[web.Request, FaultEngine], Any]) -> Callable:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        engine = request.app[FAULTS]
        refused = _refusal(request, engine.runtime.cfg.admin_token)
        if refused is not None:
            return refused
        try:
            return await handler(request, engine)
        except FaultSpecError as exc:
            return _error(400, "BadFaultSpec", str(exc))
    return wrapped


async def get_faults(request: web.Request, engine: FaultEngine) -> web.Response:
    return web.json_response(engine.describe())


async def post_faults(request: web.Request, engine: FaultEngine) -> web.Response:
    try:  # charset and depth problems too: a 4xx, never a 500
        spec = await read_json(request, floats=True)
    except InputError as exc:
        raise FaultSpecError(exc.message) from None
    ids = engine.install(spec)
    return web.json_response({"installed": ids, "faults": engine.describe()})


async def delete_faults(request: web.Request, engine: FaultEngine) -> web.Response:
    engine.clear()
    return web.json_response({"cleared": True, "faults": engine.describe()})


async def delete_rule(request: web.Request, engine: FaultEngine) -> web.Response:
    rule_id = parse_int(request.match_info["rule_id"], "rule id")
    if not engine.clear(rule_id):
        return _error(404, "NotFound", f"no rule {rule_id}")
    return web.json_response({"cleared": rule_id, "faults": engine.describe()})


async def get_log_level(request: web.Request, engine: FaultEngine) -> web.Response:
    return web.json_response({"level": current_level()})


async def put_log_level(request: web.Request, engine: FaultEngine) -> web.Response:
    """Body `{"level": "debug"}`: takes effect at once, until the next restart."""
    try:
        level = json.loads(await request.text())["level"]
        before, after = current_level(), set_level(level)
    except (ValueError, UnicodeDecodeError, TypeError, KeyError):
        return _error(400, "BadLogLevel", 'body must be JSON {"level": "debug|info|warning|error"}')
    except ConfigError as exc:
        return _error(400, "BadLogLevel", str(exc))
    logging.getLogger("ipchain.admin").warning(Event("log_level_changed", before=before,
                                                     after=after))
    return web.json_response({"level": after, "was": before})


def add_admin_routes(app: web.Application, runtime: Any) -> FaultEngine:
    """Register /admin/faults on the node's app; the engine starts with nothing installed."""
    engine = FaultEngine(runtime)
    app[FAULTS] = engine
    app.router.add_get("/admin/faults", _guarded(get_faults))
    app.router.add_post("/admin/faults", _guarded(post_faults))
    app.router.add_delete("/admin/faults", _guarded(delete_faults))
    app.router.add_delete("/admin/faults/{rule_id}", _guarded(delete_rule))
    app.router.add_get("/admin/log-level", _guarded(get_log_level))
    app.router.add_put("/admin/log-level", _guarded(put_log_level))
    return engine
