"""Stored tariff versions (rows of ``tariffs``): the versions of a tariff as the engine needs them, and the latest.

Publication rule (validity of stored versions, computed here and nowhere else: :func:`effective_from`): a
stored version is valid from ``max(start_date_time, created_at)``. ``created_at`` is the transaction that
stored the version and queued its pushes, i.e. the first moment partners could have received it, so no
version ever prices a minute before it was published (a back-dated import, a late grid sample). The one
exception is the first version of a tariff id without ``start_date_time``: it is valid always (there was no
earlier price to publish). ``load_versions`` applies that rule to copies, never to stored data. A version
marked invalid (``invalid_reason``: it fails the tariff checks) never applies; an operator correction
(``supersedes_version`` V, ``evhub tariffs import --supersedes V``) is the one exception to the rule: it takes
over V's window (:func:`window_start`) and V no longer applies.

Selection rule (which stored versions price a connector: :func:`versions_for_connector`, used by rating, the
quote endpoint and the portal's live price): the versions of *all* the connector's ``tariff_ids``, so the
engine's per-instant choice (:func:`tariffs.core.engine.version_at`: the valid version with the latest start)
replaces an ended tariff by the next one (OCPI 2.2.1 mod_tariffs: "By assigning both, the old and the new
tariff ID, they will automatically be replaced"). Versions typed for other kinds of session
(``AD_HOC_PAYMENT``, ``PROFILE_*``) are left out while a ``REGULAR`` or untyped one is listed. None of the
ids stored: the CPO's ``DEFAULT`` tariff.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.models import TariffVersion
from kernel.timeutil import ensure_utc
from tariffs.core.tariff_document import Tariff, TariffType

DEFAULT_TARIFF_ID = "DEFAULT"
"""The CPO's tariff for connectors none of whose ``tariff_ids`` is stored."""


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


def parse_row(row: TariffVersion, *, start: datetime | None) -> StoredTariff:
    """The stored version parsed, applying from ``start`` (:func:`window_start`)."""
    tariff = Tariff.model_validate(row.data)
    if start != tariff.start_date_time:
        tariff = tariff.model_copy(update={"start_date_time": start})
    return StoredTariff(row_id=row.id, tariff_id=row.tariff_id, version=row.version, tariff=tariff)


def window_start(rows: Sequence[TariffVersion], row: TariffVersion) -> datetime | None:
    """Where ``row`` (one of a tariff id's ``rows``, oldest first) starts to apply: :func:`effective_from`,
    except an operator correction (``supersedes_version`` V) starts where V did (the documented exception)."""
    first = row is rows[0]
    if row.supersedes_version is None:
        return effective_from(row.start_date_time, row.created_at, first=first)
    older = next((r for r in rows if r.version == row.supersedes_version and r.version < row.version), None)
    if older is None:
        return effective_from(row.start_date_time, row.created_at, first=first)
    floor = window_start(rows, older)
    own = ensure_utc(row.start_date_time) if row.start_date_time is not None else None
    if floor is None or own is None:
        return own if floor is None else floor
    return max(floor, own)


def applicable_rows(rows: Sequence[TariffVersion]) -> list[TariffVersion]:
    """The rows that may apply: not marked invalid (``invalid_reason``) and not superseded by a correction."""
    superseded = {r.supersedes_version for r in rows if r.supersedes_version is not None}
    return [r for r in rows if r.invalid_reason is None and r.version not in superseded]


async def load_versions(db_session: AsyncSession, cpo_id: int, tariff_id: str) -> list[StoredTariff]:
    rows: Sequence[TariffVersion] = (
        await db_session.scalars(
            select(TariffVersion)
            .where(TariffVersion.cpo_id == cpo_id, TariffVersion.tariff_id == tariff_id)
            .order_by(TariffVersion.version)
        )
    ).all()
    return [parse_row(r, start=window_start(rows, r)) for r in applicable_rows(rows)]


async def published_start(db_session: AsyncSession, row: TariffVersion) -> datetime | None:
    """When the stored version ``row`` applies from (:func:`window_start`), for the OCPI Tariff object pushed
    to partners; None when it applies always (a tariff id's first version without a start)."""
    rows = (
        await db_session.scalars(
            select(TariffVersion)
            .where(TariffVersion.cpo_id == row.cpo_id, TariffVersion.tariff_id == row.tariff_id)
            .order_by(TariffVersion.version)
        )
    ).all()
    return window_start(rows, next((r for r in rows if r.id == row.id), row))


async def latest_version(db_session: AsyncSession, cpo_id: int, tariff_id: str) -> TariffVersion | None:
    return await db_session.scalar(
        select(TariffVersion)
        .where(TariffVersion.cpo_id == cpo_id, TariffVersion.tariff_id == tariff_id)
        .order_by(TariffVersion.version.desc())
        .limit(1)
    )


async def versions_for_connector(
    db_session: AsyncSession, cpo_id: int, tariff_ids: Sequence[str]
) -> list[StoredTariff]:
    """The stored versions that price a connector with ``tariff_ids`` (the selection rule in the module
    docstring), each id's oldest first, in the connector's order; [] when neither they nor DEFAULT are stored."""
    found: list[StoredTariff] = []
    for tariff_id in dict.fromkeys(str(t) for t in tariff_ids):
        found.extend(await load_versions(db_session, cpo_id, tariff_id))
    if not found:
        return await load_versions(db_session, cpo_id, DEFAULT_TARIFF_ID)
    regular = [v for v in found if v.tariff.type is None or v.tariff.type == TariffType.REGULAR]
    return regular or found
