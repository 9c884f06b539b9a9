"""Container deployments, checked by their own tools: docker-compose and Kubernetes schemas.

No Docker daemon runs on this project's machines and no registry but PyPI, Debian and npm
is reachable, so the image itself is not built here (README says so); what is checked is
everything a daemon would read: the compose file, the manifests and the Dockerfile.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from scripts import net

ROOT = Path(__file__).resolve().parents[2]


def _init(tmp: Path, *flags: str) -> Path:
    out = tmp / "net"
    assert net.main(["init", *flags, "--out", str(out), "--json"]) == 0
    return out


def test_compose_file_passes_docker_compose_config(tmp_path: Path) -> None:
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose is not installed (.ci/run installs Debian's)")
    out = _init(tmp_path, "--compose", "4")
    checked = subprocess.run(["docker-compose", "config"], cwd=out, capture_output=True,
                             text=True, timeout=60)
    assert checked.returncode == 0, checked.stderr
    resolved = yaml.safe_load(checked.stdout)
    assert sorted(resolved["services"]) == ["node0", "node1", "node2", "node3"]
    assert sorted(resolved["volumes"]) == [f"node{i}-data" for i in range(4)]
    peers = (out / "node0" / "config.toml").read_text()
    assert 'url = "https://node1:26656"' in peers


def test_kubernetes_manifests_pass_the_schema_in_strict_mode(tmp_path: Path) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate",
                                              reason="kubernetes-validate is not installed")
    out = _init(tmp_path, "--kubernetes", "4")
    docs = list(yaml.safe_load_all((out / "kubernetes.yaml").read_text()))
    assert [d["kind"] for d in docs] == ["Secret", "Service", "StatefulSet"]
    for doc in docs:
        kubernetes_validate.validate(doc, "1.30", strict=True)
    assert docs[2]["spec"]["replicas"] == 4
    assert "node3.tls.node.key" in docs[0]["data"]
    assert (out / "kubernetes.yaml").stat().st_mode & 0o077 == 0
    broken = {**docs[2], "spec": {**docs[2]["spec"], "replicas": "four"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, "1.30", strict=True)


def test_dockerfile_runs_as_non_root_with_a_health_check_and_no_secrets() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "USER ipchain" in text and "HEALTHCHECK" in text and "/v1/status" in text
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".ipchain" in ignored and ".git" in ignored
