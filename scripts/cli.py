"""`ipchain`: launch, inspect and stop a local cluster; submit; demo; bench.

Every command that starts or finds a cluster takes --data-dir (default .ipchain under
the current directory) and --base-port (node i listens on base-port + i).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from contracts import errors
from contracts.runtime import get_ops
from contracts.schema import decode_args
from scripts import ops, proof, watch
from ipchain.cluster import broker, monitoring
from ipchain.sdk import client
from ipchain.cluster import layout
from scripts.argtypes import base_port, json_object, non_negative, positive
from scripts.oneline import explain
from node.logs import FORMATS as LOG_FORMATS, LEVELS as LOG_LEVELS
from ipchain.cluster.manager import Cluster, ClusterError
from ipchain.cluster.manager import start_and_wait as cluster_start_and_wait
from ipchain.cluster.procs import is_port_free, pids_under
from ipchain.render import print_table, say

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


def _common(parser: argparse.ArgumentParser, base_port_default: int | None = None,
            data_dir_default: str = layout.DEFAULT_DATA_DIR) -> None:
    parser.add_argument("--data-dir", default=data_dir_default, type=Path,
                        help="cluster data directory (default: %(default)s under the cwd)")
    parser.add_argument("--base-port", type=base_port, default=base_port_default,
                        help="node i listens on base-port + i (default: "
                             f"{base_port_default or layout.DEFAULT_BASE_PORT})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ipchain", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"ipchain {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_add_cluster_commands, _add_submit, _add_demo_and_bench, watch.add_parser,
                proof.add_parsers, ops.add_parser):
        add(sub)
    sub.add_parser("faults", help="fault-injection experiments: faults list | faults run "
                   "SCENARIO (see ipchain faults --help)", add_help=False)
    sub.add_parser("sim", help="deterministic simulator: explore seeds or replay one "
                   "(see ipchain sim --help)", add_help=False)
    sub.add_parser("net", help="clusters across hosts: net init --hosts ... --out DIR "
                   "(see ipchain net --help)", add_help=False)
    return parser


def _add_cluster_commands(sub: Any) -> None:
    up = sub.add_parser("up", help="create (or restart) and start a local cluster")
    _common(up)
    up.add_argument("-n", "--nodes", dest="n", type=positive, default=None,
                    help="number of nodes for a new cluster (default 4)")
    up.add_argument("--clients", type=non_negative, default=None,
                    help="bench client organisations client-000.. (default 8)")
    up.add_argument("--fresh", action="store_true", help="wipe an existing data dir first")
    up.add_argument("--timeout", type=float, default=60.0,
                    help="seconds to wait for the cluster to commit (default %(default)s)")
    up.add_argument("--log-level", default=None, choices=LOG_LEVELS,
                    help="node log level (new cluster: warning; restart: kept unless given)")
    up.add_argument("--log-format", default=None, choices=LOG_FORMATS,
                    help="node log format (new cluster: logfmt; restart: kept unless given)")
    up.add_argument("--json", action="store_true",
                    help="print the nodes as JSON (url, pid) once the cluster is up")
    broker.add_up_arguments(up)  # --mqtt, --mqtt-url, --mqtt-port
    up.add_argument("--monitoring", action="store_true",
                    help="write <data-dir>/monitoring/prometheus.yml and start Prometheus "
                    "(Debian's prometheus) against the cluster with the shipped alert rules")
    up.add_argument("--prometheus-port", type=positive, default=monitoring.DEFAULT_PORT,
                    help="Prometheus's port on 127.0.0.1 (default %(default)s)")

    down = sub.add_parser("down", help="stop the cluster (SIGTERM, then SIGKILL stragglers)")
    _common(down)
    down.add_argument("--timeout", type=float, default=10.0,
                      help="seconds to wait after SIGTERM before SIGKILL (default %(default)s)")

    status = sub.add_parser("status", help="a table of the nodes and their view of the chain")
    _common(status)
    status.add_argument("-n", "--nodes", dest="n", type=positive, default=None,
                        help="without a cluster.json: how many nodes to probe from base-port")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _add_submit(sub: Any) -> None:
    submit = sub.add_parser("submit", help="sign and send one transaction")
    _common(submit)
    submit.add_argument("op", help="operation, e.g. token.transfer")
    submit.add_argument("--args", dest="op_args", type=json_object, default={},
                        help='operation arguments as a JSON object, e.g. \'{"to": "cnipa", '
                             '"amount": 5}\'')
    submit.add_argument("--node", help="node URL (default: node0 of the cluster)")
    who = submit.add_mutually_exclusive_group()
    who.add_argument("--key", type=Path, help="signing key file (64 hex chars seed)")
    who.add_argument("--org", help="sign with this organisation's key from the data dir "
                                   "(default: the first admin organisation)")
    submit.add_argument("--nonce", type=non_negative,
                        help="explicit nonce (default: next from the data dir's counter)")
    submit.add_argument("--wait", action="store_true", help="wait for commit, print receipt")
    submit.add_argument("--timeout-ms", type=positive, default=10_000,
                        help="with --wait: how long the node waits (default %(default)s)")
    submit.add_argument("--msgpack", action="store_true", help="send the msgpack form")


def _add_demo_and_bench(sub: Any) -> None:
    demo = sub.add_parser("demo", help="fresh cluster, a short workload, results, agreement")
    _common(demo, data_dir_default=DEMO_DATA_DIR)
    demo.add_argument("--fresh", action="store_true",
                      help="replace a cluster in --data-dir that the demo did not make")
    demo.add_argument("--nodes", dest="n", type=positive, default=4,
                      help="cluster size (default %(default)s)")
    demo.add_argument("--down", action="store_true", help="stop the cluster at the end")
    demo.add_argument("--timeout", type=float, default=60.0,
                      help="seconds to wait for the cluster to commit (default %(default)s)")
    demo.add_argument("--json", action="store_true",
                      help="print the outcome as one JSON object on stdout (the tables and "
                           "progress go to stderr)")

    bench = sub.add_parser("bench", help="load a fresh temporary cluster; print one JSON object")
    bench.add_argument("--nodes", dest="n", type=positive, default=4,
                       help="cluster size (default %(default)s)")
    bench.add_argument("--duration", type=float, default=10.0,
                       help="seconds of load (default %(default)s)")
    bench.add_argument("--rate", type=positive, default=500,
                       help="offered tx/s (default %(default)s)")
    bench.add_argument("--out", type=Path, help="also write the JSON result here")
    bench.add_argument("--base-port", type=base_port, default=None,
                       help="default: a free range found at start")
    bench.add_argument("--batch-size", type=positive, default=50,
                       help="txs per POST /v1/txs (default %(default)s)")
    bench.add_argument("--max-inflight", type=positive, default=8,
                       help="batches in flight at once (default %(default)s)")
    bench.add_argument("--clients", type=positive, default=32,
                       help="sending organisations (default %(default)s)")
    bench.add_argument("--drain", type=float, default=30.0,
                       help="seconds to wait for stragglers after the load (default %(default)s)")
    bench.add_argument("--seed", type=int, default=1, help="workload seed (default %(default)s)")
    bench.add_argument("--warmup-batches", type=non_negative, default=10,
                       help="batches committed before the measured window (default %(default)s)")
    bench.add_argument("--keep", action="store_true", help="keep the temp data dir (logs)")
    bench.add_argument("--data-dir", type=Path, default=None,
                       help="load this running cluster (from `ipchain up`) instead of a fresh one")


# -- commands ------------------------------------------------------------------------

def cmd_up(args: argparse.Namespace) -> int:
    if args.fresh or not Cluster.exists(args.data_dir):
        base_port, n = args.base_port or layout.DEFAULT_BASE_PORT, args.n or 4
        _check_ports_free(base_port, n)
        broker.check_port_option(args, range(base_port, base_port + n))
        mqtt_url = broker.new_cluster_url(args)
        cluster = Cluster.create(args.data_dir, args.n or 4,
                                 args.base_port or layout.DEFAULT_BASE_PORT,
                                 8 if args.clients is None else args.clients,
                                 fresh=args.fresh, log_level=args.log_level or "warning",
                                 mqtt_url=mqtt_url)
        if args.log_format:
            cluster.set_node_options(log_format=args.log_format)
        broker.remember(cluster.data_dir, args.mqtt, mqtt_url)
        say(f"created a {cluster.n}-node cluster in {cluster.data_dir}")
    else:
        cluster = Cluster.load(args.data_dir)
        _check_same_shape(cluster, args)
        broker.check_restart(cluster.data_dir, args)
        given = {"log_level": args.log_level, "log_format": args.log_format}
        if any(given.values()):  # a restart applies the given log options, keeps the rest
            cluster.set_node_options(**{k: v for k, v in given.items() if v})
        say(f"restarting the {cluster.n}-node cluster in {cluster.data_dir} (keys and state kept)")
    mqtt_broker = broker.start_embedded(cluster.data_dir)
    if mqtt_broker:
        say(f"MQTT broker (embedded) at {mqtt_broker}")
    try:
        start_and_wait(cluster, args.timeout)
    except BaseException:  # a failed `up` leaves no process behind, the broker included
        broker.stop_embedded(cluster.data_dir)
        raise
    if args.monitoring:
        _start_monitoring(cluster, args.prometheus_port)
    if args.json:
        print(json.dumps({"data_dir": str(cluster.data_dir), "chain_id": cluster.chain_id,
                          "nodes": [{"id": layout.node_id(i), "url": url, "pid": cluster.pid(i)}
                                    for i, url in enumerate(cluster.urls)]}, indent=2))
    else:
        for url in cluster.urls:
            say(url)
    return EXIT_OK


def _check_ports_free(base_port: int, n: int) -> None:
    """Before anything is written: a busy port must not leave a half-made data dir."""
    if base_port + n - 1 > 65535:
        raise ClusterError(f"{n} nodes from --base-port {base_port} would need ports above 65535; "
                           f"choose a base port of at most {65536 - n} (nothing was written)")
    busy = [base_port + i for i in range(n) if not is_port_free(base_port + i)]
    if busy:
        raise ClusterError(f"ports {busy} on {layout.HOST} are in use by another process; "
                           f"choose another --base-port (nothing was written)")


def _start_monitoring(cluster: Cluster, port: int) -> None:
    config = monitoring.write_config(cluster.data_dir, cluster.urls)
    monitoring.stop(cluster.data_dir)  # a restart replaces the previous one
    pid = monitoring.start(cluster.data_dir, port)
    if pid is None:
        say(f"wrote {config}; `prometheus` is not installed (apt-get install prometheus), "
            f"so start one with --config.file={config}")
    else:
        say(f"Prometheus at http://127.0.0.1:{port} (config {config}); dashboard to import: "
            f"{monitoring.DASHBOARD}")


def _check_same_shape(cluster: Cluster, args: argparse.Namespace) -> None:
    """A restart keeps the existing keys and genesis, so it cannot change their shape."""
    clients = sum(org.startswith("client-") for org in cluster.org_ids())
    wanted = {"-n": (args.n, cluster.n), "--base-port": (args.base_port, cluster.base_port),
              "--clients": (args.clients, clients)}
    for flag, (given, existing) in wanted.items():
        if given is not None and given != existing:
            raise ClusterError(f"{cluster.data_dir} holds a cluster with {flag} {existing}; "
                               f"use --fresh to recreate it with {flag} {given}")


def start_and_wait(cluster: Cluster, timeout_s: float) -> None:
    answer = cluster_start_and_wait(cluster, timeout_s)
    receipt = (answer or {}).get("receipt") or {}
    say(f"cluster is up: probe transaction committed at height {receipt.get('height', '?')}")


def cmd_down(args: argparse.Namespace) -> int:
    cluster = Cluster.load(args.data_dir)
    running = cluster.running()
    killed = cluster.stop(args.timeout)
    broker.stop_embedded(cluster.data_dir)
    monitoring.stop(cluster.data_dir)
    left = cluster.running()
    strays = pids_under(cluster.data_dir)
    if left or strays:
        raise ClusterError(f"still running after stop: nodes {left}, processes {strays} "
                           f"using {cluster.data_dir}")
    note = f" ({len(killed)} needed SIGKILL)" if killed else ""
    say(f"stopped {len(running)} node(s) in {cluster.data_dir}{note}")
    return EXIT_OK


def _find_urls(args: argparse.Namespace) -> tuple[list[str], Cluster | None]:
    if Cluster.exists(args.data_dir):
        cluster = Cluster.load(args.data_dir)
        return cluster.urls, cluster
    base = args.base_port or layout.DEFAULT_BASE_PORT
    return [layout.node_url(base, i) for i in range(args.n or 4)], None


async def _statuses(urls: list[str]) -> list[dict[str, Any] | None]:
    async with client.open_session(total_timeout_s=3.0) as session:
        async def one(url: str) -> dict[str, Any] | None:
            try:
                return await client.get_status(session, url)
            except client.ApiError:
                return None
        return list(await asyncio.gather(*(one(url) for url in urls)))


def _count(value: Any) -> Any:
    return len(value) if isinstance(value, (list, dict)) else value


def cmd_status(args: argparse.Namespace) -> int:
    urls, cluster = _find_urls(args)
    statuses = asyncio.run(_statuses(urls))
    if args.json:
        print(json.dumps([{"url": u, "up": s is not None, "status": s}
                          for u, s in zip(urls, statuses)], indent=2))
    else:
        rows = []
        for i, (url, st) in enumerate(zip(urls, statuses)):
            st = st or {}
            pid = cluster.pid(i) if cluster and cluster.is_running(i) else None
            rows.append([st.get("node_id", layout.node_id(i)), url, "up" if st else "down",
                         pid, st.get("height"), st.get("view"), st.get("primary"),
                         _count(st.get("peers")), _count(st.get("mempool"))])
        print_table("ipchain nodes", ["node", "url", "state", "pid", "height", "view",
                                      "primary", "peers", "mempool"], rows)
    if not any(statuses):
        print(f"ipchain status: no node answered ({urls[0]} ...); is the cluster up? "
              f"`ipchain up` starts it", file=sys.stderr)
    return EXIT_OK if all(statuses) else EXIT_FAIL


def cmd_submit(args: argparse.Namespace) -> int:
    validate_op_args(args.op, args.op_args)  # a typo never reaches a node
    cluster = Cluster.load(args.data_dir) if Cluster.exists(args.data_dir) else None
    url = args.node or (cluster.urls[0] if cluster else
                        layout.node_url(args.base_port or layout.DEFAULT_BASE_PORT, 0))
    key = _submit_key(args, cluster)
    answer, ok = asyncio.run(_submit(args, cluster, url.rstrip("/"), key))
    print(json.dumps(answer, indent=2))
    return EXIT_OK if ok else EXIT_FAIL


def _submit_key(args: argparse.Namespace, cluster: Cluster | None) -> Any:
    if args.key:
        return client.load_key(args.key)
    if cluster is None:
        raise ClusterError(f"no cluster in {args.data_dir}: pass --key FILE to sign")
    return cluster.client_key(args.org or cluster.org_ids("admin")[0])


def validate_op_args(op: str, op_args: dict[str, Any]) -> None:
    """Check the arguments against the op's schema (the nodes run the same check)."""
    described = get_ops().get(op)
    if described is None:
        raise ValueError(f"unknown op {op!r}; `ipchain ops` lists them")
    try:
        decode_args(op, described.args, op_args)
    except errors.BadArguments as exc:
        raise ValueError(f"BadArguments: {exc}") from None


