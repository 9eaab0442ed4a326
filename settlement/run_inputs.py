"""What a settlement run reads from the database: every CDR as the split's input table, the closed periods,
the rejections of their closing runs (carried forward), and the parties by label.

Parties are named in settlement by their OCPI key ``COUNTRY*PARTY`` (e.g. ``NL*AMP``); agreements use the same
labels. A CDR's ``country`` (the VAT jurisdiction of hub fees) is its location's ISO 3166 alpha-3 country, as
in OCPI; energy is taken exactly as stored (6 decimals of kWh). A CDR an external CPO posted to the hub as the
token's eMSP (``cdrs.received``) is ``emsp_side``: split as the eMSP's debt to that CPO only, without hub fee or
site host share (:mod:`settlement.core.split`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from kernel.db.engine import Database
from kernel.models import Cdr, Location, Party, SettlementRejection, SettlementRun

UNKNOWN_EMSP = "UNKNOWN"


def party_label(party: Party | None) -> str:
    """``COUNTRY*PARTY``, or :data:`UNKNOWN_EMSP` for a CDR without an eMSP."""
    return f"{party.country_code}*{party.party_id}" if party is not None else UNKNOWN_EMSP


async def load_closes(db_session: AsyncSession) -> dict[str, datetime]:
    """Closed periods and when each closed (the first closing run of the period)."""
    rows = (
        await db_session.execute(
            select(SettlementRun.period, SettlementRun.closed_at)
            .where(SettlementRun.closed_at.is_not(None))
            .order_by(SettlementRun.closed_at)
        )
    ).all()
    closes: dict[str, datetime] = {}
    for period, closed_at in rows:
        if closed_at is not None:  # always, by the query; says so to the type checker
            closes.setdefault(period, closed_at)
    return closes


async def load_carried(db_session: AsyncSession) -> pd.DataFrame:
    """The CDRs each closed period's closing run (its first run with ``closed_at``) rejected: ``cdr_id``
    (the CDR's uid), ``period``, ``reason``. :func:`settlement.core.run.settle` tries them again."""
    closing: dict[str, int] = {}
    for run_id, period in (
        await db_session.execute(
            select(SettlementRun.id, SettlementRun.period)
            .where(SettlementRun.closed_at.is_not(None))
            .order_by(SettlementRun.closed_at, SettlementRun.id)
        )
    ).all():
        closing.setdefault(period, run_id)
    rows = (
        (
            await db_session.execute(
                select(Cdr.cdr_uid, SettlementRun.period, SettlementRejection.reason)
                .join(Cdr, Cdr.id == SettlementRejection.cdr_id)
                .join(SettlementRun, SettlementRun.id == SettlementRejection.run_id)
                .where(SettlementRejection.run_id.in_(list(closing.values())))
                .order_by(SettlementRun.period, Cdr.cdr_uid)
            )
        ).all()
        if closing
        else []
    )
    return pd.DataFrame.from_records([tuple(r) for r in rows], columns=["cdr_id", "period", "reason"]).astype(
        object
    )


WATERMARK = "cdr_watermark"
"""Key in ``settlement_runs.params``: the highest CDR row id the run read."""


async def load_watermarks(db_session: AsyncSession) -> dict[str, tuple[datetime, int]]:
    """Each closed period's closing instant and the highest CDR row id its closing run read (closing runs
    stored before the watermark was kept are left out)."""
    out: dict[str, tuple[datetime, int]] = {}
    for period, closed_at, params in (
        await db_session.execute(
            select(SettlementRun.period, SettlementRun.closed_at, SettlementRun.params)
            .where(SettlementRun.closed_at.is_not(None))
            .order_by(SettlementRun.closed_at, SettlementRun.id)
        )
    ).all():
        if period not in out and closed_at is not None and isinstance((params or {}).get(WATERMARK), int):
            out[period] = (closed_at, params[WATERMARK])
    return out


def seen_from(table: pd.DataFrame, watermarks: dict[str, tuple[datetime, int]]) -> pd.DataFrame:
    """``table`` with each CDR's ``created_at`` raised to the closing instant of every closing run that did
    not read it (its row id above that run's watermark): such a CDR was stored after that run read the CDRs
    although stamped before it closed (rating stamps a batch's CDRs with the batch's start), so it is late
    for that period, as the closing run treated it, instead of belonging to it unsettled for ever."""
    if not watermarks or table.empty:
        return table
    created = pd.to_datetime(table["created_at"], utc=True)
    row_id = table["row_id"].to_numpy()
    for closed_at, watermark in watermarks.values():
        at = pd.Timestamp(closed_at)
        created = created.where(~((row_id > watermark) & (created < at)), at)
    return table.assign(created_at=created)


def _component(data: dict[str, Any], name: str, side: str) -> Decimal:
    value = (data.get(name) or {}).get(side)
    return Decimal(str(value)) if value is not None else Decimal(0)


CDR_COLUMNS = (
    "row_id",
    "cdr_id",
    "cpo",
    "emsp",
    "location_id",
    "country",
    "currency",
    "end_date_time",
    "created_at",
    "total_energy",
    "total_cost_excl_vat",
    "total_cost_incl_vat",
    "is_credit",
    "credit_of",
    "emsp_side",
    *[f"total_{c}_cost_{s}_vat" for c in ("energy", "time", "parking", "fixed") for s in ("excl", "incl")],
)
"""The columns of :func:`cdr_table` and of :func:`cdr_chunks`' tables."""


def _query(until: datetime | None, created_before: datetime | None) -> Any:
    cpo, emsp = aliased(Party), aliased(Party)
    query = (
        select(Cdr, cpo, emsp, Location)
        .join(cpo, Cdr.cpo_id == cpo.id)
        .outerjoin(emsp, Cdr.emsp_id == emsp.id)
        .outerjoin(Location, Cdr.location_id == Location.id)
        .order_by(Cdr.id)
    )
    if until is not None:
        query = query.where(Cdr.end_date_time < until)
    if created_before is not None:
        query = query.where(Cdr.created_at < created_before)
    return query


def _record(
    cdr: Cdr, cpo_row: Party, emsp_row: Party | None, loc: Location | None, uid_of: dict[int, str]
) -> dict[str, Any]:
    data = cdr.data or {}
    record: dict[str, Any] = {
        "row_id": cdr.id,
        "cdr_id": cdr.cdr_uid,
        "cpo": party_label(cpo_row),
        "emsp": party_label(emsp_row),
        "location_id": loc.ocpi_id if loc else "",
        "country": loc.country if loc else "",
        "currency": cdr.currency,
        "end_date_time": cdr.end_date_time,
        "created_at": cdr.created_at,
        "total_energy": cdr.total_energy_kwh,
        "total_cost_excl_vat": cdr.total_cost_excl_vat,
        "total_cost_incl_vat": cdr.total_cost_incl_vat
        if cdr.total_cost_incl_vat is not None
        else cdr.total_cost_excl_vat,
        "is_credit": cdr.is_credit,
        "credit_of": uid_of.get(cdr.credit_of) if cdr.credit_of else None,
        "emsp_side": cdr.received,  # an external CPO's CDR: the hub settles it as the token's eMSP only
    }
    for component, field in (
        ("energy", "total_energy_cost"),
        ("time", "total_time_cost"),
        ("parking", "total_parking_cost"),
        ("fixed", "total_fixed_cost"),
    ):
        record[f"total_{component}_cost_excl_vat"] = _component(data, field, "excl_vat")
        record[f"total_{component}_cost_incl_vat"] = _component(data, field, "incl_vat")
    return record


async def cdr_table(
    db_session: AsyncSession, *, until: datetime | None = None, created_before: datetime | None = None
) -> pd.DataFrame:
    """Every CDR (optionally ended before ``until``, created before ``created_before``) as the Decimal table
    :func:`settlement.core.cdrs.prepare_cdrs` reads, plus ``row_id`` (the CDR's row, for storing its
    rejection). Amounts come from the stored OCPI CDR, exactly."""
    rows = (await db_session.execute(_query(until, created_before))).all()
    uid_of = {c.id: c.cdr_uid for c, *_ in rows}
    records = [_record(c, cpo, emsp, loc, uid_of) for c, cpo, emsp, loc in rows]
    return pd.DataFrame.from_records(records, columns=list(CDR_COLUMNS))


@dataclass(frozen=True)
class CdrChunk:
    """One chunk of :func:`cdr_chunks`: ``table`` holds the chunk's ``own`` CDRs (in row order) followed by
    context rows — the originals of its credit CDRs that are in other chunks (same filters) — so that a credit
    finds its original's settlement period (:func:`settlement.core.run.settle_chunk`'s ``own_rows``)."""

    table: pd.DataFrame
    own: int


async def cdr_chunks(
    db: Database,
    *,
    until: datetime | None = None,
    created_before: datetime | None = None,
    chunk_rows: int = 50_000,
) -> AsyncIterator[CdrChunk]:
    """:func:`cdr_table` in chunks of at most ``chunk_rows`` CDRs by row id (keyset pages, a short session each,
    up to the highest row id when it starts), so only one chunk's rows are in memory. Empty: no chunk."""
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    async with db.session() as db_session:
        top = await db_session.scalar(select(func.max(Cdr.id)))
    if top is None:
        return
    after = 0
    while after < top:
        async with db.session() as db_session:
            query = _query(until, created_before).where(Cdr.id > after, Cdr.id <= top).limit(chunk_rows)
            rows = (await db_session.execute(query)).all()
            if not rows:
                return
            uid_of = {c.id: c.cdr_uid for c, *_ in rows}
            wanted = {c.credit_of for c, *_ in rows if c.credit_of and c.credit_of not in uid_of}
            context = (
                (
                    await db_session.execute(_query(until, created_before).where(Cdr.id.in_(sorted(wanted))))
                ).all()
                if wanted
                else []
            )
            uid_of.update({c.id: c.cdr_uid for c, *_ in context})
            records = [_record(c, cpo, emsp, loc, uid_of) for c, cpo, emsp, loc in [*rows, *context]]
            after = rows[-1][0].id
        yield CdrChunk(pd.DataFrame.from_records(records, columns=list(CDR_COLUMNS)), len(rows))
        if len(rows) < chunk_rows:
            return


async def parties_by_label(db_session: AsyncSession) -> dict[str, int]:
    """Each party label's id (the first party with that label: a statement names one)."""
    out: dict[str, int] = {}
    for p in (await db_session.scalars(select(Party).order_by(Party.id))).all():
        out.setdefault(party_label(p), p.id)
    return out
