"""A network in one process for the OCPI tests: an ``httpx.AsyncBaseTransport`` that hands each request to the
ASGI app registered for its host, so the hub and the simulated eMSPs talk real HTTP semantics (status codes,
headers, bodies, timeouts) without a socket.

What a real network would do is kept where the tests depend on it: a host nobody serves (``127.0.0.1:9``) is an
``httpx.ConnectError``; an app slower than the request's read timeout is an ``httpx.ReadTimeout`` (an ASGI
transport alone has no timeouts); an app's crash is an HTTP 500; each request runs in its own task, so context
variables set by one app never leak into its caller.
"""

from __future__ import annotations

import asyncio

import httpx
from starlette.types import ASGIApp


class InProcessNetwork(httpx.AsyncBaseTransport):
    """``network.serve("hub.test", app)``; then ``httpx.AsyncClient(transport=network)`` reaches
    ``http://hub.test/...`` in-process."""

    def __init__(self) -> None:
        self._apps: dict[str, httpx.ASGITransport] = {}
        self.requests = 0  # every request that reached an app

    def serve(self, host: str, app: ASGIApp) -> str:
        """Serve ``app`` at ``host``; returns its base URL (``http://host``)."""
        self._apps[host] = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        return f"http://{host}"

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        target = self._apps.get(request.url.netloc.decode("ascii"))
        if target is None:
            raise httpx.ConnectError(f"nothing serves {request.url.netloc.decode()}", request=request)
        self.requests += 1
        timeout = (request.extensions.get("timeout") or {}).get("read")
        task = asyncio.ensure_future(target.handle_async_request(request))
        try:
            response = await asyncio.wait_for(task, timeout)
        except TimeoutError as exc:
            raise httpx.ReadTimeout(f"no answer within {timeout} s", request=request) from exc
        return response
