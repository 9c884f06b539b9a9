"""The explorer's canonical msgpack (node/static/msgpack.js) writes exactly the bytes the
chain hashes and signs (contracts/codec.py), and reads them back: checked on generated
values by running the browser module itself in Node.js.

A proof verified in the browser re-encodes headers and receipts; one byte of difference
(an integer in a wider form, map keys in another order) would make every real proof
look forged. Skips only when the `node` binary is missing (a machine condition).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from contracts import codec
from node.explorer import STATIC_DIR

NODE = shutil.which("node")
BRIDGE = """
import { bin, decode, encode } from "MODULE";
import * as readline from "node:readline";
const toJs = (v) => Array.isArray(v) ? v.map(toJs)
  : v && typeof v === "object" ? ("$int" in v ? (BigInt(v.$int) === BigInt(Number(v.$int)) && Number.isSafeInteger(Number(v.$int)) ? Number(v.$int) : BigInt(v.$int))
    : "$bin" in v ? bin(Uint8Array.from(Buffer.from(v.$bin, "hex")))
    : Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toJs(x)]))) : v;
const fromJs = (v) => Array.isArray(v) ? v.map(fromJs)
  : typeof v === "bigint" || typeof v === "number" ? { $int: String(v) }
  : v && v.u8 ? { $bin: Buffer.from(v.u8).toString("hex") }
  : v && typeof v === "object" ? Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fromJs(x)])) : v;
const lines = readline.createInterface({ input: process.stdin });
for await (const line of lines) {
  const bytes = encode(toJs(JSON.parse(line)));
  const back = fromJs(decode(bytes));
  console.log(JSON.stringify({ hex: Buffer.from(bytes).toString("hex"), back }));
}
"""


def to_wire(value: Any) -> Any:
    """Python value -> JSON the bridge reads (ints and bytes tagged: JSON has neither)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return {"$int": str(value)}
    if isinstance(value, bytes):
        return {"$bin": value.hex()}
    if isinstance(value, list):
        return [to_wire(v) for v in value]
    return {k: to_wire(v) for k, v in value.items()}


@pytest.fixture(scope="module")
def bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[subprocess.Popen]:
    if NODE is None:
        pytest.skip("no `node` binary on this machine: the JS codec cross-check needs Node.js")
    script = tmp_path_factory.mktemp("js") / "bridge.mjs"
    script.write_text(BRIDGE.replace("MODULE", (STATIC_DIR / "msgpack.js").as_uri()))
    proc = subprocess.Popen([NODE, str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    yield proc
    proc.stdin.close()
    proc.wait(timeout=10)


def ask(bridge: subprocess.Popen, value: Any) -> dict[str, Any]:
    bridge.stdin.write(json.dumps(to_wire(value)) + "\n")
    bridge.stdin.flush()
    return json.loads(bridge.stdout.readline())


INTS = st.one_of(st.integers(-(2**63), 2**64 - 1),
                 st.sampled_from([0, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32,
                                  -1, -32, -33, -128, -129, -32768, -32769, -(2**31),
                                  -(2**31) - 1, 2**53 + 1, -(2**63), 2**64 - 1]))
SCALARS = st.one_of(st.none(), st.booleans(), INTS, st.text(max_size=40),
                    st.text(min_size=30, max_size=300), st.binary(max_size=300))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=20), st.dictionaries(st.text(max_size=12), inner, max_size=20)),
    max_leaves=40)


@settings(max_examples=150, deadline=None)
@given(VALUES)
@example({"__proto__": None})  # found by CI: an assignment set the prototype instead
def test_js_encodes_every_value_as_the_chain_does_and_reads_it_back(bridge, value) -> None:
    answer = ask(bridge, value)
    assert answer["hex"] == codec.encode(value).hex()
    assert answer["back"] == to_wire(codec.decode(bytes.fromhex(answer["hex"])))


def test_the_bridge_can_fail(bridge) -> None:
    """The comparison is not vacuous: bytes and str of the same content differ."""
    assert ask(bridge, b"ab")["hex"] != ask(bridge, "ab")["hex"]
    assert Path(STATIC_DIR / "msgpack.js").is_file()
