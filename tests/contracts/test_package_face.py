"""The contracts package's face: no import cycle, one class per error name, `__all__`.

The import graph is read from the source with `ast` (as test_layering does), so a
family that imports `contracts.runtime` again, closing the old 12-module cycle, fails
here rather than at a confusing import-order error later.
"""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import contracts
from contracts import catalogue, errors

ROOT = Path(__file__).resolve().parents[2]


def module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: str) -> dict[str, set[str]]:
    files = {module_of(p): p for p in (ROOT / package).rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        here = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = here.split(".")[:len(here.split(".")) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in files else base
                           for a in node.names]
            for target in targets:
                while target and target not in files:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle (as a path of module names), or [] if the graph has none."""
    colour: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str]:
        colour[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if colour.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in colour and (found := visit(nxt)):
                return found
        colour[node] = 2
        path.pop()
        return []

    for start in sorted(graph):
        if start not in colour and (found := visit(start)):
            return found
    return []


def test_the_cycle_finder_sees_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert find_cycle(graph) == ["a", "b", "c", "a"]


def test_contracts_has_no_import_cycle():
    graph = import_graph("contracts")
    assert "contracts.runtime" in graph and "contracts.registry.core" in graph
    assert find_cycle(graph) == []


def test_only_the_catalogue_imports_every_family():
    graph = import_graph("contracts")
    families = {f"contracts.{f.__name__.rpartition('.')[2]}" for f in catalogue.FAMILIES}
    assert families <= graph["contracts.catalogue"]
    assert not families & graph["contracts.runtime"]


def test_every_error_name_is_one_class():
    seen: dict[str, type] = {}
    for name in catalogue.__dict__["FAMILIES"]:
        for module_name in [name.__name__, *[f"{name.__name__}.{m.stem}"
                                             for m in Path(name.__file__).parent.glob("*.py")
                                             if m.stem != "__init__"]]:
            module = importlib.import_module(module_name)
            for cls_name, cls in inspect.getmembers(module, inspect.isclass):
                if issubclass(cls, errors.ContractError):
                    assert seen.setdefault(cls_name, cls) is cls, f"{cls_name} defined twice"
    assert seen["PeriodOutOfOrder"] is errors.PeriodOutOfOrder
    assert seen["PeriodAlreadyDistributed"] is errors.PeriodAlreadyDistributed


def test_the_package_face_lists_what_exists():
    for name in contracts.__all__:
        importlib.import_module(f"contracts.{name}")
    for family in catalogue.FAMILIES:
        assert family.__all__ and all(hasattr(family, n) for n in family.__all__)
