"""storebench: real blocks replayed on SQLite stores, figures per variant as JSON."""

from __future__ import annotations

import json

from ipchain.workloads import storebench


def test_each_variant_stores_every_block_and_reports_its_cpu_and_wal_pages(tmp_path):
    out = tmp_path / "storebench.json"
    assert storebench.main(["--prefill", "200", "--blocks", "4", "--txs-per-block", "20",
                            "--clients", "4", "--checkpoint-every", "2",
                            "--ref", "worktree@4", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    rows = {row["variant"]: row for row in result["variants"]}
    assert set(rows) == {"worktree", "worktree@4"}
    for row in rows.values():
        assert row["blocks"] == 4 and row["us_per_block"] > 0
        assert row["save_block_us_per_block"] > 0 and row["wal_frames_per_block"] > 0
    assert rows["worktree@4"]["median_round_ratio_vs_worktree@4"] == 1.0


def test_replayed_blocks_are_the_executed_ones():
    _, calls = storebench.real_blocks(2, 5, 3, seed=1)
    assert [call[0] for call in calls] == [1, 2]
    for call in calls:
        receipts = call[6]
        assert len(receipts) == 5 and [idx for _, idx, _ in receipts] == list(range(5))
        assert all(len(tx_id) == 32 and record for tx_id, _, record in receipts)
        assert call[7]  # the transfers changed balances
