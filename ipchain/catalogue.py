"""The op catalogue as people read it: `ipchain ops`, `ipchain ops OP`, docs/ops.md.

Everything here is rendered from contracts.catalogue.describe_ops() (the same data
GET /v1/ops serves), so the docs cannot say something the schemas do not.
`python -m ipchain.catalogue > docs/ops.md` regenerates the document; a test checks
that the committed file is up to date.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from contracts.catalogue import describe_ops
from contracts.genesis import DEFAULT_CONTRACT_CONFIG

REF = "#/components/schemas/"
WHOLE_SUFFIX = "(?!\\n)$"
"""contracts.schema.whole() ends every pattern so; the docs show the pattern's body."""


def type_text(schema: dict[str, Any]) -> str:
    """A JSON Schema fragment as a short type: `int 1..2^62`, `[OrgId, int]`, `Tranche[]`."""
    if "$ref" in schema:
        return schema["$ref"].removeprefix(REF)
    if "anyOf" in schema:
        kinds = [type_text(s) for s in schema["anyOf"] if s.get("type") != "null"]
        return " | ".join(kinds) + (" | null" if len(kinds) < len(schema["anyOf"]) else "")
    if "enum" in schema:
        return " | ".join(f'"{v}"' for v in schema["enum"])
    kind = schema.get("type")
    if kind == "integer":
        return "int " + _range(schema.get("minimum"), schema.get("maximum"))
    if kind == "string":
        if "pattern" in schema:
            pattern = schema["pattern"].removesuffix(WHOLE_SUFFIX).removeprefix("^")
            return f"str /{pattern}/"
        return "str" + (f" <= {schema['maxLength']}" if "maxLength" in schema else "")
    if kind == "array":
        if "prefixItems" in schema:
            return "[" + ", ".join(type_text(s) for s in schema["prefixItems"]) + "]"
        size = _range(schema.get("minItems"), schema.get("maxItems"), "items")
        return f"{type_text(schema.get('items', {}))}[] ({size})"
    if kind == "object" and "additionalProperties" in schema:
        return f"map of {type_text(schema['additionalProperties'])}"
    return str(kind or "any")


def _range(low: Any, high: Any, unit: str = "") -> str:
    def num(n: Any) -> str:
        return "2^62" if n == 2**62 else ("2^32" if n == 2**32 else f"{n}")
    text = f"{num(low) if low is not None else ''}..{num(high) if high is not None else ''}"
    return f"{text} {unit}".strip() if text != ".." else ""


def field_rows(schema: dict[str, Any], defaults: dict[str, Any] | None = None,
               ) -> list[tuple[str, str, str, str]]:
    """(field, type, required or default, description); `defaults` fills in defaults the
    JSON Schema cannot carry (those made by a default factory)."""
    required = set(schema.get("required", []))
    rows = []
    for name, prop in schema.get("properties", {}).items():
        default = prop.get("default", (defaults or {}).get(name))
        need = "required" if name in required else f"default {_json(default)}"
        rows.append((name, type_text(prop), need, prop.get("description", "")))
    return rows


def _json(value: Any) -> str:
    return json.dumps(value)


def _cells(*cells: str) -> str:
    """One markdown table row; a `|` inside a cell (as in `int | null`) is escaped."""
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def records_of(catalogue: dict[str, Any], name: str) -> list[str]:
    """The nested records an op's arguments use, in order of first mention."""
    found: list[str] = []
    pending = [catalogue["ops"][name]["args"]["$ref"].removeprefix(REF)]
    while pending:
        record = pending.pop(0)
        text = str(catalogue["schemas"][record].get("properties", {}))
        for other in sorted(catalogue["schemas"]):
            if f"'{REF}{other}'" in text and other not in found:
                found.append(other)
                pending.append(other)
    return found


