"""Tables for humans: rich when stdout is a terminal, plain aligned text otherwise.

Plain output keeps pipes, logs and tests free of colour codes and box characters.
Numbers are right-aligned with thousands separators (identifiers such as ports and pids
are not numbers to a reader and stay as they are); on a terminal, long cells wrap
instead of being cut to "…": a figure that cannot be read is not shown at all.
"""

from __future__ import annotations

import sys
import time
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


class Progress:
    """Long work made visible on stderr: a rich bar when stderr is a terminal, else a
    plain line now and then (and at the end), so logs and pipes get readable text and
    stdout stays for the result.

        with Progress("demo steps", total=40) as bar:
            bar.update(advance=1, note="phase licensing")
    """

    def __init__(self, what: str, total: float | None, unit: str = "",
                 stream: TextIO | None = None, every_s: float = 5.0) -> None:
        self.what, self.total, self.unit = what, total, unit
        self.stream = stream or sys.stderr
        self.every_s = every_s
        self.completed = 0.0
        self.note = ""
        self._bar: Any = None
        self._task: Any = None
        self._last_line_s: float | None = None
        self._last_line = ""

    def __enter__(self) -> "Progress":
        if is_tty(self.stream):
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress,
                                       TextColumn, TimeElapsedColumn)
            self._bar = RichProgress(TextColumn(self.what), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), TextColumn("{task.fields[note]}"),
                                     console=Console(file=self.stream))
            self._task = self._bar.add_task(self.what, total=self.total, note="")
            self._bar.start()
        return self

    def update(self, completed: float | None = None, advance: float = 0,
               note: str | None = None) -> None:
        self.completed = (self.completed if completed is None else completed) + advance
        self.note = self.note if note is None else note
        if self._bar is not None:
            self._bar.update(self._task, completed=self.completed, note=self.note)
            return
        now = time.monotonic()
        if self._last_line_s is None or now - self._last_line_s >= self.every_s:
            self._last_line_s = now
            self._line()

    def log(self, message: str) -> None:
        """A line of narrative on the same stream, above the bar when there is one."""
        if self._bar is not None:
            self._bar.console.print(message, markup=False, highlight=False)
        else:
            print(message, file=self.stream, flush=True)

    def _line(self) -> None:
        done = f"{self.completed:,.0f}" + (f"/{self.total:,.0f}" if self.total else "")
        line = f"{self.what}: {done}{self.unit}" + (f" | {self.note}" if self.note else "")
        if line != self._last_line:  # the closing line repeats nothing already said
            print(line, file=self.stream, flush=True)
            self._last_line = line

    def __exit__(self, kind: Any, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()
        elif kind is None:  # a failure says so itself; no progress line before it
            self._line()