def choose_nonce(explicit: int | None, sender: str, store: client.NonceStore | None) -> int:
    """Explicit nonce (recorded in the counter), else the counter, else the clock."""
    if explicit is not None:
        if store is not None:
            store.note_used(sender, explicit)
        return explicit
    return store.reserve(sender) if store is not None else client.time_nonce()


async def _submit(args: argparse.Namespace, cluster: Cluster | None, url: str,
                  key: Any) -> tuple[dict[str, Any], bool]:
    async with client.open_session() as session:
        try:
            chain_id = (cluster.chain_id if cluster else
                        (await client.get_status(session, url))["chain_id"])
            sender = client.sender_hex(key)
            store = cluster.nonces if cluster else None
            nonce = choose_nonce(args.nonce, sender, store)
            answer = await _send(session, url, key, chain_id, nonce, args)
            if args.nonce is None and answer is None:
                # another client of this key used that nonce: take the account's next, once
                nonce = await recover_nonce(session, url, sender, store)
                say(f"ipchain submit: the nonce was used by another client of this key; "
                    f"retrying once with the account's next nonce {nonce}", sys.stderr)
                answer = await _send(session, url, key, chain_id, nonce, args)
            if answer is None:
                raise client.ApiError(400, "NonceUsed", f"nonce {nonce} is already used by "
                                      f"this key; leave out --nonce to take the next free one")
        except client.ApiError as exc:
            if exc.status == 0:  # not an answer: one sentence on stderr (main)
                raise
            body = exc.body if isinstance(exc.body, dict) else {
                "error": {"code": exc.code, "message": exc.message}}
            return body, False
    return answer, answer.get("status") in ("pending", "committed")


