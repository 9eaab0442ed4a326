"""Generated ids on the command line: the full id, or any unique prefix of it (as git takes commit hashes).

``resolve_prefix(db_session, ChargingSession.session_uid, "3f2a", "session")`` returns the one full value
that starts with ``3f2a``. An exact match always wins (partner ``1`` is partner 1 even when partner 12
exists); otherwise the prefix must match exactly one row. Matching is case-insensitive and the same on SQLite and PostgreSQL.
Failures raise :class:`~evhub.provisioning.ProvisioningError` with one line for the user: unknown, or
ambiguous with how many rows matched.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from evhub.provisioning import ProvisioningError

_LIKE_ESCAPE = "\\"


def _escape_like(text: str) -> str:
    return (
        text.replace(_LIKE_ESCAPE, _LIKE_ESCAPE * 2)
        .replace("%", _LIKE_ESCAPE + "%")
        .replace("_", _LIKE_ESCAPE + "_")
    )


async def resolve_prefix(db_session: AsyncSession, column: Any, prefix: str, what: str) -> str:
    """The full value of ``column`` that ``prefix`` names (as a string: an integer id comes back as ``"42"``).

    ``column`` is a mapped attribute (``Cdr.cdr_uid``, ``OutboxMessage.id``...); ``what`` names the kind of id
    in messages ("session", "CDR", "partner"). Raises :class:`ProvisioningError` when nothing or more than one
    row matches."""
    wanted = prefix.strip()
    if not wanted:
        raise ProvisioningError(f"{what} id must not be empty")
    text = cast(column, String) if not isinstance(column.type, String) else column
    exact = (await db_session.scalars(select(column).where(text == wanted).limit(1))).first()
    if exact is not None:
        return str(exact)
    pattern = _escape_like(wanted.lower()) + "%"
    matches = func.lower(text).like(pattern, escape=_LIKE_ESCAPE)
    found = (await db_session.scalars(select(column).where(matches).limit(2))).all()
    if not found:
        raise ProvisioningError(f"unknown {what} {wanted!r}")
    if len(found) > 1:
        count = await db_session.scalar(select(func.count()).select_from(column.class_).where(matches))
        raise ProvisioningError(
            f"{what} id {wanted!r} is ambiguous: {count} ids start with it; give more characters"
        )
    return str(found[0])
