"""The one error body of the operators' API (``{"detail": ...}``) and the documented error responses.

Every ``/api`` error answers ``{"detail": ...}``: a sentence for most, an object with ``error`` and the facts
for a command a charger could not carry out, FastAPI's list of field errors for a request that fails
validation (422). Routes declare theirs with :func:`errors` so OpenAPI names each status and its body.

:func:`refuse_nul` (a dependency of every ``/api`` router) answers 422 for a NUL character in a path, query
or JSON body: no stored text can contain one, and PostgreSQL refuses it in a query (a 500 otherwise).
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request
from pydantic import BaseModel, Field

DESCRIPTIONS: dict[int, str] = {
    401: "Missing, unknown or revoked API key (send `Authorization: Bearer <key>`)",
    403: "The key is a CPO's, and the endpoint is for the hub operator's keys only",
    404: "Unknown, or not visible to this key (another CPO's object is answered as unknown)",
    409: "The object is not in a state that allows this (e.g. the charger is offline or not accepted)",
    422: "Invalid parameters or body (field errors as a list, or one sentence)",
    502: "The charger answered with an OCPP CALLERROR (code and description in `detail`)",
    503: "The part of the hub that serves this is not running in this process",
    504: "The charger did not answer in time",
}


class ApiError(BaseModel):
    """An error of the operators' API."""

    detail: str | dict[str, Any] | list[dict[str, Any]] = Field(
        description="What went wrong: a sentence, an object with `error` and the facts, or field errors"
    )


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the given error statuses, each with the :class:`ApiError` body."""
    return {code: {"model": ApiError, "description": DESCRIPTIONS[code]} for code in codes}


NUL_REFUSAL = "NUL characters are not allowed in paths, parameters or bodies"


async def refuse_nul(request: Request) -> None:
    """422 when the path, a query parameter or the body carries a NUL character (raw or JSON-escaped)."""
    texts = [*request.path_params.values(), *request.query_params.values()]
    if any("\x00" in str(text) for text in texts):
        raise HTTPException(422, NUL_REFUSAL)
    if request.method in ("POST", "PUT", "PATCH"):
        body = await request.body()
        if b"\x00" in body or b"\\u0000" in body:
            raise HTTPException(422, NUL_REFUSAL)
