"""`python -m node --config FILE`: run one validator until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys

from aiohttp import web

from node import limits, memory, offload
from node.api import build_app
from node import tls
from node.config import ConfigError, NodeConfig, load_config
from node.logs import Event, configure
from node.runtime import Runtime

log = logging.getLogger("ipchain.node")


async def serve(config_path: str, log_level: str | None, log_file: str | None = None,
                log_format: str | None = None) -> int:
    cfg = load_config(config_path)
    configure(log_level or cfg.log_level, cfg.node_id, log_file, log_format or cfg.log_format)
    limits.throttle_accept_errors(asyncio.get_running_loop())
    runtime = Runtime(cfg)
    await runtime.start()
    app = build_app(runtime)
    if cfg.tls is not None:
        app.middlewares.insert(0, tls.peer_port_guard(cfg.tls.p2p_port))
    runner = web.AppRunner(app, access_log=None, handle_signals=False,
                           keepalive_timeout=limits.IDLE_TIMEOUT_S)
    await runner.setup()
    frozen = offload.freeze_startup_heap()  # full collections then skip these (node/offload.py)
    listeners = await listen(runner, cfg, app[limits.CONNECTIONS])
    gc.set_threshold(*GC_THRESHOLDS)
    trimming = asyncio.create_task(memory.trim_forever(), name="malloc-trim")
    log.info(Event("started", port=cfg.port, height=runtime.executor.height,
                   view=runtime.replica.view, peers=len(cfg.peers), frozen_objects=frozen))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stopped, fatal = asyncio.create_task(stop.wait()), asyncio.create_task(runtime.fatal.wait())
    await asyncio.wait({stopped, fatal}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    fatal.cancel()
    trimming.cancel()
    log.log(logging.ERROR if runtime.fatal.is_set() else logging.INFO,
            Event("stopping", height=runtime.executor.height, fatal=runtime.fatal.is_set()))
    runtime.release_waiters()
    for listener in listeners:
        listener.close()
    await app[limits.CONNECTIONS].stop()
    await runner.cleanup()
    await runtime.stop()
    return 1 if runtime.fatal.is_set() else 0


GC_THRESHOLDS = (20_000, 20, 20)
"""Young-generation collections every 20,000 net allocations instead of 700: every
admitted transaction allocates dozens of short-lived containers (decoded maps, the
Transaction, its checks), which reference counting frees; collecting every 700 only
re-scanned the few survivors. Cyclic garbage is still found, a little later. (What
start-up built is frozen first: `offload.freeze_startup_heap`.)"""


async def listen(runner: web.AppRunner, cfg: NodeConfig,
                 guard: limits.ConnectionGuard) -> list[asyncio.AbstractServer]:
    """The client API's port, and with [tls] the mutual-TLS peer port beside it; both
    behind the one connection guard."""
    if cfg.tls is None:
        return [await limits.serve(runner, cfg.host, cfg.port, guard)]
    client_ssl = tls.server_context(cfg.tls, require_client_cert=False) if cfg.tls.client_api else None
    return [await limits.serve(runner, cfg.host, cfg.port, guard, ssl=client_ssl),
            await limits.serve(runner, cfg.host, cfg.tls.p2p_port, guard,
                               ssl=tls.server_context(cfg.tls))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m node", description=__doc__)
    parser.add_argument("--config", required=True, help="path to the node's config.toml")
    parser.add_argument("--log-level", default=None, help="debug, info, warning (default), error")
    parser.add_argument("--log-file", default=None,
                        help="write logs here, rotated by size (default: stderr)")
    parser.add_argument("--log-format", default=None, choices=("logfmt", "json"),
                        help="logfmt (default) or json: one JSON object per line")
    args = parser.parse_args(argv)
    memory.limit_malloc_arenas()  # before any thread starts (node/memory.py says why)
    try:
        return asyncio.run(serve(args.config, args.log_level, args.log_file, args.log_format))
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
