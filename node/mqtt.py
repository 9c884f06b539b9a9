"""Publishing committed blocks and contract events to an MQTT broker (aiomqtt, QoS 1).

The executor hands records to `offer`, which only appends to a bounded deque: a slow or
absent broker can never hold up consensus. One task drains the deque in order; it
publishes a window of records at once (paho sends them in call order, so per-topic and
per-connection order is kept) and removes them only when the broker has acknowledged
all of them. A connection that breaks mid-window republishes the whole window after
reconnecting, so delivery is at-least-once and subscribers de-duplicate by record id.

When the deque is full the oldest record not in flight is dropped and counted: after an
outage subscribers see a gap and then the most recent history, and can fill the gap
from GET /v1/events (Last-Event-ID) or the block API. Reconnects back off
exponentially with jitter (only a session that published or lasted resets the delay),
and the counters are exported on /metrics.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import random
import secrets
import ssl
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator
from urllib.parse import parse_qs, unquote, urlsplit

import aiomqtt
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from node.logs import Event

if TYPE_CHECKING:
    from node.events import Record

log = logging.getLogger("ipchain.mqtt")
PAHO_LOG = logging.getLogger("ipchain.mqtt.paho")
PAHO_LOG.setLevel(logging.INFO)  # paho logs every packet at DEBUG: too much even for debug

QOS = 1
DEFAULT_QUEUE_RECORDS = 10_000
WINDOW_RECORDS = 64
BACKOFF_MS = (100, 2_000)
PUBLISH_TIMEOUT_S = 10.0
KEEPALIVE_S = 15
STABLE_SESSION_S = 30.0
"""A broker session that lasted this long (or published) resets the reconnect backoff."""
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None
    topic_prefix: str = "ipchain"
    queue_records: int = DEFAULT_QUEUE_RECORDS

    def redacted(self) -> str:
        """For logs: never print the password."""
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"


def parse_mqtt_url(url: str) -> BrokerAddress:
    """mqtt[s]://[user[:password]@]host[:port][/topic-prefix][?queue=<records>]."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"mqtt_url {url!r} is not mqtt://host[:port] or mqtts://host[:port]")
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError as exc:
        raise ValueError(f"mqtt_url {url!r}: {exc}") from exc
    query = parse_qs(parts.query)
    unknown = set(query) - {"queue"}
    if unknown:
        raise ValueError(f"mqtt_url {url!r}: unknown option(s) {sorted(unknown)}")
    queue = query.get("queue", [str(DEFAULT_QUEUE_RECORDS)])[-1]
    if not queue.isdigit() or int(queue) < 1:
        raise ValueError(f"mqtt_url {url!r}: queue must be a positive integer")
    prefix = parts.path.strip("/") or "ipchain"
    if any(c in prefix for c in "+#\0"):
        raise ValueError(f"mqtt_url {url!r}: the topic prefix may not contain + # or NUL")
    return BrokerAddress(parts.hostname, port, parts.scheme == "mqtts",
                         unquote(parts.username) if parts.username else None,
                         unquote(parts.password) if parts.password else None,
                         prefix, int(queue))


def topic_level(text: str) -> str:
    """One topic level: MQTT wildcards and separators inside a name become '_'."""
    return "".join("_" if c in "/+#\0" else c for c in text) or "_"


def topic_for(prefix: str, chain_id: str, record: Record) -> str:
    base = f"{prefix}/{topic_level(chain_id)}"
    if record.is_block:
        return f"{base}/blocks"
    value = record.value
    return f"{base}/events/{topic_level(value['contract'])}/{topic_level(value['name'])}"


