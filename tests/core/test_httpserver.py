"""kernel.httpserver: an ASGI app served in the running loop, listening when start() returns, stopped
gracefully (in-flight requests finish) or, past the timeout, cut short; the socket is closed in every case."""

from __future__ import annotations

import asyncio
import socket

import httpx
from starlette.types import Receive, Scope, Send

from kernel.httpserver import HttpServer


class _App:
    """Answers ``hello``; ``/slow`` waits until ``release`` is set (``arrived`` says it is waiting)."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "http"
        if scope["path"] == "/slow":
            self.arrived.set()
            await self.release.wait()
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": b"hello"})


def _accepts(host: str, port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex((host, port)) == 0


async def test_serves_once_started_and_not_after_stop() -> None:
    server = HttpServer(_App())
    assert server.url == f"http://127.0.0.1:{server.port}" and server.port > 0
    await server.start()
    try:
        async with httpx.AsyncClient(timeout=60.0) as client:
            response = await client.get(server.url + "/")
        assert response.status_code == 200 and response.text == "hello"
    finally:
        await server.stop()
    assert not _accepts(server.host, server.port)
    await server.stop()  # a second stop is harmless


async def test_stop_lets_an_in_flight_request_finish() -> None:
    app = _App()
    server = HttpServer(app)
    await server.start()
    async with httpx.AsyncClient(timeout=60.0) as client:
        pending = asyncio.create_task(client.get(server.url + "/slow"))
        await asyncio.wait_for(app.arrived.wait(), 5)
        stopping = asyncio.create_task(server.stop(timeout=None))
        await asyncio.wait_for(_refused(server), 5)  # no new connections while the request is in flight
        assert not stopping.done() and not pending.done()
        app.release.set()
        response = await asyncio.wait_for(pending, 5)
        await asyncio.wait_for(stopping, 5)
    assert response.text == "hello"


async def _refused(server: HttpServer) -> None:
    while _accepts(server.host, server.port):
        await asyncio.sleep(0.01)


async def test_stop_cuts_a_request_short_after_the_timeout() -> None:
    app = _App()
    server = HttpServer(app)
    await server.start()
    async with httpx.AsyncClient(timeout=60.0) as client:
        pending = asyncio.create_task(client.get(server.url + "/slow"))
        await asyncio.wait_for(app.arrived.wait(), 5)
        await asyncio.wait_for(server.stop(timeout=0.2), 5)
        try:
            response = await asyncio.wait_for(pending, 5)
        except httpx.HTTPError:  # the connection was dropped
            pass
        else:  # or uvicorn answered for the cancelled request
            assert response.status_code >= 500
    assert not app.release.is_set()
    assert not _accepts(server.host, server.port)


async def test_a_socket_handed_in_is_served_and_closed() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = HttpServer(_App(), sock=sock)
    assert server.port == sock.getsockname()[1]
    await server.start()
    async with httpx.AsyncClient(timeout=60.0) as client:
        assert (await client.get(server.url)).text == "hello"
    await server.stop()
    assert sock.fileno() == -1


async def test_stop_without_start_closes_the_socket() -> None:
    server = HttpServer(_App())
    port = server.port
    await server.stop()
    with socket.socket() as again:
        again.bind(("127.0.0.1", port))  # free again
