"""Client: the blocking face of AsyncClient, for scripts and notebooks.

Every method runs the AsyncClient's coroutine on a private event loop, so the two
share one implementation (validation, nonces, retries, parsing) and cannot drift.
Not for use inside a running event loop: use AsyncClient there.
"""

from __future__ import annotations

import asyncio
from typing import Any, Iterator

from ipchain.sdk.aio import AsyncClient
from ipchain.sdk.keys import Signer
from ipchain.sdk.opcall import OpCall


class Client:
    def __init__(self, url: str, *, signer: Signer | None = None,
                 chain_id: str | None = None, timeout_s: float = 60.0) -> None:
        self._loop = asyncio.new_event_loop()
        self.aio = AsyncClient(url, signer=signer, chain_id=chain_id, timeout_s=timeout_s)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _run(self, coroutine: Any) -> Any:
        return self._loop.run_until_complete(coroutine)

    def close(self) -> None:
        if not self._loop.is_closed():
            self._run(self.aio.close())
            self._loop.close()

    def status(self) -> dict[str, Any]:
        return self._run(self.aio.status())

    def ops(self) -> dict[str, Any]:
        return self._run(self.aio.ops())

    def block(self, height: int | str = "latest", *,
              wait_ms: int | None = None) -> dict[str, Any]:
        return self._run(self.aio.block(height, wait_ms=wait_ms))

    def tx(self, tx_id: str) -> dict[str, Any]:
        return self._run(self.aio.tx(tx_id))

    def state(self, kind: str, *parts: str) -> Any:
        return self._run(self.aio.state(kind, *parts))

    def account(self, key_hex: str | None = None) -> dict[str, Any]:
        return self._run(self.aio.account(key_hex))

    def proof(self, tx_id: str) -> dict[str, Any]:
        return self._run(self.aio.proof(tx_id))

    def submit(self, call: OpCall | str, args: dict[str, Any] | None = None, *,
               wait: bool = True, timeout_ms: int = 10_000) -> dict[str, Any]:
        return self._run(self.aio.submit(call, args, wait=wait, timeout_ms=timeout_ms))

    def events(self, *, from_height: int | None = None) -> Iterator[dict[str, Any]]:
        """Server-sent events as a blocking iterator (stop by breaking out of the loop)."""
        stream = self.aio.events(from_height=from_height)
        try:
            while True:
                try:
                    yield self._run(stream.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            self._run(stream.aclose())
