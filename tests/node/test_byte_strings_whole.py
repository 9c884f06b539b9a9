"""A peer body read at once (`node.http_input._whole_byte_strings`) gives what the item
by item reading gives: the same byte strings, or the same 4xx error naming what is
wrong (the short way steps aside for anything it does not take whole)."""

from __future__ import annotations

import random

import msgpack
import pytest

from node import http_input
from node.http_input import InputError, byte_strings

MAX_ITEMS, MAX_ITEM_BYTES = 8, 64


async def outcome(body: bytes) -> tuple[str, object]:
    try:
        return "ok", await byte_strings(body, MAX_ITEMS, MAX_ITEM_BYTES)
    except InputError as exc:
        return "refused", (exc.status, exc.code, exc.message)


def packed(value: object) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


BODIES = {
    "frame": packed([b"tx-one", b"tx-two", b""]),
    "empty array": packed([]),
    "a string item": packed([b"ok", "text"]),
    "a map item": packed([b"ok", {"a": 1}]),
    "an int first": packed([1, b"ok"]),
    "too many items": packed([b"x"] * (MAX_ITEMS + 1)),
    "item too long": packed([b"x" * (MAX_ITEM_BYTES + 1)]),
    "not an array": packed({"a": b"x"}),
    "bytes after the array": packed([b"x"]) + b"\x00",
    "truncated": packed([b"xyz"])[:-1],
    "never used byte": b"\x92\xc1\xc4\x01x",
    "long array header": b"\xdc\x00\x02" + packed(b"a") + packed(b"b"),
    "ext item": packed([msgpack.ExtType(1, b"x")]),
    "empty body": b"",
}


@pytest.mark.parametrize("name", sorted(BODIES))
async def test_whole_and_item_by_item_readings_agree(name: str, monkeypatch) -> None:
    whole = await outcome(BODIES[name])
    monkeypatch.setattr(http_input, "WHOLE_BODY_BYTES", -1)  # every body item by item
    assert await outcome(BODIES[name]) == whole


async def test_corrupted_frames_get_the_same_outcome(monkeypatch) -> None:
    rng = random.Random(11)
    frame = BODIES["frame"]
    outcomes = []
    for _ in range(500):
        body = bytearray(frame)
        body[rng.randrange(len(body))] = rng.randrange(256)
        monkeypatch.setattr(http_input, "WHOLE_BODY_BYTES", 1 << 20)
        whole = await outcome(bytes(body))
        monkeypatch.setattr(http_input, "WHOLE_BODY_BYTES", -1)
        assert await outcome(bytes(body)) == whole, bytes(body)
        outcomes.append(whole[0])
    assert "ok" in outcomes and "refused" in outcomes


class _Posted(dict):
    """What read_tx_batch reads of a request: its content type and its body (kept)."""

    def __init__(self, body: bytes) -> None:
        super().__init__({http_input._BODY: body})
        self.content_type = "application/msgpack"


async def batch_outcome(body: bytes) -> tuple[str, object]:
    try:
        items = await http_input.read_tx_batch(_Posted(body), MAX_ITEMS, "application/msgpack")
    except InputError as exc:
        return "refused", (exc.status, exc.code, exc.message)
    return "ok", [(type(item).__name__, getattr(item, "id", None) or str(item)) for item in items]


def client_batches() -> dict[str, bytes]:
    import nacl.signing

    from contracts.tx import sign_tx
    key = nacl.signing.SigningKey(b"\x07" * 32)
    txs = [sign_tx(key, "ipchain-test", n, "token.transfer", {"to": "org-b", "amount": 1 + n})
           for n in range(3)]
    raws = [tx.to_bytes() for tx in txs]
    return {"encoded txs": packed(raws),
            "one not canonical": packed([raws[0], packed(dict(reversed(
                msgpack.unpackb(raws[1]).items())))]),
            "one junk": packed([raws[0], b"\xc1"]),
            "a tx map item": packed([raws[0], msgpack.unpackb(raws[1])]),
            "too many": packed(raws * 3),
            "junk body": b"\x93\xc1"}


@pytest.mark.parametrize("name", sorted(client_batches()))
async def test_a_client_batch_reads_the_same_whole_or_item_by_item(name: str, monkeypatch) -> None:
    body = client_batches()[name]
    whole = await batch_outcome(body)
    monkeypatch.setattr(http_input, "WHOLE_BODY_BYTES", -1)
    assert await batch_outcome(body) == whole
