"""Relay-admission micro-benchmark: a node's cost per transaction a peer relays to it.

About three quarters of a saturated node's transactions reach it from peers, as frames
of signed transactions (POST /p2p/txs or a peer stream frame). This feeds such frames
through the node's own inbound path into a real, unstarted `node.runtime.Runtime` (real
SQLite store, genesis state, committed-id filter screening the store as in a started
node): the frame's bytes -> `http_input.byte_strings` -> `api.take_txs` (decode, the
canonical-bytes rule) -> `Runtime.admit` (duplicate and committed checks, chain, op,
signature, arguments, member, nonce) -> the mempool. Frames are `token.transfer`s from
many clients (`ipchain.sim.workload.make_bursts`), all fresh, as a peer relays them.

It prints CPU µs per transaction (process time; the machine is shared, so read it with
the load average it prints) and checks the verdicts: every transaction admitted, the
signature counter equal to the admitted count.

`--stub-verify` (FOR INSTRUCTION COUNTING ONLY) replaces the Ed25519 check by a lookup
in the set of ids the bench signed, so a count measures the non-crypto work that this
path is made of; a real node never runs it. `--cachegrind` runs the bench twice under
`valgrind --tool=cachegrind` with that stub, feeding `--small-frames` and then
`--frames` frames (both runs load the same signed frames, from `--frames-file`), and
reports the difference of their instruction counts per transaction fed: start-up,
imports and signing fall out.

    python -m ipchain.workloads.admitbench --frames 40 --out admitbench.json
    python -m ipchain.workloads.admitbench --cachegrind --out admitbench-cg.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgpack

from contracts.tx import Transaction
from ipchain.sim.workload import build_genesis, make_bursts, validator_seed

CHAIN_ID = "admitbench"
NODES = 4
STUB_LABEL = "STUBBED-VERIFY-for-instruction-counting-only"


def signed_frames(frames: int, frame_txs: int, clients: int, seed: int) -> list[bytes]:
    """Each frame's body as a peer sends it: a msgpack array of canonical tx bytes."""
    bursts = make_bursts(random.Random(seed), CHAIN_ID, clients, frames, frame_txs)
    return [msgpack.packb([ctx.raw for ctx in burst], use_bin_type=True) for burst in bursts]


def load_frames(path: str | None, frames: int, frame_txs: int, clients: int,
                seed: int) -> list[bytes]:
    """The signed frames, from `path` when it holds these parameters' frames (signing
    under valgrind would take minutes), else signed now and written there."""
    params = [frames, frame_txs, clients, seed]
    if path and Path(path).exists():
        stored = msgpack.unpackb(Path(path).read_bytes(), raw=False)
        if stored["params"] == params:
            return stored["frames"]
    bodies = signed_frames(frames, frame_txs, clients, seed)
    if path:
        Path(path).write_bytes(msgpack.packb({"params": params, "frames": bodies},
                                             use_bin_type=True))
    return bodies


def make_runtime(data_dir: Path, clients: int) -> Any:
    """A node (index 1) of a 4-node chain whose genesis funds `clients` members, not
    started (no HTTP, no consensus tasks); its store screened by the committed-id
    filter as `Runtime.start` does."""
    import nacl.signing

    from node.config import NodeConfig
    from node.runtime import Runtime
    cfg = NodeConfig(node_id="node1", index=1, host="127.0.0.1", port=0, data_dir=data_dir,
                     signing_key=nacl.signing.SigningKey(validator_seed(1)),
                     genesis=build_genesis(CHAIN_ID, NODES, clients), admin_token="t" * 32,
                     peers=(), max_mempool_txs=10_000_000, state_sync=False)
    runtime = Runtime(cfg)
    runtime.storage.screen_ids_with(runtime.committed_ids)
    return runtime


def stub_verify(frames: list[bytes]) -> None:
    """STUB_LABEL: accept exactly the transactions signed here (by id), after building
    the signed bytes as the real check does. For instruction counting only."""
    import hashlib
    signed = {hashlib.sha256(raw).digest() for body in frames for raw in msgpack.unpackb(body)}

    def signature_ok(tx: Transaction) -> bool:
        tx.signing_bytes()
        return tx.id_bytes in signed
    Transaction.signature_ok = signature_ok  # type: ignore[method-assign]


async def feed(runtime: Any, frames: list[bytes]) -> float:
    """Process CPU seconds to take `frames` in as relayed frames, one after another."""
    from node import http_input as inp
    from node import limits
    from node.api import take_txs
    from node.config import PEER_BODY_BYTES
    start = time.process_time()
    for body in frames:
        raws = await inp.byte_strings(body, limits.MAX_PEER_ITEMS, PEER_BODY_BYTES)
        await take_txs(runtime, raws)
    return time.process_time() - start


