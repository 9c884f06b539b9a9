"""Errors as one sentence with what to try, instead of a library's repr."""

from __future__ import annotations

from ipchain.sdk import client


def explain(exc: BaseException) -> str:
    """One sentence, with what to try, instead of a library's repr."""
    if isinstance(exc, client.ApiError) and exc.status == 0:
        url = exc.message.split(" ", 2)[1] if exc.message.count(" ") >= 2 else "the node"
        node = url.split("/v1/")[0].split("/p2p/")[0]
        return (f"{node} is not answering; is the cluster up? try `ipchain status` "
                f"(or `ipchain up`)")
    return str(exc)
