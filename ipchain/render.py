"""Tables for humans: rich when stdout is a terminal, plain aligned text otherwise.

Plain output keeps pipes, logs and tests free of colour codes and box characters.
Numbers are right-aligned with thousands separators (identifiers such as ports and pids
are not numbers to a reader and stay as they are); on a terminal, long cells wrap
instead of being cut to "…": a figure that cannot be read is not shown at all.
"""

from __future__ import annotations

import sys
from typing import Any, Sequence, TextIO


def is_tty(stream: TextIO | None = None) -> bool:
    stream = stream or sys.stdout
    return hasattr(stream, "isatty") and stream.isatty()


IDENTIFIER_COLUMNS = {"pid", "port", "seed", "index", "nonce", "base port"}


def cell(value: Any, column: str) -> str:
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool) and \
            column.lower() not in IDENTIFIER_COLUMNS:
        return f"{value:,}"
    return str(value)


def numeric_columns(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> set[int]:
    """Columns whose every filled cell is a number: those are right-aligned."""
    return {i for i in range(len(columns))
            if any(row[i] is not None for row in rows)
            and all(row[i] is None or (isinstance(row[i], (int, float))
                                       and not isinstance(row[i], bool)) for row in rows)}


def format_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    right = numeric_columns(columns, rows)
    cells = [[str(c) for c in columns]] + [[cell(v, columns[i]) for i, v in enumerate(row)]
                                           for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(c.rjust(w) if i in right else c.ljust(w)
                       for i, (c, w) in enumerate(zip(row, widths))).rstrip()
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                stream: TextIO | None = None) -> None:
    stream = stream or sys.stdout
    if is_tty(stream):
        from rich.console import Console
        from rich.table import Table

        right = numeric_columns(columns, rows)
        table = Table(title=title)
        for i, column in enumerate(columns):
            table.add_column(column, overflow="fold", justify="right" if i in right else "left")
        for row in rows:
            table.add_row(*(cell(v, columns[i]) for i, v in enumerate(row)))
        Console(file=stream).print(table)
        return
    if title:
        print(title, file=stream)
    print(format_table(columns, rows), file=stream)


def say(message: str, stream: TextIO | None = None) -> None:
    print(message, file=stream or sys.stdout, flush=True)
