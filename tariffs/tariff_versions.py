"""Stored tariff versions (rows of ``tariffs``): the versions of a tariff as the engine needs them, and the latest.

Validity of stored versions: a version with a ``start_date_time`` is valid from then; the first version without
one is valid always; a later version without one (an operator re-import) is valid from when it was stored, so
a re-import never re-prices the past. ``load_versions`` applies that rule to copies, never to stored data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.models import TariffVersion
from tariffs.core.tariff_document import Tariff


@dataclass(frozen=True)
class StoredTariff:
    """One stored version, parsed, with the validity the engine should use."""

    row_id: int
    tariff_id: str
    version: int
    tariff: Tariff


def parse_row(row: TariffVersion, *, first: bool) -> StoredTariff:
    tariff = Tariff.model_validate(row.data)
    if tariff.start_date_time is None and not first:
        tariff = tariff.model_copy(update={"start_date_time": row.created_at})
    return StoredTariff(row_id=row.id, tariff_id=row.tariff_id, version=row.version, tariff=tariff)


async def load_versions(db_session: AsyncSession, cpo_id: int, tariff_id: str) -> list[StoredTariff]:
    rows: Sequence[TariffVersion] = (
        await db_session.scalars(
            select(TariffVersion)
            .where(TariffVersion.cpo_id == cpo_id, TariffVersion.tariff_id == tariff_id)
            .order_by(TariffVersion.version)
        )
    ).all()
    return [parse_row(r, first=i == 0) for i, r in enumerate(rows)]


async def latest_version(db_session: AsyncSession, cpo_id: int, tariff_id: str) -> TariffVersion | None:
    return await db_session.scalar(
        select(TariffVersion)
        .where(TariffVersion.cpo_id == cpo_id, TariffVersion.tariff_id == tariff_id)
        .order_by(TariffVersion.version.desc())
        .limit(1)
    )
