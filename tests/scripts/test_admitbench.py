"""admitbench: relayed frames through the node's inbound path, verdicts checked, as JSON."""

from __future__ import annotations

import json

from ipchain.workloads import admitbench


def test_every_relayed_transaction_is_admitted_and_verified_once(tmp_path) -> None:
    out = tmp_path / "admitbench.json"
    assert admitbench.main(["--frames", "2", "--frame-txs", "20", "--clients", "8",
                            "--frames-file", str(tmp_path / "frames.mp"),
                            "--out", str(out)]) == 0
    row = json.loads(out.read_text())
    assert row["verify"] == "ed25519" and row["txs"] == 40
    assert row["admitted"] == 40 and row["signature_verifications"] == 40
    assert row["cpu_us_per_tx"] > 0
    # the frames were signed once and cached: a second run reads the same file
    assert (tmp_path / "frames.mp").stat().st_size > 0
    assert admitbench.main(["--frames", "1", "--load-frames", "2", "--frame-txs", "20",
                            "--clients", "8", "--frames-file", str(tmp_path / "frames.mp"),
                            "--out", str(out)]) == 0
    assert json.loads(out.read_text())["admitted"] == 20
