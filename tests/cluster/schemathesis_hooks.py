"""Schemathesis hooks (loaded through SCHEMATHESIS_HOOKS): send msgpack bodies.

The peer endpoints and POST /v1/tx accept application/msgpack; schemathesis has no
serializer for it, so generated values are packed with msgpack (bytes as they are)."""

from __future__ import annotations

import msgpack
import schemathesis


@schemathesis.serializer("application/msgpack")
def msgpack_body(ctx, value):  # noqa: ANN001 (schemathesis' signature)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    return msgpack.packb(value, use_bin_type=True)
