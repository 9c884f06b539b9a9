"""Structured logs: one event per line as key=value (logfmt) or JSON, quiet by default.

New code logs `log.info(Event("block", height=7, txs=3))`: the line is only built if
the level lets it through, and every value is quoted when it must be (spaces, quotes,
`=`, backslashes, control characters) so a strict logfmt parser reads every line.
`--log-format json` writes the same fields as one JSON object per line.

Our own messages are written as `event=<name> key=value ...`. Lines from libraries
(aiohttp, paho) are free text, so they are wrapped as `event=log msg="<quoted>"`, and
anything multi-line (a message, a traceback) is quoted onto its one line — a log
reader can split every line on spaces outside quotes and never see half an event.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import re
import sys
import time
from typing import Any

from node.config import ConfigError

LEVELS = ("debug", "info", "warning", "error", "critical")
FORMATS = ("logfmt", "json")
_BARE = re.compile(r"[A-Za-z0-9_.:/@+\-]+")
_LEGACY_FIELD = re.compile(r'([A-Za-z0-9_.:-]+)=("(?:[^"\\]|\\.)*"|\S*)')
LOG_FILE_BYTES = 16 * 1024 * 1024
LOG_FILE_BACKUPS = 3
"""A node's log file is rotated at 16 MiB with 3 old files kept: at most 64 MiB of disk,
whatever a flood of refused connections or bad requests makes it say."""


def quote(text: str) -> str:
    """A JSON string: quotes, backslashes and newlines escaped, so it stays one field."""
    return json.dumps(text, ensure_ascii=False)


def value(item: Any) -> str:
    """One logfmt value: bare when it is a plain token, else a JSON-quoted string."""
    if isinstance(item, bool):
        return "true" if item else "false"
    text = item if isinstance(item, str) else str(item)
    return text if _BARE.fullmatch(text) else quote(text)


class Event:
    """A log event built lazily: `str()` (logfmt) or `fields()` (JSON) only when written."""

    __slots__ = ("name", "data")

    def __init__(self, name: str, **data: Any) -> None:
        self.name, self.data = name, data

    def __str__(self) -> str:
        return " ".join([f"event={value(self.name)}",
                         *(f"{k}={value(v)}" for k, v in self.data.items())])

    def fields(self) -> dict[str, Any]:
        return {"event": self.name, **{k: _plain(v) for k, v in self.data.items()}}


def _plain(item: Any) -> Any:
    return item if isinstance(item, (bool, int, float, str)) or item is None else str(item)


def _legacy_fields(message: str) -> dict[str, Any]:
    """Fields of an older `event=x key=value` message, for the JSON formatter."""
    fields: dict[str, Any] = {}
    for key, raw in _LEGACY_FIELD.findall(message):
        fields[key] = json.loads(raw) if raw.startswith('"') else raw
    return fields or {"event": "log", "msg": message}


def _stamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + \
        f".{int(record.msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, node, event and the event's fields."""

    def __init__(self, node_id: str = "") -> None:
        super().__init__()
        self.node = node_id

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"ts": _stamp(record), "level": record.levelname.lower(),
                                "logger": record.name}
        if self.node:
            line["node"] = self.node
        if isinstance(record.msg, Event):
            line.update(record.msg.fields())
        else:
            message = record.getMessage()
            line.update(_legacy_fields(message) if message.startswith("event=")
                        else {"event": "log", "msg": message})
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class KeyValueFormatter(logging.Formatter):
    def __init__(self, node_id: str = "") -> None:
        super().__init__()
        self.node = f"node={value(node_id)} " if node_id else ""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        message = record.getMessage()
        if isinstance(record.msg, Event):
            pass
        elif not message.startswith("event="):
            message = "event=log msg=" + quote(message)
        elif "\n" in message:
            message = message.replace("\n", "\\n")
        line = (f"ts={stamp}.{int(record.msecs):03d}Z level={record.levelname.lower()} "
                f"logger={record.name} {self.node}{message}")
        if record.exc_info:
            line += " exc=" + quote(self.formatException(record.exc_info))
        return line


def check_level(level: str) -> str:
    if not isinstance(level, str) or level.lower() not in LEVELS:
        raise ConfigError(f"unknown log level {level!r}; use one of {', '.join(LEVELS)}")
    return level.lower()


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ConfigError(f"unknown log format {fmt!r}; use one of {', '.join(FORMATS)}")
    return fmt


def set_level(level: str) -> str:
    """Change the level of a running process (the admin API's PUT /admin/log-level)."""
    level = check_level(level)
    logging.getLogger().setLevel(level.upper())
    return level


def current_level() -> str:
    return logging.getLevelName(logging.getLogger().level).lower()


def configure(level: str = "warning", node_id: str = "", log_file: str | None = None,
              fmt: str = "logfmt") -> None:
    """Send every logger's records, as logfmt or JSON lines, at `level` and above, to
    stderr or to `log_file` (rotated by size, see LOG_FILE_BYTES)."""
    check_level(level)
    formatter = JsonFormatter if check_format(fmt) == "json" else KeyValueFormatter
    handler: logging.Handler = (
        logging.handlers.RotatingFileHandler(log_file, maxBytes=LOG_FILE_BYTES,
                                             backupCount=LOG_FILE_BACKUPS)
        if log_file else logging.StreamHandler(sys.stderr))
    handler.setFormatter(formatter(node_id))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    set_level(level)
