"""What `ipchain up` writes: keys, genesis, per-node config, and the cluster manifest.

Everything here is a pure function of its inputs (keys and time are passed in) so the
files can be unit-tested without starting a process; `ipchain.cluster.manager` does the I/O.
The layout is the one fixed in the node interface brief:

    <data-dir>/genesis.json, cluster.json, clients/<org>.key, nonces/
    <data-dir>/node<i>/config.toml, node.key, admin.token, node.pid, node.log

The admin token is a secret like the key: it lives in its own 0600 file that
config.toml names (`admin_token_file`), so the config itself holds nothing secret.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.signing

CHAIN_ID = "ipchain-local"
HOST = "127.0.0.1"
DEFAULT_BASE_PORT = 26600
DEFAULT_DATA_DIR = ".ipchain"
ADMIN_TOKEN_FILE = "admin.token"

MEMBER_BPC = 50_000_000
CLIENT_BPC = 1_000_000_000
"""Bench clients hold enough that no realistic run can drain them (each transfer is
small), so a bench measures consensus, not InsufficientFunds."""


@dataclass(frozen=True)
class OrgSpec:
    id: str
    name: str
    roles: tuple[str, ...]
    bpc: int


ALLIANCE_ORGS: tuple[OrgSpec, ...] = (
    OrgSpec("alliance-secretariat", "IP Alliance Secretariat", ("admin",), 100_000_000),
    OrgSpec("alliance-tech-committee", "IP Alliance Technical Committee", ("admin",), 100_000_000),
    OrgSpec("alliance-legal-committee", "IP Alliance Legal Committee", ("admin",), 100_000_000),
    OrgSpec("cnipa", "National IP Office (simulated)", ("office",), 10_000_000),
    OrgSpec("north-university", "North University (university)", ("member",), MEMBER_BPC),
    OrgSpec("acme-electronics", "Acme Electronics Co. (enterprise)", ("member",), MEMBER_BPC),
    OrgSpec("institute-advanced-tech", "Institute of Advanced Technology (institute)",
            ("member",), MEMBER_BPC),
    OrgSpec("openledger-community", "OpenLedger Foundation (open-source community)",
            ("member",), MEMBER_BPC),
    OrgSpec("ip-appraisal-center", "IP Appraisal Center (evaluator)", ("evaluator",), 10_000_000),
    OrgSpec("harbor-capital", "Harbor Capital (investor)", ("investor",), 500_000_000),
    OrgSpec("summit-ventures", "Summit Ventures (investor)", ("investor",), 500_000_000),
    OrgSpec("trust-and-custody", "Trust & Custody Co. (trustee)", ("trustee",), 10_000_000),
    OrgSpec("ip-regulator", "IP Market Regulator (regulator)", ("regulator",), 0),
)


def client_org_id(i: int) -> str:
    return f"client-{i:03d}"


def org_specs(clients: int) -> list[OrgSpec]:
    """The alliance organisations plus `clients` bench/load clients (role member)."""
    bench = [OrgSpec(client_org_id(i), f"Load client {i}", ("member",), CLIENT_BPC)
             for i in range(clients)]
    return [*ALLIANCE_ORGS, *bench]


def new_seed_hex() -> str:
    return bytes(nacl.signing.SigningKey.generate()).hex()


def public_key_hex(seed_hex: str) -> str:
    return bytes(nacl.signing.SigningKey(bytes.fromhex(seed_hex)).verify_key).hex()


def node_id(index: int) -> str:
    return f"node{index}"


def node_url(base_port: int, index: int, host: str = HOST) -> str:
    return f"http://{host}:{base_port + index}"


def compute_genesis(chain_id: str, genesis_time_ms: int, node_seeds: list[str],
                    orgs: list[OrgSpec], org_seeds: dict[str, str],
                    contracts: dict[str, Any] | None = None) -> dict[str, Any]:
    validators = [{"id": node_id(i), "index": i, "public_key": public_key_hex(seed)}
                  for i, seed in enumerate(node_seeds)]
    organisations = [{"id": org.id, "name": org.name, "roles": list(org.roles),
                      "keys": [public_key_hex(org_seeds[org.id])], "bpc": org.bpc}
                     for org in orgs]
    return {"chain_id": chain_id, "genesis_time_ms": genesis_time_ms,
            "validators": validators, "organisations": organisations,
            "contracts": dict(contracts or {})}


def compute_node_config(data_dir: Path, index: int, n: int, base_port: int,
                        *, log_level: str = "warning",
                        consensus: dict[str, int] | None = None,
                        mqtt_url: str = "") -> dict[str, Any]:
    """One node's config as a dict (rendered to TOML by `render_toml`).

    The `[consensus]` table is written only when overrides are given, so the node's
    own defaults stay the single source of truth otherwise."""
    node_dir = data_dir / node_id(index)
    config: dict[str, Any] = {
        "node_id": node_id(index), "index": index, "host": HOST, "port": base_port + index,
        "data_dir": str(node_dir), "key_file": str(node_dir / "node.key"),
        "genesis_file": str(data_dir / "genesis.json"),
        "admin_token_file": str(node_dir / ADMIN_TOKEN_FILE),
        "log_level": log_level, "mqtt_url": mqtt_url,
    }
    if consensus:
        config["consensus"] = dict(consensus)
    config["peers"] = [{"id": node_id(j), "index": j, "url": node_url(base_port, j)}
                       for j in range(n) if j != index]
    return config


def new_admin_token() -> str:
    return secrets.token_hex(16)


def compute_manifest(data_dir: Path, chain_id: str, n: int, base_port: int,
                     org_ids: list[str]) -> dict[str, Any]:
    nodes = [{"id": node_id(i), "index": i, "url": node_url(base_port, i),
              "config": str(data_dir / node_id(i) / "config.toml"), "pid": None}
             for i in range(n)]
    clients = {org: str(data_dir / "clients" / f"{org}.key") for org in org_ids}
    return {"chain_id": chain_id, "base_port": base_port, "nodes": nodes, "clients": clients}


# -- TOML ---------------------------------------------------------------------------
# The standard library reads TOML (tomllib) but does not write it; the config is flat
# enough (scalars, one table, one array of tables) that a small writer is clearer than
# a dependency.

def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        # JSON escaping is TOML's, except that TOML also wants DEL escaped and forbids
        # surrogate-pair escapes (hence ensure_ascii=False).
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list) and all(not isinstance(v, dict) for v in value):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as a TOML value")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def render_toml(doc: dict[str, Any]) -> str:
    """Scalars first, then tables, then arrays of tables (TOML needs that order)."""
    lines: list[str] = []
    tables = {k: v for k, v in doc.items() if isinstance(v, dict)}
    arrays = {k: v for k, v in doc.items() if _is_table_array(v)}
    for key, value in doc.items():
        if key not in tables and key not in arrays:
            lines.append(f"{key} = {_toml_value(value)}")
    for key, table in tables.items():
        lines += ["", f"[{key}]"] + [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    for key, items in arrays.items():
        for item in items:
            lines += ["", f"[[{key}]]"] + [f"{k} = {_toml_value(v)}" for k, v in item.items()]
    return "\n".join(lines) + "\n"
