"""Schemathesis against a live 4-node cluster: generated requests for every documented
operation (bounded example count), no 5xx, every response matching its schema.

/v1/events is left out: it is an endless server-sent stream, tested in
tests/node/test_sse.py. The admin routes are exercised without the token (their 401
is documented and checked)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.cluster

MAX_EXAMPLES = 20
HERE = Path(__file__).resolve().parent


def schemathesis_cli() -> str:
    found = shutil.which("st", path=str(Path(sys.executable).parent)) or shutil.which("st")
    if found is None:
        pytest.skip("the schemathesis CLI (`st`) is not installed on this machine (.ci/run)")
    return found


def test_schemathesis_finds_no_server_error_and_no_schema_mismatch(start_cluster, tmp_path):
    st = schemathesis_cli()
    cluster, _ = start_cluster(4, clients=0)
    env = {**os.environ, "PYTHONPATH": str(HERE), "SCHEMATHESIS_HOOKS": "schemathesis_hooks"}
    run = subprocess.run(
        [st, "run", f"{cluster.urls[0]}/openapi.json", "--max-examples", str(MAX_EXAMPLES),
         "--checks", "not_a_server_error,response_schema_conformance",
         "--exclude-path", "/v1/events", "--request-timeout", "10",
         "--generation-deterministic", "--phases", "fuzzing,stateful"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    summary = run.stdout[run.stdout.rfind("SUMMARY"):]
    print(summary)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", summary)
    assert counts and counts.group(1) == counts.group(2) and int(counts.group(1)) > 100
    # Every operation schemathesis found but the event stream was exercised.
    selected = re.search(r"Selected: (\d+)/(\d+)", summary)
    assert selected and int(selected.group(1)) == int(selected.group(2)) - 1 >= 20, summary
    assert f"Tested: {selected.group(1)}" in summary
