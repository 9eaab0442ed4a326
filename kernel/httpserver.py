"""Serving an ASGI app over HTTP inside the running event loop: uvicorn started, waited for, stopped.

One way for the whole project to run an HTTP server in-process (the hub's app, the simulated eMSP, the tests'
loopback servers)::

    server = HttpServer(app, host="127.0.0.1", port=0)  # binds now: server.url is known before it serves
    await server.start()                                 # returns once the socket accepts connections
    ...
    await server.stop()                                  # graceful: in-flight requests finish

The server owns its listening socket (bound here, or handed in already bound, e.g. by
:func:`kernel.ports.bind_tcp`) and closes it on :meth:`HttpServer.stop`. It leaves signals to the process that
runs it (uvicorn would otherwise take SIGINT/SIGTERM for itself), has no ASGI lifespan (the caller starts what
the app needs), writes no access log, and logs through the process's own logging configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

__all__ = ["HttpServer"]

log = logging.getLogger(__name__)


class _InProcessUvicorn(uvicorn.Server):
    """uvicorn that says when it listens and leaves signal handling to the process."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.listening.set()


def _bind(host: str, port: int) -> socket.socket:
    family, _, _, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


class HttpServer:
    """``app`` served over HTTP on ``host:port`` (a free port when 0) or on ``sock``, in the running loop."""

    def __init__(
        self, app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0, sock: socket.socket | None = None
    ) -> None:
        self._socket = sock if sock is not None else _bind(host, port)
        self.host, self.port = self._socket.getsockname()[:2]
        config = uvicorn.Config(
            app, host=self.host, port=self.port, log_config=None, access_log=False, lifespan="off"
        )
        self._server = _InProcessUvicorn(config)
        self._serving: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` of the listening socket (an IPv6 host in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self, timeout: float = 10.0) -> None:
        """Start serving; return once the socket accepts connections. Raises what stopped uvicorn during start,
        or :class:`TimeoutError` when it did not listen within ``timeout`` seconds."""
        if self._serving is not None:
            raise RuntimeError("the HTTP server was already started")
        self._serving = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        listening = asyncio.create_task(self._server.listening.wait())
        await asyncio.wait({self._serving, listening}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if listening.done():
            return
        listening.cancel()
        if self._serving.done():
            self._serving.result()  # raises what stopped it
            raise RuntimeError("the HTTP server stopped during start")
        await self.stop(timeout=0)
        raise TimeoutError(f"the HTTP server on {self.url} did not listen within {timeout} s")

    async def stop(self, timeout: float | None = 5.0) -> None:
        """Stop accepting connections and let in-flight requests finish for up to ``timeout`` seconds (None:
        as long as they take); uvicorn then cancels what is left. Closes the socket. Safe to call more than
        once, and without :meth:`start`."""
        serving, self._serving = self._serving, None
        if serving is not None:
            # uvicorn annotates this as int but hands it to asyncio.wait_for, which takes any number of seconds
            grace = None if timeout is None else max(timeout, 0.0)
            self._server.config.timeout_graceful_shutdown = grace  # type: ignore[assignment]
            self._server.should_exit = True
            try:
                await serving
            except Exception:  # stopping must not fail: the server's own error is only reported
                log.warning(
                    "the HTTP server failed while stopping",
                    exc_info=True,
                    extra={"fields": {"url": self.url}},
                )
        self._socket.close()
