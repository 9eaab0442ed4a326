"""Calls to other OCPI platforms (httpx): the token encoded as the partner's version says, request/correlation
ids, routing headers, and the envelope unpacked into :class:`OcpiReply`.

OCPI 2.2.1 sends ``Authorization: Token <base64 of the token>`` and the routing headers callers pass in;
OCPI 2.1.1 (``version="2.1.1"``) sends the raw token and no routing headers (2.1.1 has none: any ``OCPI-from-*``
/ ``OCPI-to-*`` header a caller passes is left out), everything else the same.

The HTTP transport is a parameter, as in httpx itself: ``None`` (the default, what the hub runs with) is the
network; tests hand in an ``httpx.AsyncBaseTransport`` that reaches partners' ASGI apps in-process. Every
component that calls partners takes the same ``transport`` argument and passes it on here.

A caller that talks to partners all the time (the outbox's ``ocpi`` channel) keeps a :class:`ClientPool`: one
``httpx.AsyncClient`` (its own connection pool, at most ``max_connections`` to that partner) per partner, reused
by every request (``http=``), closed with the pool; one-off calls build a client per request."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from kernel import jsonutil
from ocpi.partner_auth import encode_token
from ocpi.routing import CORRELATION_ID, FROM_CC, FROM_PID, REQUEST_ID, TO_CC, TO_PID, new_request_id

DEFAULT_TIMEOUT = 10.0
V211 = "2.1.1"
_ROUTING = {h.lower() for h in (FROM_CC, FROM_PID, TO_CC, TO_PID)}


def authorization(token: str, version: str = "2.2.1") -> str:
    """The Authorization header value for ``token`` in ``version`` (2.1.1: the raw token, else base64)."""
    return f"Token {token}" if version == V211 else encode_token(token)


class OcpiClientError(Exception):
    """The other platform could not be used (network error, non-JSON answer, error status)."""

    def __init__(self, message: str, reply: OcpiReply | None = None) -> None:
        super().__init__(message)
        self.reply = reply


@dataclass
class OcpiReply:
    http_status: int
    status_code: int | None
    status_message: str | None
    data: Any
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return (
            200 <= self.http_status < 300 and self.status_code is not None and 1000 <= self.status_code < 2000
        )


class ClientPool:
    """One ``httpx.AsyncClient`` per key (a partner), created on first use, closed by :meth:`aclose`."""

    def __init__(
        self, *, transport: httpx.AsyncBaseTransport | None = None, max_connections: int = 8
    ) -> None:
        self.transport = transport
        self.limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._clients: dict[str, httpx.AsyncClient] = {}

    def client(self, key: str) -> httpx.AsyncClient:
        http = self._clients.get(key)
        if http is None or http.is_closed:
            http = httpx.AsyncClient(transport=self.transport, limits=self.limits)
            self._clients[key] = http
        return http

    def __len__(self) -> int:
        return len(self._clients)

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for http in clients:
            await http.aclose()


async def request(
    method: str,
    url: str,
    token: str | None,
    *,
    json: Any = None,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
    correlation_id: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    transport: httpx.AsyncBaseTransport | None = None,
    version: str = "2.2.1",
    request_id: str | None = None,
    http: httpx.AsyncClient | None = None,
) -> OcpiReply:
    """One OCPI request through ``http`` (a pooled client) or a client of its own on ``transport`` (None: the
    network), in the partner's OCPI ``version``. Raises httpx errors (timeouts, connection errors) to the
    caller."""
    all_headers = {
        REQUEST_ID: request_id or new_request_id(),
        CORRELATION_ID: correlation_id or new_request_id(),
    }
    if token:
        all_headers["Authorization"] = authorization(token, version)
    for name, value in (headers or {}).items():
        if version != V211 or name.lower() not in _ROUTING:
            all_headers[name] = value
    content = None
    if json is not None:  # exact JSON: Decimal amounts go out as numbers with their exact digits
        content = jsonutil.dumps(json).encode("utf-8")
        all_headers.setdefault("Content-Type", "application/json")
    if http is not None:
        response = await http.request(
            method, url, content=content, params=params, headers=all_headers, timeout=timeout
        )
    else:
        async with httpx.AsyncClient(timeout=timeout, transport=transport) as own:
            response = await own.request(method, url, content=content, params=params, headers=all_headers)
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return OcpiReply(response.status_code, None, response.text[:200], None, dict(response.headers))
    return OcpiReply(
        http_status=response.status_code,
        status_code=body.get("status_code"),
        status_message=body.get("status_message"),
        data=body.get("data"),
        headers=dict(response.headers),
    )


async def get_ok(
    url: str,
    token: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    transport: httpx.AsyncBaseTransport | None = None,
    version: str = "2.2.1",
) -> Any:
    """GET and return ``data``; :class:`OcpiClientError` for anything but success."""
    try:
        reply = await request("GET", url, token, timeout=timeout, transport=transport, version=version)
    except httpx.HTTPError as exc:
        raise OcpiClientError(f"GET {url} failed: {type(exc).__name__} {exc}") from exc
    if not reply.ok:
        raise OcpiClientError(
            f"GET {url} answered HTTP {reply.http_status}, OCPI {reply.status_code} {reply.status_message}",
            reply,
        )
    return reply.data
