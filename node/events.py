"""Event fan-out: each executed block becomes a list of records for MQTT and SSE.

One listener on `runtime.listeners` turns (header, receipts) into records — the block
header first, then every contract event in (tx index, event index) order — and hands
the same list to every sink. Sinks only append to their own bounded queues, so the
executor (and through it consensus) never waits on a broker or a slow HTTP client.

Every record has a key (height, tx_index, event_index) — (height, -1, -1) for the
header — that orders the stream and lets subscribers de-duplicate: several nodes may
publish the same chain, and a publisher retries after a broken connection. The same
records can be rebuilt from storage (`EventHub.replay`), byte for byte, which is how
an SSE client that reconnects with Last-Event-ID gets what it missed.

`install(app, runtime)` wires the whole observability surface (GET /v1/events,
GET /metrics, the MQTT publisher when the config names a broker) onto the node's
aiohttp application; background work lives in the app's cleanup context.
"""

from __future__ import annotations

import json
import logging
from functools import cached_property
from typing import Any, AsyncIterator, Iterable, Protocol

from aiohttp import web

from consensus import messages as wire
from contracts import codec
from contracts.runtime import Event, Receipt
from node.chain import Header
from node.config import ConfigError
from node.metrics import NodeMetrics
from node.mqtt import MqttPublisher, parse_mqtt_url
from node.runtime import Runtime
from node.sse import SseHub

log = logging.getLogger("ipchain.events")
HEADER_INDEX = -1
"""tx_index and event_index of a block header record: it sorts before its events."""

Key = tuple[int, int, int]


class Sink(Protocol):
    """Where records go: MqttPublisher, SseHub. `offer` must only queue, never wait."""

    @property
    def is_listening(self) -> bool: ...

    def offer(self, records: list[Record]) -> None: ...


class Block:
    """What every record of one block shares; built once per block."""

    __slots__ = ("chain_id", "node_id", "header", "hash_hex", "result_root", "tx_count",
                 "event_count")

    def __init__(self, chain_id: str, node_id: str, header: Header, block_hash: bytes,
                 result_root: bytes, tx_count: int, event_count: int) -> None:
        self.chain_id, self.node_id, self.header = chain_id, node_id, header
        self.hash_hex, self.result_root = block_hash.hex(), result_root
        self.tx_count, self.event_count = tx_count, event_count


