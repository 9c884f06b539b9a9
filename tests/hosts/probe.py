"""A client run INSIDE a test host's network namespace (`ip netns exec NS python -m ...`).

The namespace test never sends traffic from the machine's own namespace: every request
to a node's address comes from another namespace on the test bridge. One command per
call, one JSON object on stdout.

    status URL [DEADLINE_S]                 wait until URL/v1/status answers; print it
    transfer URL BUNDLE COUNT NONCE0        COUNT committed transfers through URL
    tls HOST PORT CA [CERT KEY]             a TLS handshake with a peer port
    get URL                                 one GET: its status and JSON body
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import sys
import time
from pathlib import Path

from ipchain.sdk import client


async def status(url: str, deadline_s: float) -> dict:
    deadline = time.monotonic() + deadline_s
    async with client.open_session(total_timeout_s=5) as session:
        while True:
            try:
                return await client.get_status(session, url)
            except client.ApiError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)


async def transfer(url: str, bundle: Path, count: int, nonce0: int) -> dict:
    genesis = json.loads((bundle / "node0" / "genesis.json").read_text())
    key = client.load_key(bundle / "clients" / "north-university.key")
    heights = []
    async with client.open_session(total_timeout_s=60) as session:
        for i in range(count):
            tx = client.sign(key, genesis["chain_id"], nonce0 + i, "token.transfer",
                             {"to": "acme-electronics", "amount": 1})
            receipt = await client.submit(session, url, tx, wait=True, timeout_ms=30_000)
            assert receipt["status"] == "committed", receipt
            heights.append(receipt["receipt"]["height"])
    return {"committed": len(heights), "heights": heights}


def tls_handshake(host: str, port: int, ca: str, cert: str | None, key: str | None) -> dict:
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False  # the certificate names an IP; we check the chain, not the name
    if cert:
        ctx.load_cert_chain(cert, key)
    try:
        with socket.create_connection((host, port), timeout=5) as raw:
            with ctx.wrap_socket(raw) as tls:
                subject = dict(x[0] for x in tls.getpeercert()["subject"])
                version, cipher = tls.version(), tls.cipher()[0]
                # TLS 1.3 reports a refused client certificate only on the first read.
                tls.sendall(b"GET /p2p/blocks?from=1&to=1 HTTP/1.1\r\nHost: x\r\n"
                            b"Connection: close\r\n\r\n")
                first = tls.recv(64).decode(errors="replace")
                if not first:
                    return {"ok": False, "error": "the server closed the connection"}
                return {"ok": True, "version": version, "cipher": cipher,
                        "server": subject.get("commonName"), "answer": first.split("\r\n")[0]}
    except (ssl.SSLError, OSError, ValueError) as exc:
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


async def get(url: str) -> dict:
    async with client.open_session(total_timeout_s=10) as session:
        async with session.get(url) as response:
            return {"status": response.status, "body": await response.json(content_type=None)}


def main(argv: list[str]) -> int:
    command, *rest = argv
    if command == "status":
        result = asyncio.run(status(rest[0], float(rest[1]) if len(rest) > 1 else 60))
    elif command == "transfer":
        result = asyncio.run(transfer(rest[0], Path(rest[1]), int(rest[2]), int(rest[3])))
    elif command == "tls":
        result = tls_handshake(rest[0], int(rest[1]), rest[2], *(rest[3:5] or (None, None)))
    elif command == "get":
        result = asyncio.run(get(rest[0]))
    else:
        raise SystemExit(f"unknown command {command}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
