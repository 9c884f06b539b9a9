"""`ipchain watch`: follow a cluster's committed blocks and contract events.

By default it reads the server-sent events every node serves (GET /v1/events) from
node0 of the cluster in --data-dir (or --node URL, or --base-port), moving to the next
node when one goes away and resuming where it left off. With --mqtt it subscribes
(QoS 1) to the broker the cluster publishes to — the nodes' mqtt_url, or --mqtt-url —
instead. One line per record; several nodes may publish the same chain, and a stream
may resend after a reconnect, so each record is shown once by its id unless --all.

It exits 1 with one sentence when it never connected (within --connect-timeout);
once connected, a lost connection is retried.

    ipchain watch                                  # everything, as readable lines
    ipchain watch --mqtt --topic 'ipchain/+/events/token/#' --json
    ipchain watch --count 10 --timeout 30          # stop after 10 records or 30 s
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import aiomqtt

from ipchain.cluster import broker
from ipchain.cluster import layout
from ipchain.sdk import client as http
from ipchain.sdk.aio import AsyncClient
from scripts.argtypes import base_port, non_negative

MAX_REMEMBERED_IDS = 100_000
RETRY_S = (0.5, 5.0)
CONNECT_TIMEOUT_S = 10.0


class NeverConnected(ValueError):
    """No node (or broker) answered before the connect deadline: said in one sentence."""


def add_parser(sub: Any) -> None:
    watch = sub.add_parser("watch", help="print committed blocks and contract events "
                                         "(server-sent events; MQTT with --mqtt)")
    watch.add_argument("--data-dir", default=layout.DEFAULT_DATA_DIR, type=Path,
                       help="cluster data directory (default: %(default)s under the cwd)")
    watch.add_argument("--base-port", type=base_port, default=None,
                       help="without a cluster in --data-dir: node i on base-port + i "
                            f"(default {layout.DEFAULT_BASE_PORT})")
    watch.add_argument("--node", metavar="URL", help="read this node's event stream")
    watch.add_argument("--from-height", type=non_negative, default=None,
                       help="start with block N (default: from now on); SSE only")
    watch.add_argument("--mqtt", action="store_true",
                       help="subscribe to the cluster's MQTT broker instead of a node's stream")
    watch.add_argument("--mqtt-url", metavar="URL", help="with --mqtt: the broker "
                       "(default: the mqtt_url in the cluster's node configs)")
    watch.add_argument("--topic", action="append", metavar="FILTER",
                       help="with --mqtt: a topic filter, repeatable (default: <prefix>/#)")
    watch.add_argument("--json", action="store_true", help="print each payload as one JSON line")
    watch.add_argument("--all", action="store_true",
                       help="print every copy (one per publishing node), not each record once")
    watch.add_argument("--count", type=non_negative, default=0,
                       help="exit after this many records (default 0: no limit)")
    watch.add_argument("--timeout", type=float, default=0.0,
                       help="exit after this many seconds (default: run until Ctrl-C)")
    watch.add_argument("--connect-timeout", type=float, default=CONNECT_TIMEOUT_S,
                       help="give up (exit 1) if nothing answered by then "
                            "(default %(default)s s)")


def run(args: argparse.Namespace) -> int:
    options = {"count": args.count, "timeout_s": args.timeout, "as_json": args.json,
               "every_copy": args.all, "connect_timeout_s": args.connect_timeout}
    if args.mqtt or args.mqtt_url:
        url = args.mqtt_url or broker.configured_url(args.data_dir)
        if not url:
            raise ValueError(f"no MQTT broker configured in {args.data_dir}: start the cluster "
                             f"with `ipchain up --mqtt` (or --mqtt-url), or pass --mqtt-url")
        return asyncio.run(watch(url, args.topic, **options))
    if args.topic:
        raise ValueError("--topic filters MQTT topics: add --mqtt (the event stream "
                         "carries every record)")
    return asyncio.run(watch_sse(node_urls(args), from_height=args.from_height, **options))


def node_urls(args: argparse.Namespace) -> list[str]:
    """--node, else the cluster's nodes from --data-dir, else the --base-port range."""
    from ipchain.cluster.manager import Cluster
    if args.node:
        return [args.node.rstrip("/")]
    if Cluster.exists(args.data_dir):
        return Cluster.load(args.data_dir).urls
    base = args.base_port or layout.DEFAULT_BASE_PORT
    return [layout.node_url(base, i) for i in range(4)]


