"""report.html: the fault run for a browser, written beside report.json, in the explorer's
style; everything a (possibly Byzantine) node said is escaped, never markup."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

from ipchain.checks import Violation, run_checks
from tests.checks.planted import clean_history
from tests.faults.test_report import fake_run


class Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs) -> None:
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(path: Path) -> Collect:
    page = Collect()
    page.feed(path.read_text())
    return page


def test_a_clean_run_writes_a_self_contained_page_that_says_passed(tmp_path: Path) -> None:
    fake_run(clean_history(), [], tmp_path)
    page = parse(tmp_path / "report.html")
    text = " ".join(page.text)
    assert "PASSED (expected: pass)" in text and "kill node3" in text and "planted" in text
    assert "svg" in page.tags and "style" in page.tags  # timeline and style sheet inlined
    assert "script" not in page.tags and "link" not in page.tags  # nothing fetched, nothing run
    assert ".card" in text  # the explorer's own style sheet


def test_violations_show_their_evidence_escaped(tmp_path: Path) -> None:
    history = clean_history()
    node3 = history.replicas[3]
    node3.blocks = node3.blocks[:2] + [
        b.__class__(**{**b.__dict__, "hash": "f" * 64}) for b in node3.blocks[2:]]
    violations, _ = run_checks(history)
    planted = Violation("agreement", "node 3 said <script>alert(1)</script>", (3,), (9,),
                        {"said": "<img src=x onerror=alert(1)>"})
    fake_run(history, [*violations, planted], tmp_path)
    raw = (tmp_path / "report.html").read_text()
    page = parse(tmp_path / "report.html")
    assert "FAILED" in " ".join(page.text) and "agreement" in " ".join(page.text)
    assert "<script>" not in raw and "<img" not in raw and "&lt;script&gt;" in raw
    assert "script" not in page.tags and "img" not in page.tags
    assert "ffffffffffffffff" in raw  # the fork's evidence: node 3's other hash
