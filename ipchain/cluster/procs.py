"""Ports and processes on this machine: free port ranges, live node pids, signals.

Linux /proc is used to tell a live node from a zombie or from a stranger that
inherited a recycled pid; without /proc, a signal-0 check is all there is.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

from ipchain.cluster import layout


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


def find_free_base_port(n: int, attempts: int = 100) -> int:
    """A base port whose n consecutive ports are all free on loopback.

    Starts from a port the kernel hands out for port 0 (so parallel runs spread out)
    and checks the following n-1."""
    for _ in range(attempts):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((layout.HOST, 0))
            base = sock.getsockname()[1]
        if base + n < 65536 and all(is_port_free(base + i) for i in range(n)):
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
