"""The fleet's charging sessions: filtering, pagination, CSV export and each session's price breakdown.

Every query here is scoped to one fleet: a session belongs to the fleet its current CDR is billed to (the fleet
its token was in when the CDR was made, ``cdrs.fleet_id``: :mod:`kernel.domain.cdr_holder`), and while it has
no CDR (open, not priced yet; or a CDR from before the fleet was recorded) to its token's fleet. So a token moved
to another fleet leaves its sessions with the fleet they were billed to: the new fleet does not see them. The
driver and vehicle shown and filtered on are the CDR's in the same way. Costs come from the session's CDRs and are summed exactly in Python (a credit CDR
is negated, so original + credit + re-billed = the re-billed price); energy from the latest CDR, or from the
session while it is not priced yet.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, and_, exists, func, select, union
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from kernel.domain.cdr_holder import billed_driver, billed_vehicle, fleet_where, holder_of, token_holder
from kernel.energy import format_kwh
from kernel.models import EVSE, Cdr, ChargingSession, Location, SessionStatus, Token
from kernel.money import round_amount
from kernel.timeutil import to_local, zone
from kernel.validation import ascii_int

PAGE_SIZE = 25
KWH = Decimal(1000)


@dataclass(frozen=True)
class SessionFilter:
    date_from: date | None = None
    date_to: date | None = None  # inclusive
    driver: str | None = None
    vehicle: str | None = None
    location_id: int | None = None
    status: str | None = None

    @classmethod
    def from_query(cls, q: dict[str, str]) -> SessionFilter:
        def _date(name: str) -> date | None:
            raw = (q.get(name) or "").strip()
            try:
                return date.fromisoformat(raw) if raw else None
            except ValueError:
                return None

        loc = (q.get("location") or "").strip()
        status = (q.get("status") or "").strip().upper()
        return cls(
            date_from=_date("from"),
            date_to=_date("to"),
            driver=(q.get("driver") or "").strip() or None,
            vehicle=(q.get("vehicle") or "").strip() or None,
            location_id=ascii_int(loc),
            status=status if status in SessionStatus.__members__ else None,
        )

    def as_query(self) -> dict[str, str]:
        """The filter as query parameters (for links: next page, CSV export)."""
        out = {
            "from": self.date_from.isoformat() if self.date_from else "",
            "to": self.date_to.isoformat() if self.date_to else "",
            "driver": self.driver or "",
            "vehicle": self.vehicle or "",
            "location": str(self.location_id) if self.location_id else "",
            "status": self.status or "",
        }
        return {k: v for k, v in out.items() if v}


def local_midnight_utc(day: date, time_zone: str) -> datetime:
    """The UTC instant at which ``day`` starts in ``time_zone``."""
    return datetime.combine(day, time(0), tzinfo=zone(time_zone)).astimezone(zone("UTC"))


@dataclass
class SessionRow:
    id: int
    session_uid: str
    status: str
    start: datetime  # local to the location
    end: datetime | None
    duration: timedelta | None
    location_id: int | None
    location: str
    evse: str
    driver: str
    vehicle: str
    token_uid: str
    energy_kwh: Decimal
    currency: str
    cost_excl_vat: Decimal | None
    cost_incl_vat: Decimal | None
    cdr_ids: list[int] = field(default_factory=list)

    @property
    def cost(self) -> Decimal | None:
        return self.cost_incl_vat if self.cost_incl_vat is not None else self.cost_excl_vat


def _base_query(
    fleet_id: int, flt: SessionFilter, time_zone: str
) -> Select[ChargingSession, Token, Location, EVSE]:
    """The fleet's sessions matching ``flt``, each with its token, location and EVSE (the last two may be None):
    those whose current CDR (:func:`latest_cdr`, outer-joined) is billed to the fleet, or, without one that
    recorded it, whose token is the fleet's (:func:`kernel.domain.cdr_holder.fleet_where`)."""
    current = aliased(Cdr, name="current_cdr")
    later = aliased(Cdr, name="later_cdr")
    newest = ~exists().where(
        later.session_id == current.session_id, later.is_credit.is_(False), later.revision > current.revision
    )
    q = (
        select(ChargingSession, Token, Location, EVSE)
        .join(Token, Token.id == ChargingSession.token_id)
        .outerjoin(
            current,
            and_(current.session_id == ChargingSession.id, current.is_credit.is_(False), newest),
        )
        .outerjoin(Location, Location.id == ChargingSession.location_id)
        .outerjoin(EVSE, EVSE.id == ChargingSession.evse_pk)
        .where(fleet_where(lambda fleet: fleet == fleet_id, current, Token))
    )
    if flt.date_from:
        q = q.where(ChargingSession.start_time >= local_midnight_utc(flt.date_from, time_zone))
    if flt.date_to:
        end = local_midnight_utc(flt.date_to + timedelta(days=1), time_zone)
        q = q.where(ChargingSession.start_time < end)
    if flt.driver:
        q = q.where(billed_driver(current, Token) == flt.driver)
    if flt.vehicle:
        q = q.where(billed_vehicle(current, Token) == flt.vehicle)
    if flt.location_id:
        q = q.where(ChargingSession.location_id == flt.location_id)
    if flt.status:
        q = q.where(ChargingSession.status == SessionStatus[flt.status])
    return q