def run(args: argparse.Namespace) -> dict[str, Any]:
    total = max(args.frames, args.load_frames)
    frames = load_frames(args.frames_file, total, args.frame_txs, args.clients, args.seed)
    if args.stub_verify:
        stub_verify(frames)
    from node.runtime import SIGNATURE_VERIFICATIONS
    with tempfile.TemporaryDirectory(prefix="admitbench-") as tmp:
        async def main() -> tuple[float, Any]:
            runtime = make_runtime(Path(tmp), args.clients)
            try:
                return await feed(runtime, frames[:args.frames]), runtime
            finally:
                runtime.snapshots.close()
                runtime.storage.close()
        cpu_s, runtime = asyncio.run(main())
    txs = args.frames * args.frame_txs
    admitted = len(runtime.mempool)
    verified = runtime.counters[SIGNATURE_VERIFICATIONS]
    refused = {k: v for k, v in sorted(runtime.counters.items()) if k.startswith("tx_refused")}
    if admitted != txs or verified != txs or refused or runtime.counters["relayed_tx_malformed"]:
        raise SystemExit(f"verdicts wrong: fed={txs} admitted={admitted} verified={verified} "
                         f"refused={refused} counters={dict(runtime.counters)}")
    return {"frames": args.frames, "frame_txs": args.frame_txs, "clients": args.clients,
            "txs": txs, "verify": STUB_LABEL if args.stub_verify else "ed25519",
            "cpu_us_per_tx": round(cpu_s * 1e6 / txs, 2), "admitted": admitted,
            "signature_verifications": verified, "loadavg": _loadavg()}


def _loadavg() -> str:
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "unknown"


def cachegrind_count(args: argparse.Namespace, frames: int) -> int:
    """Instructions executed by one stubbed run feeding `frames` frames (of the same
    `--frames` loaded), counted by cachegrind."""
    with tempfile.TemporaryDirectory(prefix="admitbench-cg-") as tmp:
        out = Path(tmp) / "cg.out"
        cmd = ["valgrind", "--tool=cachegrind", "--cache-sim=no",
               f"--cachegrind-out-file={out}", sys.executable, "-m",
               "ipchain.workloads.admitbench", "--stub-verify", "--frames", str(frames),
               "--load-frames", str(args.frames), "--frame-txs", str(args.frame_txs),
               "--clients", str(args.clients), "--seed", str(args.seed),
               "--frames-file", args.frames_file, "--out", str(Path(tmp) / "run.json")]
        if args.keep_cachegrind:
            cmd[3] = f"--cachegrind-out-file={args.keep_cachegrind}.{frames}"
            out = Path(f"{args.keep_cachegrind}.{frames}")
        done = subprocess.run(cmd, capture_output=True, text=True, env=_env(), check=False)
        if done.returncode != 0:
            raise SystemExit(f"cachegrind run failed:\n{done.stdout}\n{done.stderr}")
        match = re.search(r"^summary:\s+(\d+)", out.read_text(), re.MULTILINE)
        if match is None:
            raise SystemExit(f"no summary line in {out}")
        return int(match.group(1))


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONHASHSEED"] = "0"  # the same dict and set layouts in both runs
    return env


def run_cachegrind(args: argparse.Namespace) -> dict[str, Any]:
    if not args.frames_file:
        args.frames_file = str(Path(tempfile.gettempdir()) / f"admitbench-frames-{os.getuid()}"
                               f"-{args.frames}x{args.frame_txs}-{args.clients}-{args.seed}.mp")
    load_frames(args.frames_file, args.frames, args.frame_txs, args.clients, args.seed)
    small = cachegrind_count(args, args.small_frames)
    large = cachegrind_count(args, args.frames)
    txs = (args.frames - args.small_frames) * args.frame_txs
    return {"tool": "cachegrind", "verify": STUB_LABEL, "frame_txs": args.frame_txs,
            "clients": args.clients, "small_frames": args.small_frames,
            "large_frames": args.frames, "instructions_small": small,
            "instructions_large": large, "txs_differenced": txs,
            "instructions_per_tx": round((large - small) / txs), "loadavg": _loadavg()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40, help="frames fed (cachegrind: "
                        "the large run's)")
    parser.add_argument("--small-frames", type=int, default=8,
                        help="cachegrind: frames the small run feeds")
    parser.add_argument("--load-frames", type=int, default=0,
                        help="frames signed (or loaded) even if fewer are fed")
    parser.add_argument("--frame-txs", type=int, default=250)
    parser.add_argument("--clients", type=int, default=256)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--frames-file", default="", help="signed frames cached here")
    parser.add_argument("--stub-verify", action="store_true",
                        help=f"{STUB_LABEL}: no Ed25519, a lookup of the ids signed here")
    parser.add_argument("--cachegrind", action="store_true",
                        help="count instructions per tx under cachegrind (two runs, stubbed)")
    parser.add_argument("--keep-cachegrind", default="",
                        help="cachegrind: keep the out files as PREFIX.FRAMES (cg_annotate)")
    parser.add_argument("--out", default="admitbench.json")
    args = parser.parse_args(argv)
    row = run_cachegrind(args) if args.cachegrind else run(args)
    print(" ".join(f"{k}={v}" for k, v in row.items()))
    with open(args.out, "w") as out:
        json.dump(row, out, indent=2)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
