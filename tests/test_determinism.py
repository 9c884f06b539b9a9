"""The same blocks give the same state root at every height, in any process.

Python salts str hashes per process (PYTHONHASHSEED), so anything in the contracts that
iterates a set, or a dict built in hash order, or hashes a str, can order writes, splits
or events differently on two nodes, and the state roots part. The blocks here are the
whole demo story (every contract family: registry, licensing, open licences, royalties,
the pool, a three-tranche deal through default, recovery and a triggered waterfall),
one block per phase, each phase's transactions shuffled among random token transfers
from a seeded RNG. They are applied in this process and, from their serialised bytes,
in fresh interpreters with different hash seeds (tests/determinism_apply.py); every
height's root must be identical everywhere.
"""

from __future__ import annotations

import datetime
import json
import os
import random
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

from contracts.genesis import init_state
from contracts.runtime import BlockContext, apply_block
from contracts.tx import sign_tx
from ipchain.workloads import story as workload
from ipchain.cluster.manager import Cluster

ROOT = Path(__file__).resolve().parents[1]
APPLY = Path(__file__).with_name("determinism_apply.py")
TODAY = datetime.date(2026, 11, 21)
NOON_MS = int(datetime.datetime(2026, 11, 21, 12, tzinfo=datetime.timezone.utc).timestamp()
              * 1000)
SEED = 20_261_121
LOAD_CLIENTS = 3
SUBPROCESS_TIMEOUT_S = 60


def add_random_transfers(cluster: Cluster, story_blocks: list[list[Any]],
                         rng: random.Random) -> list[dict[str, Any]]:
    """Each story block with 1-4 random transfers from load clients, shuffled together
    (a phase's steps are independent, so any order commits), at increasing times."""
    clients = [org for org in cluster.org_ids() if org.startswith("client-")]
    accounts = cluster.org_ids()
    nonces = dict.fromkeys(clients, 0)
    blocks = []
    timestamp_ms = NOON_MS
    for height, story_txs in enumerate(story_blocks, start=1):
        txs = list(story_txs)
        for _ in range(rng.randint(1, 4)):
            sender = rng.choice(clients)
            target = rng.choice([org for org in accounts if org != sender])
            txs.append(sign_tx(cluster.client_key(sender), cluster.chain_id, nonces[sender],
                               "token.transfer", {"to": target,
                                                  "amount": rng.randint(1, 10_000)}))
            nonces[sender] += 1
        rng.shuffle(txs)
        timestamp_ms += rng.randint(1, 5_000)
        blocks.append({"height": height, "timestamp_ms": timestamp_ms, "txs": txs})
    return blocks


def apply_in_process(genesis: dict[str, Any], blocks: list[dict[str, Any]],
                     ) -> dict[str, Any]:
    state = init_state(genesis)
    roots = [state.root().hex()]
    codes = []
    for block in blocks:
        ctx = BlockContext(genesis["chain_id"], block["height"], block["timestamp_ms"])
        codes.append([receipt.code for receipt in apply_block(state, ctx, block["txs"])])
        roots.append(state.root().hex())
    return {"roots": roots, "receipts": codes}


def serialise(path: Path, genesis: dict[str, Any], blocks: list[dict[str, Any]]) -> None:
    path.write_text(json.dumps({"genesis": genesis, "blocks": [
        {**block, "txs": [tx.to_bytes().hex() for tx in block["txs"]]} for block in blocks]}))


def apply_in_fresh_processes(path: Path, hash_seeds: list[str]) -> list[dict[str, Any]]:
    """Start one interpreter per seed at once (two cores), then collect their answers."""
    procs = [subprocess.Popen([sys.executable, str(APPLY), str(path)], cwd=ROOT,
                              env={**os.environ, "PYTHONHASHSEED": seed,
                                   "PYTHONPATH": str(ROOT)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for seed in hash_seeds]
    results = []
    for seed, proc in zip(hash_seeds, procs):
        out, err = proc.communicate(timeout=SUBPROCESS_TIMEOUT_S)
        assert proc.returncode == 0, f"PYTHONHASHSEED={seed}: {err[-2000:]}"
        results.append(json.loads(out))
    return results


def test_same_blocks_give_same_roots_across_hash_seeds(tmp_path: Path) -> None:
    cluster = Cluster.create(tmp_path / "d", 1, 31800, clients=LOAD_CLIENTS)
    phases = workload.full_story(TODAY)
    assert {op for phase in phases for op in phase.ops} <= set(workload.get_available_ops())
    story_blocks, _ = workload.sign_story(phases, cluster.chain_id, cluster.client_key)
    blocks = add_random_transfers(cluster, story_blocks, random.Random(SEED))
    local = apply_in_process(cluster.genesis, blocks)

    assert len(local["roots"]) == len(phases) + 1
    failed = [(h, codes) for h, codes in enumerate(local["receipts"], start=1)
              if set(codes) != {"ok"}]
    assert failed == []  # every story step and every transfer commits
    changed = [before != after for before, after in zip(local["roots"], local["roots"][1:])]
    assert all(changed)  # every block moved the root: the comparison is never vacuous
    assert len(set(local["roots"])) == len(local["roots"])

    path = tmp_path / "blocks.json"
    serialise(path, cluster.genesis, blocks)
    hash_seeds = ["1", "2", str(secrets.randbelow(2**32 - 3) + 3)]
    for seed, result in zip(hash_seeds, apply_in_fresh_processes(path, hash_seeds)):
        assert result["hash_seed"] == seed
        assert result["receipts"] == local["receipts"], f"PYTHONHASHSEED={seed}"
        diverged = [h for h, (a, b) in enumerate(zip(result["roots"], local["roots"]))
                    if a != b]
        assert diverged == [], f"PYTHONHASHSEED={seed} diverges from height {diverged[:1]}"
        assert result["roots"] == local["roots"]
