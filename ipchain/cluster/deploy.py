"""Container deployments of a bundle set: a compose file and a Kubernetes StatefulSet.

Both run the image built from the repository's Dockerfile, one container per node, each
with its bundle (from `ipchain.cluster.bundle`) at /bundle and a volume of its own for
/bundle/data, so a container can be replaced without losing its chain. Peers find each
other by name: compose service `node<i>`; in Kubernetes the StatefulSet's pods
`ipchain-<i>` behind a headless service. Bundles for these are generated with those
names as hosts (`net init --compose` / `--kubernetes` do it).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml

IMAGE = "ipchain:latest"
API_PORT = 26600
P2P_PORT = 26656
HEALTH = ["CMD", "python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen("
          f"'http://127.0.0.1:{API_PORT}/v1/status', timeout=2).status != 200)"]


def compose_hosts(n: int) -> list[tuple[str, int]]:
    return [(f"node{i}", 1) for i in range(n)]


def kubernetes_hosts(n: int, name: str = "ipchain") -> list[tuple[str, int]]:
    return [(f"{name}-{i}.{name}", 1) for i in range(n)]


def compose_file(n: int, image: str = IMAGE) -> dict[str, Any]:
    """Services node0..node<n-1>; node i's API is published on localhost:API_PORT+i."""
    services = {}
    for i in range(n):
        services[f"node{i}"] = {
            "image": image, "hostname": f"node{i}",
            "volumes": [f"./node{i}:/bundle:ro", f"node{i}-data:/bundle/data"],
            "ports": [f"127.0.0.1:{API_PORT + i}:{API_PORT}"],
            "healthcheck": {"test": HEALTH, "interval": "10s", "timeout": "3s", "retries": 3,
                            "start_period": "20s"},
            "restart": "unless-stopped",
        }
    # "version" is obsolete for Compose v2 (it warns and ignores it) but still required by
    # the v1 tool Debian ships, whose `docker-compose config` validates this file in CI.
    return {"version": "3.8", "services": services,
            "volumes": {f"node{i}-data": {} for i in range(n)}}


def _bundle_secret(bundles: Path, n: int, name: str) -> dict[str, Any]:
    data: dict[str, str] = {}
    for i in range(n):
        home = bundles / f"node{i}"
        for path in sorted(p for p in home.rglob("*") if p.is_file() and "data" not in p.parts):
            key = f"node{i}." + ".".join(path.relative_to(home).parts)
            data[key] = base64.b64encode(path.read_bytes()).decode()
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": f"{name}-bundles"}, "data": data}


def _copy_script(name: str) -> str:
    """Each pod takes the bundle of its own ordinal (a StatefulSet cannot template a
    volume per pod, so every pod mounts all bundles and copies its own)."""
    return ("set -e; i=${HOSTNAME##*-}; cd /bundles; mkdir -p /bundle/tls; "
            "for f in node$i.*; do rest=${f#node$i.}; "
            "case $rest in tls.*) cp \"$f\" /bundle/tls/${rest#tls.};; *) cp \"$f\" /bundle/$rest;; esac; "
            "done; chmod 600 /bundle/node.key /bundle/admin.token /bundle/tls/node.key")


def kubernetes_manifests(bundles: Path, n: int, name: str = "ipchain",
                         image: str = IMAGE) -> list[dict[str, Any]]:
    labels = {"app": name}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
               "spec": {"clusterIP": "None", "selector": labels, "publishNotReadyAddresses": True,
                        "ports": [{"name": "api", "port": API_PORT},
                                  {"name": "p2p", "port": P2P_PORT}]}}
    probe = {"httpGet": {"path": "/v1/status", "port": API_PORT}, "periodSeconds": 10,
             "timeoutSeconds": 3}
    pod = {
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "fsGroup": 10001},
        "initContainers": [{"name": "bundle", "image": image,
                            "command": ["sh", "-c", _copy_script(name)],
                            "volumeMounts": [{"name": "bundles", "mountPath": "/bundles"},
                                             {"name": "bundle", "mountPath": "/bundle"}]}],
        "containers": [{"name": "node", "image": image,
                        "ports": [{"name": "api", "containerPort": API_PORT},
                                  {"name": "p2p", "containerPort": P2P_PORT}],
                        "readinessProbe": probe, "livenessProbe": {**probe, "initialDelaySeconds": 20},
                        "volumeMounts": [{"name": "bundle", "mountPath": "/bundle"},
                                         {"name": "data", "mountPath": "/bundle/data"}]}],
        "volumes": [{"name": "bundles", "secret": {"secretName": f"{name}-bundles"}},
                    {"name": "bundle", "emptyDir": {}}],
    }
    statefulset = {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
        "spec": {"serviceName": name, "replicas": n, "podManagementPolicy": "Parallel",
                 "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels}, "spec": pod},
                 "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                     "accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "10Gi"}}}}]}}
    return [_bundle_secret(bundles, n, name), service, statefulset]


def write_compose(out: Path, n: int) -> Path:
    path = out / "compose.yaml"
    path.write_text(yaml.safe_dump(compose_file(n), sort_keys=False))
    return path


def write_kubernetes(out: Path, n: int) -> Path:
    path = out / "kubernetes.yaml"
    path.write_text(yaml.safe_dump_all(kubernetes_manifests(out, n), sort_keys=False))
    path.chmod(0o600)  # it carries every node's keys
    return path
