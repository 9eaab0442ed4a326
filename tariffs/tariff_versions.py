"""Stored tariff versions (rows of ``tariffs``): the versions of a tariff as the engine needs them, and the latest.

Publication rule (validity of stored versions, computed here and nowhere else: :func:`effective_from`): a
stored version is valid from ``max(start_date_time, created_at)``. ``created_at`` is the transaction that
stored the version and queued its pushes, i.e. the first moment partners could have received it, so no
version ever prices a minute before it was published (a back-dated import, a late grid sample). The one
exception is the first version of a tariff id without ``start_date_time``: it is valid always (there was no
earlier price to publish). ``load_versions`` applies that rule to copies, never to stored data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.models import TariffVersion
from kernel.timeutil import ensure_utc
from tariffs.core.tariff_document import Tariff


@dataclass(frozen=True)
class StoredTariff:
    """One stored version, parsed, with the validity the engine should use."""

    row_id: int
    tariff_id: str
    version: int
    tariff: Tariff


def effective_from(start_date_time: datetime | None, created_at: datetime, *, first: bool) -> datetime | None:
    """When a stored version starts to apply: ``max(start_date_time, created_at)``; None (always) only for
    the first version of a tariff id without a start."""
    if start_date_time is None:
        return None if first else ensure_utc(created_at)
    return max(ensure_utc(start_date_time), ensure_utc(created_at))


def parse_row(row: TariffVersion, *, first: bool) -> StoredTariff:
    tariff = Tariff.model_validate(row.data)
    start = effective_from(tariff.start_date_time, row.created_at, first=first)
    if start != tariff.start_date_time:
        tariff = tariff.model_copy(update={"start_date_time": start})
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
