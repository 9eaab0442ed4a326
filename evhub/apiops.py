"""How the operations endpoints (``/health``, ``/metrics``) answer, for the OpenAPI document."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class HealthOut(BaseModel):
    """Liveness and readiness: ``ok`` (200) when the database answers and its schema is current, else
    ``degraded`` (503)."""

    status: str = Field(description="ok or degraded")
    version: str
    node: str
    components: list[str]
    database: str = Field(description="ok, or error: <kind>")
    schema_: str | None = Field(default=None, alias="schema", description="The database's schema revision")


HEALTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": HealthOut, "description": "Ready"},
    503: {
        "model": HealthOut,
        "description": "Degraded: the database is unreachable or its schema is not current",
    },
}

METRICS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Prometheus text exposition format",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
}
