"""`python -m node --config FILE`: run one validator until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from aiohttp import web

from node.api import build_app
from node import tls
from node.config import ConfigError, NodeConfig, load_config
from node.logs import configure
from node.runtime import Runtime

log = logging.getLogger("ipchain.node")


async def serve(config_path: str, log_level: str | None) -> int:
    cfg = load_config(config_path)
    configure(log_level or cfg.log_level, cfg.node_id)
    runtime = Runtime(cfg)
    await runtime.start()
    app = build_app(runtime)
    if cfg.tls is not None:
        app.middlewares.insert(0, tls.peer_port_guard(cfg.tls.p2p_port))
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    for site in sites(runner, cfg):
        await site.start()
    log.warning("event=started port=%d height=%d view=%d", cfg.port, runtime.executor.height,
                runtime.replica.view)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    stopped, fatal = asyncio.create_task(stop.wait()), asyncio.create_task(runtime.fatal.wait())
    await asyncio.wait({stopped, fatal}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    fatal.cancel()
    log.warning("event=stopping height=%d fatal=%s", runtime.executor.height, runtime.fatal.is_set())
    runtime.release_waiters()
    await runner.cleanup()
    await runtime.stop()
    return 1 if runtime.fatal.is_set() else 0


def sites(runner: web.AppRunner, cfg: NodeConfig) -> list[web.TCPSite]:
    """The client API's port, and with [tls] the mutual-TLS peer port beside it."""
    if cfg.tls is None:
        return [web.TCPSite(runner, cfg.host, cfg.port, reuse_address=True)]
    client_ssl = tls.server_context(cfg.tls, require_client_cert=False) if cfg.tls.client_api else None
    return [web.TCPSite(runner, cfg.host, cfg.port, reuse_address=True, ssl_context=client_ssl),
            web.TCPSite(runner, cfg.host, cfg.tls.p2p_port, reuse_address=True,
                        ssl_context=tls.server_context(cfg.tls))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m node", description=__doc__)
    parser.add_argument("--config", required=True, help="path to the node's config.toml")
    parser.add_argument("--log-level", default=None, help="debug, info, warning (default), error")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(serve(args.config, args.log_level))
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
