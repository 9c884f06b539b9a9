"""Plain tables when stdout is not a terminal (pipes, logs, tests)."""

from __future__ import annotations

import io

from ipchain.render import format_table, print_table


def test_format_table_aligns_columns_and_blanks_none() -> None:
    text = format_table(["node", "height"], [["node0", 12], ["node10", None]])
    assert text.splitlines() == ["node    height", "------  ------", "node0       12", "node10"]


def test_numbers_are_right_aligned_with_separators_but_identifiers_are_not() -> None:
    text = format_table(["org", "balance", "pid"], [["a", 1_000_003, 26600], ["bb", 7, 3]])
    assert text.splitlines() == ["org    balance    pid", "---  ---------  -----",
                                 "a    1,000,003  26600", "bb           7      3"]


def test_a_terminal_table_wraps_long_cells_instead_of_cutting_them(monkeypatch) -> None:
    import ipchain.render as render

    monkeypatch.setenv("COLUMNS", "40")  # narrower than the cell: rich must wrap it

    out = io.StringIO()
    long = "licence-" + "x" * 60
    real = render.is_tty
    render.is_tty = lambda stream=None: True
    try:
        render.print_table("t", ["id", "amount"], [[long, 1234567]], out)
    finally:
        render.is_tty = real
    text = out.getvalue()
    assert "…" not in text and "1,234,567" in text
    assert text.count("x") == 60 and len(text.splitlines()) > 6  # all there, over lines


def test_print_table_is_plain_without_a_tty() -> None:
    out = io.StringIO()
    print_table("nodes", ["a"], [[1]], out)
    assert out.getvalue() == "nodes\na\n-\n1\n"


def test_progress_without_a_tty_prints_lines_and_never_the_same_one_twice() -> None:
    import io
    from ipchain.render import Progress
    stream = io.StringIO()
    with Progress("faults run x", total=10, unit="s", stream=stream, every_s=0) as bar:
        bar.update(completed=3)
        bar.update(completed=10, note="done")
    assert stream.getvalue().splitlines() == ["faults run x: 3/10s",
                                              "faults run x: 10/10s | done"]