async def _send(session: Any, url: str, key: Any, chain_id: str, nonce: int,
                args: argparse.Namespace) -> dict[str, Any] | None:
    """Sign with `nonce` and submit; None if the nonce was already used (refused at
    admission, or, with --wait, rejected in a block)."""
    tx = client.sign(key, chain_id, nonce, args.op, args.op_args)
    try:
        answer = await client.submit(session, url, tx, wait=args.wait,
                                     timeout_ms=args.timeout_ms, as_msgpack=args.msgpack)
    except client.ApiError as exc:
        if exc.code == "NonceUsed":
            return None
        raise
    receipt = answer.get("receipt") or {}
    return None if answer.get("status") == "rejected" and receipt.get("code") == "NonceUsed" \
        else answer


async def recover_nonce(session: Any, url: str, sender: str,
                        store: client.NonceStore | None) -> int:
    """The account's next nonce (one above the highest used on chain); the data dir's
    counter moves up to it, so later submits do not collide again."""
    _, account = await client.request(session, "GET", f"{url}/v1/accounts/{sender}")
    next_nonce = int(account["next_nonce"])
    if store is None:
        return next_nonce
    store.note_used(sender, next_nonce - 1)
    return store.reserve(sender)


DEMO_DATA_DIR = ".ipchain-demo"
DEMO_MARKER = "demo.marker"
"""Written into a data dir the demo made: the demo replaces only its own chains."""


