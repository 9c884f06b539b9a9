"""Mutual TLS between peers: who may speak on the peer port, and how a node dials out.

With `[tls]` in its config a node serves its peer endpoints (`/p2p/...`) on a second
port, `p2p_port`, that completes a handshake only with a certificate signed by the
cluster's CA — the same certificate it presents when it dials its peers. The client API
keeps its own port, plain HTTP unless `client_api = true`. Ed25519 message signatures
stay: TLS keeps traffic private and strangers out; signatures say who voted what.

A handshake refused for an expired, foreign or missing certificate is logged by the
dialling side (`event=peer_tls_refused`, once per peer per interval): a node whose own
certificate is refused sees its handshake reset, and a node that dials a stranger sees
the stranger's certificate fail verification. Python's asyncio TLS server reports its
own refusals only in debug mode.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TlsConfig:
    ca_file: Path
    cert_file: Path
    key_file: Path
    p2p_port: int
    client_api: bool = False
    """Serve the client API over TLS too (server certificate only; clients need no cert)."""


def server_context(tls: TlsConfig, require_client_cert: bool = True) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tls.ca_file))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_NONE
    if require_client_cert:
        # Under TLS 1.3 the server checks the client's certificate after the client has
        # finished its handshake, so a refused peer sees only a reset mid-request, like a
        # crash. TLS 1.2 checks it inside the handshake, so the refusal is recognisable
        # at connect time and logged as such (node.transport HANDSHAKE_RESET). ECDHE with
        # AES-GCM keeps 1.2 forward-secret.
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def client_context(tls: TlsConfig) -> ssl.SSLContext:
    """Trust only the cluster's CA (not the system store) and present our certificate."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(tls.ca_file))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    return ctx


def peer_port_guard(p2p_port: int):
    """Peer routes only on the mutual-TLS port; the client port refuses them with 403.

    aiohttp is imported here, not at the top: `node.config` imports this module, and the
    simulator, which never serves HTTP, would otherwise pay half a second of aiohttp
    imports per run."""
    from aiohttp import web

    @web.middleware
    async def guard(request: web.Request, handler):
        if request.path.startswith("/p2p/"):
            sockname = request.transport.get_extra_info("sockname") if request.transport else None
            peercert = request.transport.get_extra_info("peercert") if request.transport else None
            if not sockname or sockname[1] != p2p_port or not peercert:
                raise web.HTTPForbidden(
                    text='{"error": {"code": "PeerOnly", "message": "peer endpoints are served '
                         'on the mutual-TLS peer port only"}}', content_type="application/json")
        return await handler(request)

    return guard
