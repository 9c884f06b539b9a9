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
from node.tls import TlsConfig

CONSENSUS_DEFAULTS: dict[str, int] = {
    "max_batch_txs": 1000,
    "max_batch_bytes": 2 * 1024 * 1024,
    "batch_delay_ms": 20,
    "window_blocks": 8,
    "checkpoint_interval_blocks": 64,
    "request_timeout_ms": 5000,
    "min_view_timeout_ms": 800,
}


PEER_BODY_BYTES = 128 * 1024 * 1024
"""A coalesced POST of PRE-PREPAREs (each up to max_batch_bytes) may be large; VIEW-CHANGE
and NEW-VIEW carry headers only (docs/viewchange.md), so they stay far below this."""


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
    tls: TlsConfig | None = None
    cors_allowed_origins: tuple[str, ...] = ("*",)
    """Origins whose pages may read the public API (GETs only; never /admin or /p2p)."""
    state_sync: bool = True
    """A new (or far-behind) node restores a peer's certified snapshot at start instead
    of replaying every block (node/snapshot_sync.py)."""
    snapshot_interval_blocks: int = 0
    """Take a state snapshot every this many blocks, for peers to restore from (0: never)."""
    snapshots_kept: int = 2
    snapshot_chunk_leaves_log2: int = 12
    """State entries per snapshot chunk, as a power of two (node/snapshot.py)."""
    retain_blocks: int = 0
    """Keep at least this many latest blocks and drop older ones (0: keep all); blocks
    after the latest snapshot are always kept (node/snapshot_service.py)."""

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


def _path(base: Path, text: str) -> Path:
    """Relative paths are relative to the config file: a bundle can move as a whole."""
    return base / text if not Path(text).is_absolute() else Path(text)


def _tls(raw: dict[str, Any], base: Path, where: str) -> TlsConfig | None:
    table = raw.get("tls")
    if table is None:
        return None
    where = f"{where} [tls]"
    files = {name: _path(base, _get(table, name, str, where))
             for name in ("ca_file", "cert_file", "key_file")}
    for name, file in files.items():
        if not file.is_file():
            raise ConfigError(f"{where}: {name} {file} does not exist")
    client_api = table.get("client_api", False)
    if not isinstance(client_api, bool):
        raise ConfigError(f"{where}: client_api must be true or false")
    return TlsConfig(**files, p2p_port=_get(table, "p2p_port", int, where), client_api=client_api)


def load_config(path: str | Path) -> NodeConfig:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    where = str(path)
    base = path.resolve().parent
    key_hex = _path(base, _get(raw, "key_file", str, where)).read_text().strip()
    genesis_path = _path(base, _get(raw, "genesis_file", str, where))
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
        data_dir=_path(base, _get(raw, "data_dir", str, where)),
        signing_key=nacl.signing.SigningKey(bytes.fromhex(key_hex)), genesis=genesis,
        admin_token=_admin_token(raw, base, where), peers=peers, tls=_tls(raw, base, where),
        log_level=raw.get("log_level", "warning"), log_format=raw.get("log_format", "logfmt"),
        mqtt_url=raw.get("mqtt_url", ""),
        max_body_bytes=raw.get("max_body_bytes", 8 * 1024 * 1024),
        max_mempool_txs=raw.get("max_mempool_txs", 50_000), consensus=consensus,
        cors_allowed_origins=_origins(raw, where), **_snapshot_options(raw, where))


def _snapshot_options(raw: dict[str, Any], where: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if "state_sync" in raw:
        options["state_sync"] = _get(raw, "state_sync", bool, where)
    for name, low, high in (("snapshot_interval_blocks", 0, 2**40), ("snapshots_kept", 1, 100),
                            ("retain_blocks", 0, 2**40), ("snapshot_chunk_leaves_log2", 1, 20)):
        if name in raw:
            value = _get(raw, name, int, where)
            if not low <= value <= high:
                raise ConfigError(f"{where}: field {name!r} must be in {low}..{high}")
            options[name] = value
    return options


def _admin_token(raw: dict[str, Any], base: Path, where: str) -> str:
    """The token from `admin_token_file` (owner-only, like a key file); an old config
    with the token inline still works, with a warning saying how to move it out."""
    if "admin_token_file" in raw:
        path = _path(base, _get(raw, "admin_token_file", str, where))
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
                    "named by admin_token_file\"", json.dumps(where))  # quoted: paths have spaces
        return _get(raw, "admin_token", str, where)
    raise ConfigError(f"{where}: missing field 'admin_token_file'")


def read_admin_token(config_path: str | Path) -> str:
    """The admin token a node's config points to (for tools that drive /admin)."""
    path = Path(config_path)
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return _admin_token(raw, path.resolve().parent, str(path))



def _origins(raw: dict[str, Any], where: str) -> tuple[str, ...]:
    value = raw.get("cors_allowed_origins", ["*"])
    if not isinstance(value, list) or not all(isinstance(o, str) and o for o in value):
        raise ConfigError(f"{where}: cors_allowed_origins must be a list of origins "
                          '(e.g. ["https://explorer.example"], ["*"], or [] for none)')
    return tuple(o.rstrip("/") for o in value)
