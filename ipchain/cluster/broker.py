"""The MQTT broker behind `ipchain up --mqtt`, and the --mqtt/--mqtt-url options.

`--mqtt` gives a cluster a broker with no extra install: amqtt (a pure-Python MQTT
3.1.1 broker, a dependency of the project) runs in a child process of its own session,
`python -m ipchain.cluster.broker --data-dir <data-dir> --port <port>`, logging to
<data-dir>/broker/broker.log. If amqtt cannot be imported, a `mosquitto` binary on the
machine is used instead. `--mqtt-url` points the nodes at a broker that already runs.

The broker's address is written into every node's config.toml (mqtt_url) when the
cluster is created, and an embedded broker is remembered in <data-dir>/broker/
broker.json, so `ipchain up` restarts it on the same port and `ipchain down` stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from ipchain.cluster import layout
from ipchain.cluster.procs import REPO_ROOT, is_pid_running, is_port_free, signal_group

BROKER_DIR = "broker"
STATE_FILE = "broker.json"
DEFAULT_PORT = 1883
START_TIMEOUT_S = 15.0


# -- the CLI side ------------------------------------------------------------------------
def add_up_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--mqtt", action="store_true",
                       help="also run a local MQTT broker (embedded amqtt) and have every node "
                            "publish blocks and contract events to it")
    group.add_argument("--mqtt-url", metavar="URL",
                       help="have every node publish to this existing broker, "
                            "e.g. mqtt://127.0.0.1:1883")
    parser.add_argument("--mqtt-port", type=int, metavar="PORT", default=None,
                        help=f"with --mqtt: the embedded broker's port on {layout.HOST} "
                             f"(default {DEFAULT_PORT} if free, else any free port)")


def new_cluster_url(args: argparse.Namespace) -> str:
    """The mqtt_url for a cluster being created: given, embedded (on a free port), or ''."""
    if getattr(args, "mqtt_url", None):
        from node.mqtt import parse_mqtt_url
        parse_mqtt_url(args.mqtt_url)  # a typo fails now, not as a node that will not start
        return args.mqtt_url
    if getattr(args, "mqtt", False):
        port = args.mqtt_port
        if port is None:
            port = DEFAULT_PORT if is_port_free(DEFAULT_PORT) else free_port()
        return f"mqtt://{layout.HOST}:{port}"
    return ""


def check_port_option(args: argparse.Namespace, node_ports: range) -> None:
    """--mqtt-port before anything is written: it needs --mqtt, a valid port that is free
    and none of the nodes' ports."""
    port = getattr(args, "mqtt_port", None)
    if port is None:
        return
    if not getattr(args, "mqtt", False):
        raise ValueError("--mqtt-port is the port of the broker `--mqtt` starts; "
                         "add --mqtt (or give the broker's address with --mqtt-url)")
    if not 1 <= port <= 65535:
        raise ValueError(f"--mqtt-port {port} is not a TCP port (1-65535)")
    if port in node_ports:
        raise ValueError(f"--mqtt-port {port} is one of the nodes' ports "
                         f"{node_ports.start}..{node_ports.stop - 1}; choose another")
    if not is_port_free(port):
        raise ValueError(f"--mqtt-port {port} on {layout.HOST} is in use by another process; "
                         f"choose another (nothing was written)")


def remember(data_dir: Path, embedded: bool, url: str) -> None:
    """Record an embedded broker so that `up` restarts it and `down` stops it."""
    if embedded:
        state_dir = Path(data_dir) / BROKER_DIR
        state_dir.mkdir(parents=True, exist_ok=True)
        (state_dir / STATE_FILE).write_text(json.dumps({"url": url}) + "\n")


def configured_url(data_dir: Path) -> str:
    """The first node's mqtt_url in a cluster's data dir, or ''."""
    for config in sorted(Path(data_dir).glob("node*/config.toml")):
        url = tomllib.loads(config.read_text()).get("mqtt_url", "")
        if url:
            return url
    return ""


def check_restart(data_dir: Path, args: argparse.Namespace) -> None:
    """A restart keeps the configs: refuse MQTT options that would need new ones."""
    current = configured_url(data_dir)
    embedded = (Path(data_dir) / BROKER_DIR / STATE_FILE).is_file()
    if getattr(args, "mqtt_url", None) and args.mqtt_url != current:
        raise ValueError(f"{data_dir} publishes to {current or 'no broker'}; "
                         f"use --fresh to recreate it with --mqtt-url {args.mqtt_url}")
    if getattr(args, "mqtt", False) and not embedded:
        raise ValueError(f"{data_dir} was created without --mqtt; use --fresh to add a broker")
    port = getattr(args, "mqtt_port", None)
    if port is not None and (not embedded or current != f"mqtt://{layout.HOST}:{port}"):
        raise ValueError(f"{data_dir} publishes to {current or 'no broker'}; use --fresh to "
                         f"recreate it with --mqtt --mqtt-port {port}")


