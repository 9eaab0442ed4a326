"""Tariffs, Sender interface: the current version of each tariff of the addressed CPO."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from sqlalchemy import Select, func, select

from kernel.models import TariffVersion
from ocpi.deps import Caller, caller
from ocpi.envelope import NotFound, ok
from ocpi.pagination import paginate
from ocpi.render_objects import tariff_object
from tariffs import published_start

router = APIRouter()


def current_tariffs(cpo_ids: list[int]) -> Select[TariffVersion]:
    """The current version of each tariff of ``cpo_ids`` (shared with the 2.1.1 routes)."""
    latest = (
        select(
            TariffVersion.cpo_id, TariffVersion.tariff_id, func.max(TariffVersion.version).label("version")
        )
        .where(TariffVersion.cpo_id.in_(cpo_ids))
        .group_by(TariffVersion.cpo_id, TariffVersion.tariff_id)
        .subquery()
    )
    return (
        select(TariffVersion)
        .join(
            latest,
            (latest.c.cpo_id == TariffVersion.cpo_id)
            & (latest.c.tariff_id == TariffVersion.tariff_id)
            & (latest.c.version == TariffVersion.version),
        )
        .where(TariffVersion.cpo_id.in_(cpo_ids))
    )


def _visible(c: Caller):
    return current_tariffs([c.cpo.id])


@router.get("")
@router.get("/")
async def list_tariffs(request: Request, c: Caller = Depends(caller)):
    rows, headers = await paginate(
        c.db_session, request, _visible(c), TariffVersion.last_updated, TariffVersion.id, c.platform.max_limit
    )
    return ok(
        [tariff_object(tv, c.cpo, await published_start(c.db_session, tv)) for tv in rows], headers=headers
    )


@router.get("/{tariff_id}")
async def get_tariff(tariff_id: str, c: Caller = Depends(caller)):
    tv = await c.db_session.scalar(_visible(c).where(TariffVersion.tariff_id == tariff_id))
    if tv is None:
        raise NotFound(f"Unknown tariff {tariff_id}")
    return ok(tariff_object(tv, c.cpo, await published_start(c.db_session, tv)))
