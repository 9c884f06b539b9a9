"""A node's log file is rotated by size (issue 17, B6: one line per failed accept once
wrote 83 MB a minute): however much is logged, the files stay bounded."""

from __future__ import annotations

import logging
from pathlib import Path

from node import logs


def test_a_flood_of_log_lines_stays_within_the_rotation_bound(tmp_path: Path,
                                                              monkeypatch) -> None:
    monkeypatch.setattr(logs, "LOG_FILE_BYTES", 10_000)
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    log_file = tmp_path / "node.log"
    try:
        logs.configure("warning", "node0", str(log_file))
        for i in range(5_000):
            logging.getLogger("ipchain.test").warning("event=flood i=%d", i)
        for handler in root.handlers:
            handler.flush()
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:], root.level = saved
    files = sorted(tmp_path.glob("node.log*"))
    assert [f.name for f in files] == ["node.log", "node.log.1", "node.log.2", "node.log.3"]
    assert all(f.stat().st_size <= 10_000 for f in files)
    assert "event=flood i=4999" in log_file.read_text()
