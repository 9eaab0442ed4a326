"""The HTTP app's outermost ASGI middleware: bad input and an unreachable database are never a 500.

:class:`HttpGuard` wraps the whole app (``/api``, ``/ocpi``, ``/portal``, ``/billing/webhooks``, ``/health``,
``/metrics``), before authentication, so it holds for unauthenticated requests too:

- **Body size**: a ``Content-Length`` above ``max_body_bytes`` is answered 413 before anything is read; a body
  without one (chunked) is counted while it streams and cut off with 413 at the first chunk past the limit, so
  no request is ever held in memory beyond the limit.
- **NUL characters** (no stored text may hold one; PostgreSQL refuses them): in the path or the query string,
  and in JSON or form bodies (raw, ``\\u0000`` or ``%00``), checked while streaming: 422 (OCPI: 400).
- **Exceptions** that :func:`kernel.failures.classify` knows (a value the database refuses, an overflow, JSON
  nested too deep: 422; the database unreachable: 503 with Retry-After) are answered instead of a 500, and each
  kind is logged as one line per interval without a traceback (:class:`kernel.logs.RateLimitedLog`). Any other
  exception is re-raised: a bug stays a 500 with its traceback.

Each answer is in its surface's own terms: ``/ocpi`` an OCPI envelope (status code 2001 for bad input, 3000
for an unavailable database), ``/portal`` a short HTML page, everything else the API's ``{"detail": ...}``.
"""

from __future__ import annotations

import html
import json
import logging

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from kernel.failures import BAD_INPUT, Failure, classify
from kernel.logs import RateLimitedLog
from kernel.timeutil import format_rfc3339, utcnow

__all__ = ["BodyTooLarge", "HttpGuard", "NulInRequest", "render_failure", "surface_of"]

log = logging.getLogger(__name__)

NUL_MESSAGE = "NUL characters are not allowed in paths, parameters or bodies"
OCPI_INVALID_PARAMETERS = 2001
OCPI_CLIENT_ERROR = 2000
OCPI_SERVER_ERROR = 3000


def _nul_markers(content_type: str) -> tuple[bytes, ...]:
    """What spells a NUL character in a body of this type (nothing is checked in other, binary, bodies)."""
    if content_type.startswith("application/x-www-form-urlencoded"):
        return (b"\x00", b"%00")
    if content_type.startswith("application/json") or content_type.endswith("+json"):
        return (b"\x00", b"\\u0000")
    if content_type.startswith("text/"):
        return (b"\x00",)
    return ()


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when the body passes the limit (an HTTPException, so that no framework code
    turns it into another error on the way out; the guard answers it)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


class NulInRequest(HTTPException):
    """Raised from ``receive`` when a checked body carries a NUL character."""

    def __init__(self) -> None:
        super().__init__(422, NUL_MESSAGE)


def surface_of(path: str) -> str:
    """``ocpi``, ``portal`` or ``api``: whose terms an error on ``path`` is answered in."""
    if path == "/ocpi" or path.startswith("/ocpi/"):
        return "ocpi"
    if path == "/portal" or path.startswith("/portal/"):
        return "portal"
    return "api"


