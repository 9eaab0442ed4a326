"""Paginated GET of a Sender interface: ``offset``, ``limit``, ``date_from``, ``date_to`` in; ``Link`` (rel
next, keeping the filters), ``X-Total-Count`` and ``X-Limit`` out. Objects come oldest first (by
``last_updated``, then id); ``date_from`` is inclusive and ``date_to`` exclusive, as the spec says.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.timeutil import format_rfc3339, parse_datetime
from ocpi import status
from ocpi.envelope import OcpiError

MAX_LIMIT = 100
DEFAULT_LIMIT = 50


@dataclass(frozen=True)
class Page:
    offset: int
    limit: int
    date_from: datetime | None
    date_to: datetime | None


def _int(value: str | None, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise OcpiError(status.INVALID_PARAMETERS, f"{name} must be an integer") from None
    if number < 0:
        raise OcpiError(status.INVALID_PARAMETERS, f"{name} must not be negative")
    return number


def _date(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        return parse_datetime(value)
    except ValueError:
        raise OcpiError(status.INVALID_PARAMETERS, f"{name} is not an RFC 3339 date-time") from None


def read_page(request: Request, max_limit: int = MAX_LIMIT) -> Page:
    q = request.query_params
    limit = _int(q.get("limit"), "limit", min(DEFAULT_LIMIT, max_limit))
    return Page(
        offset=_int(q.get("offset"), "offset", 0),
        limit=min(limit, max_limit),
        date_from=_date(q.get("date_from"), "date_from"),
        date_to=_date(q.get("date_to"), "date_to"),
    )


async def paginate(
    db_session: AsyncSession,
    request: Request,
    query: Select[Any],
    updated_column: Any,
    id_column: Any,
    max_limit: int = MAX_LIMIT,
) -> tuple[list[Any], dict[str, str]]:
    """Rows of ``query`` for the requested page, and the pagination headers."""
    page = read_page(request, max_limit)
    if page.date_from is not None:
        query = query.where(updated_column >= page.date_from)
    if page.date_to is not None:
        query = query.where(updated_column < page.date_to)
    total = await db_session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    rows = list(
        (
            await db_session.scalars(
                query.order_by(updated_column, id_column).offset(page.offset).limit(page.limit)
            )
        ).all()
    )
    headers = {"X-Total-Count": str(total), "X-Limit": str(page.limit)}
    if page.offset + len(rows) < total and rows:
        params: dict[str, str] = {"offset": str(page.offset + len(rows)), "limit": str(page.limit)}
        if page.date_from is not None:
            params["date_from"] = format_rfc3339(page.date_from)
        if page.date_to is not None:
            params["date_to"] = format_rfc3339(page.date_to)
        base = str(request.url.replace(query=""))
        headers["Link"] = f'<{base}?{urlencode(params)}>; rel="next"'
    return rows, headers