class Record:
    """One item of the stream: a block header or one contract event.

    Built on the executor's path, so it only keeps references; the JSON payload is
    made (once) when the first consumer asks for it, in that consumer's task."""

    def __init__(self, block: Block, tx_index: int = HEADER_INDEX,
                 event_index: int = HEADER_INDEX, tx_id: str = "",
                 event: Event | None = None) -> None:
        self.block, self.tx_index, self.event_index = block, tx_index, event_index
        self.tx_id, self.event = tx_id, event
        self.height = block.header.height

    @property
    def key(self) -> Key:
        return (self.height, self.tx_index, self.event_index)

    @property
    def is_block(self) -> bool:
        return self.event is None

    @property
    def kind(self) -> str:
        return "block" if self.is_block else "event"

    @property
    def id(self) -> str:
        return format_id(self.key)

    @cached_property
    def value(self) -> dict[str, Any]:
        """The JSON payload (documented in docs/events.md)."""
        block, header = self.block, self.block.header
        if self.event is None:
            return {"type": "block", "id": self.id, "chain": block.chain_id,
                    "node": block.node_id, "height": self.height,
                    "hash": block.hash_hex, "prev_hash": header.prev_hash.hex(),
                    "tx_root": header.tx_root.hex(), "state_root": header.state_root.hex(),
                    "result_root": block.result_root.hex(),
                    "timestamp_ms": header.timestamp_ms,
                    "proposal_timestamp_ms": header.proposal_timestamp_ms,
                    "tx_count": block.tx_count, "event_count": block.event_count}
        return {"type": "event", "id": self.id, "chain": block.chain_id, "node": block.node_id,
                "height": self.height, "tx_index": self.tx_index,
                "event_index": self.event_index, "tx_id": self.tx_id,
                "contract": self.event.contract, "name": self.event.name,
                "data": self.event.data, "block_hash": block.hash_hex,
                "timestamp_ms": header.timestamp_ms}

    @cached_property
    def payload(self) -> bytes:
        """Encoded once and shared by MQTT and every SSE client."""
        return json.dumps(self.value, separators=(",", ":"), sort_keys=True,
                          default=_json_default).encode()

    @cached_property
    def sse_bytes(self) -> bytes:
        return (f"id: {self.id}\nevent: {self.kind}\ndata: ".encode() + self.payload + b"\n\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()  # contract data is plain JSON-able; bytes would be a hash or key
    raise TypeError(f"cannot encode {type(value).__name__} in an event")


def format_id(key: Key) -> str:
    """"<height>" for a header, "<height>:<tx_index>.<event_index>" for an event."""
    height, tx_index, event_index = key
    return str(height) if tx_index == HEADER_INDEX else f"{height}:{tx_index}.{event_index}"


def parse_id(text: str) -> Key:
    """The inverse of format_id; ValueError on anything else."""
    height_text, sep, index_text = text.strip().partition(":")
    height = _nonneg(height_text)
    if not sep:
        return (height, HEADER_INDEX, HEADER_INDEX)
    tx_text, dot, event_text = index_text.partition(".")
    if not dot:
        raise ValueError(f"event id {text!r} is not <height>:<tx>.<event>")
    return (height, _nonneg(tx_text), _nonneg(event_text))


def _nonneg(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        raise ValueError(f"{text!r} is not a non-negative integer in ASCII digits")
    return int(text)


# -- building records ------------------------------------------------------------------
TxEvents = tuple[str, int, "tuple[Event, ...] | list[Event]"]
"""(tx id, tx index in the block, its events): what records need from a receipt."""


def build_records(chain_id: str, node_id: str, header: Header, block_hash: bytes,
                  result_root: bytes, tx_count: int, txs: Iterable[TxEvents]) -> list[Record]:
    """The header record, then one record per contract event, in stream order."""
    txs = sorted((t for t in txs if t[2]), key=lambda t: t[1])
    block = Block(chain_id, node_id, header, block_hash, result_root, tx_count,
                  sum(len(events) for _, _, events in txs))
    records = [Record(block)]
    for tx_id, tx_index, events in txs:
        records.extend(Record(block, tx_index, event_index, tx_id, event)
                       for event_index, event in enumerate(events))
    return records


def live_tx_events(receipts: list[Receipt]) -> list[TxEvents]:
    return [(r.tx_id, r.index, r.events) for r in receipts if r.events]


# -- the hub --------------------------------------------------------------------------
class EventHub:
    """Turns executed blocks into records for the sinks, and rebuilds them from storage."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.sinks: list[Sink] = []

    def on_block(self, header: Header, receipts: list[Receipt]) -> None:
        """The runtime listener: runs right after the block is stored, on the executor."""
        sinks = [sink for sink in self.sinks if sink.is_listening]
        if not sinks:
            return  # nobody listens: do not even build the records
        executor = self.runtime.executor
        records = build_records(self.runtime.cfg.chain_id, self.runtime.cfg.node_id, header,
                                header.hash, executor.state.root(), len(receipts),
                                live_tx_events(receipts))
        for sink in sinks:
            try:
                sink.offer(records)
            except Exception:  # one broken sink must not starve the others
                log.exception("event=event_sink_failed height=%d", header.height)

    def replay(self, height: int) -> list[Record]:
        """The records of a stored block, identical to the ones published live."""
        storage = self.runtime.storage
        row = storage.block(height)
        if row is None:
            return []
        block_hash, header_bytes, result_root, preprepare, _ = row
        tx_count = len(wire.decode(preprepare).body.txs)
        txs = []
        for raw in storage.receipts_at(height):
            receipt = codec.decode(raw)
            txs.append((receipt["tx_id"], receipt["index"],
                        [Event(e["contract"], e["name"], e["data"]) for e in receipt["events"]]))
        return build_records(self.runtime.cfg.chain_id, self.runtime.cfg.node_id,
                             Header.decode(header_bytes), block_hash, result_root, tx_count, txs)


# -- wiring ---------------------------------------------------------------------------
EVENT_HUB = web.AppKey("event_hub", EventHub)
SSE_HUB = web.AppKey("sse_hub", SseHub)
METRICS = web.AppKey("metrics", NodeMetrics)
MQTT_PUBLISHER = web.AppKey("mqtt_publisher", MqttPublisher)


def install(app: web.Application, runtime: Runtime) -> None:
    """Add GET /v1/events and GET /metrics; run the fan-out (and MQTT) while the app runs.

    A bad mqtt_url fails here, at start-up, rather than silently publishing nothing."""
    hub = EventHub(runtime)
    sse = SseHub(hub.replay, lambda: runtime.executor.height)
    publisher = None
    if runtime.cfg.mqtt_url:
        try:
            address = parse_mqtt_url(runtime.cfg.mqtt_url)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
        publisher = MqttPublisher(address, runtime.cfg.chain_id, runtime.cfg.node_id)
        app[MQTT_PUBLISHER] = publisher
    metrics = NodeMetrics(runtime, [sse.collect, *_limit_sources(app)]
                          + ([publisher.collect] if publisher else []))
    app[EVENT_HUB], app[SSE_HUB], app[METRICS] = hub, sse, metrics
    app.router.add_get("/v1/events", sse.handle)
    app.router.add_get("/metrics", metrics.handle)
    app.on_shutdown.append(sse.close_all)  # open streams would hold graceful shutdown

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        hub.sinks.append(sse)
        if publisher is not None:
            hub.sinks.append(publisher)
            publisher.start()
        metrics.attach()
        runtime.listeners.append(hub.on_block)
        yield
        runtime.listeners.remove(hub.on_block)
        metrics.detach()
        if publisher is not None:
            await publisher.stop()
        hub.sinks.clear()

    app.cleanup_ctx.append(lifecycle)


def _limit_sources(app: web.Application) -> list:
    """The connection guard's figures (node/limits.py), when build_app set one up."""
    from node.limits import CONNECTIONS
    return [app[CONNECTIONS].collect] if CONNECTIONS in app else []
