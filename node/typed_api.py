"""Routes generated from the contracts' typed catalogue, and the account read that
clients need to pick nonces.

GET /v1/ops and /v1/ops/{name} serve contracts.catalogue.describe_ops(): each op's doc,
roles, JSON Schema of its arguments and the errors it may raise. GET /v1/accounts/{key}
tells a client which organisation a key belongs to and the next nonce it may use, so a
client sharing a key with others can resynchronise instead of guessing.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from aiohttp import web

from contracts import catalogue, errors
from contracts.runtime import NONCE_WINDOW

KEY_RE = re.compile(r"[0-9a-f]{64}")


@functools.lru_cache(maxsize=1)
def ops_catalogue() -> dict[str, Any]:
    return catalogue.describe_ops()


async def get_ops(request: web.Request) -> web.Response:
    return web.json_response(ops_catalogue())


async def get_op(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    described = ops_catalogue()["ops"].get(name)
    if described is None:
        raise errors.NotFound(f"unknown op {name!r}; GET /v1/ops lists them")
    return web.json_response({"name": name, **described})


def describe_account(state: Any, key: str) -> dict[str, Any]:
    """The key's organisation and nonce window: `next_nonce` is one above the highest
    nonce used, always usable; lower nonces inside the window may still be free."""
    record = state.get(f"nonce/{key}")
    high = -1 if record is None else record[0]
    return {"key": key, "org": state.get(f"key/{key}"), "highest_nonce": high,
            "next_nonce": high + 1, "nonce_window": NONCE_WINDOW}


def add_typed_routes(app: web.Application, runtime: Any) -> None:
    async def get_account(request: web.Request) -> web.Response:
        key = request.match_info["key"]
        if not KEY_RE.fullmatch(key):
            raise errors.BadArguments("an account is a sender key: 64 lower-case hex characters")
        async with runtime.executor.lock:
            answer = describe_account(runtime.executor.state, key)
            answer["read_height"] = runtime.executor.height
        return web.json_response(answer)

    app.router.add_get("/v1/ops", get_ops)
    app.router.add_get("/v1/ops/{name}", get_op)
    app.router.add_get("/v1/accounts/{key}", get_account)
