"""The explorer's in-browser proof verifier (node/static/verify.js) against live proofs:
it accepts every genuine proof and refuses every tampering in the table that
node.proofs and the docs-only verifier refuse (tests/node/test_proofs.py), run as the
very module the browser loads, in Node.js.

Skips only when the `node` binary is missing (a machine condition); the browser test
(tests/cluster/test_explorer_browser.py) runs the same module in Chromium.
"""

from __future__ import annotations

import asyncio
import copy
import json
import shutil
from typing import Any

import pytest

from node.explorer import STATIC_DIR
from tests.node.test_proofs import (ABSENT_CASES, ANCHOR_CASES, PRESENT_CASES, TX_CASES,
                                    live_proofs)

NODE = shutil.which("node")
BRIDGE = """
import { verifyProof } from "MODULE";
import * as readline from "node:readline";
for await (const line of readline.createInterface({ input: process.stdin })) {
  const { proof, genesis } = JSON.parse(line);
  console.log(JSON.stringify(verifyProof(proof, genesis)));
}
"""


async def verify_all_in_js(tmp_path, proofs: list[Any], genesis: dict) -> list[dict]:
    script = tmp_path / "verify_bridge.mjs"
    script.write_text(BRIDGE.replace("MODULE", (STATIC_DIR / "verify.js").as_uri()))
    lines = "".join(json.dumps({"proof": p, "genesis": genesis}) + "\n" for p in proofs)
    proc = await asyncio.create_subprocess_exec(NODE, str(script), stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE)
    out, _ = await asyncio.wait_for(proc.communicate(lines.encode()), timeout=120)
    assert proc.returncode == 0
    return [json.loads(line) for line in out.decode().splitlines()]


async def test_the_browser_verifier_accepts_genuine_proofs_and_refuses_every_tampering(
        local_cluster, tmp_path) -> None:
    if NODE is None:
        pytest.skip("no `node` binary on this machine: the JS verifier check needs Node.js")
    cluster = await local_cluster(4, max_batch_txs=3)
    live = await live_proofs(cluster)
    genuine = ["tx_ok", "tx_rejected", "state_present", "state_absent"]
    groups = {"tx_ok": ANCHOR_CASES + TX_CASES, "tx_rejected": TX_CASES,
              "state_present": ANCHOR_CASES + PRESENT_CASES, "state_absent": ABSENT_CASES}
    cases = [(f"genuine {name}", live[name]) for name in genuine]
    cases += [(f"{base}: {name}", tamper(copy.deepcopy(live[base]), live))
              for base, table in groups.items() for name, tamper in table]
    results = await verify_all_in_js(tmp_path, [proof for _, proof in cases], cluster.genesis)
    assert len(results) == len(cases) > 70
    wrong = [name for (name, _), result in zip(cases, results)
             if result["valid"] != name.startswith("genuine")]
    assert wrong == [], [(n, r) for (n, _), r in zip(cases, results) if n in wrong]
    said = {name: r for (name, _), r in zip(cases, results)}
    assert "was committed at height" in said["genuine tx_ok"]["what"]
    assert "rejected with code InsufficientFunds" in said["genuine tx_rejected"]["what"]
    assert "holds the value" in said["genuine state_present"]["what"]
    assert "does not exist" in said["genuine state_absent"]["what"]
