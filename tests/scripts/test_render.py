"""Plain tables when stdout is not a terminal (pipes, logs, tests)."""

from __future__ import annotations

import io

from ipchain.render import format_table, print_table


def test_format_table_aligns_columns_and_blanks_none() -> None:
    text = format_table(["node", "height"], [["node0", 12], ["node10", None]])
    assert text.splitlines() == ["node    height", "------  ------", "node0   12", "node10"]


def test_print_table_is_plain_without_a_tty() -> None:
    out = io.StringIO()
    print_table("nodes", ["a"], [[1]], out)
    assert out.getvalue() == "nodes\na\n-\n1\n"
