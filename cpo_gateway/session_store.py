"""Session logic, written once for both OCPP versions: events in, sessions and meter values stored.

Idempotency rules (see docs/gateway.md):

* a session is keyed by (charge point, transaction id); 1.6 StartTransaction replays are recognised by
  (charge point, connector, start timestamp, idTag) and get the transaction id they were given first;
* meter values are inserted with "on conflict do nothing" on their sample key, so replays add nothing and
  order of arrival does not matter;
* an event for an unknown transaction creates the session, flagged ``UNKNOWN_TRANSACTION``; nothing is dropped;
* a second stop for an ended session changes nothing; the energy is recomputed from the stored register
  readings whenever late samples arrive for an ended session that pricing has not taken yet;
* energy = sum of the register's forward steps (meter start, samples, meter stop, by the charger's
  timestamps); a register that goes backwards is a reset (flag ``METER_RESET``) and counts from zero; a missing
  meter stop is the last register reading (flag ``METER_STOP_MISSING``); a step back of at most 10 Wh is
  rounding, not a reset.

Every method commits before it returns, so the caller answers the charger only after the data is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
import sqlite3
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, any_, bindparam, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from cpo_gateway.authorization import AuthResult
from cpo_gateway.events import (
    ENERGY_REGISTER,
    Boot,
    ChargerRef,
    MeterValues,
    Sample,
    SessionEnded,
    SessionStarted,
    StatusChanged,
)
from kernel.db.engine import SQLITE_PRAGMAS, Database
from kernel.models import (
    EVSE,
    ChargePoint,
    ChargePointEvse,
    ChargerMeterValue,
    ChargingSession,
    Connector,
    MeterValue,
    PricingState,
    SessionStatus,
)
from kernel.seams import Hooks
from kernel.timeutil import utcnow

log = logging.getLogger(__name__)

UNKNOWN_TRANSACTION = "UNKNOWN_TRANSACTION"
METER_RESET = "METER_RESET"
METER_STOP_MISSING = "METER_STOP_MISSING"
NO_METER_DATA = "NO_METER_DATA"
END_BEFORE_START = "END_BEFORE_START"
RESET_TOLERANCE_WH = Decimal(10)
"""A register that goes back by at most this much is rounding (e.g. integer meterStop after a decimal
sample), not a reset."""


def _insert(db: Database, table: Any) -> Any:
    return sqlite_insert(table) if db.is_sqlite else pg_insert(table)


def sample_rows(session_id: int, samples: Iterable[Sample]) -> list[dict[str, Any]]:
    """Meter value rows of a session; a 1.6 SignedData sample is merged into the plain sample with the same
    key. Without one (the usual case) every sample is a row: a repeated key is skipped by the insert's
    *on conflict do nothing*, keeping the first, as the merge would."""
    if not isinstance(samples, tuple):
        samples = tuple(samples)
    base = {"session_id": session_id}
    for smp in samples:
        if smp.unit == "SignedData":
            return _merged_rows(base, samples)
    return [_row(base, smp) for smp in samples]


def _row(base: dict[str, Any], smp: Sample) -> dict[str, Any]:
    """A meter value row: ``base`` (whose series it belongs to) and the sample's own fields, which are named
    as the columns."""
    return {**base, **smp._asdict()}


def _merged_rows(base: dict[str, Any], samples: Iterable[Sample]) -> list[dict[str, Any]]:
    rows: dict[tuple, dict[str, Any]] = {}
    signed_only: list[tuple[tuple, Sample]] = []
    for smp in samples:
        key = (smp.timestamp, smp.measurand, smp.phase, smp.location, smp.context)
        if smp.unit == "SignedData":
            signed_only.append((key, smp))
            continue
        row = rows.get(key)
        if row is None:
            rows[key] = _row(base, smp)
        elif smp.signed_data and not row["signed_data"]:
            row["signed_data"] = smp.signed_data
    for key, smp in signed_only:
        row = rows.get(key)
        if row is not None and not row["signed_data"]:
            row["signed_data"] = smp.signed_data
        elif row is None:
            rows[key] = _row(base, smp._replace(unit="SignedData", value=Decimal(0)))
    return list(rows.values())


def compute_energy(
    meter_start: Decimal | None,
    start_time: datetime,
    meter_stop: Decimal | None,
    end_time: datetime | None,
    readings: list[tuple[datetime, Decimal]],
) -> tuple[Decimal, Decimal | None, list[str]]:
    """(energy Wh, effective meter stop, flags) from the register readings (charger timestamps)."""
    flags: list[str] = []
    points: list[tuple[datetime, int, Decimal]] = [(ts, 1, wh) for ts, wh in readings]
    if meter_start is not None:
        points.append((start_time, 0, meter_start))
    if meter_stop is not None and end_time is not None:
        points.append((end_time, 2, meter_stop))
    points.sort(key=lambda p: (p[0], p[1]))
    if meter_stop is None:
        if points:
            meter_stop = points[-1][2]
            flags.append(METER_STOP_MISSING)
        else:
            flags.append(NO_METER_DATA)
    energy = Decimal(0)
    previous: Decimal | None = None
    for _ts, _order, wh in points:
        if previous is not None:
            if wh >= previous:
                energy += wh - previous
            elif previous - wh <= RESET_TOLERANCE_WH:
                continue  # rounding between integer meterStart/Stop and decimal samples: not a reset
            else:
                energy += wh
                if METER_RESET not in flags:
                    flags.append(METER_RESET)
        previous = wh
    return energy, meter_stop, flags


class SessionStore:
    """Stores what chargers report. One instance per gateway process."""

    def __init__(self, db: Database, node_name: str = "", hooks: Hooks | None = None) -> None:
        self.db = db
        self.node_name = node_name
        self.writer = MeterWriter(db)
        self.hooks = hooks if hooks is not None else Hooks()

    async def _run_hooks(
        self,
        s: AsyncSession,
        name: str,
        hooks: Sequence[Callable[[AsyncSession, Any], Awaitable[Any]]],
        obj: Any,
    ) -> None:
        """Run ``hooks`` (``hub.hooks.session`` or ``.evse_status``, e.g. OCPI pushes) inside this transaction,
        each in a savepoint: a failing hook is logged and left to its own safety net (OCPI's scanner); the
        charger's data is kept."""
        for hook in hooks:
            try:
                async with s.begin_nested():
                    await hook(s, obj)
            except Exception:
                log.exception("hook failed", extra={"fields": {"hook": name}})

    # -- chargers -------------------------------------------------------------------------------------------

    async def load_charger(self, identity: str) -> tuple[ChargePoint, ChargerRef] | None:
        async with self.db.session() as s:
            cp = await s.scalar(select(ChargePoint).where(ChargePoint.identity == identity))
            if cp is None:
                return None
            rows = (
                await s.execute(
                    select(ChargePointEvse.ocpp_evse_id, ChargePointEvse.evse_pk).where(
                        ChargePointEvse.charge_point_id == cp.id
                    )
                )
            ).all()
            ref = ChargerRef(
                id=cp.id,
                identity=cp.identity,
                cpo_id=cp.cpo_id,
                location_id=cp.location_id,
                ocpp_version=str(cp.ocpp_version),
                registration_status=str(cp.registration_status),
                evse_map={int(a): int(b) for a, b in rows},
            )
            return cp, ref

    async def set_connection(self, cp: ChargerRef, online: bool) -> None:
        now = utcnow()
        async with self.db.session() as s:
            stmt = update(ChargePoint).where(ChargePoint.id == cp.id)
            if online:
                stmt = stmt.values(status="online", connected_node=self.node_name, last_seen=now)
            else:
                stmt = stmt.where(ChargePoint.connected_node == self.node_name).values(
                    status="offline", connected_node=None
                )
            await s.execute(stmt)

    async def touch(self, charger_ids: list[int]) -> None:
        """Record that these chargers were heard from (batched by the liveness sweeper)."""
        if not charger_ids:
            return
        now = utcnow()
        async with self.db.session() as s:
            if self.db.is_sqlite:
                chunks = [charger_ids[i : i + 500] for i in range(0, len(charger_ids), 500)]
                matches = [ChargePoint.id.in_(chunk) for chunk in chunks]
            else:
                # one array parameter: IN with 10,000 ids would render and encode 10,000 parameters in the
                # event loop every sweep, which stalled every charger's answers for a moment
                matches = [ChargePoint.id == any_(bindparam("ids", charger_ids, type_=ARRAY(BigInteger)))]
            for match in matches:
                await s.execute(
                    update(ChargePoint)
                    .where(match, ChargePoint.connected_node == self.node_name)
                    .values(last_seen=now, status="online")
                )

    async def mark_stale_offline(self, seconds: float) -> None:
        """Chargers whose process stopped hearing from them (or died) for ``seconds`` are offline."""
        from datetime import timedelta

        cutoff = utcnow() - timedelta(seconds=seconds)
        async with self.db.session() as s:
            await s.execute(
                update(ChargePoint)
                .where(ChargePoint.status == "online", ChargePoint.last_seen < cutoff)
                .values(status="offline", connected_node=None)
            )

    async def record_boot(self, cp: ChargerRef, boot: Boot) -> str:
        """Store the charger's identity data; return the registration status to answer with."""
        async with self.db.session() as s:
            row = await s.get(ChargePoint, cp.id)
            assert row is not None
            row.vendor = boot.vendor[:50]
            row.model = boot.model[:50]
            row.serial_number = boot.serial_number[:50] if boot.serial_number else row.serial_number
            row.firmware_version = (
                boot.firmware_version[:50] if boot.firmware_version else row.firmware_version
            )
            row.last_seen = utcnow()
            cp.registration_status = str(row.registration_status)
            return cp.registration_status

    async def record_status(self, cp: ChargerRef, ev: StatusChanged) -> None:
        if ev.ocpi_status is None:
            return
        if ev.evse_id == 0:
            targets = list(cp.evse_map.values()) if ev.ocpi_status in ("INOPERATIVE", "OUTOFORDER") else []
        else:
            pk = cp.evse_map.get(ev.evse_id)
            targets = [pk] if pk is not None else []
        if not targets:
            return
        async with self.db.session() as s:
            result = await s.execute(
                update(EVSE)
                .where(EVSE.id.in_(targets), EVSE.last_updated <= ev.timestamp)
                .values(status=ev.ocpi_status, last_updated=ev.timestamp)
            )
            if result.rowcount and self.hooks.evse_status:
                for evse in (await s.scalars(select(EVSE).where(EVSE.id.in_(targets)))).all():
                    await self._run_hooks(s, "evse_status", self.hooks.evse_status, evse)

    # -- sessions -------------------------------------------------------------------------------------------

    async def _connector_pk(
        self, s: AsyncSession, evse_pk: int | None, connector_id: int | None
    ) -> int | None:
        if evse_pk is None:
            return None
        rows = (
            await s.execute(
                select(Connector.id, Connector.connector_id)
                .where(Connector.evse_pk == evse_pk)
                .order_by(Connector.id)
            )
        ).all()
        for pk, cid in rows:
            if connector_id is not None and cid == str(connector_id):
                return pk
        return rows[0][0] if rows else None

    async def _new_session(
        self,
        s: AsyncSession,
        cp: ChargerRef,
        transaction_id: str,
        *,
        evse_id: int | None,
        connector_id: int | None,
        start_time: datetime,
        id_tag: str | None,
        flags: list[str],
        auth: AuthResult | None = None,
    ) -> ChargingSession:
        evse_pk = cp.evse_map.get(evse_id) if evse_id is not None else None
        session = ChargingSession(
            session_uid=str(uuid.uuid4()),
            charge_point_id=cp.id,
            transaction_id=transaction_id,
            cpo_id=cp.cpo_id,
            location_id=cp.location_id,
            evse_pk=evse_pk,
            connector_pk=await self._connector_pk(s, evse_pk, connector_id),
            ocpp_evse_id=evse_id,
            ocpp_connector_id=connector_id,
            id_tag=id_tag,
            token_id=auth.token_id if auth else None,
            auth_method=auth.auth_method if auth else "WHITELIST",
            status=SessionStatus.ACTIVE,
            start_time=start_time,
            flags=list(flags),
            data={},
            last_updated=utcnow(),
        )
        if auth is not None and not auth.accepted:
            session.flags = [*session.flags, f"AUTH_{auth.status.upper()}"]
        s.add(session)
        await s.flush()
        return session

    async def _get_or_create(
        self, s: AsyncSession, cp: ChargerRef, transaction_id: str, **kwargs: Any
    ) -> tuple[ChargingSession, bool]:
        stmt = select(ChargingSession).where(
            ChargingSession.charge_point_id == cp.id, ChargingSession.transaction_id == transaction_id
        )
        session = await s.scalar(stmt)
        if session is not None:
            return session, False
        try:
            async with s.begin_nested():
                session = await self._new_session(s, cp, transaction_id, **kwargs)
            return session, True
        except Exception:  # a concurrent insert of the same transaction won the race
            session = await s.scalar(stmt)
            if session is None:
                raise
            return session, False

    async def start_v16(
        self, cp: ChargerRef, ev: SessionStarted, auth: AuthResult | None
    ) -> tuple[str, ChargingSession]:
        """Open a 1.6 transaction; returns the transaction id (the same one again for a replayed start) and
        the session."""
        async with self.db.session() as s:
            candidates = await s.scalars(
                select(ChargingSession).where(
                    ChargingSession.charge_point_id == cp.id,
                    ChargingSession.ocpp_connector_id == ev.connector_id,
                    ChargingSession.start_time == ev.timestamp,
                )
            )
            for existing in candidates:
                if existing.id_tag == ev.id_tag and (existing.data or {}).get("ocpp16_start"):
                    return existing.transaction_id, existing
            session = await self._new_session(
                s,
                cp,
                f"new:{uuid.uuid4()}",
                evse_id=ev.connector_id,
                connector_id=ev.connector_id,
                start_time=ev.timestamp,
                id_tag=ev.id_tag,
                flags=[],
                auth=auth,
            )
            session.transaction_id = str(session.id)
            session.meter_start_wh = ev.meter_start_wh
            data: dict[str, Any] = {"ocpp16_start": True}
            if ev.reservation_id is not None:
                data["reservation_id"] = ev.reservation_id
            session.data = data
            await self._run_hooks(s, "session", self.hooks.session, session)
            return session.transaction_id, session

    async def started(
        self, cp: ChargerRef, ev: SessionStarted, auth: AuthResult | None, *, is_start_event: bool = True
    ) -> ChargingSession:
        """A 2.0.1 transaction event other than Ended: Started, or an Updated that may be the first seen."""
        assert ev.transaction_id is not None
        async with self.db.session() as s:
            session, created = await self._get_or_create(
                s,
                cp,
                ev.transaction_id,
                evse_id=ev.evse_id,
                connector_id=ev.connector_id,
                start_time=ev.timestamp,
                id_tag=ev.id_tag,
                flags=[] if is_start_event else [UNKNOWN_TRANSACTION],
                auth=auth,
            )
            if is_start_event and UNKNOWN_TRANSACTION in (session.flags or []):
                session.flags = [f for f in session.flags if f != UNKNOWN_TRANSACTION]
                if ev.timestamp < session.start_time or session.end_time is not None:
                    session.start_time = ev.timestamp
            await self._apply_start(s, session, ev, auth, created)
            await self._add_samples(s, session, ev.samples)
            if session.end_time is not None and session.pricing_state == PricingState.PENDING:
                await self._finalize(s, session)
            if created:
                await self._run_hooks(s, "session", self.hooks.session, session)
            return session

    async def _apply_start(
        self,
        s: AsyncSession,
        session: ChargingSession,
        ev: SessionStarted,
        auth: AuthResult | None,
        created: bool,
    ) -> None:
        changed = False
        if ev.timestamp < session.start_time:
            session.start_time = ev.timestamp
            changed = True
        if session.meter_start_wh is None and ev.meter_start_wh is not None:
            session.meter_start_wh = ev.meter_start_wh
            changed = True
        if session.id_tag is None and ev.id_tag is not None:
            session.id_tag = ev.id_tag
            changed = True
        if session.token_id is None and auth is not None and auth.token_id is not None:
            session.token_id = auth.token_id
            changed = True
        if ev.remote_start_id is not None and "remote_start_id" not in (session.data or {}):
            session.data = {**(session.data or {}), "remote_start_id": ev.remote_start_id}
            changed = True
        if changed and not created:
            session.last_updated = utcnow()

    async def _add_samples(self, s: AsyncSession, session: ChargingSession, samples: Iterable[Sample]) -> int:
        rows = sample_rows(session.id, samples)
        if not rows:
            return 0
        result = await s.execute(_insert(self.db, MeterValue.__table__).on_conflict_do_nothing(), rows)
        return max(result.rowcount or 0, 0)

    async def meter_values(self, cp: ChargerRef, ev: MeterValues) -> ChargingSession | None:
        """Store samples of a transaction (1.6 MeterValues with transactionId; 2.0.1 Updated events)."""
        if ev.transaction_id is None or not ev.samples:
            return None  # connector-level samples outside a transaction are not session data
        async with self.db.session() as s:
            session, _created = await self._get_or_create(
                s,
                cp,
                ev.transaction_id,
                evse_id=ev.evse_id,
                connector_id=None,
                start_time=min(smp.timestamp for smp in ev.samples),
                id_tag=None,
                flags=[UNKNOWN_TRANSACTION],
            )
            await self._add_samples(s, session, ev.samples)
            if session.end_time is not None and session.pricing_state == PricingState.PENDING:
                await self._finalize(s, session)
            return session

    async def charger_meter_values(self, cp: ChargerRef, evse_id: int, samples: Iterable[Sample]) -> int:
        """Store samples reported outside a transaction (per EVSE, 0 = the whole charger); idempotent.
        Returns the number of new rows."""
        base = {
            "charge_point_id": cp.id,
            "ocpp_evse_id": evse_id,
            "evse_pk": cp.evse_map.get(evse_id),
            "received_at": utcnow(),
        }
        rows = _merged_rows(base, samples)
        if not rows:
            return 0
        async with self.db.session() as s:
            result = await s.execute(
                _insert(self.db, ChargerMeterValue.__table__).on_conflict_do_nothing(), rows
            )
            return max(result.rowcount or 0, 0)

    async def ended(
        self, cp: ChargerRef, ev: SessionEnded, auth: AuthResult | None = None
    ) -> ChargingSession:
        """Close a transaction (idempotent); hands it to pricing in the same transaction."""
        async with self.db.session() as s:
            first = min([ev.timestamp, *(smp.timestamp for smp in ev.samples)])
            session, _created = await self._get_or_create(
                s,
                cp,
                ev.transaction_id,
                evse_id=ev.evse_id,
                connector_id=ev.connector_id,
                start_time=first,
                id_tag=ev.id_tag,
                flags=[UNKNOWN_TRANSACTION],
                auth=auth,
            )
            await self._add_samples(s, session, ev.samples)
            if session.end_time is not None:
                if session.pricing_state == PricingState.PENDING:
                    await self._finalize(s, session)
                return session
            session.end_time = ev.timestamp
            session.meter_stop_wh = ev.meter_stop_wh
            session.stop_reason = ev.reason[:32] if ev.reason else None
            session.status = SessionStatus.COMPLETED
            if session.id_tag is None and ev.id_tag:
                session.id_tag = ev.id_tag
            if session.token_id is None and auth is not None:
                session.token_id = auth.token_id
            if ev.timestamp < session.start_time:
                session.flags = [*session.flags, END_BEFORE_START]
            await self._finalize(s, session)
            session.pricing_state = PricingState.PENDING
            await self._run_hooks(s, "session", self.hooks.session, session)
            return session

    async def _finalize(self, s: AsyncSession, session: ChargingSession) -> None:
        rows = (
            await s.execute(
                select(
                    MeterValue.timestamp,
                    MeterValue.value,
                    MeterValue.unit,
                    MeterValue.context,
                    MeterValue.signed_data,
                )
                .where(
                    MeterValue.session_id == session.id,
                    MeterValue.measurand == ENERGY_REGISTER,
                    MeterValue.phase == "",
                )
                .order_by(*MeterValue.__table__.primary_key.columns)
            )
        ).all()
        readings: list[tuple[datetime, Decimal]] = []
        signed: str | None = None
        signed_end: str | None = None
        for ts, value, unit, context, signed_data in rows:
            if unit == "Wh":
                readings.append((ts, value))
            elif unit == "kWh":
                readings.append((ts, value * 1000))
            if signed_data:
                signed = signed_data
                if context == "Transaction.End":
                    signed_end = signed_data
        explicit_stop = None if METER_STOP_MISSING in (session.flags or []) else session.meter_stop_wh
        energy, meter_stop, flags = compute_energy(
            session.meter_start_wh, session.start_time, explicit_stop, session.end_time, readings
        )
        kept = [f for f in (session.flags or []) if f not in (METER_RESET, METER_STOP_MISSING, NO_METER_DATA)]
        session.flags = kept + flags
        session.meter_stop_wh = meter_stop
        session.energy_wh = energy
        if signed_end or signed:
            session.signed_meter_data = signed_end or signed
        session.last_updated = utcnow()


class MeterWriter:
    """Group commit for the hot path: MeterValues of many chargers are written in one transaction.

    ``write`` returns only after the transaction holding its rows committed, so replies still follow
    durability. One batch is in flight at a time and the next one gathers everything that arrives while it
    commits: under load the batches grow by themselves, and the per-statement and per-commit cost is shared by
    more rows (measured: one batch in flight beats several in parallel, see docs/benchmarks.md)."""

    def __init__(self, db: Database, max_batch: int = 2000) -> None:
        self.db = db
        self.max_batch = max_batch
        self._pg: Any = None  # the writer's own asyncpg connection: no pool bookkeeping per batch
        self._queue: list[tuple[list[dict[str, Any]], list[dict[str, Any]], asyncio.Future[None]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._procs: dict[str, Any] | None = None
        self._plan: list[tuple[int, Any]] | None = None
        # SQLite: the writer's own connection, used only from its own thread, so a batch is one hop to that
        # thread (BEGIN IMMEDIATE, inserts, updates, COMMIT) instead of one aiosqlite round trip per statement
        self._sqlite_path = _sqlite_file(db)
        self._sqlite: sqlite3.Connection | None = None
        self._thread: ThreadPoolExecutor | None = None

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="meter-writer")

    async def stop(self, timeout: float = 30.0) -> None:
        """Commit the batch in flight and everything queued (chargers are waiting for it), then close."""
        if self._task is not None:
            self._stopping = True
            self._wakeup.set()
            try:
                await asyncio.wait_for(self._task, timeout)
            except TimeoutError:
                log.error(
                    "meter writer did not finish within %s s; chargers retry what was not answered", timeout
                )
            self._task = None
        while self._queue:  # written after the writer stopped
            await self._commit(self._take())
        if self._pg is not None:
            with contextlib.suppress(Exception):
                await self._pg.close()
            self._pg = None
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._close_sqlite)
            self._thread.shutdown(wait=False)
            self._thread = None

    async def write(self, rows: list[dict[str, Any]], session_updates: list[dict[str, Any]]) -> None:
        if self._task is None:
            await self._flush([(rows, session_updates, None)])  # type: ignore[list-item]
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((rows, session_updates, fut))
        self._wakeup.set()
        await fut

    def _take(self) -> list[tuple[list[dict[str, Any]], list[dict[str, Any]], asyncio.Future[None]]]:
        """The oldest messages, up to ``max_batch`` rows (always at least one message)."""
        count, taken = 0, 0
        for item in self._queue:
            if count >= self.max_batch:
                break
            count += len(item[0])
            taken += 1
        batch, self._queue = self._queue[:taken], self._queue[taken:]
        return batch

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                await self._commit(self._take())
            if self._stopping:
                return

    async def _commit(self, batch: list[Any]) -> None:
        try:
            await self._flush(batch)
        except BaseException as exc:  # the waiting chargers get an error answer (and retry), never silence
            if isinstance(exc, Exception):
                log.exception("meter batch failed")
            error = exc if isinstance(exc, Exception) else ConnectionError("meter batch interrupted")
            for _r, _u, fut in batch:
                if not fut.done():
                    fut.set_exception(error)
            if not isinstance(exc, Exception):
                raise
        else:
            for _r, _u, fut in batch:
                if not fut.done():
                    fut.set_result(None)

    async def _flush(self, batch: list[tuple[list[dict[str, Any]], list[dict[str, Any]], Any]]) -> None:
        rows = [r for item in batch for r in item[0]]
        updates = [u for item in batch for u in item[1]]
        if self.db.is_sqlite:
            await self._flush_sqlite(rows, updates)
        else:
            await self._flush_pg(rows, updates)

    def _processors(self) -> dict[str, Any]:
        """The columns' own bind processors, so raw inserts store exactly what the ORM would."""
        if self._procs is None:
            dialect = self.db.engine.dialect
            table = MeterValue.__table__
            self._procs = {c: table.c[c].type._cached_bind_processor(dialect) for c in MV_COLUMNS}
            self._procs["now"] = ChargingSession.__table__.c.last_updated.type._cached_bind_processor(dialect)
            self._procs["energy"] = ChargingSession.__table__.c.energy_wh.type._cached_bind_processor(dialect)
        return self._procs

    def _encode(self, rows: list[dict[str, Any]]) -> list[list[Any]]:
        procs = self._processors()
        if self._plan is None:
            self._plan = [(i, procs[c]) for i, c in enumerate(MV_COLUMNS) if procs[c] is not None]
        plan = self._plan
        out = []
        for r in rows:
            values = list(_ROW_GETTER(r))
            for i, proc in plan:
                values[i] = proc(values[i])
            out.append(values)
        return out

    def _encode_updates(self, updates: list[dict[str, Any]]) -> list[tuple[Any, Any, Any]]:
        procs = self._processors()
        return [(procs["energy"](u["energy"]), procs["now"](u["now"]), u["sid"]) for u in updates]

    async def _flush_sqlite(self, rows: list[dict[str, Any]], updates: list[dict[str, Any]]) -> None:
        if self._sqlite_path is None:  # in-memory database: only the engine's connection sees it
            await self._flush_sqlite_engine(rows, updates)
            return
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="meter-writer")
        self._processors()
        await asyncio.get_running_loop().run_in_executor(self._thread, self._write_sqlite, rows, updates)

    def _write_sqlite(self, rows: list[dict[str, Any]], updates: list[dict[str, Any]]) -> None:
        """In the writer thread: one transaction, committed before this returns."""
        if self._sqlite is None:
            conn = sqlite3.connect(self._sqlite_path, isolation_level=None, check_same_thread=False)
            for pragma in SQLITE_PRAGMAS:
                conn.execute(pragma)
            self._sqlite = conn
        conn = self._sqlite
        values = self._encode(rows)
        upd = self._encode_updates(updates)
        conn.execute("BEGIN IMMEDIATE")
        try:
            if values:
                conn.executemany(SQLITE_INSERT, values)
            if upd:
                conn.executemany(SQLITE_UPDATE, upd)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _close_sqlite(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
            self._sqlite = None

    async def _flush_sqlite_engine(self, rows: list[dict[str, Any]], updates: list[dict[str, Any]]) -> None:
        values = self._encode(rows)
        upd = self._encode_updates(updates)
        async with self.db.engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            await raw.execute("BEGIN IMMEDIATE")
            try:
                if values:
                    await raw.executemany(SQLITE_INSERT, values)
                if upd:
                    await raw.executemany(SQLITE_UPDATE, upd)
                await raw.commit()
            except BaseException:
                await raw.rollback()
                raise

    async def _flush_pg(self, rows: list[dict[str, Any]], updates: list[dict[str, Any]]) -> None:
        """One statement, so one round trip and its own transaction: the inserts and the running-energy
        updates commit together (or not at all) before ``execute`` returns.

        Usually every row of a batch is the same kind of sample (the energy register, periodic, in Wh,
        unsigned): then only session, time and value go as arrays and the rest as single parameters, which
        halves the work of encoding and decoding the batch on both sides (see docs/gateway.md)."""
        upd = self._encode_updates(updates)
        if self._pg is None or self._pg.is_closed():  # first batch, or the connection was lost: reconnect
            import asyncpg

            self._pg = await asyncpg.connect(self.db.url.replace("postgresql+asyncpg://", "postgresql://", 1))
        kind = _uniform_kind(rows)
        if kind is not None:
            ts_proc = self._processors()["timestamp"]
            args: list[Any] = [
                [r["session_id"] for r in rows],
                [ts_proc(r["timestamp"]) for r in rows],
                [str(r["value"]) for r in rows],
                *kind,
            ]
            insert, update = PG_INSERT_UNIFORM, PG_INSERT_UNIFORM_AND_UPDATE
        else:
            values = self._encode(rows)
            args = [list(col) for col in zip(*values, strict=True)] if values else [[] for _ in MV_COLUMNS]
            insert, update = PG_INSERT, PG_INSERT_AND_UPDATE
        if upd:
            energy, now, sid = (list(col) for col in zip(*upd, strict=True))
            await self._pg.execute(update, *args, sid, energy, now)
        elif rows:
            await self._pg.execute(insert, *args)


UNIFORM_COLUMNS = ("measurand", "phase", "location", "context", "unit")


def _uniform_kind(rows: list[dict[str, Any]]) -> tuple[str, ...] | None:
    """The values of :data:`UNIFORM_COLUMNS` when every row shares them and none is signed, else None."""
    if not rows:
        return None
    first = rows[0]
    kind = (first["measurand"], first["phase"], first["location"], first["context"], first["unit"])
    for r in rows:
        if r["signed_data"] is not None or (
            r["measurand"] != kind[0]
            or r["phase"] != kind[1]
            or r["location"] != kind[2]
            or r["context"] != kind[3]
            or r["unit"] != kind[4]
        ):
            return None
    for value in (r["value"] for r in rows):
        if not isinstance(value, Decimal) or not value.is_finite():
            return None  # the generic path refuses it through the column's own checks
    return kind


MV_COLUMNS = (
    "session_id",
    "timestamp",
    "measurand",
    "phase",
    "location",
    "context",
    "unit",
    "value",
    "signed_data",
)
_ROW_GETTER = operator.itemgetter(*MV_COLUMNS)
SQLITE_INSERT = (
    f"INSERT INTO meter_values ({', '.join(MV_COLUMNS)}) VALUES ({', '.join('?' for _ in MV_COLUMNS)}) "
    "ON CONFLICT DO NOTHING"
)
SQLITE_UPDATE = "UPDATE sessions SET energy_wh = ?, last_updated = ? WHERE id = ? AND status = 'ACTIVE'"
PG_INSERT = (
    f"INSERT INTO meter_values ({', '.join(MV_COLUMNS)}) SELECT * FROM unnest($1::bigint[], $2::timestamptz[], "
    "$3::varchar[], $4::varchar[], $5::varchar[], $6::varchar[], $7::varchar[], $8::numeric[], $9::text[]) "
    "ON CONFLICT DO NOTHING"
)
PG_UPDATE_ENERGY = (
    "UPDATE sessions SET energy_wh = u.energy, last_updated = u.now "
    "FROM unnest(${}::bigint[], ${}::numeric[], ${}::timestamptz[]) AS u(sid, energy, now) "
    "WHERE sessions.id = u.sid AND sessions.status = 'ACTIVE'"
)
PG_INSERT_AND_UPDATE = f"WITH ins AS ({PG_INSERT}) {PG_UPDATE_ENERGY.format(10, 11, 12)}"
# values go as text and are cast by PostgreSQL: cheaper than asyncpg's binary numeric encoding
PG_INSERT_UNIFORM = (
    f"INSERT INTO meter_values (session_id, timestamp, value, {', '.join(UNIFORM_COLUMNS)}) "
    "SELECT u.sid, u.ts, u.v::numeric, $4::varchar, $5::varchar, $6::varchar, $7::varchar, $8::varchar "
    "FROM unnest($1::bigint[], $2::timestamptz[], $3::text[]) AS u(sid, ts, v) ON CONFLICT DO NOTHING"
)
PG_INSERT_UNIFORM_AND_UPDATE = f"WITH ins AS ({PG_INSERT_UNIFORM}) {PG_UPDATE_ENERGY.format(9, 10, 11)}"


def _sqlite_file(db: Database) -> str | None:
    if not db.is_sqlite:
        return None
    from sqlalchemy.engine import make_url

    name = make_url(db.url).database
    return None if not name or name == ":memory:" or name.startswith("file:") else name


def _bind(name: str) -> Any:
    from sqlalchemy import bindparam

    return bindparam(name)
