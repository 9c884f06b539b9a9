"""execbench: the executor's two input paths give the same stored bytes, and the run
writes its figures as JSON (the benchmark's digest is what proves an optimisation kept
the protocol's bytes, so it must really cover headers, receipts and state)."""

from __future__ import annotations

import json

from ipchain.workloads import execbench
from node.memory_storage import MemoryStorage


def test_admitted_and_fetched_blocks_store_the_same_bytes(tmp_path):
    out = tmp_path / "execbench.json"
    assert execbench.main(["--blocks", "3", "--txs-per-block", "6", "--clients", "4",
                           "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    admitted, fetched = result["passes"]
    assert (admitted["mode"], fetched["mode"]) == ("admitted", "fetched")
    assert admitted["txs"] == fetched["txs"] == 3 * 7  # each block repeats one tx
    assert admitted["output_digest"] == fetched["output_digest"]
    assert admitted["head"] == fetched["head"]
    assert admitted["us_per_tx"] > 0


def test_the_digest_covers_blocks_receipts_and_state():
    storage = MemoryStorage()
    storage.blocks_by_height[1] = (b"hash", b"header", b"root", b"pp", b"cert")
    storage.txs[bytes(32)] = (1, 0, b"receipt")
    storage.state["bal/BPC/a"] = b"\x01"
    before = execbench.output_digest(storage)
    for change in (lambda: storage.blocks_by_height.__setitem__(1, (b"hash", b"HEADER", b"root",
                                                                    b"pp", b"cert")),
                   lambda: storage.txs.__setitem__(bytes(32), (1, 0, b"RECEIPT")),
                   lambda: storage.state.__setitem__("bal/BPC/a", b"\x02")):
        change()
        after = execbench.output_digest(storage)
        assert after != before
        before = after


def test_the_digest_check_before_each_block_changes_no_stored_byte(tmp_path):
    """With it the executor takes the batch's ids and root from the replica's
    BatchHashes; without, it hashes the batch itself: the same headers either way."""
    rows = []
    for flags in ([], ["--no-digest-check"]):
        out = tmp_path / f"execbench{len(flags)}.json"
        assert execbench.main(["--blocks", "3", "--txs-per-block", "6", "--clients", "4",
                               "--mode", "admitted", "--out", str(out), *flags]) == 0
        rows.append(json.loads(out.read_text())["passes"][0])
    assert [row["digest_check"] for row in rows] == [True, False]
    assert rows[0]["output_digest"] == rows[1]["output_digest"]