async def count_sessions(db_session: AsyncSession, fleet_id: int, flt: SessionFilter, time_zone: str) -> int:
    sub = _base_query(fleet_id, flt, time_zone).with_only_columns(ChargingSession.id).subquery()
    return int((await db_session.execute(select(func.count()).select_from(sub))).scalar_one())


async def fetch_sessions(
    db_session: AsyncSession,
    fleet_id: int,
    flt: SessionFilter,
    time_zone: str,
    *,
    limit: int | None = None,
    offset: int = 0,
) -> list[SessionRow]:
    """The fleet's sessions matching ``flt``, newest first, with their costs."""
    q = _base_query(fleet_id, flt, time_zone).order_by(
        ChargingSession.start_time.desc(), ChargingSession.id.desc()
    )
    if limit is not None:
        q = q.limit(limit).offset(offset)
    rows = (await db_session.execute(q)).all()
    cdrs = await _cdrs_by_session(db_session, [r[0].id for r in rows])
    return [_row(sess, tok, loc, evse, cdrs.get(sess.id, []), time_zone) for sess, tok, loc, evse in rows]


async def _cdrs_by_session(db_session: AsyncSession, session_ids: Sequence[int]) -> dict[int, list[Cdr]]:
    out: dict[int, list[Cdr]] = {}
    for start in range(0, len(session_ids), 500):
        chunk = session_ids[start : start + 500]
        result = await db_session.execute(select(Cdr).where(Cdr.session_id.in_(chunk)).order_by(Cdr.id))
        for cdr in result.scalars():
            out.setdefault(cdr.session_id, []).append(cdr)
    return out


def latest_cdr(cdrs: Iterable[Cdr]) -> Cdr | None:
    """The CDR in force: the highest revision that is not a credit (None when there is none)."""
    live = [c for c in cdrs if not c.is_credit]
    return max(live, key=lambda c: (c.revision, c.id)) if live else None


def _their_place(sess: ChargingSession, field: str) -> str:
    """A field of the CdrLocation of a session at an external CPO (no location row of the hub's: its CDR was
    posted to the hub as the card's eMSP), else ""."""
    where = (sess.data or {}).get("cdr_location") if sess.charge_point_id is None else None
    return str(where.get(field) or "") if isinstance(where, dict) else ""


def _row(
    sess: ChargingSession, tok: Token, loc: Location | None, evse: EVSE | None, cdrs: list[Cdr], tz: str
) -> SessionRow:
    local_tz = loc.time_zone if loc is not None else tz
    current = latest_cdr(cdrs)
    excl: Decimal | None = None
    incl: Decimal | None = None
    currency = sess.currency or ""
    if cdrs:
        currency = cdrs[0].currency
        excl = sum((c.total_cost_excl_vat for c in cdrs), Decimal(0))
        if all(c.total_cost_incl_vat is not None for c in cdrs):
            incl = sum((c.total_cost_incl_vat or Decimal(0) for c in cdrs), Decimal(0))
    energy = current.total_energy_kwh if current is not None else (sess.energy_wh or Decimal(0)) / KWH
    holder = holder_of(current, tok) if current is not None else token_holder(tok)
    return SessionRow(
        id=sess.id,
        session_uid=sess.session_uid,
        status=str(sess.status),
        start=to_local(sess.start_time, local_tz),
        end=to_local(sess.end_time, local_tz) if sess.end_time else None,
        duration=(sess.end_time - sess.start_time) if sess.end_time else None,
        location_id=loc.id if loc is not None else None,
        location=(loc.name or loc.address) if loc is not None else _their_place(sess, "name"),
        evse=(evse.evse_id or evse.uid) if evse is not None else _their_place(sess, "evse_id"),
        driver=holder.driver_name or "",
        vehicle=holder.vehicle or "",
        token_uid=tok.uid,
        energy_kwh=energy,
        currency=currency,
        cost_excl_vat=excl,
        cost_incl_vat=incl,
        cdr_ids=[c.id for c in cdrs],
    )


