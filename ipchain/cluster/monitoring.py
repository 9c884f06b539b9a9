"""`ipchain up --monitoring`: a Prometheus for the cluster, with the shipped alert rules.

Writes `<data-dir>/monitoring/prometheus.yml` (every node's /metrics as job "ipchain",
the alert rules from configs/monitoring/alerts.yml) and, when Debian's `prometheus` is
installed, starts it on loopback in its own session (`ipchain down` stops it). The
Grafana dashboard to import is configs/monitoring/grafana-dashboard.json.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from configs import MONITORING
from ipchain.cluster.procs import is_pid_running, signal_group

DEFAULT_PORT = 9390
RULES = MONITORING / "alerts.yml"
DASHBOARD = MONITORING / "grafana-dashboard.json"


def prometheus_config(node_urls: list[str], rules_file: Path,
                      scrape_interval_s: float = 5) -> dict:
    every = f"{scrape_interval_s:g}s"
    targets = [urlsplit(url).netloc for url in node_urls]
    return {"global": {"scrape_interval": every, "evaluation_interval": every},
            "rule_files": [str(rules_file)],
            "scrape_configs": [{"job_name": "ipchain", "metrics_path": "/metrics",
                                "static_configs": [{"targets": targets}]}]}


def write_config(data_dir: Path, node_urls: list[str], scrape_interval_s: float = 5) -> Path:
    home = data_dir / "monitoring"
    home.mkdir(parents=True, exist_ok=True)
    rules = home / "alerts.yml"
    shutil.copyfile(RULES, rules)
    path = home / "prometheus.yml"
    path.write_text(yaml.safe_dump(prometheus_config(node_urls, rules, scrape_interval_s),
                                   sort_keys=False))
    return path


def start(data_dir: Path, port: int = DEFAULT_PORT) -> int | None:
    """Start Prometheus against the written config; its pid, or None if not installed."""
    binary = shutil.which("prometheus")
    if binary is None:
        return None
    home = data_dir / "monitoring"
    log = (home / "prometheus.log").open("ab")
    proc = subprocess.Popen(
        [binary, f"--config.file={home / 'prometheus.yml'}",
         f"--storage.tsdb.path={home / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}",
         "--storage.tsdb.retention.time=2d"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=home)
    (home / "prometheus.pid").write_text(f"{proc.pid}\n")
    return proc.pid


def stop(data_dir: Path) -> bool:
    pid_file = data_dir / "monitoring" / "prometheus.pid"
    if not pid_file.is_file():
        return False
    pid = int(pid_file.read_text().strip() or 0)
    stopped = bool(pid) and is_pid_running(pid)
    if stopped:
        signal_group(pid, signal.SIGTERM)
    pid_file.unlink()
    return stopped