# -- server-sent events (the default) ---------------------------------------------------
async def watch_sse(urls: list[str], *, from_height: int | None = None, count: int = 0,
                    timeout_s: float = 0.0, as_json: bool = False, every_copy: bool = False,
                    connect_timeout_s: float = CONNECT_TIMEOUT_S, out: TextIO = sys.stdout,
                    ready: asyncio.Event | None = None) -> int:
    """Print the nodes' event stream until `count` or `timeout_s` (0 = no limit); 0 on a
    normal end, NeverConnected if no node answered within `connect_timeout_s`."""
    printer = Printer(out, as_json, every_copy)
    stream = _SseFollower(urls, printer, from_height, count, connect_timeout_s, ready)
    try:
        await asyncio.wait_for(stream.run(), timeout_s or None)
    except asyncio.TimeoutError:
        if not stream.connected:
            raise stream.never_connected() from None
    return 0


class _SseFollower:
    """One node's stream at a time; on a failure the next node, from the last height."""

    def __init__(self, urls: list[str], printer: "Printer", from_height: int | None,
                 count: int, connect_timeout_s: float, ready: asyncio.Event | None) -> None:
        self.urls, self.printer, self.count = urls, printer, count
        self.from_height, self.ready = from_height, ready
        self.connect_timeout_s = connect_timeout_s
        self.connected = False
        self.last_error = ""

    def never_connected(self) -> NeverConnected:
        where = ", ".join(self.urls[:4]) + (" ..." if len(self.urls) > 4 else "")
        return NeverConnected(f"no node answered within {self.connect_timeout_s:g}s ({where}"
                              f"{'; ' + self.last_error if self.last_error else ''}); is the "
                              f"cluster up? try `ipchain status`")

    async def run(self) -> None:
        deadline = time.monotonic() + self.connect_timeout_s
        delay_s, k = RETRY_S[0], 0
        while True:
            url = self.urls[k % len(self.urls)]
            try:
                if await self._follow(url):
                    return
                delay_s = RETRY_S[0]
            except (http.ApiError, aiohttp.ClientError, asyncio.TimeoutError, OSError,
                    ValueError) as exc:
                self.last_error = _one_line(exc)
                if self.connected:
                    print(f"ipchain watch: {url}: {self.last_error}; retrying",
                          file=sys.stderr, flush=True)
            if not self.connected and time.monotonic() >= deadline:
                raise self.never_connected()
            k += 1
            await asyncio.sleep(delay_s if k % len(self.urls) == 0 else 0)
            delay_s = min(delay_s * 2, RETRY_S[1])

    async def _follow(self, url: str) -> bool:
        """Read one node's stream; True once `count` records were shown."""
        async with AsyncClient(url, timeout_s=self.connect_timeout_s) as node:
            await node.status()  # answers: we are connected, even to an idle chain
            self.connected = True
            print(f"ipchain watch: reading the event stream of {url}", file=sys.stderr,
                  flush=True)
            if self.ready is not None:
                self.ready.set()
            async for item in node.events(from_height=self.from_height):
                record = item["data"]
                if isinstance(record, dict) and isinstance(record.get("height"), int):
                    self.from_height = record["height"]  # a reconnect resumes here
                payload = json.dumps(record).encode()
                if self.printer.show(item.get("event") or "message", payload) and \
                        self.count and self.printer.shown >= self.count:
                    return True
        return False


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, http.ApiError):
        return f"{exc.code}: {exc.message}" if exc.status else "not answering"
    if isinstance(exc, (aiohttp.ClientConnectionError, OSError, asyncio.TimeoutError)):
        return "not answering"
    return str(exc) or type(exc).__name__


