"""AsyncClient: an application's asyncio handle on an ipchain node.

    async with AsyncClient(url, signer=Signer.from_file("acme.key")) as chain:
        receipt = await chain.submit(builders.token_transfer(to="bolt", amount=5))

Arguments are checked against the op's schema before signing (the node would refuse
them the same way, by field name). Nonces come from the node's account read and are
kept locally; when another client using the same key took a nonce first, the node
answers NonceUsed and the client re-reads the account and signs again (a rejected
submission never reaches a block, so retrying cannot apply an op twice).
"""

from __future__ import annotations

import json
from typing import Any, AsyncIterator

import aiohttp

from contracts.tx import Transaction
from ipchain.sdk import client as http
from ipchain.sdk.keys import Signer
from ipchain.sdk.opcall import OpCall, validate

NONCE_RETRIES = 8


class AsyncClient:
    def __init__(self, url: str, *, signer: Signer | None = None,
                 chain_id: str | None = None, timeout_s: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.signer = signer
        self.chain_id = chain_id
        self.timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None
        self._next_nonce: int | None = None

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = http.open_session(total_timeout_s=self.timeout_s)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _get(self, path: str) -> Any:
        return (await http.request(self.session, "GET", self.url + path))[1]

    # -- reads -------------------------------------------------------------------------
    async def status(self) -> dict[str, Any]:
        return await self._get("/v1/status")

    async def ops(self) -> dict[str, Any]:
        return await self._get("/v1/ops")

    async def block(self, height: int | str = "latest", *,
                    wait_ms: int | None = None) -> dict[str, Any]:
        """With `wait_ms`, wait up to that long for a height not stored yet (ApiError 404
        if it is still not there)."""
        query = f"?wait_ms={wait_ms}" if wait_ms is not None else ""
        return await self._get(f"/v1/blocks/{height}{query}")

    async def tx(self, tx_id: str) -> dict[str, Any]:
        return await self._get(f"/v1/tx/{tx_id}")

    async def state(self, kind: str, *parts: str) -> Any:
        return await self._get("/v1/state/" + "/".join([kind, *parts]))

    async def account(self, key_hex: str | None = None) -> dict[str, Any]:
        return await self._get(f"/v1/accounts/{key_hex or self._signer().sender_hex}")

    async def proof(self, tx_id: str) -> dict[str, Any]:
        return await self._get(f"/v1/proof/tx/{tx_id}")

    # -- writes ------------------------------------------------------------------------
    def _signer(self) -> Signer:
        if self.signer is None:
            raise ValueError("this client has no signer: pass signer=Signer.from_file(...)")
        return self.signer

    async def _chain_id(self) -> str:
        if self.chain_id is None:
            self.chain_id = (await self.status())["chain_id"]
        return self.chain_id

    async def _take_nonce(self, resync: bool) -> int:
        if resync or self._next_nonce is None:
            server = (await self.account())["next_nonce"]
            self._next_nonce = max(server, self._next_nonce or 0) if not resync else server
        nonce, self._next_nonce = self._next_nonce, self._next_nonce + 1
        return nonce

    async def sign(self, call: OpCall, nonce: int | None = None) -> Transaction:
        """The signed transaction for `call` (validated first); takes a nonce if not given."""
        validate(call.op, call.args)
        nonce = await self._take_nonce(False) if nonce is None else nonce
        return self._signer().sign(await self._chain_id(), nonce, call.op, call.args)

    async def submit(self, call: OpCall | str, args: dict[str, Any] | None = None, *,
                     wait: bool = True, timeout_ms: int = 10_000) -> dict[str, Any]:
        """Sign and send; with `wait` the answer holds the receipt (committed or rejected).
        `call` is a builder's OpCall, or an op name with `args`."""
        if isinstance(call, str):
            call = OpCall(call, args or {})
        resync = False
        for _ in range(NONCE_RETRIES):
            validate(call.op, call.args)
            tx = await self.sign(call, await self._take_nonce(resync))
            try:
                return await http.submit(self.session, self.url, tx, wait=wait,
                                         timeout_ms=timeout_ms)
            except http.ApiError as exc:
                if exc.code != "NonceUsed":
                    raise
                resync = True  # another client with this key took it: re-read and re-sign
        raise http.ApiError(400, "NonceUsed", f"no free nonce after {NONCE_RETRIES} tries")

    # -- events ------------------------------------------------------------------------
    async def events(self, *, from_height: int | None = None) -> AsyncIterator[dict[str, Any]]:
        """Server-sent events, each {"id", "event", "data"}; resumes where asked."""
        params = {} if from_height is None else {"from_height": str(from_height)}
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with self.session.get(self.url + "/v1/events", params=params,
                                    timeout=timeout) as response:
            if response.status != 200:  # e.g. 503 at the stream cap: say so, do not end quietly
                body = await response.text()
                raise http.ApiError(response.status, f"HTTP{response.status}", body[:200])
            fields: dict[str, str] = {}
            async for raw in response.content:
                line = raw.decode().rstrip("\n")
                if not line:
                    if "data" in fields:
                        yield {"id": fields.get("id"), "event": fields.get("event", "message"),
                               "data": json.loads(fields["data"])}
                    fields = {}
                elif not line.startswith(":") and ":" in line:
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
