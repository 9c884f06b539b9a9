"""Four hosts on one machine: a cluster from `ipchain net init` bundles, over mutual TLS.

Each node runs in its own Linux network namespace with its own address on a bridge that
lives in a fifth namespace (nothing is added to the machine's own network), started from
its generated bundle exactly as on a real host. Every client request also comes from a
namespace (tests/hosts/probe.py under `ip netns exec`). The test commits transfers, shows
the peer port's handshakes (cluster certificate accepted; none, foreign or expired
refused; peer routes refused on the client port), cuts one node's link, shows the other
three go on, restores it and shows it catches up.

Needs root and iproute2 (CI has both); elsewhere it is skipped, saying which is missing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ipchain.cluster import bundle, tls

pytestmark = pytest.mark.cluster
ROOT = Path(__file__).resolve().parents[2]
N = 4
SUBNET = "10.99.0"


def _ip(*args: str, ns: str | None = None) -> None:
    argv = ["ip", "netns", "exec", ns, "ip", *args] if ns else ["ip", *args]
    subprocess.run(argv, check=True, capture_output=True, timeout=30)


def _netns_usable() -> str:
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if shutil.which("ip") is None:
        return "needs iproute2's `ip`"
    probe = f"ipcprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True)
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return "" if made.returncode == 0 else f"ip netns add failed: {made.stderr.decode().strip()}"


class NetnsCluster:
    def __init__(self, tmp: Path) -> None:
        tag = f"{os.getpid() % 100000}"
        self.switch = f"ipc{tag}sw"
        self.hosts = [f"ipc{tag}n{i}" for i in range(N)]
        self.links = [(f"v{tag}a{i}", f"v{tag}b{i}") for i in range(N)]
        self.addresses = [f"{SUBNET}.{i + 1}" for i in range(N)]
        self.bundle = tmp / "bundle"
        self.logs = tmp
        self.procs: list[subprocess.Popen] = []
        self.lines: list[str] = []

    def say(self, line: str) -> None:
        self.lines.append(line)
        print(line)

    def build(self) -> None:
        _ip("netns", "add", self.switch)
        _ip("link", "add", "br0", "type", "bridge", ns=self.switch)
        _ip("link", "set", "br0", "up", ns=self.switch)
        for host, (inner, outer), address in zip(self.hosts, self.links, self.addresses):
            _ip("netns", "add", host)
            _ip("link", "add", inner, "type", "veth", "peer", "name", outer)
            _ip("link", "set", inner, "netns", host)
            _ip("link", "set", outer, "netns", self.switch)
            _ip("link", "set", outer, "master", "br0", "up", ns=self.switch)
            _ip("addr", "add", f"{address}/24", "dev", inner, ns=host)
            _ip("link", "set", inner, "up", ns=host)
            _ip("link", "set", "lo", "up", ns=host)

    def teardown(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for ns in [*self.hosts, self.switch]:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)

    def start_node(self, i: int) -> None:
        home = self.bundle / f"node{i}"
        log = (self.logs / f"node{i}.out").open("w")
        self.procs.append(subprocess.Popen(
            ["ip", "netns", "exec", self.hosts[i], sys.executable, "-m", "node", "--config",
             str(home / "config.toml")], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, env={**os.environ, "PYTHONPATH": str(ROOT)}))

    def probe(self, host: int, *args: str, timeout_s: float = 120) -> dict:
        out = subprocess.run(["ip", "netns", "exec", self.hosts[host], sys.executable, "-m",
                              "tests.hosts.probe", *args], cwd=ROOT, capture_output=True,
                             text=True, timeout=timeout_s)
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout)

    def api(self, i: int) -> str:
        return f"http://{self.addresses[i]}:{bundle.DEFAULT_API_PORT}"

    def link(self, i: int, state: str) -> None:
        _ip("link", "set", self.links[i][0], state, ns=self.hosts[i])


@pytest.fixture
def testnet(tmp_path: Path):
    why = _netns_usable()
    if why:
        pytest.skip(why)
    net = NetnsCluster(tmp_path)
    try:
        net.build()
        slots = bundle.plan_nodes([(a, 1) for a in net.addresses])
        bundle.write_bundles(net.bundle, slots)
        for i in range(N):
            net.start_node(i)
        yield net
    finally:
        net.teardown()


def _heights(net: NetnsCluster, nodes: range | list[int], via: int) -> dict[int, int]:
    return {i: net.probe(via, "status", net.api(i), "30")["height"] for i in nodes}


def test_four_hosts_over_mutual_tls_survive_a_cut_link_and_refuse_strangers(
        testnet: NetnsCluster, tmp_path: Path) -> None:
    net = testnet
    for i in range(N):
        status = net.probe((i + 1) % N, "status", net.api(i), "90")
        net.say(f"node{i} at {net.addresses[i]} (namespace {net.hosts[i]}): up, view "
                f"{status['view']}, height {status['height']}")

    first = net.probe(1, "transfer", net.api(0), str(net.bundle), "5", "1")
    assert first["committed"] == 5
    net.say(f"5 transfers through node0 committed at heights {first['heights']}")

    ca = str(net.bundle / "node0" / "tls" / "ca.pem")
    peer = (net.addresses[0], str(bundle.DEFAULT_P2P_PORT))
    own = net.probe(3, "tls", *peer, ca, str(net.bundle / "node3" / "tls" / "node.pem"),
                    str(net.bundle / "node3" / "tls" / "node.key"))
    assert own["ok"] and own["answer"].startswith("HTTP/1.1 200"), own
    net.say(f"handshake node3 -> node0 peer port: {own['version']} {own['cipher']}, "
            f"server {own['server']}, {own['answer']}")
    now = dt.datetime.now(dt.timezone.utc)
    foreign_ca = tls.new_ca("someone-else", now)
    strangers = {"foreign": tls.issue_node_cert(foreign_ca, "someone-else", "node0",
                                                [net.addresses[3]], now),
                 "expired": tls.issue_node_cert(
                     tls.Pem((net.bundle / "ca" / "ca.pem").read_bytes(),
                             (net.bundle / "ca" / "ca.key").read_bytes()),
                     "ipchain-local", "node3", [net.addresses[3]],
                     now - dt.timedelta(days=30), days=1)}
    for name, pem in strangers.items():
        (tmp_path / f"{name}.pem").write_bytes(pem.cert)
        (tmp_path / f"{name}.key").write_bytes(pem.key)
        refused = net.probe(3, "tls", *peer, ca, str(tmp_path / f"{name}.pem"),
                            str(tmp_path / f"{name}.key"))
        assert not refused["ok"] or not refused["answer"].startswith("HTTP"), refused
        net.say(f"handshake with a {name} certificate: refused ({refused.get('error')})")
    none = net.probe(3, "tls", *peer, ca)
    assert not none["ok"] or not none["answer"].startswith("HTTP"), none
    net.say(f"handshake with no certificate: refused ({none.get('error')})")
    plain = net.probe(3, "get", f"{net.api(0)}/p2p/blocks?from=1&to=1")
    assert plain["status"] == 403 and plain["body"]["error"]["code"] == "PeerOnly", plain
    net.say(f"peer route on the client port: {plain['status']} {plain['body']['error']['code']}")

    net.link(3, "down")
    cut = net.probe(1, "transfer", net.api(0), str(net.bundle), "5", "6")
    assert cut["committed"] == 5
    live = _heights(net, [0, 1, 2], via=1)
    alone = net.probe(3, "status", net.api(3), "10")["height"]
    assert alone < min(live.values()), (alone, live)
    assert len(set(live.values())) == 1 or max(live.values()) - min(live.values()) <= 1
    net.say(f"node3's link down: 5 more transfers committed at {cut['heights']}; "
            f"heights of nodes 0-2 {live}, node3 (asked from its own host) {alone}")

    net.link(3, "up")
    target = max(live.values())
    more = net.probe(1, "transfer", net.api(0), str(net.bundle), "3", "11")
    caught = net.probe(0, "status", net.api(3), "5")
    deadline = 90
    started = time.monotonic()
    while caught["height"] < target and time.monotonic() - started < deadline:
        caught = net.probe(0, "status", net.api(3), "5")
    assert caught["height"] >= target, caught
    net.say(f"node3's link up: it caught up to height {caught['height']} (>= {target}) in "
            f"{time.monotonic() - started:.1f} s; 3 more transfers at {more['heights']}")
    (tmp_path / "netns-report.txt").write_text("\n".join(net.lines) + "\n")
