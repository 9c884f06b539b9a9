"""The ipchain Python SDK: sign and submit typed ops, read blocks, state, receipts and
proofs, follow events. See docs/sdk.md.

    from ipchain.sdk import Client, Signer, builders
    with Client("http://127.0.0.1:7000", signer=Signer.from_file("acme.key")) as chain:
        chain.submit(builders.token_transfer(to="bolt", amount=5))

`AsyncClient` is the same for asyncio. `ipchain.sdk.client` keeps the low-level async
helpers the CLI, workloads and fault runner use.
"""

from ipchain.sdk import builders
from ipchain.sdk.aio import AsyncClient
from ipchain.sdk.client import ApiError
from ipchain.sdk.keys import Signer
from ipchain.sdk.opcall import OpCall
from ipchain.sdk.proofs import load_genesis, verify_proof
from ipchain.sdk.sync import Client

__all__ = ["ApiError", "AsyncClient", "Client", "OpCall", "Signer", "builders", "load_genesis",
           "verify_proof"]
