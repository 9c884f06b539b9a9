"""The hostile-input attack table (issue 17): each attack of the robustness pass, re-run
against node0 — the primary — of a real 4-node cluster on loopback, every node started
with a 1024-descriptor limit.

For each attack it records what node0 answered, its worst event-loop stall during
the attack (the node's own 50 ms probe, `ipchain_event_loop_lag_recent_max_ms`), its
peak RSS growth (sampled from /proc every 50 ms), how many transactions a steady
client load sent through node1 committed meanwhile, and whether any node changed
view. Attacks are bounded in count and time and go only to the nodes started here.

    python -m ipchain.workloads.hostile --out hostile.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import aiohttp
import msgpack

from consensus import messages as wire

from ipchain.cluster.manager import Cluster, start_and_wait
from ipchain.cluster.procs import find_free_base_port
from ipchain.sdk import client
from node.peer_auth import sign_request

MSGPACK = {"Content-Type": "application/msgpack"}
FD_LIMIT = 1024
LAG_GOAL_MS, RSS_GOAL_MB = 100, 64


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Bench:
    def __init__(self, cluster: Cluster, session: aiohttp.ClientSession) -> None:
        self.cluster, self.session = cluster, session
        self.target = cluster.urls[0]
        self.pid = cluster.pid(0) or 0
        self.committed = 0
        self.load_errors = 0
        self.running = True

    # -- steady load through node1 and the probes ------------------------------------------
    async def load(self, org: str) -> None:
        key = self.cluster.client_key(org)
        while self.running:
            nonce = self.cluster.nonces.reserve(client.sender_hex(key))
            tx = client.sign(key, self.cluster.chain_id, nonce, "token.transfer",
                             {"to": "north-university", "amount": 1})
            try:
                answer = await client.submit(self.session, self.cluster.urls[1], tx, wait=True,
                                             timeout_ms=20_000)
                self.committed += answer.get("status") == "committed"
            except client.ApiError:
                self.load_errors += 1
                await asyncio.sleep(0.1)

    async def metric(self, name: str) -> float:
        async with self.session.get(self.target + "/metrics") as resp:
            text = await resp.text()
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return -1.0

    async def views(self) -> list[int]:
        return [(await client.get_status(self.session, url))["view"] for url in self.cluster.urls]

    async def measure(self, name: str, attack: Callable[[], Awaitable[str]]) -> dict[str, Any]:
        """Run one attack; sample node0's RSS meanwhile; read its loop-lag probe after."""
        # the probe reports the worst of the last 10 s: wait for earlier stalls to leave it
        settle_until = time.monotonic() + 11.0
        await asyncio.sleep(1.0)
        while (await self.metric("ipchain_event_loop_busy_recent_max_ms") > 20
               and time.monotonic() < settle_until):
            await asyncio.sleep(0.5)
        busy_before = await self.metric("ipchain_event_loop_busy_recent_max_ms")
        base_rss, peak = rss_mb(self.pid), [0.0]
        committed_before = self.committed

        lags, busy = [0.0], [0.0]

        async def sample() -> None:
            for tick in range(10**9):
                peak[0] = max(peak[0], rss_mb(self.pid))
                if tick % 40 == 39:  # every 2 s: a long attack outlasts the probe's window
                    try:
                        lags.append(await self.metric("ipchain_event_loop_lag_recent_max_ms"))
                        busy.append(await self.metric("ipchain_event_loop_busy_recent_max_ms"))
                    except (aiohttp.ClientError, OSError, asyncio.TimeoutError):
                        pass
                await asyncio.sleep(0.05)

        sampler = asyncio.create_task(sample())
        started = time.monotonic()
        try:
            outcome = await attack()
        finally:
            sampler.cancel()
        seconds = time.monotonic() - started
        lag_ms = max(lags + [await self.metric("ipchain_event_loop_lag_recent_max_ms")])
        busy_ms = max(busy + [await self.metric("ipchain_event_loop_busy_recent_max_ms")])
        views = await self.views()
        row = {"attack": name, "outcome": outcome, "loop_block_ms": lag_ms,
               "loop_block_cpu_ms": busy_ms, "loop_block_cpu_ms_before": busy_before,
               "rss_base_mb": round(base_rss, 1), "rss_growth_mb": round(peak[0] - base_rss, 1),
               "seconds": round(seconds, 1), "commits_meanwhile": self.committed - committed_before,
               "views": views, "view_change": any(v != 0 for v in views)}
        print(json.dumps(row), flush=True)
        return row

    # -- the attacks -------------------------------------------------------------------------
    async def post(self, path: str, body: bytes, headers: dict[str, str]) -> str:
        try:
            async with self.session.post(self.target + path, data=body, headers=headers) as resp:
                answer = await resp.read()
                code = json.loads(answer)["error"]["code"] if resp.status >= 400 else ""
                return f"{resp.status} {code}".strip()
        except (aiohttp.ClientError, OSError, ValueError, KeyError) as exc:
            return f"connection: {type(exc).__name__}"

    def peer_headers(self, path: str, body: bytes) -> dict[str, str]:
        key = client.load_key(self.cluster.node_dir(1) / "node.key")
        return {**MSGPACK, **sign_request(key, self.cluster.chain_id, 1, "POST", path, body)}

    async def junk_batch_1m(self) -> str:
        body = b"\xdd" + (1_000_000).to_bytes(4, "big") + b"\xc4\x00" * 1_000_000
        return await self.post("/v1/txs", body, MSGPACK)

    async def junk_batch_8mb(self) -> str:
        items = 8 * 1024 * 1024 // 3 - 10
        body = b"\xdd" + items.to_bytes(4, "big") + b"\xc4\x01x" * items
        json_body = b'{"txs": [' + b"{}," * (8 * 1024 * 1024 // 3 - 10) + b"{}]}"
        return " / ".join([await self.post("/v1/txs", body, MSGPACK),
                           await self.post("/v1/txs", json_body,
                                           {"Content-Type": "application/json"})])

    async def full_junk_batch(self) -> str:
        """The cap's worth of items, each 8 KB of junk: decoded, each refused on its own."""
        body = msgpack.packb([b"\x01" * 8192] * 1000, use_bin_type=True)
        return await self.post("/v1/txs", body, MSGPACK)

    async def full_valid_batch(self) -> str:
        key = self.cluster.client_key("client-001")
        txs = [client.sign(key, self.cluster.chain_id, self.cluster.nonces.reserve(
            client.sender_hex(key)), "token.transfer", {"to": "north-university", "amount": 1})
            for _ in range(1000)]
        return await self.post("/v1/txs", client.pack_batch(txs), MSGPACK)

    async def empty_peer_items_16m(self) -> str:
        body = b"\xdd" + (16_000_000).to_bytes(4, "big") + b"\xc4\x00" * 16_000_000
        stranger = await self.post("/p2p/messages", body, MSGPACK)
        signed = await self.post("/p2p/messages", body, self.peer_headers("/p2p/messages", body))
        return f"non-peer: {stranger} / signed peer: {signed}"

    async def forged_consensus_flood(self, requests: int = 50) -> str:
        """Well-formed PREPAREs under a validator's name with junk signatures, in 64 KiB
        bodies anyone may send: each costs the replica a signature check."""
        statuses: dict[str, int] = {}
        for r in range(requests):
            msgs = [wire.encode(wire.Signed(wire.Prepare(0, 10**6 + r * 1000 + k, os.urandom(32)),
                                            1, os.urandom(64))) for k in range(500)]
            body = msgpack.packb(msgs, use_bin_type=True)
            outcome = await self.post("/p2p/messages", body, MSGPACK)
            statuses[outcome] = statuses.get(outcome, 0) + 1
        return f"{len(body)} B bodies: " + ", ".join(f"{k} x{v}" for k, v in statuses.items())

    async def b5_inputs(self) -> str:
        deep = b"[" * 100_000 + b"]" * 100_000
        cases = [("GET", "/v1/blocks/9223372036854775808", b"", {}),
                 ("GET", "/v1/blocks/\u00b2", b"", {}), ("GET", "/v1/blocks/\u0661", b"", {}),
                 ("POST", "/v1/tx", deep, {}), ("POST", "/v1/txs", deep, {}),
                 ("POST", "/v1/tx", b'{"op": "\\ud800"}', {}),
                 ("POST", "/v1/tx", b"{}", {"Content-Type": "application/json; charset=x-bogus"}),
                 ("POST", "/v1/tx?wait=commit&timeout_ms=\u00b2", b"{}", {}),
                 ("DELETE", "/admin/faults/\u00b2", b"", {}), ("PUT", "/v1/tx", b"", {})]
        statuses = []
        for method, path, body, headers in cases:
            async with self.session.request(method, self.target + path, data=body,
                                            headers=headers) as resp:
                await resp.read()
                statuses.append(resp.status)
        return "statuses " + ",".join(map(str, statuses))

    async def slowloris(self, sockets: int = 1100, hold_s: float = 20.0) -> str:
        port = int(self.target.rsplit(":", 1)[1])
        conns: list[asyncio.StreamWriter | None] = [None] * sockets
        opened = [0]

        async def connect(i: int) -> None:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"GET /v1/status HTTP/1.1\r\nHost: x\r\n")
                conns[i] = writer
                opened[0] += 1
            except OSError:
                conns[i] = None

        served, deadline = [0, 0], time.monotonic() + hold_s
        while time.monotonic() < deadline:
            await asyncio.gather(*(connect(i) for i, w in enumerate(conns)
                                   if w is None or w.is_closing()))
            for writer in conns:
                if writer is not None and not writer.is_closing():
                    writer.write(b"X-Slow: 1\r\n")
            try:  # a fresh client (a peer, say) must still get answers
                await client.get_status(self.session, self.target)
                served[0] += 1
            except client.ApiError:
                served[1] += 1
            await asyncio.sleep(1.0)
        for writer in conns:
            if writer is not None:
                writer.transport.abort()
        return (f"{opened[0]} sockets opened over {hold_s:.0f} s; status requests during it: "
                f"{served[0]} answered, {served[1]} failed")

    async def sse_subscribers(self, count: int = 300, hold_s: float = 10.0) -> str:
        readers: list[asyncio.StreamWriter] = []
        port = int(self.target.rsplit(":", 1)[1])
        statuses: dict[str, int] = {}
        for _ in range(count):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /v1/events?from_height=1 HTTP/1.1\r\nHost: x\r\n\r\n")
            line = (await reader.readline()).decode(errors="replace").split(" ")[1:2]
            key = line[0] if line else "closed"
            statuses[key] = statuses.get(key, 0) + 1
            readers.append(writer)  # never read again
        await asyncio.sleep(hold_s)
        for writer in readers:
            writer.transport.abort()
        return "HTTP " + ", ".join(f"{k} x{v}" for k, v in sorted(statuses.items()))

    async def big_p2p_from_stranger(self) -> str:
        port = int(self.target.rsplit(":", 1)[1])
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /p2p/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/"
                     b"msgpack\r\nContent-Length: 134217728\r\n\r\n" + b"\x00" * 65536)
        status = (await asyncio.wait_for(reader.readline(), 10)).decode().split(" ")[1]
        writer.transport.abort()
        return f"{status} after 64 KiB of a declared 128 MiB body (rest never read)"

    async def block_flood(self, requests: int = 300) -> str:
        statuses: dict[int, int] = {}
        for _ in range(requests):
            async with self.session.get(self.target + "/p2p/blocks?from=1&to=256") as resp:
                await resp.read()
                statuses[resp.status] = statuses.get(resp.status, 0) + 1
        return ", ".join(f"{k} x{v}" for k, v in sorted(statuses.items()))


