"""The dependency rule, read from the source with `ast` (DESIGN.md, "Layers").

consensus/ and contracts/ are pure: no I/O, no clock, no randomness, no threads, and
neither imports `node` or the other. Contracts also never touch a float: no float
literal, no float() call, no true division (`/` makes a float even from two ints).
The checker is itself tested on small bad snippets, so a green run means something.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PURE_PACKAGES = ("consensus", "contracts")

FORBIDDEN_MODULES = frozenset({
    "asyncio", "aiohttp", "aiomqtt", "time", "random", "socket", "sqlite3", "threading",
    "subprocess", "multiprocessing", "concurrent", "secrets", "uuid", "os", "pathlib",
    "shutil", "tempfile", "importlib", "node",
})
"""I/O, clocks, randomness, concurrency, dynamic imports and the host layer."""

FORBIDDEN_CALLS = frozenset({"open", "input", "print", "__import__", "eval", "exec", "hash",
                             "id"})
"""Builtins that do I/O, import behind the checker's back, or differ between processes
(str hashes are salted per process; ids are addresses)."""

WALL_CLOCK_METHODS = frozenset({"now", "today", "utcnow"})
"""datetime.now() and friends: contracts' only clock is the block timestamp."""


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def imported_modules(tree: ast.AST, package: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in a module of `package`.

    Relative imports are resolved; for `from X import name` both X and X.name are
    listed, since `name` may be a module (`from .. import contracts`).
    """
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parents = parts[:max(0, len(parts) - node.level + 1)]
                base = ".".join([*parents, base] if base else parents)
            if base:
                found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}" if base else alias.name)
                      for alias in node.names]
    return found


def find_violations(source: str, package: str) -> list[str]:
    """Everything in `source` (a module of `package`) that breaks the dependency rule."""
    tree = ast.parse(source)
    problems = []
    layer = package.split(".")[0]
    others = {p for p in PURE_PACKAGES if p != layer}
    for line, name in imported_modules(tree, package):
        top = name.split(".")[0]
        if top in FORBIDDEN_MODULES:
            problems.append(f"line {line}: imports {name}")
        elif top in others:
            problems.append(f"line {line}: {layer} imports {name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in FORBIDDEN_CALLS:
            problems.append(f"line {node.lineno}: calls {node.func.id}()")
    if layer == "contracts":
        problems += find_float_uses(tree)
    return problems


def find_float_uses(tree: ast.AST) -> list[str]:
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, (float, complex)):
            problems.append(f"line {node.lineno}: float literal {node.value!r}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id == "float":
            problems.append(f"line {node.lineno}: calls float()")
        elif isinstance(node, (ast.BinOp, ast.AugAssign)) and isinstance(node.op, ast.Div):
            problems.append(f"line {node.lineno}: true division makes a float; use //")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in WALL_CLOCK_METHODS:
            problems.append(f"line {node.lineno}: reads the wall clock ({node.func.attr}())")
    return problems


def pure_sources() -> list[Path]:
    return sorted(p for package in PURE_PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_the_checker_sees_both_packages():
    """An empty file list would make the layering test pass without checking anything."""
    names = {module_name(p) for p in pure_sources()}
    assert {"consensus.replica", "consensus.messages", "contracts.runtime",
            "contracts.codec"} <= names


@pytest.mark.parametrize("path", pure_sources(), ids=module_name)
def test_pure_layer_module_obeys_the_dependency_rule(path):
    package = module_name(path).rpartition(".")[0]  # consensus.__init__ -> consensus too
    assert find_violations(path.read_text(encoding="utf-8"), package) == []


BAD_SNIPPETS = [
    ("consensus", "import asyncio", "imports asyncio"),
    ("consensus", "import time as clock", "imports time"),
    ("consensus", "from random import Random", "imports random"),
    ("consensus", "import os.path", "imports os.path"),
    ("consensus", "from aiohttp import web", "imports aiohttp"),
    ("consensus", "import node.storage", "imports node.storage"),
    ("consensus", "from node import chain", "imports node"),
    ("consensus", "from contracts.tx import Transaction", "consensus imports contracts.tx"),
    ("consensus", "import contracts", "consensus imports contracts"),
    ("consensus", "from .. import contracts", "consensus imports contracts"),
    ("consensus", "def f():\n    import threading", "imports threading"),
    ("consensus", "mod = __import__('socket')", "calls __import__()"),
    ("consensus", "seed = hash('x')", "calls hash()"),
    ("consensus", "data = open('wal').read()", "calls open()"),
    ("contracts", "from consensus import messages", "contracts imports consensus"),
    ("contracts", "import sqlite3", "imports sqlite3"),
    ("contracts", "import aiomqtt", "imports aiomqtt"),
    ("contracts", "import subprocess", "imports subprocess"),
    ("contracts", "import socket", "imports socket"),
    ("contracts", "rate = 0.05", "float literal 0.05"),
    ("contracts", "big = 1e6", "float literal 1000000.0"),
    ("contracts", "share = float(amount)", "calls float()"),
    ("contracts", "half = amount / 2", "true division"),
    ("contracts", "amount /= 2", "true division"),
    ("contracts", "import datetime\nday = datetime.date.today()", "wall clock"),
]


@pytest.mark.parametrize("package, source, expected", BAD_SNIPPETS,
                         ids=[f"{p}: {s.splitlines()[-1]}" for p, s, _ in BAD_SNIPPETS])
def test_the_checker_flags_a_bad_snippet(package, source, expected):
    problems = find_violations(source, package)
    assert any(expected in problem for problem in problems), problems


GOOD_SNIPPETS = [
    ("consensus", "from consensus.messages import Signed\nfrom . import quorum"),
    ("consensus", "import hashlib\nimport msgpack\nfrom typing import TYPE_CHECKING"),
    ("contracts", "from contracts import errors\nimport datetime\n"
                  "d = datetime.date.fromisoformat('2024-01-01')"),
    ("contracts", "half = amount // 2\nbps = 10_000\ntext = 'a/b'"),
]


@pytest.mark.parametrize("package, source", GOOD_SNIPPETS)
def test_the_checker_accepts_pure_code(package, source):
    assert find_violations(source, package) == []