# -- the embedded broker's process ----------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((layout.HOST, 0))
        return sock.getsockname()[1]


MQTT_CONNECT = bytes([0x10, 12, 0, 4]) + b"MQTT" + bytes([4, 0x02, 0, 10, 0, 0])
"""CONNECT, MQTT 3.1.1, clean session, keepalive 10 s, empty client id."""
MQTT_CONNACK_OK = bytes([0x20, 2, 0, 0])
MQTT_DISCONNECT = bytes([0xE0, 0])


def is_serving_mqtt(host: str, port: int) -> bool:
    """A broker that answers CONNECT with an accepting CONNACK (an open port is not
    enough: it may still be starting, or be something else)."""
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(MQTT_CONNECT)
            answer = sock.recv(4)
            sock.sendall(MQTT_DISCONNECT)
            return answer == MQTT_CONNACK_OK
    except OSError:
        return False


def _state(data_dir: Path) -> dict[str, Any] | None:
    path = Path(data_dir) / BROKER_DIR / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def _pid(data_dir: Path) -> int | None:
    try:
        return int((Path(data_dir) / BROKER_DIR / "broker.pid").read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _marker(data_dir: Path) -> str:
    return str((Path(data_dir) / BROKER_DIR).resolve())


def is_running(data_dir: Path) -> bool:
    pid = _pid(data_dir)
    return pid is not None and is_pid_running(pid, _marker(data_dir))


def broker_command(data_dir: Path, port: int) -> list[str]:
    """amqtt in a child Python, else mosquitto with a generated config."""
    try:
        importlib.import_module("amqtt.broker")  # only checking that it is there
    except ImportError:
        binary = shutil.which("mosquitto") or next(
            (p for p in ("/usr/sbin/mosquitto",) if os.access(p, os.X_OK)), None)
        if binary is None:
            raise ValueError("no MQTT broker available: install amqtt (pip install amqtt) or "
                             "mosquitto, or pass --mqtt-url to use a running broker") from None
        conf = Path(data_dir) / BROKER_DIR / "mosquitto.conf"
        conf.write_text(f"listener {port} {layout.HOST}\nallow_anonymous true\n"
                        f"persistence false\nlog_dest stderr\n")
        return [binary, "-c", str(conf.resolve())]
    return [sys.executable, "-m", "ipchain.cluster.broker", "--data-dir", _marker(data_dir),
            "--host", layout.HOST, "--port", str(port)]


def start_embedded(data_dir: Path, timeout_s: float = START_TIMEOUT_S) -> str | None:
    """Start the cluster's embedded broker unless it runs; its URL, or None if it has none."""
    state = _state(data_dir)
    if state is None:
        return None
    url = state["url"]
    if is_running(data_dir):
        return url
    port = int(url.rsplit(":", 1)[1])
    if not is_port_free(port):
        raise ValueError(f"the cluster's MQTT broker port {port} is taken by another process")
    state_dir = Path(data_dir) / BROKER_DIR
    repo_root = str(REPO_ROOT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [repo_root, os.environ.get("PYTHONPATH")]))}
    with open(state_dir / "broker.log", "ab") as log:
        proc = subprocess.Popen(broker_command(data_dir, port), stdin=subprocess.DEVNULL,
                                stdout=log, stderr=log, cwd=state_dir, env=env,
                                start_new_session=True)
    (state_dir / "broker.pid").write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + timeout_s
    while not is_serving_mqtt(layout.HOST, port):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_embedded(data_dir)
            tail = (state_dir / "broker.log").read_text(errors="replace")[-800:]
            raise ValueError(f"the MQTT broker did not start on port {port}:\n{tail}")
        time.sleep(0.05)
    return url


def stop_embedded(data_dir: Path, timeout_s: float = 5.0) -> bool:
    """SIGTERM the embedded broker (SIGKILL after `timeout_s`); True if one was running."""
    pid = _pid(data_dir)
    if pid is None or not is_running(data_dir):
        return False
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 5.0)):
        signal_group(pid, sig)
        deadline = time.monotonic() + wait_s
        while is_pid_running(pid, _marker(data_dir)) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.05)
        if not is_pid_running(pid, _marker(data_dir)):
            break
    (Path(data_dir) / BROKER_DIR / "broker.pid").unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    """If the broker is our own child (started in this process), collect its exit."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


# -- `python -m ipchain.cluster.broker`: the broker itself ------------------------------------------
async def serve(host: str, port: int) -> None:
    from amqtt.broker import Broker

    config = {"listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
              "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin":
                          {"allow_anonymous": True}}}
    broker = Broker(config)
    await broker.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"event=broker_started url=mqtt://{host}:{port}", file=sys.stderr, flush=True)
    await stop.wait()
    await broker.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ipchain.cluster.broker",
                                     description="an embedded MQTT broker (amqtt)")
    parser.add_argument("--host", default=layout.HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--data-dir", help="the broker state dir (marks the process as ours)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
