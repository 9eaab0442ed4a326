"""A simulated OCPI peer's HTTP lifecycle: its app served on a (free) loopback port in the running loop, stopped.

The simulated eMSP (:mod:`simulators.emsp`) and the simulated external CPO (:mod:`simulators.cpo`) each hold
one :class:`Serving` (composition: their own dataclass fields stay as they are) and delegate to it::

    serving = Serving()
    url = await serving.start(app, "127.0.0.1")   # http://127.0.0.1:PORT, serving once this returns
    serving.port, serving.server                  # the bound port; the HttpServer (None when stopped)
    ocpi_base(url)                                # http://127.0.0.1:PORT/ocpi: where the peer's OCPI lives
    await serving.stop()                          # graceful; a second stop (or one before start) does nothing

The server itself is :class:`kernel.httpserver.HttpServer` (uvicorn in-process, no signals, no lifespan).
"""

from __future__ import annotations

from starlette.types import ASGIApp

from kernel.httpserver import HttpServer

__all__ = ["Serving", "ocpi_base"]


class Serving:
    """One served app at a time: :meth:`start` binds and serves it, :meth:`stop` ends it."""

    def __init__(self) -> None:
        self.server: HttpServer | None = None

    @property
    def port(self) -> int | None:
        """The port it listens on (None when not served)."""
        return self.server.port if self.server is not None else None

    async def start(self, app: ASGIApp, host: str, port: int = 0) -> str:
        """Serve ``app`` on ``host:port`` (a free port when 0), stopping what was served before; its URL."""
        await self.stop()
        server = HttpServer(app, host=host, port=port)
        await server.start()
        self.server = server
        return server.url

    async def stop(self) -> None:
        """Stop serving (graceful: in-flight requests finish); nothing when not served."""
        server, self.server = self.server, None
        if server is not None:
            await server.stop()


def ocpi_base(url: str | None, how: str = "start() it") -> str:
    """The OCPI root (``.../ocpi``) of a peer reached at ``url``; RuntimeError, saying ``how`` to serve it,
    when it has none yet."""
    if url is None:
        raise RuntimeError(f"the simulator is not served: {how}")
    return f"{url.rstrip('/')}/ocpi"
