"""The price lock (T8): a session priced for its whole duration with the tariff version valid at its start.

OCPI 2.2.1 mod_tariffs (note on ``start_date_time`` and ``end_date_time``): "When the Tariff of a Charge Point
(Location) is changed during an ongoing charging session, it is common to not switch the Tariff until the
ongoing session is finished. But this is NOT a requirement of OCPI ... Changing tariffs during an ongoing
session is in many countries not allowed by consumer legislation. When charging at a Charge Point, a driver
accepts the tariff which is valid when they start their charging session."

Without a lock the engine takes, per instant, the valid version with the latest start
(:func:`tariffs.core.engine.version_at`), so a session switches to a newer version (a new import, a grid
price change, an OCPI replacement through ``tariff_ids``) mid-session. The lock is a policy per CPO
(``tariff_policies`` row with ``tariff_id`` NULL) overridden per tariff id (a row with that id); no row: off
(:func:`price_lock_applies`). With the lock, :func:`lock_versions` narrows the stored versions to the one the
engine would choose at the session's start, valid for the whole CDR (even past its own end); nothing else in
the engine changes. Rating (:mod:`tariffs.cdr_builder`) and the quote endpoint both call
:func:`apply_price_lock`, so a quote and the CDR follow the same policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.models import TariffPolicy
from kernel.timeutil import ensure_utc
from tariffs.core.compiled_tariff import compile_tariff
from tariffs.tariff_versions import StoredTariff


async def price_lock_applies(db_session: AsyncSession, cpo_id: int, tariff_id: str) -> bool:
    """The policy for the CPO's sessions on ``tariff_id``: its own row, else the CPO's default row, else off."""
    rows = (
        await db_session.scalars(
            select(TariffPolicy).where(
                TariffPolicy.cpo_id == cpo_id,
                (TariffPolicy.tariff_id == tariff_id) | TariffPolicy.tariff_id.is_(None),
            )
        )
    ).all()
    own = [r for r in rows if r.tariff_id is not None]
    chosen = own or rows
    return bool(chosen and chosen[0].price_lock)


def version_at_start(versions: Sequence[StoredTariff], at: datetime) -> StoredTariff | None:
    """The stored version the engine would price ``at`` with: among the valid ones, the latest start
    (:func:`tariffs.core.engine.version_at`'s rule, on the same compiled validity)."""
    instant = ensure_utc(at)
    best: tuple[tuple[bool, datetime], StoredTariff] | None = None
    for stored in versions:
        compiled = compile_tariff(stored.tariff)
        if not compiled.valid_at(instant):
            continue
        key = (compiled.valid_from is not None, compiled.valid_from or datetime.min)
        if best is None or key >= best[0]:  # the later in the list wins a tie, as in the engine's stable sort
            best = (key, stored)
    return best[1] if best else None


def lock_versions(versions: Sequence[StoredTariff], at: datetime) -> list[StoredTariff]:
    """Only the version valid at ``at`` (the session's start), as the tariff of the whole CDR: its validity
    window dropped (no ``start_date_time``/``end_date_time``), so it also prices a reservation before the
    start and the time after its own end, and the CDR's ``tariffs`` re-price the CDR as it was priced.
    ``versions`` unchanged when none is valid at ``at`` (the engine then names the instant without a price,
    as without a lock)."""
    chosen = version_at_start(versions, at)
    if chosen is None:
        return list(versions)
    window = {"start_date_time": None, "end_date_time": None}
    return [replace(chosen, tariff=chosen.tariff.model_copy(update=window))]


async def apply_price_lock(
    db_session: AsyncSession, cpo_id: int, versions: Sequence[StoredTariff], start: datetime
) -> list[StoredTariff]:
    """``versions`` as a session starting at ``start`` is priced with: locked (:func:`lock_versions`) when
    the policy of the tariff valid at ``start`` says so, else unchanged."""
    chosen = version_at_start(versions, start)
    if chosen is None or not await price_lock_applies(db_session, cpo_id, chosen.tariff_id):
        return list(versions)
    return lock_versions(versions, start)
