"""Pure, deterministic contracts: the state transition of an ipchain block.

The face of the package is small: `runtime.apply_block` runs a block, `catalogue`
lists every op and state query, `call` is what a handler sees, `errors` names every
refusal. The families (`token`, `membership`, `registry`, `licensing`, `pool`,
`securitization`, `exchange`) import `call` and each other's package faces, never `runtime`.
"""

__all__ = [
    "call", "catalogue", "codec", "errors", "genesis", "merkle", "queries", "runtime",
    "split", "state", "tx",
    "licensing", "membership", "pool", "registry", "securitization", "token", "exchange",
]
