"""A stand-in for `python -m node` in process-management tests: one node, no consensus.

It reads the real config.toml and genesis, serves the parts of the node API the
scripts use, and commits every request's transactions at once in a block of its own
(running the real contract runtime, so receipts, nonces and balances behave like the
real thing). Behaviour switches, by environment: FAKE_NODE_IGNORE_TERM=1 ignores
SIGTERM (to test SIGKILL of stragglers); FAKE_NODE_EXIT=<code> exits at once (to test
fail-fast).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import time
import tomllib
from typing import Any

import msgpack
from aiohttp import web

from contracts import tx as txmod
from contracts.errors import ContractError
from contracts.genesis import init_state
from contracts.queries import run_query
from contracts.runtime import BlockContext, apply_block


def error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


class FakeChain:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.genesis = json.load(open(config["genesis_file"]))
        self.state = init_state(self.genesis)
        self.blocks = [{"height": 0, "hash": "00" * 32, "state_root": self.state.root().hex(),
                        "tx_ids": []}]
        self.receipts: dict[str, dict] = {}

    def commit(self, txs: list[txmod.Transaction]) -> None:
        txs = [tx for tx in txs if tx.id not in self.receipts]
        if not txs:
            return
        height = len(self.blocks)
        ctx = BlockContext(self.genesis["chain_id"], height, time.time_ns() // 1_000_000)
        done = [r.to_value() for r in apply_block(self.state, ctx, txs)]
        ids = [tx.id for tx in txs]
        block_hash = hashlib.sha256(f"{self.blocks[-1]['hash']}{ids}".encode()).hexdigest()
        self.blocks.append({"height": height, "view": 0, "hash": block_hash,
                            "state_root": self.state.root().hex(), "tx_ids": ids,
                            "timestamp_ms": ctx.timestamp_ms})
        self.receipts.update(zip(ids, done))

    async def post_tx(self, request: web.Request) -> web.Response:
        try:
            if request.content_type == "application/msgpack":
                tx = txmod.from_bytes(await request.read())
            else:
                tx = txmod.from_json(await request.json())
        except ContractError as exc:
            return error(400, exc.code, str(exc))
        self.commit([tx])
        receipt = self.receipts[tx.id]
        if request.query.get("wait") == "commit":
            return web.json_response({"id": tx.id, "status": receipt["status"],
                                      "receipt": receipt})
        return web.json_response({"id": tx.id, "status": "pending"}, status=202)

    async def post_txs(self, request: web.Request) -> web.Response:
        txs = [txmod.from_bytes(item) for item in msgpack.unpackb(await request.read())]
        self.commit(txs)
        return web.json_response({"accepted": [tx.id for tx in txs], "rejected": []},
                                 status=202)

    async def get_tx(self, request: web.Request) -> web.Response:
        receipt = self.receipts.get(request.match_info["id"])
        return web.json_response({"id": request.match_info["id"],
                                  "status": receipt["status"] if receipt else "unknown",
                                  "receipt": receipt})

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response({
            "node_id": self.config["node_id"], "index": self.config["index"],
            "chain_id": self.genesis["chain_id"], "view": 0, "primary": 0,
            "height": len(self.blocks) - 1, "state_root": self.state.root().hex(),
            "peers": [p["id"] for p in self.config.get("peers", [])], "mempool": 0})

    async def block(self, request: web.Request) -> web.Response:
        which = request.match_info["height"]
        height = len(self.blocks) - 1 if which == "latest" else int(which)
        if height >= len(self.blocks):
            return error(404, "NotFound", f"no block {height}")
        return web.json_response(self.blocks[height])

    async def query(self, request: web.Request) -> web.Response:
        kind, *parts = request.match_info["rest"].split("/")
        try:
            return web.json_response(run_query(self.state, 0, kind, parts))
        except ContractError as exc:
            return error(404, exc.code, str(exc))

    async def account(self, request: web.Request) -> web.Response:
        from node.typed_api import describe_account
        return web.json_response(describe_account(self.state, request.match_info["key"]))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/tx", self.post_tx)
        app.router.add_post("/v1/txs", self.post_txs)
        app.router.add_get("/v1/tx/{id}", self.get_tx)
        app.router.add_get("/v1/status", self.status)
        app.router.add_get("/v1/blocks/{height}", self.block)
        app.router.add_get("/v1/state/{rest:.*}", self.query)
        app.router.add_get("/v1/accounts/{key}", self.account)
        return app


def main() -> None:
    config = tomllib.load(open(sys.argv[sys.argv.index("--config") + 1], "rb"))
    if os.environ.get("FAKE_NODE_EXIT"):
        print("fake node: exiting as told", file=sys.stderr)
        sys.exit(int(os.environ["FAKE_NODE_EXIT"]))
    ignore_term = os.environ.get("FAKE_NODE_IGNORE_TERM") == "1"
    if ignore_term:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    web.run_app(FakeChain(config).app(), host=config["host"], port=config["port"],
                print=None, handle_signals=not ignore_term)


if __name__ == "__main__":
    main()
