"""(stub) holds (token blocks, lowered limits) for unpaid documents."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession


async def release_if_settled(db_session: AsyncSession, document_id: int) -> int:
    """Release the holds of ``document_id`` once nothing is outstanding on it; the number released."""
    return 0