def fmt_duration(d: timedelta | None) -> str:
    if d is None:
        return ""
    minutes = int(d.total_seconds() // 60)
    return f"{minutes // 60}:{minutes % 60:02d}"


def fmt_kwh(value: Decimal) -> str:
    return format_kwh(value)


def fmt_money(value: Decimal | None, currency: str) -> str:
    if value is None or not currency:
        return ""
    return f"{round_amount(value, currency)}"


CSV_HEADER = [
    "session_id",
    "status",
    "start_local",
    "end_local",
    "duration_h_mm",
    "location",
    "evse",
    "driver",
    "vehicle",
    "token",
    "energy_kwh",
    "currency",
    "cost_excl_vat",
    "cost_incl_vat",
]


def csv_values(r: SessionRow) -> list[str]:
    return [
        r.session_uid,
        r.status,
        r.start.isoformat(timespec="seconds"),
        r.end.isoformat(timespec="seconds") if r.end else "",
        fmt_duration(r.duration),
        r.location,
        r.evse,
        r.driver,
        r.vehicle,
        r.token_uid,
        fmt_kwh(r.energy_kwh),
        r.currency,
        fmt_money(r.cost_excl_vat, r.currency),
        fmt_money(r.cost_incl_vat, r.currency),
    ]


def _safe_cell(value: str) -> str:
    """Neutralise spreadsheet formulas (CSV injection) in free-text cells."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def to_csv(rows: Iterable[SessionRow]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_HEADER)
    for r in rows:
        writer.writerow([_safe_cell(v) if i in (5, 6, 7, 8, 9) else v for i, v in enumerate(csv_values(r))])
    return buf.getvalue()


async def session_detail(
    db_session: AsyncSession, fleet_id: int, session_id: int, time_zone: str
) -> tuple[SessionRow, list[Cdr], ChargingSession] | None:
    """One session of the fleet with its CDRs (None when it is not the fleet's)."""
    q = _base_query(fleet_id, SessionFilter(), time_zone).where(ChargingSession.id == session_id)
    row = (await db_session.execute(q)).first()
    if row is None:
        return None
    sess, tok, loc, evse = row
    cdrs = (await _cdrs_by_session(db_session, [sess.id])).get(sess.id, [])
    return _row(sess, tok, loc, evse, cdrs, time_zone), cdrs, sess


async def fleet_filter_choices(db_session: AsyncSession, fleet_id: int) -> dict[str, list[Any]]:
    """Drivers, vehicles and locations for the filter form: the drivers and vehicles of the fleet's tokens and
    those its CDRs were billed to (a token moved away leaves its old driver here, not in the new fleet's), the
    locations of the fleet's sessions (:func:`_base_query`'s)."""

    def names(token_column: Any, cdr_column: Any) -> Any:
        both = union(
            select(token_column.label("name")).where(Token.fleet_id == fleet_id, token_column.is_not(None)),
            select(cdr_column.label("name")).where(
                Cdr.holder_recorded.is_(True), Cdr.fleet_id == fleet_id, cdr_column.is_not(None)
            ),
        ).subquery()
        return select(both.c.name).order_by(both.c.name)

    drivers = (await db_session.execute(names(Token.driver_name, Cdr.driver_name))).scalars()
    vehicles = (await db_session.execute(names(Token.vehicle, Cdr.vehicle))).scalars()
    locations = (
        await db_session.execute(
            _base_query(fleet_id, SessionFilter(), "UTC")
            .with_only_columns(Location.id, Location.name, Location.address)
            .where(Location.id.is_not(None))
            .distinct()
            .order_by(Location.id)
        )
    ).all()
    return {
        "drivers": list(drivers),
        "vehicles": list(vehicles),
        "locations": [(lid, name or addr) for lid, name, addr in locations],
        "statuses": [st.value for st in SessionStatus],
    }


def explanation_lines(explanation: dict[str, Any] | None) -> tuple[list[str], list[dict[str, Any]]]:
    """Find the tariff engine's line items in a CDR explanation, whatever its exact shape: the first list of
    objects (under ``lines``, ``components``, ``items``...) becomes a table (columns, rows)."""
    if not explanation:
        return [], []
    candidates: list[list[dict[str, Any]]] = []

    def walk(node: Any, depth: int) -> None:
        if depth > 3:
            return
        if isinstance(node, list) and node and all(isinstance(x, dict) for x in node):
            candidates.append(node)
        if isinstance(node, dict):
            for key in ("lines", "components", "items", "breakdown", "elements", "periods"):
                if key in node:
                    walk(node[key], depth + 1)
            for value in node.values():
                walk(value, depth + 1)

    walk(explanation, 0)
    if not candidates:
        return [], []
    rows = candidates[0]
    columns: list[str] = []
    for row in rows:
        for key, value in row.items():
            if key not in columns and not isinstance(value, (dict, list)):
                columns.append(key)
    return columns, rows
