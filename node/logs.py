"""Structured logs: one event per line as key=value, quiet (warnings) by default.

Our own messages are written as `event=<name> key=value ...`. Lines from libraries
(aiohttp, paho) are free text, so they are wrapped as `event=log msg="<quoted>"`, and
anything multi-line (a message, a traceback) is quoted onto its one line — a log
reader can split every line on spaces outside quotes and never see half an event.
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import sys
import time

from node.config import ConfigError

LEVELS = ("debug", "info", "warning", "error", "critical")
LOG_FILE_BYTES = 16 * 1024 * 1024
LOG_FILE_BACKUPS = 3
"""A node's log file is rotated at 16 MiB with 3 old files kept: at most 64 MiB of disk,
whatever a flood of refused connections or bad requests makes it say."""


def quote(text: str) -> str:
    """A JSON string: quotes, backslashes and newlines escaped, so it stays one field."""
    return json.dumps(text, ensure_ascii=False)


class KeyValueFormatter(logging.Formatter):
    def __init__(self, node_id: str = "") -> None:
        super().__init__()
        self.node = f"node={node_id} " if node_id else ""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        message = record.getMessage()
        if not message.startswith("event="):
            message = "event=log msg=" + quote(message)
        elif "\n" in message:
            message = message.replace("\n", "\\n")
        line = (f"ts={stamp}.{int(record.msecs):03d}Z level={record.levelname.lower()} "
                f"logger={record.name} {self.node}{message}")
        if record.exc_info:
            line += " exc=" + quote(self.formatException(record.exc_info))
        return line


def configure(level: str = "warning", node_id: str = "", log_file: str | None = None) -> None:
    """Send every logger's records, as key=value lines, at `level` and above, to stderr or
    to `log_file` (rotated by size, see LOG_FILE_BYTES)."""
    if level.lower() not in LEVELS:
        raise ConfigError(f"unknown log level {level!r}; use one of {', '.join(LEVELS)}")
    handler: logging.Handler = (
        logging.handlers.RotatingFileHandler(log_file, maxBytes=LOG_FILE_BYTES,
                                             backupCount=LOG_FILE_BACKUPS)
        if log_file else logging.StreamHandler(sys.stderr))
    handler.setFormatter(KeyValueFormatter(node_id))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
