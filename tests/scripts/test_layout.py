"""Genesis, configs and manifest as `ipchain up` writes them."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contracts.genesis import ROLES, init_state, validate
from ipchain.cluster import layout
from ipchain.sdk.client import load_key
from ipchain.cluster.manager import Cluster, ClusterError

REQUIRED_ROLE_COUNTS = {"admin": 3, "office": 1, "member": 4, "evaluator": 1, "investor": 2,
                        "trustee": 1, "regulator": 1}


@pytest.fixture(scope="module")
def created(tmp_path_factory: pytest.TempPathFactory) -> Cluster:
    return Cluster.create(tmp_path_factory.mktemp("layout") / "data", 4, 31000, 5)


def test_genesis_validates_and_builds_state(created: Cluster) -> None:
    genesis = json.loads((created.data_dir / "genesis.json").read_text())
    validate(genesis)
    state = init_state(genesis)
    assert state.get("supply/BPC") == sum(org["bpc"] for org in genesis["organisations"])
    assert genesis["chain_id"] == layout.CHAIN_ID
    assert [v["id"] for v in genesis["validators"]] == ["node0", "node1", "node2", "node3"]


def test_genesis_has_the_alliance_roles_and_bench_clients(created: Cluster) -> None:
    orgs = created.genesis["organisations"]
    for role, count in REQUIRED_ROLE_COUNTS.items():
        assert sum(role in org["roles"] for org in orgs) >= count, role
    clients = [org for org in orgs if org["id"].startswith("client-")]
    assert [org["id"] for org in clients] == [f"client-{i:03d}" for i in range(5)]
    assert all(org["roles"] == ["member"] and org["bpc"] > 0 for org in clients)
    assert {role for org in orgs for role in org["roles"]} == ROLES


def test_every_key_is_unique_and_matches_its_file(created: Cluster) -> None:
    genesis = created.genesis
    node_keys = [v["public_key"] for v in genesis["validators"]]
    org_keys = [key for org in genesis["organisations"] for key in org["keys"]]
    assert len(set(node_keys + org_keys)) == len(node_keys) + len(org_keys)
    for org in genesis["organisations"]:
        assert bytes(created.client_key(org["id"]).verify_key).hex() == org["keys"][0]
    for i, key_hex in enumerate(node_keys):
        assert bytes(load_key(created.node_dir(i) / "node.key").verify_key).hex() == key_hex


def test_key_files_are_private(created: Cluster) -> None:
    paths = [created.node_dir(0) / "node.key", Path(created.manifest["clients"]["cnipa"])]
    for path in paths:
        assert path.stat().st_mode & 0o077 == 0


def test_configs_are_valid_toml_with_ports_and_peers(created: Cluster) -> None:
    ports = []
    for i in range(4):
        config = tomllib.loads(created.config_path(i).read_text())
        assert config["node_id"] == f"node{i}" and config["index"] == i
        assert config["host"] == "127.0.0.1"
        ports.append(config["port"])
        assert Path(config["data_dir"]).is_absolute() and Path(config["key_file"]).is_file()
        assert Path(config["genesis_file"]) == created.data_dir / "genesis.json"
        assert "admin_token" not in config  # the secret lives in its own 0600 file
        token_file = Path(config["admin_token_file"])
        assert len(token_file.read_text().strip()) == 32
        assert token_file.stat().st_mode & 0o077 == 0
        peers = config["peers"]
        assert [p["index"] for p in peers] == [j for j in range(4) if j != i]
        assert all(p["url"] == f"http://127.0.0.1:{31000 + p['index']}" for p in peers)
        assert "consensus" not in config
    assert ports == [31000, 31001, 31002, 31003]


def test_manifest_lists_nodes_and_every_org_key(created: Cluster) -> None:
    manifest = json.loads((created.data_dir / "cluster.json").read_text())
    assert manifest["base_port"] == 31000 and manifest["chain_id"] == layout.CHAIN_ID
    assert [node["url"] for node in manifest["nodes"]] == created.urls
    assert all(Path(node["config"]).is_file() and node["pid"] is None
               for node in manifest["nodes"])
    assert set(manifest["clients"]) == {org["id"] for org in created.genesis["organisations"]}


def test_consensus_overrides_are_written(tmp_path: Path) -> None:
    cluster = Cluster.create(tmp_path / "d", 1, 31100, consensus={"batch_delay_ms": 5})
    config = tomllib.loads(cluster.config_path(0).read_text())
    assert config["consensus"] == {"batch_delay_ms": 5}
    assert config["peers"] == []  # a single node has no peers, and says so


@pytest.mark.parametrize("setup, message", [
    ("existing", "already holds a cluster"),
    ("foreign", "not an ipchain data dir"),
])
def test_create_refuses_to_overwrite(tmp_path: Path, setup: str, message: str) -> None:
    target = tmp_path / "d"
    if setup == "existing":
        Cluster.create(target, 1, 31200)
    else:
        target.mkdir()
        (target / "precious.txt").write_text("keep me")
    with pytest.raises(ClusterError, match=message):
        Cluster.create(target, 1, 31200)
    assert setup == "existing" or (target / "precious.txt").exists()


def test_fresh_replaces_keys(tmp_path: Path) -> None:
    first = Cluster.create(tmp_path / "d", 2, 31300)
    old_key = first.genesis["validators"][0]["public_key"]
    second = Cluster.create(tmp_path / "d", 3, 31300, fresh=True)
    assert second.n == 3
    assert second.genesis["validators"][0]["public_key"] != old_key


@pytest.mark.parametrize("n, base_port", [(0, 26600), (2, 65535), (1, 0)])
def test_create_rejects_bad_shapes(tmp_path: Path, n: int, base_port: int) -> None:
    with pytest.raises(ClusterError):
        Cluster.create(tmp_path / "d", n, base_port)


scalars = st.one_of(st.integers(-(2**63), 2**63 - 1), st.booleans(), st.text(max_size=20))
names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)


@settings(max_examples=60, deadline=None)
@given(top=st.dictionaries(names, scalars, max_size=5),
       table=st.dictionaries(names, scalars, max_size=4),
       items=st.lists(st.dictionaries(names, scalars, min_size=1, max_size=3), max_size=3))
def test_render_toml_round_trips_through_tomllib(top, table, items) -> None:
    doc = dict(top)
    doc.pop("tbl", None)
    doc.pop("arr", None)
    if table:
        doc["tbl"] = table
    if items:
        doc["arr"] = items
    assert tomllib.loads(layout.render_toml(doc)) == doc
