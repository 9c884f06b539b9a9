"""Where a scenario field was written, so every refusal names `file:line: field`.

tomllib reports line numbers for syntax errors only; for a value that parses but is
wrong (a typo'd key, a node the cluster will not have) the field's line is found by
scanning the text. The scenario format is flat enough — top-level keys, two tables, one
array of tables with inline rule tables — that a scan finds each field's line without
a position-tracking parser.
"""

from __future__ import annotations

import re
from typing import Any


class ScenarioError(ValueError):
    """A scenario that cannot run: `file:line: field: what is wrong`."""

    def __init__(self, path: str, line: int | None, field_name: str, message: str) -> None:
        self.path, self.line, self.field, self.message = path, line, field_name, message
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {field_name}: {message}" if field_name else
                         f"{where}: {message}")


# -- locating lines ---------------------------------------------------------------------
_HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\-]+)\s*\]\]?")


class LineFinder:
    """Where a field was written: the scenario format is flat enough (top-level keys,
    two tables, one array of tables with inline rule tables) that scanning the text
    finds each field's line without a position-tracking parser."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()

    def _section(self, name: str | None, occurrence: int = 0) -> tuple[int, int]:
        """[first, last) line indices of a section's body (None: before any header)."""
        starts = [i for i, line in enumerate(self.lines)
                  if (m := _HEADER.match(line)) and m.group(1) == name]
        if name is None:
            first_header = next((i for i, l in enumerate(self.lines) if _HEADER.match(l)),
                                len(self.lines))
            return 0, first_header
        if occurrence >= len(starts):
            return -1, -1
        start = starts[occurrence]
        end = next((i for i in range(start + 1, len(self.lines)) if _HEADER.match(self.lines[i])),
                   len(self.lines))
        return start, end

    def find(self, section: str | None, key: str | None, occurrence: int = 0,
             inner: tuple[str, ...] = ()) -> int | None:
        """1-based line of `key` in `section` (its `occurrence`-th [[section]]), or of the
        section header when the key is absent; `inner` narrows to a nested key."""
        start, end = self._section(section, occurrence)
        if start < 0:
            return None
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=") if key else None
        body_start = start if section is None else start + 1
        for i in range(body_start, end):
            if pattern is None or not pattern.match(self.lines[i]):
                continue
            return self._inner(i, end, inner) + 1
        return start + 1 if section is not None else None

    def _inner(self, first: int, end: int, inner: tuple) -> int:
        """The line of a nested key: `inner` is (item index, key) inside an array of inline
        tables, or (key,); the array's own line when the key is not written out."""
        if not inner:
            return first
        *item, key = inner
        begin = first
        if item:  # skip to the line where the item-th `{` of the array opens
            opened = 0
            for j in range(first, end):
                opened += self.lines[j].count("{")
                if opened > item[0]:
                    begin = j
                    break
        for j in range(begin, end):
            if re.search(rf"\b{re.escape(key)}\b", self.lines[j]):
                return j
        return begin


class Reader:
    """Typed field access that raises ScenarioError with the field's line."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.finder = LineFinder(text)

    def fail(self, where: tuple, name: str, message: str) -> ScenarioError:
        section, occurrence, key, inner, label = where
        line = self.finder.find(section, key, occurrence, inner)
        return ScenarioError(self.path, line, label or name, message)

    def at_top(self, key: str) -> tuple:
        return (None, 0, key, (), key)

    def at_table(self, table: str, key: str) -> tuple:
        return (table, 0, key, (), f"{table}.{key}")

    def at_event(self, k: int, key: str | None, inner: tuple[str, ...] = (),
                 label: str | None = None) -> tuple:
        return ("events", k, key, inner, label or f"events[{k}]" + (f".{key}" if key else ""))

    def number(self, table: dict[str, Any], key: str, where: tuple, default: Any,
               low: float = 0.0, high: float | None = None, integer: bool = False) -> Any:
        value = table.get(key, default)
        kinds = (int,) if integer else (int, float)
        if value is None and default is None:
            return None
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise self.fail(where, key, f"must be {'an integer' if integer else 'a number'}, "
                                        f"not {value!r}")
        if value < low or (high is not None and value > high):
            bound = f"between {low:g} and {high:g}" if high is not None else f">= {low:g}"
            raise self.fail(where, key, f"must be {bound}, not {value!r}")
        return value

    def unknown(self, table: dict[str, Any], allowed: set[str], where_of) -> None:
        for key in table:
            if key not in allowed:
                raise self.fail(where_of(key), key, f"unknown field (known: {sorted(allowed)})")
