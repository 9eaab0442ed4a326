"""The one error body of the operators' API (``{"detail": ...}``) and the documented error responses.

Every ``/api`` error answers ``{"detail": ...}``: a sentence for most, an object with ``error`` and the facts
for a command a charger could not carry out, FastAPI's list of field errors for a request that fails
validation (422). Routes declare theirs with :func:`errors` so OpenAPI names each status and its body.
"""

from __future__ import annotations

from typing import Any

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
