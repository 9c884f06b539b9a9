"""Node configuration (TOML) and genesis (JSON), validated before anything starts."""

from __future__ import annotations

import json
import logging
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nacl.signing

from contracts.genesis import validate as validate_genesis

CONSENSUS_DEFAULTS: dict[str, int] = {
    "max_batch_txs": 1000,
    "max_batch_bytes": 2 * 1024 * 1024,
    "batch_delay_ms": 20,
    "window_blocks": 8,
    "checkpoint_interval_blocks": 64,
    "request_timeout_ms": 5000,
}


PEER_BODY_BYTES = 128 * 1024 * 1024
"""A NEW-VIEW carries 2f+1 VIEW-CHANGEs, each with up to a window of prepared batches:
peers' messages may be far larger than any client request."""


log = logging.getLogger("ipchain.config")


class ConfigError(ValueError):
    """The config or genesis file is unusable; the message names the file and field."""


@dataclass(frozen=True)
class Peer:
    id: str
    index: int
    url: str


@dataclass(frozen=True)
class NodeConfig:
    node_id: str
    index: int
    host: str
    port: int
    data_dir: Path
    signing_key: nacl.signing.SigningKey
    genesis: dict[str, Any]
    admin_token: str
    peers: tuple[Peer, ...]
    log_level: str = "warning"
    log_format: str = "logfmt"
    mqtt_url: str = ""
    max_body_bytes: int = 8 * 1024 * 1024
    max_mempool_txs: int = 50_000
    consensus: dict[str, int] = field(default_factory=dict)

    @property
    def chain_id(self) -> str:
        return self.genesis["chain_id"]

    @property
    def validator_keys(self) -> list[bytes]:
        ordered = sorted(self.genesis["validators"], key=lambda v: v["index"])
        return [bytes.fromhex(v["public_key"]) for v in ordered]


def _get(table: dict[str, Any], name: str, kind: type, where: str) -> Any:
    if name not in table:
        raise ConfigError(f"{where}: missing field {name!r}")
    value = table[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ConfigError(f"{where}: field {name!r} must be {kind.__name__}")
    return value


def load_config(path: str | Path) -> NodeConfig:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    where = str(path)
    key_hex = Path(_get(raw, "key_file", str, where)).read_text().strip()
    genesis_path = Path(_get(raw, "genesis_file", str, where))
    try:
        genesis = json.loads(genesis_path.read_text())
        validate_genesis(genesis)
    except (OSError, ValueError, Exception) as exc:
        raise ConfigError(f"{genesis_path}: {exc}") from exc
    consensus = dict(CONSENSUS_DEFAULTS)
    for name, value in raw.get("consensus", {}).items():
        if name not in CONSENSUS_DEFAULTS or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"{where}: [consensus] {name} is unknown or not a positive integer")
        consensus[name] = value
    peers = tuple(Peer(_get(p, "id", str, f"{where} [[peers]]"), _get(p, "index", int, where),
                       _get(p, "url", str, where).rstrip("/")) for p in raw.get("peers", []))
    return NodeConfig(
        node_id=_get(raw, "node_id", str, where), index=_get(raw, "index", int, where),
        host=_get(raw, "host", str, where), port=_get(raw, "port", int, where),
        data_dir=Path(_get(raw, "data_dir", str, where)),
        signing_key=nacl.signing.SigningKey(bytes.fromhex(key_hex)), genesis=genesis,
        admin_token=_admin_token(raw, where), peers=peers,
        log_level=raw.get("log_level", "warning"), log_format=raw.get("log_format", "logfmt"),
        mqtt_url=raw.get("mqtt_url", ""),
        max_body_bytes=raw.get("max_body_bytes", 8 * 1024 * 1024),
        max_mempool_txs=raw.get("max_mempool_txs", 50_000), consensus=consensus)


def _admin_token(raw: dict[str, Any], where: str) -> str:
    """The token from `admin_token_file` (owner-only, like a key file); an old config
    with the token inline still works, with a warning saying how to move it out."""
    if "admin_token_file" in raw:
        path = Path(_get(raw, "admin_token_file", str, where))
        try:
            mode = path.stat().st_mode
            token = path.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{where}: admin_token_file: {exc}") from exc
        if stat.S_IMODE(mode) & 0o077:
            raise ConfigError(f"{path}: the admin token file is readable by others "
                              f"(mode {stat.S_IMODE(mode):o}); run chmod 600 {path}")
        return token
    if "admin_token" in raw:
        log.warning("event=admin_token_inline config=%s hint=\"move it to a chmod 600 file "
                    "named by admin_token_file\"", where)
        return _get(raw, "admin_token", str, where)
    raise ConfigError(f"{where}: missing field 'admin_token_file'")


def read_admin_token(config_path: str | Path) -> str:
    """The admin token a node's config points to (for tools that drive /admin)."""
    path = Path(config_path)
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return _admin_token(raw, str(path))
