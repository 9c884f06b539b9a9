"""Shipped configuration files (fault scenarios in faults/*.toml).

A package, so that a regular `pip install` carries the files as package data and
`ipchain faults list` finds them wherever the project is installed."""

from pathlib import Path

FAULT_SCENARIOS = Path(__file__).resolve().parent / "faults"
MONITORING = Path(__file__).resolve().parent / "monitoring"
