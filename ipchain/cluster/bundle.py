"""`ipchain net init`: one self-contained bundle per node, for a cluster across hosts.

Each member of an alliance runs its own node on its own host, so each node gets a
directory it can carry there and start with one command from inside it:

    <out>/node<i>/config.toml   peers at their real addresses, every path relative
    <out>/node<i>/node.key      its validator key (0600)
    <out>/node<i>/admin.token   the admin API token (0600)
    <out>/node<i>/genesis.json  the cluster's genesis (the same bytes in every bundle)
    <out>/node<i>/tls/          ca.pem, node.pem, node.key (0600): mutual TLS to peers
    <out>/clients/<org>.key     organisation keys, for whoever submits as that org
    <out>/ca/ca.pem, ca.key     the cluster CA (keep ca.key offline: it issues node certs)
    <out>/inventory.json        every node's id, host, API and peer URL

`python -m node --config config.toml` inside a bundle starts that node. The generator is
a pure function of its inputs plus fresh keys, like `ipchain.cluster.layout`, whose
genesis and organisation rules it shares with `ipchain up`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ipchain.cluster import layout, tls

DEFAULT_API_PORT = 26600
DEFAULT_P2P_PORT = 26656
_HOST = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+)(?::(\d+))?$")


class BundleError(ValueError):
    """The hosts or the output directory are unusable; the message says which and why."""


@dataclass(frozen=True)
class NodeSlot:
    index: int
    host: str
    api_port: int
    p2p_port: int

    @property
    def node_id(self) -> str:
        return layout.node_id(self.index)

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    @property
    def p2p_url(self) -> str:
        return f"https://{self.host}:{self.p2p_port}"


def parse_hosts(text: str) -> list[tuple[str, int]]:
    """"HOST[:N],HOST[:N],..." -> [(host, nodes on it)]; N defaults to 1."""
    hosts: list[tuple[str, int]] = []
    for item in (part.strip() for part in text.split(",")):
        match = _HOST.match(item)
        if not match:
            raise BundleError(f"--hosts: {item!r} is not HOST or HOST:N (e.g. 10.0.0.5:2)")
        count = int(match.group(2) or 1)
        if not 1 <= count <= 64:
            raise BundleError(f"--hosts: {item!r}: nodes per host must be 1..64")
        hosts.append((match.group(1).strip("[]"), count))
    if not hosts:
        raise BundleError("--hosts: name at least one host")
    return hosts


def plan_nodes(hosts: list[tuple[str, int]], api_port: int = DEFAULT_API_PORT,
               p2p_port: int = DEFAULT_P2P_PORT) -> list[NodeSlot]:
    """Node indices in host order; a host's k-th node uses api_port + k and p2p_port + k."""
    slots: list[NodeSlot] = []
    for host, count in hosts:
        for k in range(count):
            slots.append(NodeSlot(len(slots), host, api_port + k, p2p_port + k))
    clash = {s.api_port for s in slots} & {s.p2p_port for s in slots}
    if clash:
        raise BundleError(f"API and peer ports overlap on {sorted(clash)}; move --p2p-port")
    if max(max(s.api_port, s.p2p_port) for s in slots) > 65535:
        raise BundleError("ports run past 65535; lower --api-port/--p2p-port")
    return slots


def node_config(slot: NodeSlot, slots: list[NodeSlot], *, client_tls: bool,
                log_level: str) -> dict[str, Any]:
    return {
        "node_id": slot.node_id, "index": slot.index, "host": "0.0.0.0",
        "port": slot.api_port, "data_dir": "data", "key_file": "node.key",
        "genesis_file": "genesis.json", "admin_token_file": "admin.token",
        "log_level": log_level,
        "tls": {"ca_file": "tls/ca.pem", "cert_file": "tls/node.pem", "key_file": "tls/node.key",
                "p2p_port": slot.p2p_port, "client_api": client_tls},
        "peers": [{"id": other.node_id, "index": other.index, "url": other.p2p_url}
                  for other in slots if other.index != slot.index],
    }


def _write(path: Path, data: str | bytes, secret: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if secret:  # created 0600 from the start: never readable by others, even briefly
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data.encode() if isinstance(data, str) else data)
    else:
        path.write_bytes(data.encode() if isinstance(data, str) else data)


def write_bundles(out: Path, slots: list[NodeSlot], *, chain_id: str = layout.CHAIN_ID,
                  clients: int = 0, client_tls: bool = False, log_level: str = "info",
                  now: dt.datetime | None = None) -> dict[str, Any]:
    """Write every bundle under `out` (which must not exist or be empty); the inventory."""
    if out.exists() and any(out.iterdir()):
        raise BundleError(f"{out} is not empty; choose a new --out (bundles hold fresh keys)")
    now = now or dt.datetime.now(dt.timezone.utc)
    orgs = layout.org_specs(clients)
    org_seeds = {org.id: layout.new_seed_hex() for org in orgs}
    node_seeds = [layout.new_seed_hex() for _ in slots]
    genesis = json.dumps(layout.compute_genesis(chain_id, int(now.timestamp() * 1000), node_seeds,
                                                orgs, org_seeds), indent=2) + "\n"
    ca = tls.new_ca(chain_id, now)
    _write(out / "ca" / "ca.pem", ca.cert)
    _write(out / "ca" / "ca.key", ca.key, secret=True)
    for org_id, seed in org_seeds.items():
        _write(out / "clients" / f"{org_id}.key", seed + "\n", secret=True)
    for slot, seed in zip(slots, node_seeds):
        home = out / slot.node_id
        cert = tls.issue_node_cert(ca, chain_id, slot.node_id, [slot.host], now)
        _write(home / "config.toml", layout.render_toml(
            node_config(slot, slots, client_tls=client_tls, log_level=log_level)))
        _write(home / "node.key", seed + "\n", secret=True)
        _write(home / "admin.token", layout.new_admin_token() + "\n", secret=True)
        _write(home / "genesis.json", genesis)
        _write(home / "tls" / "ca.pem", ca.cert)
        _write(home / "tls" / "node.pem", cert.cert)
        _write(home / "tls" / "node.key", cert.key, secret=True)
    inventory = {"chain_id": chain_id, "nodes": [
        {"id": s.node_id, "index": s.index, "host": s.host, "api_url": s.api_url,
         "p2p_url": s.p2p_url, "bundle": s.node_id} for s in slots],
        "certificates_expire": tls.not_after(cert.cert).isoformat()}
    _write(out / "inventory.json", json.dumps(inventory, indent=2) + "\n")
    return inventory