# -- MQTT (--mqtt) --------------------------------------------------------------------------
async def watch(url: str, topics: list[str] | None = None, *, count: int = 0,
                timeout_s: float = 0.0, as_json: bool = False, every_copy: bool = False,
                connect_timeout_s: float = CONNECT_TIMEOUT_S, out: TextIO = sys.stdout,
                ready: asyncio.Event | None = None) -> int:
    """Print records from the broker until `count` or `timeout_s` (0 = no limit); 0 on a
    normal end, NeverConnected if the broker never accepted us within `connect_timeout_s`.

    `ready` is set once subscribed (tests publish only after that)."""
    from node.mqtt import parse_mqtt_url

    address = parse_mqtt_url(url)
    filters = topics or [f"{address.topic_prefix}/#"]
    printer = Printer(out, as_json, every_copy)
    state = {"connected": False, "error": ""}
    try:
        await asyncio.wait_for(_follow(address, filters, printer, count, ready, state,
                                       connect_timeout_s), timeout_s or None)
    except asyncio.TimeoutError:
        if not state["connected"]:
            raise _broker_never_connected(address, connect_timeout_s, state) from None
    return 0


def _broker_never_connected(address: Any, connect_timeout_s: float,
                            state: dict[str, Any]) -> NeverConnected:
    why = state["error"] or "no answer"
    return NeverConnected(f"the MQTT broker at {address.redacted()} did not accept a "
                          f"connection within {connect_timeout_s:g}s ({why}); is it running? "
                          f"`ipchain up --mqtt` starts one")


async def _follow(address: Any, filters: list[str], printer: "Printer", count: int,
                  ready: asyncio.Event | None, state: dict[str, Any],
                  connect_timeout_s: float) -> None:
    deadline = time.monotonic() + connect_timeout_s
    delay_s = RETRY_S[0]
    while True:
        try:
            async with aiomqtt.Client(address.host, address.port, username=address.username,
                                      password=address.password) as client:
                for topic in filters:
                    await client.subscribe(topic, qos=1)
                state["connected"] = True
                print(f"ipchain watch: subscribed to {', '.join(filters)} at "
                      f"{address.redacted()}", file=sys.stderr, flush=True)
                if ready is not None:
                    ready.set()
                delay_s = RETRY_S[0]
                async for message in client.messages:
                    if printer.show(str(message.topic), message.payload) and \
                            count and printer.shown >= count:
                        return
        except aiomqtt.MqttError as exc:
            state["error"] = str(exc)
            if state["connected"]:
                print(f"ipchain watch: broker {address.redacted()}: {exc}; retrying in "
                      f"{delay_s:.1f}s", file=sys.stderr)
        if not state["connected"] and time.monotonic() >= deadline:
            raise _broker_never_connected(address, connect_timeout_s, state)
        await asyncio.sleep(delay_s)
        delay_s = min(delay_s * 2, RETRY_S[1])


class Printer:
    def __init__(self, out: TextIO, as_json: bool, every_copy: bool) -> None:
        self.out = out
        self.as_json = as_json
        self.every_copy = every_copy
        self.seen: collections.OrderedDict[tuple[str, str], None] = collections.OrderedDict()
        self.shown = 0

    def show(self, topic: str, payload: Any) -> bool:
        """Print one message unless it is a copy already shown; True if printed."""
        try:
            record = json.loads(payload)
            key = (record["chain"], record["id"])
        except (ValueError, TypeError, KeyError):
            record, key = None, None  # not ours: show it raw
        if key is not None and not self.every_copy:
            if key in self.seen:
                return False
            self.seen[key] = None
            if len(self.seen) > MAX_REMEMBERED_IDS:
                self.seen.popitem(last=False)
        self.out.write(self.render(topic, payload, record) + "\n")
        self.out.flush()
        self.shown += 1
        return True

    def render(self, topic: str, payload: Any, record: dict[str, Any] | None) -> str:
        if self.as_json:
            return (json.dumps(record, separators=(",", ":"), sort_keys=True) if record
                    else json.dumps({"topic": topic, "payload": _text(payload)}))
        if record is None:
            return f"{topic} {_text(payload)}"
        stamp = time.strftime("%H:%M:%S", time.gmtime(record.get("timestamp_ms", 0) / 1000))
        if record.get("type") == "block":
            return (f"{stamp} block {record['id']:>8} txs={record['tx_count']} "
                    f"events={record['event_count']} "
                    f"hash={record['hash'][:16]} node={record['node']}")
        data = json.dumps(record.get("data"), separators=(",", ":"), sort_keys=True)
        return (f"{stamp} event {record['id']:>8} {record['contract']}/{record['name']} {data} "
                f"tx={record['tx_id'][:16]} node={record['node']}")


def _text(payload: Any) -> str:
    return payload.decode(errors="replace") if isinstance(payload, (bytes, bytearray)) \
        else str(payload)