class MqttPublisher:
    def __init__(self, address: BrokerAddress, chain_id: str, node_id: str, *,
                 window: int = WINDOW_RECORDS, backoff_ms: tuple[int, int] = BACKOFF_MS) -> None:
        self.address = address
        self.chain_id = chain_id
        self.node_id = node_id
        self.capacity = address.queue_records
        self.window = max(1, min(window, self.capacity))
        self.backoff_ms = backoff_ms
        self.queue: collections.deque[Record] = collections.deque()
        self.inflight = 0
        """The first `inflight` records of the queue are being published right now."""
        self.published = 0
        self.dropped = 0
        self.connections = 0
        self.connect_failures = 0
        self.disconnects = 0
        self.connected = False
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task | None = None
        self._identifier = f"ipchain-{node_id}-{secrets.token_hex(4)}"

    # -- the executor side: never waits ------------------------------------------------
    is_listening = True
    """Records are wanted whether or not the broker is up: the queue bridges outages."""

    def offer(self, records: list[Record]) -> None:
        for record in records:
            if len(self.queue) >= self.capacity:
                self.dropped += 1
                if len(self.queue) <= self.inflight:
                    continue  # everything queued is in flight: drop the newcomer instead
                del self.queue[self.inflight]
            self.queue.append(record)
        if records:
            self._idle.clear()
            self._wakeup.set()

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"mqtt-{self.node_id}")

    async def stop(self, flush_s: float = 2.0) -> None:
        """Give a connected publisher a moment to flush, then disconnect."""
        if self.connected and self.queue:
            try:
                await asyncio.wait_for(self._idle.wait(), flush_s)
            except asyncio.TimeoutError:
                log.warning("event=mqtt_stop_unflushed records=%d", len(self.queue))
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=PUBLISH_TIMEOUT_S)

    async def _run(self) -> None:
        delay_ms = self.backoff_ms[0]
        while True:
            published, started = self.published, time.monotonic()
            try:
                async with self._client() as client:
                    self._note_connected()
                    await self._publish_until_disconnected(client)
            except aiomqtt.MqttError as exc:
                self._note_failure(exc, delay_ms)
            except Exception:  # a bug here must not end publishing for good
                log.exception("event=mqtt_publisher_failed")
            finally:
                self.connected = False
            # Only a session that did some good resets the backoff: a broker that
            # accepts and then kicks us at once (an ACL refusal) must not be redialled
            # every 100 ms for ever.
            if self.published > published or time.monotonic() - started >= STABLE_SESSION_S:
                delay_ms = self.backoff_ms[0]
            await self._pause(delay_ms)
            delay_ms = min(delay_ms * 2, self.backoff_ms[1])

    async def _pause(self, delay_ms: int) -> None:
        """Wait before redialling, jittered so that nodes do not reconnect in step."""
        await asyncio.sleep(delay_ms / 1000 * (0.5 + random.random()))

    def _client(self) -> aiomqtt.Client:
        address = self.address
        return aiomqtt.Client(
            address.host, address.port, username=address.username, password=address.password,
            identifier=self._identifier, clean_session=True, keepalive=KEEPALIVE_S,
            timeout=PUBLISH_TIMEOUT_S, max_inflight_messages=self.window, logger=PAHO_LOG,
            tls_context=ssl.create_default_context() if address.tls else None)

    def _note_connected(self) -> None:
        self.connected = True
        self.connections += 1
        log.info("event=mqtt_connected broker=%s queued=%d", self.address.redacted(),
                 len(self.queue))

    def _note_failure(self, exc: Exception, delay_ms: int) -> None:
        if self.connected:
            self.disconnects += 1
            log.warning(Event("mqtt_disconnected", broker=self.address.redacted(),
                              error=str(exc), queued=len(self.queue)))
        else:
            self.connect_failures += 1
            # the first failure is worth a warning; a long outage should not flood the log
            level = logging.WARNING if self.connect_failures == 1 else logging.DEBUG
            log.log(level, Event("mqtt_connect_failed", broker=self.address.redacted(),
                                 error=str(exc), retry_ms=delay_ms))

    # -- the publishing side -----------------------------------------------------------
    async def _publish_until_disconnected(self, client: aiomqtt.Client) -> None:
        client.pending_calls_threshold = self.window + 1  # our window is intended
        watcher = asyncio.create_task(self._watch(client))
        try:
            while True:
                if not self.queue:
                    self._idle.set()
                    self._wakeup.clear()
                    await _race(self._wakeup.wait(), watcher)
                    continue
                await self._publish_window(client, watcher)
        finally:
            watcher.cancel()

    @staticmethod
    async def _watch(client: aiomqtt.Client) -> None:
        """Ends with MqttError when the connection drops (we subscribe to nothing)."""
        async for _ in client.messages:
            pass

    async def _publish_window(self, client: aiomqtt.Client, watcher: asyncio.Task) -> None:
        batch = list(itertools.islice(self.queue, self.window))
        self.inflight = len(batch)
        tasks = [asyncio.ensure_future(client.publish(topic, payload, qos=QOS))
                 for topic, payload in self._encode(batch)]
        try:
            await _race(asyncio.gather(*tasks), watcher)
        finally:
            self.inflight = 0
            for task in tasks:
                task.cancel()  # after a failure: do not leave acks pending on a dead client
        for _ in batch:
            self.queue.popleft()  # offer() never removes in-flight records: these are ours
        self.published += len(tasks)  # not the unencodable ones: those count as dropped

    def _encode(self, batch: list[Record]) -> Iterator[tuple[str, bytes]]:
        """(topic, payload) per record; a record that cannot be encoded (a bug) is
        logged and skipped, not retried for ever."""
        for record in batch:
            try:
                yield topic_for(self.address.topic_prefix, self.chain_id, record), record.payload
            except Exception:
                self.dropped += 1
                log.exception("event=mqtt_record_unencodable height=%d", record.height)

    # -- metrics -------------------------------------------------------------------------
    def collect(self) -> Iterator[Metric]:
        for name, help_text, value in (
                ("ipchain_mqtt_published", "Records acknowledged by the MQTT broker.",
                 self.published),
                ("ipchain_mqtt_dropped",
                 "Records dropped: the MQTT queue was full (or a record could not be encoded).",
                 self.dropped),
                ("ipchain_mqtt_connections", "Successful connections to the broker.",
                 self.connections),
                ("ipchain_mqtt_disconnects", "Broker connections lost.", self.disconnects),
                ("ipchain_mqtt_connect_failures", "Failed connection attempts.",
                 self.connect_failures)):
            yield CounterMetricFamily(name, help_text, value=value)
        for name, help_text, value in (
                ("ipchain_mqtt_queue_records", "Records waiting to be published.",
                 len(self.queue)),
                ("ipchain_mqtt_queue_capacity_records", "Bound of the MQTT queue.", self.capacity),
                ("ipchain_mqtt_connected", "1 while connected to the broker.", int(self.connected))):
            yield GaugeMetricFamily(name, help_text, value=value)


async def _race(awaitable: Any, watcher: asyncio.Task) -> Any:
    """Await `awaitable` unless the connection watcher ends first (then raise MqttError)."""
    task = asyncio.ensure_future(awaitable)
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if task.done():
        return task.result()
    task.cancel()
    await asyncio.wait({task})
    if watcher.done() and not watcher.cancelled() and watcher.exception() is not None:
        raise watcher.exception()
    raise aiomqtt.MqttError("connection to the broker ended")
