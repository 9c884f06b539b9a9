"""argparse value types shared by the ipchain subcommands."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

MAX_BASE_PORT = 65535 - 64
"""Room for a 64-node cluster above the base port."""


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def base_port(text: str) -> int:
    """A node's port is base-port + i, so the base leaves room for a cluster above it.

    Ports below 1024 are refused for a non-root user here rather than by the node process
    after the data dir was written (a PermissionError in a log nobody reads)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= value <= MAX_BASE_PORT:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_BASE_PORT} "
                                         "(node i listens on base-port + i)")
    if value < 1024 and os.geteuid() != 0:
        raise argparse.ArgumentTypeError("ports below 1024 need root; choose 1024 or above")
    return value


def json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value
