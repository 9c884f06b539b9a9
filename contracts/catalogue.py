"""The op registry, built in one place: every family's ops and state queries by name.

This is the only module that imports every contract family; the runtime asks it for
an op by name, and the families import only `contracts.call`, so nothing here closes
an import cycle.
"""

from __future__ import annotations

from types import CodeType, FunctionType, ModuleType
from typing import Any, Callable

from contracts import (
    errors, exchange, genesis, licensing, membership, pool, registry, schema, securitization,
    token,
)
from contracts.call import Op

FAMILIES = (token, membership, registry, licensing, pool, securitization, exchange)
"""In catalogue order: what `GET /v1/ops` and docs/ops.md list first."""


def _merge(kind: str, tables: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for table in tables:
        for name, entry in table.items():
            if name in merged:
                raise RuntimeError(f"{kind} {name} registered twice")
            merged[name] = entry
    return merged


OPS: dict[str, Op] = _merge("op", [family.OPS for family in FAMILIES])
QUERIES: dict[str, Callable[..., Any]] = _merge(
    "query", [getattr(family, "QUERIES", {}) for family in FAMILIES])


def get_ops() -> dict[str, Op]:
    return OPS


# -- the catalogue: what GET /v1/ops, `ipchain ops` and docs/ops.md show -------------------

ADMISSION_ERRORS = ("BadTransaction", "WrongChain", "UnknownOp", "BadSignature", "BadArguments",
                    "NonceUsed", "UnknownAccount", "Unauthorized")
"""Refusals any op may get before its handler runs (contracts.runtime.check_transaction)."""
SCHEMA_REF = "#/components/schemas/{name}"


def _error_classes() -> dict[str, type]:
    found: dict[str, type] = {}
    pending = [errors.ContractError]
    while pending:
        cls = pending.pop()
        for sub in cls.__subclasses__():
            found.setdefault(sub.__name__, sub)
            pending.append(sub)
    return found


def _functions_by_name() -> dict[str, list[Callable[..., Any]]]:
    """Every function of the contracts package by bare name (from the families' modules)."""
    index: dict[str, list[Callable[..., Any]]] = {}
    seen_modules: set[str] = set()
    modules = list(FAMILIES)
    while modules:
        module = modules.pop()
        if module.__name__ in seen_modules or not module.__name__.startswith("contracts"):
            continue
        seen_modules.add(module.__name__)
        for value in vars(module).values():
            if isinstance(value, ModuleType):
                modules.append(value)
            elif isinstance(value, FunctionType) and value.__module__.startswith("contracts"):
                index.setdefault(value.__name__, [])
                if value not in index[value.__name__]:
                    index[value.__name__].append(value)
    return index


def _codes(code: CodeType) -> list[CodeType]:
    return [code, *(c for const in code.co_consts if isinstance(const, CodeType)
                    for c in _codes(const))]


def op_errors(op: Op) -> list[str]:
    """The error codes the op's handler may raise: every ContractError named in the
    handler or in any contracts function it (transitively) names. An over-estimate by
    design: a client should be ready for each."""
    classes, functions = _error_classes(), _functions_by_name()
    raised: set[str] = set()
    visited: set[CodeType] = set()
    pending = [op.handler.__code__]
    while pending:
        code = pending.pop()
        if code in visited:
            continue
        visited.add(code)
        for inner in _codes(code):
            for name in inner.co_names:
                if name in classes:
                    raised.add(name)
                pending += [fn.__code__ for fn in functions.get(name, [])]
    return sorted(raised)


def describe_ops() -> dict[str, Any]:
    """The catalogue: each op's doc, roles, argument schema (JSON Schema 2020-12, refs
    into `schemas`) and the errors it may raise. Generated; never written by hand."""
    names = sorted(OPS)
    refs, components = schema.schema_components(
        [*(OPS[n].args for n in names), genesis.ContractConfig], SCHEMA_REF)
    ops = {name: {"doc": OPS[name].doc,
                  "roles": None if OPS[name].roles is None else sorted(OPS[name].roles),
                  "args": ref, "errors": op_errors(OPS[name])}
           for name, ref in zip(names, refs)}
    return {"ops": ops, "schemas": components, "genesis_contracts": refs[-1],
            "admission_errors": list(ADMISSION_ERRORS),
            "limits": {"amount_max": schema.AMOUNT_MAX, "bps_max": schema.BPS_MAX}}