def render_failure(surface: str, failure: Failure) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers and body answering ``failure`` on ``surface``."""
    status = failure.status
    if surface == "ocpi":
        if status >= 500:
            code = OCPI_SERVER_ERROR
        else:
            code = OCPI_INVALID_PARAMETERS if status in (400, 422) else OCPI_CLIENT_ERROR
            status = 400 if status == 422 else status  # OCPI answers invalid parameters with HTTP 400
        payload = {
            "status_code": code,
            "status_message": failure.message,
            "timestamp": format_rfc3339(utcnow()),
        }
        body, content_type = json.dumps(payload).encode(), b"application/json"
    elif surface == "portal":
        text = html.escape(failure.message[:1].upper() + failure.message[1:])
        body = (
            '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Request refused</title></head>'
            f'<body><main><h1>The form could not be accepted</h1><p class="error">{text}.</p>'
            '<p><a href="/portal">Back to the portal</a></p></main></body></html>'
        ).encode()
        content_type = b"text/html; charset=utf-8"
    else:
        body, content_type = json.dumps({"detail": failure.message}).encode(), b"application/json"
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if failure.retry_after is not None:
        headers.append((b"retry-after", str(failure.retry_after).encode()))
    if status == 413:
        headers.append((b"connection", b"close"))
    return status, headers, body


def _as_failure(exc: BaseException) -> Failure | None:
    if isinstance(exc, BodyTooLarge | NulInRequest):
        return Failure(BAD_INPUT if exc.status_code != 413 else "too_large", exc.status_code, exc.detail)
    return classify(exc)


class HttpGuard:
    """ASGI middleware: body limit, NUL refusal and bad-input / unavailable-database answers (see the module)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int = 1_048_576, log_interval: float = 10.0) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.log = RateLimitedLog(log, log_interval)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        surface = surface_of(scope.get("path", ""))
        refusal = self._refuse_early(scope)
        if refusal is not None:
            await self._answer(scope, send, surface, refusal)
            return
        exchange = _Exchange(self, scope, receive, send)
        try:
            await self.app(scope, exchange.receive, exchange.send)
        except Exception as exc:
            failure = exchange.failure or _as_failure(exc)
            if failure is None:
                raise
            if exchange.started:  # already answered (the OCPI app answers its own): only logged
                self._log(scope, failure)
                return
            await self._answer(scope, send, surface, failure)
            return
        if exchange.failure is not None and not exchange.started:
            await self._answer(scope, send, surface, exchange.failure)

    def _refuse_early(self, scope: Scope) -> Failure | None:
        raw_path = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "surrogateescape")
        query = scope.get("query_string", b"")
        if "\x00" in scope.get("path", "") or b"%00" in raw_path or b"%00" in query or b"\x00" in query:
            return Failure(BAD_INPUT, 422, NUL_MESSAGE)
        length = _header(scope, b"content-length")
        if length is not None:
            if not length.isdigit() or not length.isascii():
                return Failure(BAD_INPUT, 400, "Content-Length is not a number of bytes")
            if int(length) > self.max_body_bytes:
                return Failure(
                    "too_large", 413, f"the request body is larger than {self.max_body_bytes} bytes"
                )
        return None

    def _log(self, scope: Scope, failure: Failure) -> None:
        self.log.warning(
            failure.kind,
            f"http request refused: {failure.message}",
            {"method": scope.get("method"), "path": scope.get("path"), "status": failure.status},
        )

    async def _answer(self, scope: Scope, send: Send, surface: str, failure: Failure) -> None:
        self._log(scope, failure)
        status, headers, body = render_failure(surface, failure)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1").strip()
    return None


class _Exchange:
    """One request through the guard: counts and checks the body as it streams, remembers whether the
    response started, and holds back the app's own answer to a refusal raised from ``receive``."""

    def __init__(self, guard: HttpGuard, scope: Scope, receive: Receive, send: Send) -> None:
        self.guard = guard
        self._receive = receive
        self._send = send
        self.started = False
        self.failure: Failure | None = None
        self.received = 0
        content_type = (_header(scope, b"content-type") or "").lower()
        self.markers = _nul_markers(content_type.split(";", 1)[0].strip())
        self._tail = b""

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] != "http.request":
            return message
        chunk: bytes = message.get("body", b"")
        self.received += len(chunk)
        if self.received > self.guard.max_body_bytes:
            error: HTTPException = BodyTooLarge(self.guard.max_body_bytes)
            self.failure = _as_failure(error)
            raise error
        if self.markers and chunk:
            window = self._tail + chunk
            if any(marker in window for marker in self.markers):
                error = NulInRequest()
                self.failure = _as_failure(error)
                raise error
            self._tail = window[-5:]
        return message

    async def send(self, message: Message) -> None:
        if self.failure is not None and not self.started:
            return  # the app's answer to the refusal; the guard sends its own
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)
