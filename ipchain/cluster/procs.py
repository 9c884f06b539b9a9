"""Ports and processes on this machine: free port ranges, live node pids, signals.

Linux /proc is used to tell a live node from a zombie or from a stranger that
inherited a recycled pid; without /proc, a signal-0 check is all there is.
"""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path

from ipchain.cluster import layout


REPO_ROOT = Path(__file__).resolve().parents[2]
"""The checkout this package runs from (the folder holding node/, consensus/, contracts/
and ipchain/). Processes the cluster starts get it first on PYTHONPATH, so a node runs
the code of the tree that started it, not whatever copy happens to be installed."""


class ClusterError(Exception):
    """A cluster operation cannot proceed; the message says why and what to do."""


# -- ports ---------------------------------------------------------------------------

def is_port_free(port: int, host: str = layout.HOST) -> bool:
    """Bind as the node's server will (SO_REUSEADDR, as aiohttp does on Unix), so a
    port held only by TIME_WAIT sockets of a just-stopped cluster counts as free."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


LISTEN_PORTS_FROM = 10000
"""The lowest base port chosen for a cluster; below it live well-known services."""


def ephemeral_port_range() -> tuple[int, int]:
    """The kernel's range for outgoing connections' local ports (Linux default)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


def find_free_base_port(n: int, attempts: int = 200) -> int:
    """A base port whose n consecutive ports are all free on loopback.

    Chosen at random below the kernel's ephemeral range: a port in that range can be taken
    by any outgoing connection (the nodes' own peer links among them) between this probe
    and the node's bind, which made cluster starts fail now and then. Random, so parallel
    runs spread out; the probe still skips ranges another process holds."""
    low, _ = ephemeral_port_range()
    top = low - n if low - n > LISTEN_PORTS_FROM else 65536 - n
    for _ in range(attempts):
        base = random.randrange(LISTEN_PORTS_FROM, top)
        if all(is_port_free(base + i) for i in range(n)):
            return base
    raise ClusterError(f"no {n} consecutive free ports found on {layout.HOST}")


# -- processes -----------------------------------------------------------------------

def _proc_state(pid: int) -> str | None:
    """The one-letter state from /proc/<pid>/stat, or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return "?"
    return stat.rsplit(")", 1)[1].split()[0]


def is_pid_running(pid: int, marker: str | None = None) -> bool:
    """Alive (not a zombie) and, if `marker` is given, named in its command line."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if not Path("/proc").is_dir():
        return True  # no /proc: the signal-0 check is all we have
    state = _proc_state(pid)
    if state in (None, "Z", "X"):
        return False
    if marker is None:
        return True
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return False
    return marker in cmdline


def pids_under(data_dir: str | Path) -> list[int]:
    """Every live process whose command line names a path inside `data_dir`: what
    `down` checks is empty afterwards (covers nodes whose pid file was lost)."""
    marker = str(Path(data_dir).resolve()) + os.sep
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    return sorted(int(entry.name) for entry in proc.iterdir()
                  if entry.name.isdigit() and int(entry.name) != os.getpid()
                  and is_pid_running(int(entry.name), marker))


def signal_group(pid: int, sig: int) -> None:
    """Signal the node's process group (it leads one: start_new_session), or just it."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass
