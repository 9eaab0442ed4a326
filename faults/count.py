"""Counting: what the chargers had acknowledged against what the database holds, and what each destination
received against what it should have (pure functions over plain rows, plus one loader).

Definitions (docs/faults.md): *lost* = acknowledged to a charger (or due to a destination) and missing;
*duplicated* = stored or received more than once. OCPI CDRs are keyed by their id: a push the partner accepted
twice is counted as *re-sent* (OCPI deliveries carry stable ids and partners dedupe them, issue 15 item 4) and
as duplicated only when ``strict``; e-mail has no such key, so a second copy is always duplicated.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from faults.chargers import Ledger
from kernel.db.engine import Database
from kernel.models import ChargePoint, ChargingSession, MeterValue, OutboxMessage
from kernel.models.cdrs import Cdr
from kernel.models.tokens import Token


@dataclass
class Stored:
    """What the database holds, as plain values."""

    sessions: list[tuple[str, datetime, str, bool]]  # (charger identity, start, transaction id, ended)
    readings: set[tuple[str, str, datetime]]  # (identity, transaction id, stamp) of periodic readings
    reading_rows: int
    cdrs: list[
        tuple[str, datetime, str, str, float]
    ]  # (identity, session start, cdr uid, token uid, created)
    outbox: Counter[str] = field(default_factory=Counter)  # "channel/status" -> rows
    parked: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # ordering key + payload of each row still queued


@dataclass
class Line:
    """One row of the printout."""

    what: str
    expected: int
    got: int
    lost: int
    duplicated: int
    resent: int = 0
    p50: float | None = None
    p95: float | None = None
    note: str = ""


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


async def load(db: Database) -> Stored:
    async with db.session() as s:
        rows = (
            await s.execute(
                select(
                    ChargePoint.identity,
                    ChargingSession.start_time,
                    ChargingSession.transaction_id,
                    ChargingSession.end_time,
                    ChargingSession.id,
                ).join(ChargePoint, ChargePoint.id == ChargingSession.charge_point_id)
            )
        ).all()
        by_id = {r[4]: (r[0], r[2]) for r in rows}
        sessions = [(r[0], _aware(r[1]), r[2], r[3] is not None) for r in rows]
        readings: set[tuple[str, str, datetime]] = set()
        count = 0
        for sid, at in (
            await s.execute(
                select(MeterValue.session_id, MeterValue.timestamp).where(
                    MeterValue.context == "Sample.Periodic"
                )
            )
        ).all():
            count += 1
            ident, tx = by_id[sid]
            readings.add((ident, tx, _aware(at)))
        cdr_rows = (
            await s.execute(
                select(
                    ChargePoint.identity, ChargingSession.start_time, Cdr.cdr_uid, Token.uid, Cdr.created_at
                )
                .join(ChargingSession, ChargingSession.id == Cdr.session_id)
                .join(ChargePoint, ChargePoint.id == ChargingSession.charge_point_id)
                .outerjoin(Token, Token.id == Cdr.token_id)
                .where(Cdr.is_credit.is_(False))
            )
        ).all()
        cdrs = [(r[0], _aware(r[1]), r[2], r[3] or "", _aware(r[4]).timestamp()) for r in cdr_rows]
        outbox: Counter[str] = Counter()
        parked, pending = [], []
        for channel, status, reason, key, payload in (
            await s.execute(
                select(
                    OutboxMessage.channel,
                    OutboxMessage.status,
                    OutboxMessage.parked_reason,
                    OutboxMessage.ordering_key,
                    OutboxMessage.payload,
                )
            )
        ).all():
            outbox[f"{channel}/{status}"] += 1
            if reason:
                parked.append(f"{channel}: {reason}")
            if status == "pending":
                pending.append(f"{key} {json.dumps(payload, default=str)}")
    return Stored(sessions, readings, count, cdrs, outbox, parked, pending)


async def cdrs_created_since(db: Database, since: float, token_prefix: str) -> dict[str, float]:
    """CDR uid -> created (epoch seconds) of the CDRs created since ``since`` for tokens starting with
    ``token_prefix`` (a light query, for the run's baseline while the load runs)."""
    async with db.session() as s:
        rows = (
            await s.execute(
                select(Cdr.cdr_uid, Cdr.created_at)
                .join(Token, Token.id == Cdr.token_id)
                .where(
                    Cdr.is_credit.is_(False),
                    Cdr.created_at >= datetime.fromtimestamp(since, UTC),
                    Token.uid.startswith(token_prefix),
                )
            )
        ).all()
    return {uid: _aware(created).timestamp() for uid, created in rows}


def queued(ids: Iterable[str], pending: list[str]) -> set[str]:
    """The ids that still wait in the outbox (named by a pending row's ordering key or payload)."""
    text = "\n".join(pending)
    return {i for i in ids if i in text}


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def charger_lines(ledgers: dict[str, Ledger], stored: Stored) -> list[Line]:
    """Sessions, meter values and CDRs against the chargers' ledgers."""
    per_start = Counter((ident, start) for ident, start, _tx, _ended in stored.sessions)
    acked = {(ident, start) for ident, led in ledgers.items() for start in led.starts_acked}
    sent = {(ident, start) for ident, led in ledgers.items() for start in led.starts_sent}
    sessions = Line(
        "sessions (StartTransaction acked)",
        len(acked),
        len(per_start),
        sum(1 for k in acked if k not in per_start),
        sum(n - 1 for n in per_start.values() if n > 1) + sum(1 for k in per_start if k not in sent),
    )
    r_acked = {(ident, tx, at) for ident, led in ledgers.items() for tx, at in led.readings_acked}
    r_sent = {(ident, tx, at) for ident, led in ledgers.items() for tx, at in led.readings_sent}
    readings = Line(
        "meter values (periodic, acked)",
        len(r_acked),
        stored.reading_rows,
        len(r_acked - stored.readings),
        (stored.reading_rows - len(stored.readings)) + len(stored.readings - r_sent),
    )
    finished = {
        (ident, start)
        for ident, led in ledgers.items()
        for start, tx in led.starts_acked.items()
        if tx in led.stops_acked
    }
    per_session = Counter((ident, start) for ident, start, *_ in stored.cdrs)
    cdrs = Line(
        "CDRs (one per finished session)",
        len(finished),
        sum(per_session.values()),
        sum(1 for k in finished if per_session[k] == 0),
        sum(n - 1 for n in per_session.values() if n > 1),
    )
    return [sessions, readings, cdrs]


def destination_line(
    what: str,
    due: dict[str, float],
    received: dict[str, list[float]],
    *,
    strict: bool,
    waiting: set[str] | None = None,
    note: str = "",
) -> Line:
    """``due``: object id -> when it was created (the CDR's created_at); ``received``: id -> arrival times;
    ``waiting``: ids not received that still wait in the hub's outbox (late, not lost: shown in the note)."""
    late = {k for k in due if k not in received and k in (waiting or set())}
    if late:
        note = f"{len(late)} still queued in the outbox (backoff) when the drain ended; {note}".rstrip("; ")
    resent = sum(len(v) - 1 for k, v in received.items() if k in due and len(v) > 1)
    latencies = [min(received[k]) - t for k, t in due.items() if k in received]
    return Line(
        what,
        len(due),
        sum(1 for k in due if k in received),
        sum(1 for k in due if k not in received and k not in late),
        (resent if strict else 0) + sum(1 for k in received if k not in due),
        resent,
        _pct(latencies, 50),
        _pct(latencies, 95),
        note,
    )


def latencies(
    due: dict[str, float], received: dict[str, list[float]], since: float, until: float
) -> list[float]:
    return [min(received[k]) - t for k, t in due.items() if since <= t < until and k in received]


def p95(values: list[float]) -> float | None:
    return _pct(values, 95)


def render(lines: list[Line]) -> str:
    head = f"{'what':40s} {'expected':>8s} {'got':>7s} {'lost':>5s} {'dup':>5s} {'resent':>6s} {'p50 s':>7s} {'p95 s':>7s}"
    out = [head, "-" * len(head)]
    for ln in lines:
        p50 = f"{ln.p50:7.2f}" if ln.p50 is not None else "      -"
        p95_ = f"{ln.p95:7.2f}" if ln.p95 is not None else "      -"
        out.append(
            f"{ln.what:40s} {ln.expected:8d} {ln.got:7d} {ln.lost:5d} {ln.duplicated:5d} {ln.resent:6d} "
            f"{p50} {p95_}" + (f"  {ln.note}" if ln.note else "")
        )
    return "\n".join(out)


def as_dict(lines: list[Line]) -> list[dict[str, Any]]:
    return [ln.__dict__.copy() for ln in lines]
