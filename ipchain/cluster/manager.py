"""A local N-node cluster: create its files, start, find, signal and stop its processes.

Each node runs `python -m node --config <data-dir>/node<i>/config.toml` in its own
session (so a Ctrl-C in the launching terminal does not reach it and `ipchain down`
can signal its whole process group), with stdout/stderr in node<i>/node.log and its
pid in node<i>/node.pid. A pid alone is not trusted: a node counts as running only if
that pid is alive and its command line names this node's config file, so a recycled
pid never makes `down` signal a stranger.

Readiness is a condition, not a sleep: every node answers /v1/status and a probe
transaction commits (`wait_ready`).
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import nacl.signing

from ipchain.sdk import client
from ipchain.cluster import layout
from ipchain.cluster.procs import (REPO_ROOT, ClusterError, is_pid_running, is_port_free,
                                   signal_group)

PROBE_OP = "token.transfer"
POLL_S = 0.05


def default_node_cmd() -> list[str]:
    """The node command, overridable with IPCHAIN_NODE_CMD (tests use a fake node)."""
    override = os.environ.get("IPCHAIN_NODE_CMD")
    return shlex.split(override) if override else [sys.executable, "-m", "node"]


class Cluster:
    def __init__(self, data_dir: str | Path, manifest: dict[str, Any],
                 node_cmd: list[str] | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.manifest = manifest
        self.node_cmd = list(node_cmd) if node_cmd else default_node_cmd()
        self._procs: dict[int, subprocess.Popen] = {}
        self._genesis: dict[str, Any] | None = None

    # -- creating and finding ---------------------------------------------------------
    @staticmethod
    def exists(data_dir: str | Path) -> bool:
        return (Path(data_dir) / "cluster.json").is_file()

    @classmethod
    def load(cls, data_dir: str | Path, node_cmd: list[str] | None = None) -> Cluster:
        path = Path(data_dir) / "cluster.json"
        if not path.is_file():
            raise ClusterError(f"no cluster in {data_dir} (no cluster.json); run `ipchain up`")
        return cls(data_dir, json.loads(path.read_text()), node_cmd)

    @classmethod
    def create(cls, data_dir: str | Path, n: int, base_port: int = layout.DEFAULT_BASE_PORT,
               clients: int = 0, *, chain_id: str = layout.CHAIN_ID, fresh: bool = False,
               consensus: dict[str, int] | None = None, log_level: str = "warning",
               contracts: dict[str, Any] | None = None,
               node_cmd: list[str] | None = None, mqtt_url: str = "") -> Cluster:
        """Write keys, genesis, configs and cluster.json for a new cluster (not started).

        `fresh` wipes an existing cluster's data dir first (refused while it runs)."""
        if n < 1:
            raise ClusterError("a cluster needs at least one node")
        if base_port < 1 or base_port + n > 65536:
            raise ClusterError(f"ports {base_port}..{base_port + n - 1} are out of range")
        data_dir = Path(data_dir).resolve()
        _prepare_dir(data_dir, fresh)
        cluster = cls(data_dir, {}, node_cmd)
        cluster._write_files(n, base_port, clients, chain_id, consensus, log_level, contracts,
                             mqtt_url)
        return cluster

    def _write_files(self, n: int, base_port: int, clients: int, chain_id: str,
                     consensus: dict[str, int] | None, log_level: str,
                     contracts: dict[str, Any] | None, mqtt_url: str = "") -> None:
        orgs = layout.org_specs(clients)
        org_seeds = {org.id: layout.new_seed_hex() for org in orgs}
        node_seeds = [layout.new_seed_hex() for _ in range(n)]
        genesis = layout.compute_genesis(chain_id, time.time_ns() // 1_000_000, node_seeds,
                                         orgs, org_seeds, contracts)
        (self.data_dir / "genesis.json").write_text(json.dumps(genesis, indent=2) + "\n")
        for org_id, seed in org_seeds.items():
            client.write_key(self.data_dir / "clients" / f"{org_id}.key", seed)
        for i, seed in enumerate(node_seeds):
            node_dir = self.data_dir / layout.node_id(i)
            node_dir.mkdir(parents=True, exist_ok=True)
            client.write_key(node_dir / "node.key", seed)
            # a secret like the key, written the same way (owner-only, 0600)
            client.write_key(node_dir / layout.ADMIN_TOKEN_FILE, layout.new_admin_token())
            config = layout.compute_node_config(self.data_dir, i, n, base_port,
                                                log_level=log_level,
                                                consensus=consensus, mqtt_url=mqtt_url)
            (node_dir / "config.toml").write_text(layout.render_toml(config))
        self.manifest = layout.compute_manifest(self.data_dir, chain_id, n, base_port,
                                                [org.id for org in orgs])
        self._save_manifest()

    def _save_manifest(self) -> None:
        path = self.data_dir / "cluster.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.manifest, indent=2) + "\n")
        os.replace(tmp, path)

    # -- facts ------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return len(self.manifest["nodes"])

    @property
    def base_port(self) -> int:
        return int(self.manifest["base_port"])

    @property
    def chain_id(self) -> str:
        return self.manifest["chain_id"]

    @property
    def urls(self) -> list[str]:
        return [node["url"] for node in self.manifest["nodes"]]

    @property
    def genesis(self) -> dict[str, Any]:
        if self._genesis is None:
            self._genesis = json.loads((self.data_dir / "genesis.json").read_text())
        return self._genesis

    @property
    def nonces(self) -> client.NonceStore:
        return client.NonceStore(self.data_dir / "nonces")

    def org_ids(self, role: str | None = None) -> list[str]:
        return [org["id"] for org in self.genesis["organisations"]
                if role is None or role in org["roles"]]

    def client_key(self, org_id: str) -> nacl.signing.SigningKey:
        path = self.manifest["clients"].get(org_id)
        if path is None:
            raise ClusterError(f"no key for organisation {org_id!r} in {self.data_dir}")
        return client.load_key(path)

    def node_dir(self, i: int) -> Path:
        return self.data_dir / layout.node_id(i)

    def config_path(self, i: int) -> Path:
        return Path(self.manifest["nodes"][i]["config"])

    def set_node_options(self, **options: str) -> None:
        """Rewrite every node's config.toml with these top-level settings (e.g. log_level on
        `up --log-level` over an existing cluster): the nodes read them when they start."""
        for i in range(self.n):
            path = self.config_path(i)
            config = tomllib.loads(path.read_text())
            config.update(options)
            tmp = path.with_suffix(".toml.tmp")
            tmp.write_text(layout.render_toml(config))
            os.replace(tmp, path)

    def log_path(self, i: int) -> Path:
        return self.node_dir(i) / "node.log"

    def log_tail(self, i: int, lines: int = 15) -> str:
        try:
            text = self.log_path(i).read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def pid(self, i: int) -> int | None:
        try:
            return int((self.node_dir(i) / "node.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def is_running(self, i: int) -> bool:
        proc = self._procs.get(i)
        if proc is not None:  # our own child: poll() is exact (and reaps it)
            return proc.poll() is None
        pid = self.pid(i)
        return pid is not None and is_pid_running(pid, str(self.config_path(i)))

    def running(self) -> list[int]:
        return [i for i in range(self.n) if self.is_running(i)]

    def busy_ports(self, indices: list[int] | None = None) -> list[int]:
        indices = list(range(self.n)) if indices is None else indices
        return [self.base_port + i for i in indices if not is_port_free(self.base_port + i)]

    # -- starting and stopping --------------------------------------------------------
    def start(self, indices: list[int] | None = None) -> None:
        """Start the given nodes (default all); refuse if any already runs or its port
        is taken, before starting any."""
        indices = list(range(self.n)) if indices is None else list(indices)
        already = [i for i in indices if self.is_running(i)]
        if already:
            raise ClusterError(f"cluster in {self.data_dir} is already running "
                               f"(nodes {already}); run `ipchain down` first")
        busy = self.busy_ports(indices)
        if busy:
            raise ClusterError(f"ports {busy} on {layout.HOST} are in use by another process; "
                               f"choose another --base-port")
        try:
            for i in indices:
                self._spawn(i)
        except BaseException:  # all or nothing: no node is left running unannounced
            self._stop_started(indices)
            raise
        self._save_manifest()

    def _stop_started(self, indices: list[int]) -> None:
        for i in indices:
            proc = self._procs.get(i)
            if proc is not None and proc.poll() is None:
                signal_group(proc.pid, signal.SIGKILL)
            if proc is not None:
                self._forget(i)

    def _spawn(self, i: int) -> None:
        node_dir = self.node_dir(i)
        env = dict(os.environ)
        repo_root = str(REPO_ROOT)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [repo_root, env.get("PYTHONPATH")]))
        with open(node_dir / "node.log", "ab") as log:
            # stderr (a crash before logging is set up) and the node's own rotated log
            # (--log-file) both append to node.log
            proc = subprocess.Popen([*self.node_cmd, "--config", str(self.config_path(i)),
                                     "--log-file", str(node_dir / "node.log")],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                    cwd=node_dir, env=env, start_new_session=True)
        self._procs[i] = proc
        (node_dir / "node.pid").write_text(f"{proc.pid}\n")
        self.manifest["nodes"][i]["pid"] = proc.pid

    def kill(self, i: int, sig: int = signal.SIGKILL, *, wait_s: float = 10.0) -> None:
        """Send `sig` to node i's process group. For SIGKILL/SIGTERM, wait until it is
        gone (ClusterError at the deadline); other signals (SIGSTOP...) return at once."""
        pid = self.pid(i)
        if pid is None or not self.is_running(i):
            raise ClusterError(f"node {i} is not running")
        signal_group(pid, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            if not self._wait_gone([i], wait_s):
                raise ClusterError(f"node {i} (pid {pid}) still alive {wait_s}s after {sig!r}")
            self._forget(i)

    def stop(self, timeout_s: float = 10.0) -> list[int]:
        """SIGTERM every running node, wait up to `timeout_s`, SIGKILL the stragglers.

        Returns the indices that needed SIGKILL. Raises ClusterError only if a process
        survives SIGKILL too (then something is badly wrong)."""
        running = self.running()
        for i in running:
            signal_group(self.pid(i), signal.SIGTERM)
        stragglers: list[int] = []
        if not self._wait_gone(running, timeout_s):
            stragglers = [i for i in running if self.is_running(i)]
            for i in stragglers:
                signal_group(self.pid(i), signal.SIGKILL)
            if not self._wait_gone(stragglers, 10.0):
                left = [self.pid(i) for i in stragglers if self.is_running(i)]
                raise ClusterError(f"node processes {left} survived SIGKILL")
        for i in range(self.n):
            self._forget(i)
        return stragglers

    def _wait_gone(self, indices: list[int], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while any(self.is_running(i) for i in indices):
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_S)
        return True

    def _forget(self, i: int) -> None:
        proc = self._procs.pop(i, None)
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        (self.node_dir(i) / "node.pid").unlink(missing_ok=True)
        self.manifest["nodes"][i]["pid"] = None
        self._save_manifest()

    def exited(self) -> dict[int, int]:
        """Nodes we started in this process that have exited: index -> return code."""
        return {i: p.returncode for i, p in self._procs.items() if p.poll() is not None}

    # -- readiness --------------------------------------------------------------------
    def wait_ready(self, deadline_s: float = 60.0, probe: bool = True) -> dict[str, Any] | None:
        """Block until every node answers /v1/status and (if `probe`) a probe commits."""
        async def run() -> dict[str, Any] | None:
            async with client.open_session() as session:
                return await self.wait_ready_async(session, deadline_s, probe)
        return asyncio.run(run())

    async def wait_ready_async(self, session: Any, deadline_s: float = 60.0,
                               probe: bool = True) -> dict[str, Any] | None:
        deadline = time.monotonic() + deadline_s
        pending = set(range(self.n))
        while pending:
            self._raise_if_exited()
            for i in sorted(pending):
                try:
                    await client.get_status(session, self.urls[i])
                    pending.discard(i)
                except client.ApiError:
                    pass
            if pending and time.monotonic() >= deadline:
                raise ClusterError(f"nodes {sorted(pending)} did not answer /v1/status within "
                                   f"{deadline_s}s; last log lines of node {min(pending)}:\n"
                                   f"{self.log_tail(min(pending))}")
            if pending:
                await asyncio.sleep(0.1)
        return await self.probe(session, deadline) if probe else None

    def _raise_if_exited(self) -> None:
        """Fail fast, with the log, when a node died instead of waiting out a deadline."""
        for i in range(self.n):
            if not self.is_running(i):
                proc = self._procs.get(i)
                how = f"exited with code {proc.returncode}" if proc else "is not running"
                raise ClusterError(f"node {i} {how}; last log lines:\n{self.log_tail(i)}")

    def probe_parties(self) -> tuple[str, str]:
        """(sender, receiver) of the readiness probe: the first admin, the next org."""
        org = self.org_ids("admin")[0]
        return org, next(other for other in self.org_ids() if other != org)

    def probe_tx(self) -> client.Transaction:
        """A real, tiny transaction: the first admin sends 1 BPC minor unit to another
        organisation (a transfer to oneself is refused), ordered, executed and committed
        like any other."""
        org, target = self.probe_parties()
        key = self.client_key(org)
        nonce = self.nonces.reserve(client.sender_hex(key))
        return client.sign(key, self.chain_id, nonce, PROBE_OP, {"to": target, "amount": 1})

    async def probe(self, session: Any, deadline: float) -> dict[str, Any]:
        """Submit the probe to node0 (then others if it stalls) until it commits."""
        tx = self.probe_tx()
        attempt = 0
        while True:
            url = self.urls[attempt % self.n]
            attempt += 1
            self._raise_if_exited()
            remaining_ms = max(100, int((deadline - time.monotonic()) * 1000))
            try:
                answer = await client.submit(session, url, tx, wait=True,
                                             timeout_ms=min(remaining_ms, 5000))
            except client.ApiError as exc:
                answer = await self._probe_recover(session, url, tx, exc)
            if answer.get("status") == "committed":
                return answer
            if answer.get("status") == "rejected":
                code = (answer.get("receipt") or {}).get("code")
                if code != "NonceUsed":
                    raise ClusterError(f"probe transaction rejected: {answer}")
                tx = self.probe_tx()
            if time.monotonic() >= deadline:
                raise ClusterError("nodes answer but the probe transaction did not commit "
                                   f"in time; node0 log:\n{self.log_tail(0)}")
            await asyncio.sleep(0.1)

    async def _probe_recover(self, session: Any, url: str, tx: client.Transaction,
                             exc: client.ApiError) -> dict[str, Any]:
        """After an error answer, find out where the probe stands before resubmitting."""
        if exc.status == 400 and exc.code not in ("NonceUsed", "Duplicate", "DuplicateTx"):
            raise ClusterError(f"probe transaction refused by {url}: {exc}") from exc
        try:
            known = await client.get_tx(session, url, tx.id)
        except client.ApiError:
            return {"status": "unknown"}
        if known.get("status") == "unknown" and exc.code == "NonceUsed":
            return {"status": "rejected", "receipt": {"code": "NonceUsed"}}
        return known


def start_and_wait(cluster: Cluster, timeout_s: float = 60.0) -> dict[str, Any] | None:
    """Start every node and wait until the cluster commits a probe; on any failure (or
    Ctrl-C) stop what was started, so a failed start leaves no process behind."""
    cluster.start()
    try:
        return cluster.wait_ready(timeout_s)
    except BaseException:
        cluster.stop()
        raise


def _prepare_dir(data_dir: Path, fresh: bool) -> None:
    """Make `data_dir` ready for a new cluster; wipe only what is recognisably ours."""
    if (data_dir / "cluster.json").is_file():
        if not fresh:
            raise ClusterError(f"{data_dir} already holds a cluster; start it with "
                               f"`ipchain up` or recreate it with --fresh")
        existing = Cluster.load(data_dir)
        if existing.running():
            raise ClusterError(f"cluster in {data_dir} is running; run `ipchain down` first")
        shutil.rmtree(data_dir)
    elif data_dir.exists() and any(data_dir.iterdir()):
        raise ClusterError(f"{data_dir} exists, is not empty and is not an ipchain data dir; "
                           f"refusing to use it")
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ClusterError(f"cannot create {data_dir}: {errno.errorcode.get(exc.errno)}") from exc
