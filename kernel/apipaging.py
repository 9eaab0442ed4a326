"""Paging of every list of the operators' API: ``limit`` and ``offset`` in, the page's facts in headers out.

The body of a list stays a JSON array; the page is described as OCPI describes its pages (and as the OCPI
side of the hub already answers): ``X-Total-Count`` (objects in the whole list), ``X-Limit`` (the limit
applied) and, when more follow, ``Link: <url>; rel="next"`` with the same filters. ``limit`` is at most
:data:`MAX_LIMIT`; lists come in a stable order (by id unless a route says otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Query, Request, Response
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
MAX_OFFSET = 2**31 - 1
MAX_ID = 2**63 - 1
"""The largest numeric id a path may name (ids are 64-bit): a larger one is 422, not a database error."""

T = TypeVar("T")

HEADERS: dict[str, Any] = {
    "X-Total-Count": {"description": "Objects in the whole list", "schema": {"type": "integer"}},
    "X-Limit": {"description": "The limit applied to this page", "schema": {"type": "integer"}},
    "Link": {
        "description": 'The next page, when there is one: `<url>; rel="next"`',
        "schema": {"type": "string"},
    },
}


def paged(description: str = "One page of the list") -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entry of a paged list (its headers)."""
    return {200: {"description": description, "headers": HEADERS}}


@dataclass
class Paging:
    """The page a caller asked for; :meth:`rows` or :meth:`slice` fetch it and set the headers."""

    limit: int
    offset: int
    request: Request
    response: Response

    async def rows(self, db_session: AsyncSession, query: Select[Any]) -> Sequence[Any]:
        """One page of ``query`` (which must be ordered), after counting the whole list."""
        total = await db_session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
        rows = (await db_session.scalars(query.limit(self.limit).offset(self.offset))).all()
        self.publish(int(total or 0))
        return rows

    def slice(self, items: Sequence[T]) -> list[T]:
        """One page of a list already in memory."""
        self.publish(len(items))
        return list(items[self.offset : self.offset + self.limit])

    def publish(self, total: int) -> None:
        headers = self.response.headers
        headers["X-Total-Count"] = str(total)
        headers["X-Limit"] = str(self.limit)
        following = self.offset + self.limit
        if following < total:
            url = self.request.url.include_query_params(offset=following, limit=self.limit)
            headers["Link"] = f'<{url}>; rel="next"'


def paging(
    request: Request,
    response: Response,
    limit: int = Query(
        DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description=f"Objects per page (at most {MAX_LIMIT})"
    ),
    offset: int = Query(0, ge=0, le=MAX_OFFSET, description="Objects to skip"),
) -> Paging:
    """Dependency of a paged list route."""
    return Paging(limit=limit, offset=offset, request=request, response=response)