def cmd_demo(args: argparse.Namespace) -> int:
    from ipchain.workloads import demo
    data_dir = Path(args.data_dir)
    if Cluster.exists(data_dir) and not (data_dir / DEMO_MARKER).exists() and not args.fresh:
        raise ClusterError(f"{data_dir} holds a cluster the demo did not make; the demo starts "
                           f"a fresh chain there only with --fresh (or choose another "
                           f"--data-dir)")
    try:
        return demo.run(args)
    except BaseException:  # Ctrl-C, a closed pipe: --down still means nothing left running
        if args.down and Cluster.exists(data_dir):
            Cluster.load(data_dir).stop()
        raise
    finally:
        if Cluster.exists(data_dir):
            (data_dir / DEMO_MARKER).write_text("made by `ipchain demo`\n")


def cmd_bench(args: argparse.Namespace) -> int:
    from ipchain.workloads import bench
    return bench.run(args)


COMMANDS = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "submit": cmd_submit,
            "demo": cmd_demo, "bench": cmd_bench, "watch": watch.run,
            "proof": proof.cmd_proof, "verify-proof": proof.cmd_verify_proof, "ops": ops.cmd_ops}


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed_version
    try:
        return installed_version("ipchain")
    except PackageNotFoundError:
        return "(not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["faults"]:  # its own parser: scripts/faults.py
        from scripts.faults import main as faults_main
        return faults_main(argv[1:])
    if argv[:1] == ["net"]:  # its own parser: scripts/net.py
        from scripts.net import main as net_main
        return net_main(argv[1:])
    if argv[:1] == ["sim"]:  # its own parser: scripts/sim.py
        from scripts.sim import main as sim_main
        return sim_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except BrokenPipeError:
        # The reader went away (`ipchain demo | head`): the command's own cleanup already
        # ran on the way out; keep Python from complaining about the closed stdout.
        sys.stdout = open(os.devnull, "w")
        return EXIT_FAIL
    except (ClusterError, client.ApiError, ValueError, OSError) as exc:
        print(f"ipchain {args.command}: error: {explain(exc)}", file=sys.stderr)
        return EXIT_FAIL
    except KeyboardInterrupt:
        print(f"ipchain {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
