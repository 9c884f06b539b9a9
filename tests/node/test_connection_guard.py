"""The connection guard (node/limits.py): at the cap a newcomer displaces the oldest
connection that never finished a request, so half-open sockets cannot lock peers out;
a connection that does not finish its headers in time is cut; working connections
(a request in progress, or served and within the idle allowance) are never cut."""

from __future__ import annotations

import asyncio
import socket

import aiohttp
from aiohttp import web

from node import limits
from tests.node.conftest import free_ports, until


async def serve_guarded(guard: limits.ConnectionGuard) -> tuple[web.AppRunner, object, str]:
    async def hello(request: web.Request) -> web.Response:
        await asyncio.sleep(float(request.query.get("sleep", "0")))
        return web.Response(text="hi")

    app = web.Application(middlewares=[guard.middleware])
    app.router.add_get("/", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    (port,) = free_ports(1)
    server = await limits.serve(runner, "127.0.0.1", port, guard)
    return runner, server, f"http://127.0.0.1:{port}"


async def half_open(url: str, count: int) -> list[socket.socket]:
    host, port = url.removeprefix("http://").split(":")
    socks = []
    for _ in range(count):
        sock = socket.create_connection((host, int(port)))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # headers never finished
        socks.append(sock)
    return socks


async def test_a_newcomer_displaces_the_oldest_half_open_socket_at_the_cap() -> None:
    guard = limits.ConnectionGuard(max_connections=8, header_timeout_s=60, idle_timeout_s=60)
    runner, server, url = await serve_guarded(guard)
    socks = await half_open(url, 8)
    try:
        await until(lambda: len(guard.conns) == 8, 5, "8 half-open connections tracked")
        async with aiohttp.ClientSession() as session:
            for _ in range(3):  # each new client gets in and is answered
                async with session.get(url, headers={"Connection": "close"}) as resp:
                    assert resp.status == 200 and await resp.text() == "hi"
        # the first newcomer displaced the oldest half-open socket; once it was served
        # and gone there was room again
        assert guard.counters["evicted"] == 1 and guard.counters["refused"] == 0
        await asyncio.sleep(0.1)  # let the loop close what it aborted (same loop as us)
        socks[0].settimeout(1)
        assert socks[0].recv(100) == b""
        socks[1].setblocking(False)
        try:
            socks[1].recv(100)
            raise AssertionError("a younger half-open socket was cut")
        except BlockingIOError:
            pass
    finally:
        for sock in socks:
            sock.close()
        server.close()
        await guard.stop()
        await runner.cleanup()


async def test_slow_headers_are_cut_and_busy_requests_are_not() -> None:
    guard = limits.ConnectionGuard(max_connections=64, header_timeout_s=0.5, idle_timeout_s=60)
    runner, server, url = await serve_guarded(guard)
    socks = await half_open(url, 5)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(url + "/?sleep=2.5") as resp:  # busy past the timeout
                assert resp.status == 200
        await until(lambda: guard.counters["timed_out"] >= 5, 5, "half-open sockets cut")
        await asyncio.sleep(0.1)  # let the loop close what it aborted (same loop as us)
        for sock in socks:
            sock.settimeout(2)
            assert sock.recv(100) == b""  # closed by the node
    finally:
        for sock in socks:
            sock.close()
        server.close()
        await guard.stop()
        await runner.cleanup()


async def test_at_the_cap_with_only_working_connections_a_newcomer_is_refused() -> None:
    guard = limits.ConnectionGuard(max_connections=2, header_timeout_s=60, idle_timeout_s=60)
    runner, server, url = await serve_guarded(guard)
    try:
        async with aiohttp.ClientSession() as session:
            async def slow_get() -> int:
                async with session.get(url + "/?sleep=1.5") as resp:
                    return resp.status

            busy = [asyncio.create_task(slow_get()) for _ in range(2)]
            await until(lambda: sum(c.busy for c in guard.conns.values()) == 2, 5, "2 busy")
            host, port = url.removeprefix("http://").split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                assert await asyncio.wait_for(reader.read(100), 2) == b""
            except ConnectionResetError:
                pass  # aborted: the same refusal
            writer.close()
            assert await asyncio.gather(*busy) == [200, 200]
        assert guard.counters["refused"] == 1
    finally:
        server.close()
        await guard.stop()
        await runner.cleanup()


async def test_accept_failures_are_logged_once_per_interval(caplog) -> None:
    import errno
    import logging

    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    limits.throttle_accept_errors(loop, every_s=60)
    try:
        with caplog.at_level(logging.ERROR, logger="ipchain.limits"):
            for _ in range(1000):  # what a full fd table makes asyncio report
                loop.call_exception_handler({
                    "message": "socket.accept() out of system resource",
                    "exception": OSError(errno.EMFILE, "Too many open files")})
    finally:
        loop.set_exception_handler(previous)
    lines = [r for r in caplog.records if "accept_failed" in r.getMessage()]
    assert len(lines) == 1 and "errno=EMFILE" in lines[0].getMessage()
