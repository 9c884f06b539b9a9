"""`ipchain watch`: follow a cluster's committed blocks and contract events over MQTT.

Subscribes (QoS 1) to the broker the cluster publishes to — the nodes' mqtt_url from
<data-dir>, or --mqtt-url — and prints one line per record. Several nodes may publish
the same chain, and a publisher may resend after a reconnect, so each record is shown
once by its id unless --all is given. A lost broker connection is retried.

    ipchain watch                                  # everything, as readable lines
    ipchain watch --topic 'ipchain/+/events/token/#' --json
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

import aiomqtt

from ipchain.cluster import broker
from ipchain.cluster import layout
from scripts.argtypes import non_negative

MAX_REMEMBERED_IDS = 100_000
RETRY_S = (0.5, 5.0)


def add_parser(sub: Any) -> None:
    watch = sub.add_parser("watch", help="print committed blocks and contract events (MQTT)")
    watch.add_argument("--data-dir", default=layout.DEFAULT_DATA_DIR, type=Path,
                       help="cluster data directory whose broker to use (default: %(default)s)")
    watch.add_argument("--mqtt-url", metavar="URL", help="broker to subscribe to "
                       "(default: the mqtt_url in the cluster's node configs)")
    watch.add_argument("--topic", action="append", metavar="FILTER",
                       help="MQTT topic filter, repeatable (default: <prefix>/#, i.e. all)")
    watch.add_argument("--json", action="store_true", help="print each payload as one JSON line")
    watch.add_argument("--all", action="store_true",
                       help="print every copy (one per publishing node), not each record once")
    watch.add_argument("--count", type=non_negative, default=0,
                       help="exit after this many records (default 0: no limit)")
    watch.add_argument("--timeout", type=float, default=0.0,
                       help="exit after this many seconds (default: run until Ctrl-C)")


def run(args: argparse.Namespace) -> int:
    url = args.mqtt_url or broker.configured_url(args.data_dir)
    if not url:
        raise ValueError(f"no MQTT broker configured in {args.data_dir}: start the cluster with "
                         f"`ipchain up --mqtt` (or --mqtt-url), or pass --mqtt-url")
    return asyncio.run(watch(url, args.topic, count=args.count, timeout_s=args.timeout,
                             as_json=args.json, every_copy=args.all))


async def watch(url: str, topics: list[str] | None = None, *, count: int = 0,
                timeout_s: float = 0.0, as_json: bool = False, every_copy: bool = False,
                out: TextIO = sys.stdout, ready: asyncio.Event | None = None) -> int:
    """Print records until `count` or `timeout_s` (0 = no limit); 0 on a normal end.

    `ready` is set once subscribed (tests publish only after that)."""
    from node.mqtt import parse_mqtt_url

    address = parse_mqtt_url(url)
    filters = topics or [f"{address.topic_prefix}/#"]
    printer = Printer(out, as_json, every_copy)
    try:
        await asyncio.wait_for(_follow(address, filters, printer, count, ready),
                               timeout_s or None)
    except asyncio.TimeoutError:
        pass
    return 0


async def _follow(address: Any, filters: list[str], printer: "Printer", count: int,
                  ready: asyncio.Event | None) -> None:
    delay_s = RETRY_S[0]
    while True:
        try:
            async with aiomqtt.Client(address.host, address.port, username=address.username,
                                      password=address.password) as client:
                for topic in filters:
                    await client.subscribe(topic, qos=1)
                if ready is not None:
                    ready.set()
                delay_s = RETRY_S[0]
                async for message in client.messages:
                    if printer.show(str(message.topic), message.payload) and \
                            count and printer.shown >= count:
                        return
        except aiomqtt.MqttError as exc:
            print(f"ipchain watch: broker {address.redacted()}: {exc}; retrying in "
                  f"{delay_s:.1f}s", file=sys.stderr)
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