def run(data_dir: Path, only: str = "") -> list[dict[str, Any]]:
    node_cmd = ["prlimit", f"--nofile={FD_LIMIT}:{FD_LIMIT}", "--", sys.executable, "-m", "node"]
    cluster = Cluster.create(data_dir, 4, find_free_base_port(4), 4, node_cmd=node_cmd)
    start_and_wait(cluster, 90.0)
    try:
        return asyncio.run(attack_all(cluster, only))
    finally:
        cluster.stop(timeout_s=15.0)


async def attack_all(cluster: Cluster, only: str = "") -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if True:
        async with client.open_session(total_timeout_s=120.0) as session:
            bench = Bench(cluster, session)
            loads = [asyncio.create_task(bench.load(f"client-00{i}")) for i in (0, 2, 3)]
            for name, attack in [
                    ("B3 1M junk items, POST /v1/txs (2 MB)", bench.junk_batch_1m),
                    ("B3 8 MB batch, msgpack / JSON", bench.junk_batch_8mb),
                    ("1,000 items of 8 KB junk (at the cap)", bench.full_junk_batch),
                    ("1,000 valid txs (at the cap)", bench.full_valid_batch),
                    ("B3 16M empty items, POST /p2p/messages", bench.empty_peer_items_16m),
                    ("B5 inputs (10 requests)", bench.b5_inputs),
                    ("forged PREPAREs, 50 x 500 per 64 KiB body, non-peer",
                     bench.forged_consensus_flood),
                    ("B6 slowloris, 1,100 sockets, fd limit 1024", bench.slowloris),
                    ("300 non-reading SSE subscribers", bench.sse_subscribers),
                    ("128 MiB /p2p body from a non-peer", bench.big_p2p_from_stranger),
                    ("GET /p2p/blocks flood (300 x 256 blocks)", bench.block_flood)]:
                if only.lower() in name.lower():
                    rows.append(await bench.measure(name, attack))
            bench.running = False
            for task in loads:
                task.cancel()
            await asyncio.gather(*loads, return_exceptions=True)
            log_bytes = cluster.log_path(0).stat().st_size
            rows.append({"attack": "node0 log size after all attacks", "outcome": f"{log_bytes} B"})
    return rows


def render(rows: list[dict[str, Any]]) -> str:
    lines = ["| attack | node0's answer | loop block ms (wall) | loop block ms (CPU) "
             "| RSS growth MB | commits meanwhile | view change |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['attack']} | {r['outcome']} | {r.get('loop_block_ms', '')} | "
                     f"{r.get('loop_block_cpu_ms', '')} | "
                     f"{r.get('rss_growth_mb', '')} | {r.get('commits_meanwhile', '')} | "
                     f"{r.get('view_change', '')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ipchain.workloads.hostile",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="hostile.json", help="JSON results file")
    parser.add_argument("--only", default="", help="run only attacks whose name has this")
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    data_dir = Path(tempfile.mkdtemp(prefix="ipchain-hostile-"))
    try:
        rows = run(data_dir / "cluster", args.only)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")
    print(render(rows))
    bad = [r["attack"] for r in rows if "loop_block_ms" in r and (
        r["loop_block_cpu_ms"] > LAG_GOAL_MS or r["rss_growth_mb"] > RSS_GOAL_MB or r["view_change"])]
    print(f"goals (CPU block <= {LAG_GOAL_MS} ms, RSS <= +{RSS_GOAL_MB} MB, no view change) "
          f"missed by: {bad or 'none'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
