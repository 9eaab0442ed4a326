"""The OCPI response envelope (``data``, ``status_code``, ``status_message``, ``timestamp``) and the errors
that turn into one.

Handlers raise :class:`OcpiError`; :func:`install_error_handlers` answers it (and FastAPI's own validation
errors, invalid JSON included) with an envelope carrying the OCPI status code and a fitting HTTP status. Bad
input that only shows deeper (a value the database refuses, an overflow) is 2001 with HTTP 400, an unreachable
database 3000 with HTTP 503 and Retry-After (:func:`kernel.failures.classify`), never a 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from kernel import jsonutil
from kernel.failures import classify
from kernel.timeutil import format_rfc3339, utcnow
from ocpi import status

log = logging.getLogger(__name__)


def envelope(data: Any = None, code: int = status.SUCCESS, message: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status_code": code, "timestamp": format_rfc3339(utcnow())}
    if data is not None:
        body["data"] = data
    if message is not None or code != status.SUCCESS:
        body["status_message"] = message or status.MESSAGES.get(code, "")
    return body


class OcpiResponse(JSONResponse):
    """A JSON response that never escapes non-ASCII (OCPI is UTF-8)."""

    def render(self, content: Any) -> bytes:
        return jsonutil.dumps(content, separators=(",", ":"), default=str).encode("utf-8")


def ok(
    data: Any = None, *, headers: dict[str, str] | None = None, message: str | None = None
) -> OcpiResponse:
    return OcpiResponse(envelope(data, status.SUCCESS, message), status_code=200, headers=headers)


class OcpiError(Exception):
    """An OCPI error answer: ``code`` is the OCPI status code, ``http_status`` the HTTP status."""

    def __init__(self, code: int, message: str | None = None, http_status: int | None = None) -> None:
        super().__init__(message or status.MESSAGES.get(code, ""))
        self.code = code
        self.message = message or status.MESSAGES.get(code, "")
        if http_status is None:
            http_status = 400 if 2000 <= code < 3000 else 500 if code >= 3000 else 200
        self.http_status = http_status


class NotFound(OcpiError):
    def __init__(self, message: str = "Object not found", code: int = status.CLIENT_ERROR) -> None:
        super().__init__(code, message, 404)


class Unauthorized(OcpiError):
    def __init__(self, message: str = "Missing or unknown token") -> None:
        super().__init__(status.CLIENT_ERROR, message, 401)


class MethodNotAllowed(OcpiError):
    def __init__(self, message: str) -> None:
        super().__init__(status.CLIENT_ERROR, message, 405)


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error of the (mounted) OCPI app with an envelope: OCPI errors with their code, validation
    errors (invalid JSON included) with 2001 and HTTP 400, other HTTP errors with 2000/3000."""

    @app.exception_handler(OcpiError)
    async def _ocpi_error(request: Request, exc: OcpiError) -> OcpiResponse:
        return OcpiResponse(envelope(None, exc.code, exc.message), status_code=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> OcpiResponse:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg')}" for err in exc.errors()[:5]
        )
        return OcpiResponse(
            envelope(None, status.INVALID_PARAMETERS, f"Invalid or missing parameters: {problems}"),
            status_code=400,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> OcpiResponse:
        if exc.status_code in (400, 422):  # bad input refused on the way in (kernel.httpguard): 2001
            return OcpiResponse(envelope(None, status.INVALID_PARAMETERS, str(exc.detail)), status_code=400)
        code = status.CLIENT_ERROR if exc.status_code < 500 else status.SERVER_ERROR
        return OcpiResponse(envelope(None, code, str(exc.detail)), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> OcpiResponse:
        failure = classify(exc)
        if (
            failure is not None
        ):  # bad input (2001) or the database unreachable (3000, 503): logged by the guard
            code = status.SERVER_ERROR if failure.status >= 500 else status.INVALID_PARAMETERS
            headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else None
            http_status = 400 if failure.status == 422 else failure.status
            return OcpiResponse(
                envelope(None, code, failure.message), status_code=http_status, headers=headers
            )
        log.exception("OCPI request %s %s failed", request.method, request.url.path)
        return OcpiResponse(envelope(None, status.SERVER_ERROR, "Internal error"), status_code=500)
