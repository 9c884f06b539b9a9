"""docs/sdk.md's walk-through, run as written against a real 4-node cluster: deposit a
patent, grant it, license it, read and verify the acceptance's proof, read the block
and the event stream. If the doc and the SDK drift apart, this fails."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster

DOC = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"


def doc_code() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 6, "docs/sdk.md lost its walk-through"
    return "\n".join(blocks)


def test_the_sdk_walkthrough_runs_against_a_real_cluster(start_cluster):
    cluster, _ = start_cluster(4, clients=0)
    namespace = {"NODE_URL": cluster.urls[0], "DATA_DIR": cluster.data_dir}
    exec(compile(doc_code(), str(DOC), "exec"), namespace)  # noqa: S102 (our own doc)
    assert namespace["licence"]["state"] == "active"
    assert namespace["accepted"]["id"] in str(namespace["summary"])