def render_op(catalogue: dict[str, Any], name: str) -> str:
    op = catalogue["ops"][name]
    args = catalogue["schemas"][op["args"]["$ref"].removeprefix(REF)]
    roles = ", ".join(op["roles"]) if op["roles"] else "any member organisation"
    lines = [f"### `{name}`", "", op["doc"], "", f"Roles: {roles}.", "",
             "| argument | type | | meaning |", "| --- | --- | --- | --- |"]
    lines += [_cells(f"`{f}`", t, n, d) for f, t, n, d in field_rows(args)]
    for record in records_of(catalogue, name):
        schema = catalogue["schemas"][record]
        lines += ["", f"`{record}`: {schema.get('description', '')}", "",
                  "| field | type | | meaning |", "| --- | --- | --- | --- |"]
        lines += [_cells(f"`{f}`", t, n, d) for f, t, n, d in field_rows(schema)]
    lines += ["", "May be refused with: " + ", ".join(f"`{e}`" for e in op["errors"]) + ".", ""]
    return "\n".join(lines)


def render_markdown(catalogue: dict[str, Any]) -> str:
    limits = catalogue["limits"]
    head = [
        "# Operations", "",
        "Generated from the op schemas in `contracts/` by `python -m ipchain.catalogue`;",
        "do not edit (tests/scripts/test_ops_catalogue.py checks it is up to date).",
        "The same catalogue is served as JSON by `GET /v1/ops` and printed by `ipchain ops`.",
        "",
        f"Every op's arguments are checked at admission: an unknown, missing, mistyped or "
        f"out-of-range argument is refused with 400 `BadArguments` naming the field, before "
        f"any block is spent. Amounts are integers in minor units, 1 .. 2^62 "
        f"({limits['amount_max']}) or 0 .. 2^62 where zero is allowed; basis points 0 .. "
        f"{limits['bps_max']}. Before its handler runs any op may also be refused with: "
        + ", ".join(f"`{e}`" for e in catalogue["admission_errors"]) + ".", "",
        "| op | roles | what it does |", "| --- | --- | --- |"]
    head += [f"| [`{n}`](#{n.replace('.', '')}) | {', '.join(o['roles'] or ['any'])} | "
             f"{o['doc']} |" for n, o in catalogue["ops"].items()]
    config = catalogue["schemas"][catalogue["genesis_contracts"]["$ref"].removeprefix(REF)]
    genesis = ["", "## Genesis settings", "", "`genesis.json` \"contracts\": "
               + config.get("description", "").split("\n\n")[0], "",
               "| setting | type | | meaning |", "| --- | --- | --- | --- |"]
    genesis += [_cells(f"`{f}`", t, n, d)
                for f, t, n, d in field_rows(config, DEFAULT_CONTRACT_CONFIG)]
    return "\n".join(head + genesis + ["", "## Ops", ""] + [
        render_op(catalogue, n) for n in catalogue["ops"]]).rstrip() + "\n"


def args_of(catalogue: dict[str, Any], name: str) -> dict[str, Any]:
    return catalogue["schemas"][catalogue["ops"][name]["args"]["$ref"].removeprefix(REF)]


def summary_rows(catalogue: dict[str, Any]) -> list[list[str]]:
    """`ipchain ops`: one row per op; optional arguments in brackets."""
    return [[name, ", ".join(op["roles"] or ["any"]),
             " ".join(f if need == "required" else f"[{f}]" for f, _, need, _ in sorted(
                 field_rows(args_of(catalogue, name)), key=lambda row: row[2] != "required")),
             op["doc"]] for name, op in catalogue["ops"].items()]


def detail_rows(catalogue: dict[str, Any], name: str) -> list[list[str]]:
    """`ipchain ops OP`: one row per argument, then one per field of each nested record."""
    rows = [[f, t, n, d] for f, t, n, d in field_rows(args_of(catalogue, name))]
    for record in records_of(catalogue, name):
        rows += [[f"{record}.{f}", t, n, d]
                 for f, t, n, d in field_rows(catalogue["schemas"][record])]
    return rows


def main() -> None:
    sys.stdout.write(render_markdown(describe_ops()))


if __name__ == "__main__":
    main()
