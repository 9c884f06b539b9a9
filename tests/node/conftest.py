"""Fixtures for the observability tests: an in-process cluster and a real mosquitto.

`local_cluster(n, mqtt={index: url})` starts n real Runtimes and their aiohttp apps in
the test's event loop, on free loopback ports, talking real HTTP to each other — the
node process minus the process. `mosquitto` is the Debian broker binary run as a
child process on a free loopback port with a generated config. A fixture never installs
anything: `.ci/run` installs mosquitto, and without it the tests skip, saying why.

Waiting is always on a condition with a deadline (`until`), never a bare sleep.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import aiohttp
import aiomqtt
import nacl.signing
import pytest
from aiohttp import web

from contracts.tx import Transaction, sign_tx
from node.api import build_app
from node.config import CONSENSUS_DEFAULTS, NodeConfig, Peer
from node.runtime import Runtime

HOST = "127.0.0.1"
CHAIN_ID = "ipchain-test"
ORGS = ("org-a", "org-b", "org-c", "org-d")
ORG_BPC = 1_000_000_000


async def until(predicate: Callable[[], Any], timeout_s: float, what: str,
                poll_s: float = 0.02) -> Any:
    """Poll `predicate` (sync or async) until truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(poll_s)


def free_ports(count: int) -> list[int]:
    """Ports the kernel handed out, all held at once so they are distinct."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind((HOST, 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


def is_listening(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.2):
            return True
    except OSError:
        return False


# -- the in-process cluster ---------------------------------------------------------------
class Node:
    def __init__(self, runtime: Runtime, app: web.Application, runner: web.AppRunner,
                 url: str) -> None:
        self.runtime, self.app, self.runner, self.url = runtime, app, runner, url

    @property
    def height(self) -> int:
        return self.runtime.executor.height


class LocalCluster:
    def __init__(self, root: Path, n: int, mqtt: dict[int, str],
                 consensus: dict[str, int]) -> None:
        self.root = root
        self.n = n
        self.mqtt = mqtt
        self.consensus = {**CONSENSUS_DEFAULTS, **consensus}
        self.keys = {org: nacl.signing.SigningKey(bytes([i + 1]) * 32)
                     for i, org in enumerate(ORGS)}
        self.nonces = {org: 0 for org in ORGS}
        self.node_keys = [nacl.signing.SigningKey(bytes([100 + i]) * 32) for i in range(n)]
        self.ports = free_ports(n)
        self.genesis = {
            "chain_id": CHAIN_ID, "genesis_time_ms": 1_700_000_000_000,
            "validators": [{"id": f"node{i}", "index": i,
                            "public_key": bytes(k.verify_key).hex()}
                           for i, k in enumerate(self.node_keys)],
            "organisations": [{"id": org, "name": org, "roles": ["member"],
                               "keys": [bytes(key.verify_key).hex()], "bpc": ORG_BPC}
                              for org, key in self.keys.items()],
            "contracts": {}}
        self.nodes: list[Node | None] = [None] * n
        self.session: aiohttp.ClientSession | None = None

    def url(self, i: int) -> str:
        return f"http://{HOST}:{self.ports[i]}"

    def config(self, i: int) -> NodeConfig:
        peers = tuple(Peer(f"node{j}", j, self.url(j)) for j in range(self.n) if j != i)
        return NodeConfig(
            node_id=f"node{i}", index=i, host=HOST, port=self.ports[i],
            data_dir=self.root / f"node{i}", signing_key=self.node_keys[i],
            genesis=self.genesis, admin_token="t" * 32, peers=peers,
            mqtt_url=self.mqtt.get(i, ""), consensus=dict(self.consensus))

    async def start(self) -> None:
        self.session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        for i in range(self.n):
            await self.start_node(i)

    async def start_node(self, i: int) -> Node:
        runtime = Runtime(self.config(i))
        await runtime.start()
        app = build_app(runtime)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await runner.setup()
        await web.TCPSite(runner, HOST, self.ports[i], reuse_address=True).start()
        self.nodes[i] = Node(runtime, app, runner, self.url(i))
        return self.nodes[i]

    async def stop_node(self, i: int) -> None:
        node, self.nodes[i] = self.nodes[i], None
        if node is not None:
            await node.runner.cleanup()
            await node.runtime.stop()

    async def stop(self) -> None:
        for i in range(self.n):
            await self.stop_node(i)
        if self.session is not None:
            await self.session.close()

    def node(self, i: int) -> Node:
        node = self.nodes[i]
        assert node is not None, f"node{i} is not running"
        return node

    # -- transactions ----------------------------------------------------------------------
    def transfers(self, count: int, amount: int = 1) -> list[Transaction]:
        """`count` token.transfer txs, senders round-robin, each to the next org."""
        txs = []
        for k in range(count):
            sender = ORGS[k % len(ORGS)]
            target = ORGS[(k + 1) % len(ORGS)]
            nonce = self.nonces[sender]
            self.nonces[sender] += 1
            txs.append(sign_tx(self.keys[sender], CHAIN_ID, nonce, "token.transfer",
                               {"to": target, "amount": amount}))
        return txs

    async def submit(self, txs: list[Transaction], node: int = 0, chunk: int = 50) -> None:
        assert self.session is not None
        for start in range(0, len(txs), chunk):
            body = {"txs": [tx.to_json() for tx in txs[start:start + chunk]]}
            async with self.session.post(self.url(node) + "/v1/txs", json=body) as resp:
                answer = await resp.json()
                assert resp.status == 202 and not answer["rejected"], answer

    def committed_on(self, i: int, txs: list[Transaction]) -> bool:
        storage = self.node(i).runtime.storage
        return all(storage.tx(bytes.fromhex(tx.id)) is not None for tx in txs)

    async def wait_committed(self, txs: list[Transaction], nodes: list[int] | None = None,
                             timeout_s: float = 20.0) -> None:
        for i in nodes if nodes is not None else [j for j in range(self.n) if self.nodes[j]]:
            await until(lambda: self.committed_on(i, txs), timeout_s,
                        f"{len(txs)} transactions committed on node{i}")

    async def get_text(self, i: int, path: str) -> str:
        assert self.session is not None
        async with self.session.get(self.url(i) + path) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.text()


@pytest.fixture
async def local_cluster(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[LocalCluster]]]:
    """local_cluster(n=4, mqtt={index: url}, **consensus) -> started LocalCluster."""
    made: list[LocalCluster] = []

    async def start(n: int = 4, mqtt: dict[int, str] | None = None,
                    **consensus: int) -> LocalCluster:
        cluster = LocalCluster(tmp_path / f"c{len(made)}", n, mqtt or {}, consensus)
        made.append(cluster)
        await cluster.start()
        return cluster

    yield start
    for cluster in made:
        await cluster.stop()


# -- mosquitto ------------------------------------------------------------------------------
def find_mosquitto() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)),
        None)


class Mosquitto:
    """A mosquitto child process on a fixed loopback port; stop() and start() again."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_ports(1)[0]
        self.proc: subprocess.Popen | None = None
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text("\n".join([
            f"listener {self.port} {HOST}", "allow_anonymous true",
            # persistence keeps a subscriber's session (and its queued QoS 1 messages)
            # across a broker restart, as a production broker would
            "persistence true", f"persistence_location {workdir}/",
            "log_dest stderr", "log_type error", "log_type warning",
            *(["user root"] if os.geteuid() == 0 else []), ""]))

    @property
    def url(self) -> str:
        return f"mqtt://{HOST}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> None:
        log = open(self.workdir / "mosquitto.log", "ab")
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)], stdout=log,
                                     stderr=log, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + timeout_s
        while not is_listening(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mosquitto did not start: "
                                   f"{(self.workdir / 'mosquitto.log').read_text()[-500:]}")
            time.sleep(0.02)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture
def mosquitto(tmp_path: Path) -> Any:
    binary = find_mosquitto()
    if binary is None:
        pytest.skip("mosquitto is not installed (.ci/run installs it: apt-get install -y mosquitto)")
    broker = Mosquitto(binary, tmp_path / "mosquitto")
    try:
        broker.start()
    except (OSError, RuntimeError) as exc:
        pytest.skip(f"mosquitto could not be started: {exc}")
    yield broker
    broker.stop()


# -- an MQTT subscriber ---------------------------------------------------------------------
class Subscriber:
    """Collects (topic, payload dict) in arrival order from a background task."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []

    def payloads(self, kind: str | None = None, node: str | None = None) -> list[dict[str, Any]]:
        return [p for _, p in self.messages
                if (kind is None or p["type"] == kind) and (node is None or p["node"] == node)]


@asynccontextmanager
async def subscribed(port: int, topic: str, identifier: str | None = None,
                     clean_session: bool = True,
                     into: Subscriber | None = None) -> AsyncIterator[Subscriber]:
    sub = into or Subscriber()
    async with aiomqtt.Client(HOST, port, identifier=identifier,
                              clean_session=clean_session) as client:
        await client.subscribe(topic, qos=1)

        async def collect() -> None:
            async for message in client.messages:
                sub.messages.append((str(message.topic), json.loads(message.payload)))

        task = asyncio.create_task(collect())
        try:
            yield sub
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
