"""The charging-session state machine, written once for both OCPP versions: start, meter values, end.

Idempotency rules (see docs/gateway.md):

* a session is keyed by (charge point, transaction id); a 1.6 StartTransaction is also keyed by its
  ``start_key`` (connector, start timestamp, idTag in upper case: a CiString), unique per charger, so a replay,
  even one resent on another connection while the first is being stored, gets the transaction id the first
  was given;
* a connector (1.6) or EVSE (2.0.1) has at most one ACTIVE session: a new start closes an older one whose stop
  never came and holds it for review (``SUPERSEDED_BY_NEW_START``);
* meter values are inserted with "on conflict do nothing" on their sample key, so replays add nothing and
  order of arrival does not matter;
* an event for an unknown transaction creates the session, flagged ``UNKNOWN_TRANSACTION``; nothing is dropped;
* a second stop for an ended session changes nothing; the energy is recomputed from the stored register
  readings whenever late data arrives for an ended session: one that pricing has not taken yet is simply
  updated, a priced one whose inputs changed (times, meter start/stop, energy, a new sample) goes to
  ``REPRICE`` (pricing credits and re-issues its CDR when the result differs);
* 2.0.1 data may still be missing when a transaction ends (its start was never seen, or its seqNos have a
  gap): it is handed to pricing with ``price_after`` = now + ``late_data_grace``, so what is late lands first;
* a charger stamp more than a day (at least ``clock_skew``) ahead of the hub's clock flags ``CLOCK_SUSPECT``;
  :meth:`SessionStore.release` is the operator's repair of a session pricing or the gateway held.

What a reading means is :mod:`kernel.meter_reading`'s (rows: :mod:`cpo_gateway.meter_rules`). Every method
commits before it returns, so the caller answers the charger only after the data is durable.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, inspect, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from cpo_gateway.authorization import AuthResult
from cpo_gateway.events import ENERGY_REGISTER, ChargerRef, MeterValues, Sample, SessionEnded, SessionStarted
from cpo_gateway.hook_runner import run_hooks
from cpo_gateway.idempotent_insert import insert_ignoring_duplicates
from cpo_gateway.meter_rules import (
    END_BEFORE_START,
    ENERGY_FLAGS,
    UNKNOWN_TRANSACTION,
    RegisterRow,
    register_readings,
    sample_rows,
)
from kernel.db.engine import Database
from kernel.domain.cdr_holder import recorded_holder, token_holder
from kernel.meter_reading import METER_STOP_MISSING, session_energy
from kernel.meter_reading import register_readings as overall_readings
from kernel.models import ChargingSession, Connector, MeterValue, PricingState, SessionStatus, Token
from kernel.plausibility import CLOCK_SUSPECT
from kernel.seams import Hooks
from kernel.timeutil import utcnow

CONNECTOR_INFERRED = "CONNECTOR_INFERRED"
"""The session's EVSE was never reported: it is the charger's first, whose tariffs all its connectors share."""
NOT_PRICEABLE = "not priceable"
"""How the gateway's own ``pricing_error`` begins: what pricing needs was never reported (late data retries)."""
OCPP16_MAX_TRANSACTION_ID = 2**31 - 1
"""OCPP 1.6 ``transactionId`` is an ``integer`` (JSON schema), taken as a signed 32-bit one by chargers."""
CLOCK_SUSPECT_AFTER = timedelta(days=1)
"""A charger stamp this far ahead of the time the hub received it comes from a clock that is wrong (flag
:data:`kernel.plausibility.CLOCK_SUSPECT`; pricing holds the session). A stamp in the past is what every
message a charger queued while offline carries, so only the future counts."""
SUPERSEDED_BY_NEW_START = "SUPERSEDED_BY_NEW_START"
"""The session was still ACTIVE when a later transaction started on its connector (its stop never came)."""


def start_key(ev: SessionStarted) -> str:
    """What makes a 1.6 StartTransaction the same one again: ``connectorId|timestamp (UTC, ISO 8601)|IDTAG``
    (OCPP 1.6 idTag is a CiString20, "case insensitive", so it is compared in upper case)."""
    return f"{ev.connector_id}|{ev.timestamp.astimezone(UTC).isoformat()}|{(ev.id_tag or '').upper()}"


@dataclass(frozen=True, slots=True)
class FirstSeen:
    """What a session is created from when its first event arrives (a start, or a later event whose start
    was never seen)."""

    evse_id: int | None
    connector_id: int | None
    start_time: datetime
    id_tag: str | None
    flags: list[str] = field(default_factory=list)
    auth: AuthResult | None = None


class SessionStore:
    """Stores the charging sessions chargers report. One instance per gateway process."""

    def __init__(
        self,
        db: Database,
        hooks: Hooks | None = None,
        *,
        late_data_grace: float = 600,
        clock_skew: float = 300,
    ) -> None:
        """``hooks.session`` runs in the transaction that opened or ended a session; ``late_data_grace``
        (seconds, ``EVHUB_LATE_DATA_GRACE``) is how long pricing waits for a session that may be incomplete;
        a charger stamp more than ``clock_skew`` (``EVHUB_CLOCK_SKEW``), and at least
        :data:`CLOCK_SUSPECT_AFTER`, ahead of the hub's clock flags the session ``CLOCK_SUSPECT``."""
        self.db = db
        self.hooks = hooks if hooks is not None else Hooks()
        self.late_data_grace = timedelta(seconds=late_data_grace)
        self.clock_suspect_after = max(CLOCK_SUSPECT_AFTER, timedelta(seconds=clock_skew))

    # -- opening --------------------------------------------------------------------------------------------

    async def _connector_pk(
        self, db_session: AsyncSession, evse_pk: int | None, connector_id: int | None
    ) -> int | None:
        """The connector row of the EVSE with this OCPP connector id, else the EVSE's first connector."""
        if evse_pk is None:
            return None
        rows = (
            await db_session.execute(
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
        db_session: AsyncSession,
        cp: ChargerRef,
        transaction_id: str,
        first: FirstSeen,
        *,
        start_key: str | None = None,
    ) -> ChargingSession:
        auth = first.auth
        evse_pk = cp.evse_map.get(first.evse_id) if first.evse_id is not None else None
        session = ChargingSession(
            session_uid=str(uuid.uuid4()),
            charge_point_id=cp.id,
            transaction_id=transaction_id,
            start_key=start_key,
            cpo_id=cp.cpo_id,
            location_id=cp.location_id,
            evse_pk=evse_pk,
            connector_pk=await self._connector_pk(db_session, evse_pk, first.connector_id),
            ocpp_evse_id=first.evse_id,
            ocpp_connector_id=first.connector_id,
            id_tag=first.id_tag,
            token_id=auth.token_id if auth else None,
            auth_method=auth.auth_method if auth else "WHITELIST",
            status=SessionStatus.ACTIVE,
            start_time=first.start_time,
            flags=list(first.flags),
            data={},
            last_updated=utcnow(),
        )
        if auth is not None and not auth.accepted:
            session.flags = [*session.flags, f"AUTH_{auth.status.upper()}"]
        await _record_holder(db_session, session)
        db_session.add(session)
        await db_session.flush()
        return session

    async def _get_or_create(
        self, db_session: AsyncSession, cp: ChargerRef, transaction_id: str, first: FirstSeen
    ) -> tuple[ChargingSession, bool]:
        """The session of this transaction, created from ``first`` when there is none; True when created. An
        existing one is locked (PostgreSQL; SQLite transactions are serialised anyway), so pricing, which
        claims with SKIP LOCKED, never rates it while this event changes it."""
        stmt = select(ChargingSession).where(
            ChargingSession.charge_point_id == cp.id, ChargingSession.transaction_id == transaction_id
        )
        session = await db_session.scalar(stmt.with_for_update())
        if session is not None:
            return session, False
        try:
            async with db_session.begin_nested():
                session = await self._new_session(db_session, cp, transaction_id, first)
            return session, True
        except Exception:  # a concurrent insert of the same transaction won the race
            session = await db_session.scalar(stmt)
            if session is None:
                raise
            return session, False

    # -- events ---------------------------------------------------------------------------------------------

    async def start_v16(
        self, cp: ChargerRef, ev: SessionStarted, auth: AuthResult | None
    ) -> tuple[str, ChargingSession]:
        """Open a 1.6 transaction; returns the transaction id (the same one again for a replayed start) and
        the session.

        A replay is recognised by the database, not by a comparison here: the session is inserted with its
        :func:`start_key` in a savepoint, and the unique key (charger, start key) refuses a second one. A start
        resent on another connection while the first one's transaction is still open waits for it at that key
        (PostgreSQL: the uncommitted index entry; SQLite: ``BEGIN IMMEDIATE``), then finds its session."""
        key = start_key(ev)
        async with self.db.session() as db_session:
            first = FirstSeen(ev.connector_id, ev.connector_id, ev.timestamp, ev.id_tag, auth=auth)
            try:
                async with db_session.begin_nested():
                    session = await self._new_session(
                        db_session, cp, f"new:{uuid.uuid4()}", first, start_key=key
                    )
            except IntegrityError:
                existing = await db_session.scalar(
                    select(ChargingSession).where(
                        ChargingSession.charge_point_id == cp.id, ChargingSession.start_key == key
                    )
                )
                if existing is None:
                    raise
                return existing.transaction_id, existing
            session.transaction_id = await self._free_transaction_id(db_session, cp, session.id)
            session.meter_start_wh = ev.meter_start_wh
            self._check_clock(session, (ev.timestamp,))
            if ev.reservation_id is not None:
                session.data = {"reservation_id": ev.reservation_id}
            await db_session.flush()  # stored with its transaction id here, outside any hook's savepoint
            await self._supersede_older(
                db_session, session, ChargingSession.ocpp_connector_id, ev.connector_id
            )
            await run_hooks(db_session, "session", self.hooks.session, session)
            return session.transaction_id, session

    async def _supersede_older(
        self, db_session: AsyncSession, session: ChargingSession, column: Any, number: int | None
    ) -> None:
        """A connector (1.6) or EVSE (2.0.1) has one running transaction at a time: sessions of the charger
        still ACTIVE on the same ``number`` with an earlier start never got their stop. Each is closed
        (``COMPLETED``, flag ``SUPERSEDED_BY_NEW_START``, ended at its last meter value) and held for review
        (``HELD``, ``review_reason`` says so) instead of staying ACTIVE for ever; its stop, should it still
        arrive, ends it properly and hands it to pricing (:meth:`ended`)."""
        if number is None:
            return
        older = (
            await db_session.scalars(
                select(ChargingSession)
                .where(
                    ChargingSession.charge_point_id == session.charge_point_id,
                    column == number,
                    ChargingSession.status == SessionStatus.ACTIVE,
                    ChargingSession.end_time.is_(None),
                    ChargingSession.start_time < session.start_time,
                    ChargingSession.id != session.id,
                )
                .with_for_update()
            )
        ).all()
        for old in older:
            last = await db_session.scalar(
                select(func.max(MeterValue.timestamp)).where(MeterValue.session_id == old.id)
            )
            old.end_time = last if last is not None and last > old.start_time else old.start_time
            old.status = SessionStatus.COMPLETED
            old.stop_reason = None
            old.flags = [*(old.flags or []), SUPERSEDED_BY_NEW_START]
            await self._finalize(db_session, old)
            old.pricing_state = PricingState.HELD
            old.price_after = None
            old.review_reason = (
                f"superseded: transaction {session.transaction_id} started on the same "
                f"{'connector' if column is ChargingSession.ocpp_connector_id else 'EVSE'} ({number}) at "
                f"{session.start_time.isoformat()} while this one was still active and its stop was never "
                f"received; its end is its last meter value ({old.end_time.isoformat()}): check it, then "
                "`evhub sessions release` (--end to correct it)"
            )
            await run_hooks(db_session, "session", self.hooks.session, old)

    async def _free_transaction_id(self, db_session: AsyncSession, cp: ChargerRef, candidate: int) -> str:
        """The transaction id for a new 1.6 transaction (OCPP 1.6: an integer the central system supplies):
        the session's own row id, unless the charger reported that id for a transaction of its own before (a
        session created from its events, after a restore or a migration of the central system): then one
        above the highest numeric transaction id of the charger."""
        taken = await db_session.scalar(
            select(ChargingSession.id).where(
                ChargingSession.charge_point_id == cp.id, ChargingSession.transaction_id == str(candidate)
            )
        )
        if taken is None:
            return str(candidate)
        ids = await db_session.scalars(
            select(ChargingSession.transaction_id).where(ChargingSession.charge_point_id == cp.id)
        )
        numeric = [int(t) for t in ids if t.isdigit() and len(t) <= len(str(OCPP16_MAX_TRANSACTION_ID))]
        free = max([candidate, *(n for n in numeric if n <= OCPP16_MAX_TRANSACTION_ID)]) + 1
        if free > OCPP16_MAX_TRANSACTION_ID:
            raise RuntimeError(f"charger {cp.identity}: no free OCPP 1.6 transaction id above {candidate}")
        return str(free)

    async def started(
        self, cp: ChargerRef, ev: SessionStarted, auth: AuthResult | None, *, is_start_event: bool = True
    ) -> ChargingSession:
        """A 2.0.1 transaction event other than Ended: Started, or an Updated that may be the first seen."""
        assert ev.transaction_id is not None
        async with self.db.session() as db_session:
            flags = [] if is_start_event else [UNKNOWN_TRANSACTION]
            first = FirstSeen(ev.evse_id, ev.connector_id, ev.timestamp, ev.id_tag, flags, auth)
            session, created = await self._get_or_create(db_session, cp, ev.transaction_id, first)
            before = _inputs(session)
            _note_sequence(session, ev.seq_no, ev.earlier_seq_nos, ev.offline)
            self._check_clock(session, (ev.timestamp, *(smp.timestamp for smp in ev.samples)))
            if is_start_event and UNKNOWN_TRANSACTION in (session.flags or []):
                session.flags = [f for f in session.flags if f != UNKNOWN_TRANSACTION]
                if ev.timestamp < session.start_time or session.end_time is not None:
                    session.start_time = ev.timestamp
            _apply_start(session, ev, auth, created)
            await _record_holder(db_session, session)
            added = await self._add_samples(db_session, session, ev.samples)
            if is_start_event:
                await db_session.flush()
                await self._supersede_older(db_session, session, ChargingSession.ocpp_evse_id, ev.evse_id)
            if session.end_time is not None:
                await self._late_data(db_session, cp, session, before, added)
            if created:
                await run_hooks(db_session, "session", self.hooks.session, session)
            return session

    async def meter_values(self, cp: ChargerRef, ev: MeterValues) -> ChargingSession | None:
        """Store samples of a transaction (1.6 MeterValues with transactionId; 2.0.1 Updated events)."""
        if ev.transaction_id is None or not ev.samples:
            return None  # connector-level samples outside a transaction are not session data
        async with self.db.session() as db_session:
            start = min(smp.timestamp for smp in ev.samples)
            first = FirstSeen(ev.evse_id, None, start, None, [UNKNOWN_TRANSACTION])
            session, _created = await self._get_or_create(db_session, cp, ev.transaction_id, first)
            before = _inputs(session)
            if session.evse_pk is None and ev.evse_id is not None:
                self._place(session, cp, ev.evse_id, await self._connector_pk_of(db_session, cp, ev.evse_id))
            added = await self._add_samples(db_session, session, ev.samples)
            self._check_clock(session, (smp.timestamp for smp in ev.samples))
            if session.end_time is not None:
                await self._late_data(db_session, cp, session, before, added)
            return session

    def _check_clock(self, session: ChargingSession, stamps: Iterable[datetime]) -> None:
        """Flag ``CLOCK_SUSPECT`` (once) when a charger stamp lies more than ``clock_suspect_after`` after
        the hub's clock now, the time it was received; ``data["clock_suspect"]`` says which and when."""
        if CLOCK_SUSPECT in (session.flags or []):
            return
        received = utcnow()
        ahead = max(stamps, default=None)
        if ahead is None or ahead - received <= self.clock_suspect_after:
            return
        session.flags = [*(session.flags or []), CLOCK_SUSPECT]
        session.data = {
            **(session.data or {}),
            "clock_suspect": f"charger stamp {ahead.isoformat()} received at {received.isoformat()}",
        }

    async def _late_data(
        self,
        db_session: AsyncSession,
        cp: ChargerRef,
        session: ChargingSession,
        before: tuple[Any, ...],
        added: int,
    ) -> None:
        """Data for a session that had ended already (a late start, late or out-of-order samples). One that
        pricing has not taken (or failed for want of this data) is recomputed and handed off again; one
        whose inputs changed (``before``: :func:`_inputs`; ``added`` new meter rows) is recomputed and, when
        it was priced, marked ``REPRICE`` (pricing compares and, when the CDR differs, credits it and issues
        a new revision), after the grace when a seqNo is still missing; held, failed and already-to-reprice
        ones are recomputed and stay where they are."""
        if _open_for_data(session):
            await self._finalize(db_session, session)
            await self._hand_off(db_session, cp, session)
            return
        if not added and _inputs(session) == before:
            return  # a replay: nothing changed
        await self._finalize(db_session, session)
        if session.pricing_state == PricingState.PRICED:
            session.pricing_state = PricingState.REPRICE
            # more may follow (a seqNo still missing): one correction after the grace, not one per message
            incomplete = _may_be_incomplete(cp, session)
            session.price_after = utcnow() + self.late_data_grace if incomplete else None

    # -- the hand-off to pricing ----------------------------------------------------------------------------

    async def _connector_pk_of(self, db_session: AsyncSession, cp: ChargerRef, evse_id: int) -> int | None:
        return await self._connector_pk(db_session, cp.evse_map.get(evse_id), evse_id)

    @staticmethod
    def _place(session: ChargingSession, cp: ChargerRef, evse_id: int, connector_pk: int | None) -> None:
        """Put a session whose start was never seen on the charger's EVSE ``evse_id`` (1.6: connector)."""
        session.evse_pk = cp.evse_map.get(evse_id)
        session.connector_pk = connector_pk
        session.ocpp_evse_id = evse_id
        if cp.ocpp_version.startswith("1.6"):
            session.ocpp_connector_id = evse_id

    async def _infer_connector(
        self, db_session: AsyncSession, cp: ChargerRef, session: ChargingSession
    ) -> None:
        """The EVSE of an ended session that never learnt it (1.6 StopTransaction has no connectorId, and no
        MeterValues of the transaction named one): the charger's only EVSE; else, when every connector of
        the charger has the same tariffs, its first EVSE (flag ``CONNECTOR_INFERRED``: the price is right,
        the EVSE is a guess); else none."""
        if not cp.evse_map:
            return
        first = min(cp.evse_map)
        if len(cp.evse_map) == 1:
            self._place(session, cp, first, await self._connector_pk_of(db_session, cp, first))
            return
        tariffs = (
            await db_session.scalars(
                select(Connector.tariff_ids).where(Connector.evse_pk.in_(list(cp.evse_map.values())))
            )
        ).all()
        if len({tuple(t or ()) for t in tariffs}) == 1:
            self._place(session, cp, first, await self._connector_pk_of(db_session, cp, first))
            session.flags = [*(session.flags or []), CONNECTOR_INFERRED]

    async def _hand_off(self, db_session: AsyncSession, cp: ChargerRef, session: ChargingSession) -> None:
        """Hand the ended session to pricing (``pending``), unless its start was never seen and what pricing
        needs cannot be known: then ``failed`` with the reason (``evhub sessions list --state failed``);
        later data for the session (a late start, meter values) hands it off again."""
        reason = None
        if UNKNOWN_TRANSACTION in (session.flags or []):
            if session.evse_pk is None:
                await self._infer_connector(db_session, cp, session)
            if session.evse_pk is None:
                reason = (
                    "connector unknown: the start of the transaction was never seen, no MeterValues named "
                    "its connector and the charger's connectors have different tariffs"
                )
            elif session.meter_start_wh is None and not await self._has_begin_reading(db_session, session):
                reason = (
                    "meter start unknown: the start of the transaction was never seen and no "
                    "Transaction.Begin register reading was reported"
                )
        if reason is None:
            session.pricing_state = PricingState.PENDING
            session.pricing_error = None
            if session.price_after is None and _may_be_incomplete(cp, session):
                session.price_after = utcnow() + self.late_data_grace
        else:
            session.pricing_state = PricingState.FAILED
            session.pricing_error = f"{NOT_PRICEABLE}: {reason}"

    async def _has_begin_reading(self, db_session: AsyncSession, session: ChargingSession) -> bool:
        """Whether a ``Transaction.Begin`` register reading (phase-less, or a complete phase set) is stored."""
        rows = await self._register_rows(db_session, session, MeterValue.context == "Transaction.Begin")
        return bool(overall_readings(rows))

    @staticmethod
    async def _register_rows(
        db_session: AsyncSession, session: ChargingSession, *where: ColumnElement[bool]
    ) -> Sequence[Any]:
        """The session's stored energy register rows, every phase (:class:`kernel.meter_reading.MeterRow`s
        with their signed data), in key order."""
        return (
            await db_session.execute(
                select(
                    MeterValue.timestamp,
                    MeterValue.measurand,
                    MeterValue.phase,
                    MeterValue.value,
                    MeterValue.unit,
                    MeterValue.context,
                    MeterValue.signed_data,
                )
                .where(MeterValue.session_id == session.id, MeterValue.measurand == ENERGY_REGISTER, *where)
                .order_by(*inspect(MeterValue).primary_key)
            )
        ).all()

    async def ended(
        self, cp: ChargerRef, ev: SessionEnded, auth: AuthResult | None = None
    ) -> ChargingSession:
        """Close a transaction (idempotent); hands it to pricing in the same transaction."""
        async with self.db.session() as db_session:
            start = min([ev.timestamp, *(smp.timestamp for smp in ev.samples)])
            first = FirstSeen(ev.evse_id, ev.connector_id, start, ev.id_tag, [UNKNOWN_TRANSACTION], auth)
            session, _created = await self._get_or_create(db_session, cp, ev.transaction_id, first)
            before = _inputs(session)
            _note_sequence(session, ev.seq_no, ev.earlier_seq_nos, ev.offline)
            self._check_clock(session, (ev.timestamp, *(smp.timestamp for smp in ev.samples)))
            added = await self._add_samples(db_session, session, ev.samples)
            if session.meter_public_key is None and ev.meter_public_key:
                session.meter_public_key = ev.meter_public_key
            if _superseded_awaiting_stop(session):
                _reopen(session)  # its own stop came after all: it ends as reported, not as guessed
            if session.end_time is not None:
                await self._late_data(db_session, cp, session, before, added)
                return session
            if UNKNOWN_TRANSACTION in (session.flags or []) and start < session.start_time:
                session.start_time = start  # the start was never seen: its readings are the earliest we know
            session.end_time = ev.timestamp
            session.meter_stop_wh = ev.meter_stop_wh
            session.stop_reason = ev.reason[:32] if ev.reason else None
            session.status = SessionStatus.COMPLETED
            if session.id_tag is None and ev.id_tag:
                session.id_tag = ev.id_tag
            if session.token_id is None and auth is not None:
                session.token_id = auth.token_id
                await _record_holder(db_session, session)
            if ev.timestamp < session.start_time:
                session.flags = [*session.flags, END_BEFORE_START]
            await self._finalize(db_session, session)
            await self._hand_off(db_session, cp, session)
            await run_hooks(db_session, "session", self.hooks.session, session)
            return session

    # -- operator repair ------------------------------------------------------------------------------------

    async def release(
        self,
        session_uid: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
        accept: bool = False,
    ) -> ChargingSession:
        """Hand a ``held`` session back to pricing (``evhub sessions release``): the operator checked it and
        may correct its start and end. The energy is recomputed over the stored readings, ``review_reason``
        is cleared (kept with the correction in ``data["released"]``), the flag ``CLOCK_SUSPECT`` is dropped
        (the operator vouched for the clock) and the session is ``pending``; pricing still checks it, unless
        ``accept``: the operator reviewed the session and it is billed as it is (a genuinely long stay, an EVSE
        whose power is understated), recorded as ``data["released"]["accepted"]``. A ``ValueError`` (one
        line) for a session that is not held or times that cannot be right."""
        async with self.db.session() as db_session:
            session = await db_session.scalar(
                select(ChargingSession).where(ChargingSession.session_uid == session_uid).with_for_update()
            )
            if session is None:
                raise ValueError(f"unknown session {session_uid!r}")
            if session.pricing_state != PricingState.HELD:
                raise ValueError(
                    f"session {session_uid} is not held (pricing state {session.pricing_state.value}): "
                    "only held sessions are released"
                )
            new_start = start if start is not None else session.start_time
            new_end = end if end is not None else session.end_time
            if new_end is None:
                raise ValueError(f"session {session_uid} has no end: give it with --end")
            if new_end < new_start:
                raise ValueError(
                    f"session {session_uid}: end {new_end.isoformat()} is before start {new_start.isoformat()}"
                )
            now = utcnow()
            session.data = {
                **(session.data or {}),
                "released": {  # what the operator's release replaced
                    "at": now.isoformat(),
                    "review_reason": session.review_reason,
                    "start_time": session.start_time.isoformat(),
                    "end_time": session.end_time.isoformat() if session.end_time else None,
                    "accepted": accept,
                },
            }
            session.start_time, session.end_time = new_start, new_end
            if session.status == SessionStatus.ACTIVE:
                session.status = SessionStatus.COMPLETED  # the operator gave the end it never reported
            session.flags = [f for f in (session.flags or []) if f != CLOCK_SUSPECT]
            await self._finalize(db_session, session)
            session.review_reason = None
            session.pricing_error = None
            session.price_after = None
            session.pricing_state = PricingState.PENDING
            session.last_updated = now
            return session

    # -- meter values and energy ----------------------------------------------------------------------------

    async def _add_samples(
        self, db_session: AsyncSession, session: ChargingSession, samples: Iterable[Sample]
    ) -> int:
        """Store the samples of ``session`` (replays add nothing); the number of new rows."""
        rows = sample_rows(session.id, samples)
        if not rows:
            return 0
        insert = insert_ignoring_duplicates(self.db, MeterValue).returning(MeterValue.session_id)
        return len((await db_session.execute(insert, rows)).all())

    async def _finalize(self, db_session: AsyncSession, session: ChargingSession) -> None:
        """Recompute the ended session's energy, meter stop, energy flags and signed data from its stored
        register readings: the phase-less register, else the sum of a complete set of phase registers
        (:func:`kernel.meter_reading.overall`, the same readings rating's series is made of)."""
        rows = await self._register_rows(db_session, session)
        readings = overall_readings(rows)
        _plain, signed = register_readings(
            [RegisterRow(r.timestamp, r.value, r.unit, r.context, r.signed_data) for r in rows if not r.phase]
        )
        explicit_stop = None if METER_STOP_MISSING in (session.flags or []) else session.meter_stop_wh
        energy, meter_stop, flags = session_energy(
            session.meter_start_wh, session.start_time, explicit_stop, session.end_time, readings
        )
        kept = [f for f in (session.flags or []) if f not in ENERGY_FLAGS]
        session.flags = kept + flags
        session.meter_stop_wh = meter_stop
        session.energy_wh = energy
        if signed:
            session.signed_meter_data = signed
        session.last_updated = utcnow()


def _inputs(session: ChargingSession) -> tuple[Any, ...]:
    """What pricing reads of a session row: a change of any after it was priced means a new price."""
    return (
        session.start_time,
        session.end_time,
        session.meter_start_wh,
        session.meter_stop_wh,
        session.energy_wh,
        session.evse_pk,
    )


def _note_sequence(
    session: ChargingSession, seq_no: int | None, earlier: tuple[int, ...], offline: bool
) -> None:
    """Keep the 2.0.1 seqNos seen for the transaction (``data["seq_nos"]``, sorted) and whether any of its
    events happened while the charger was offline (``data["offline"]``)."""
    seen = set((session.data or {}).get("seq_nos", ()))
    new = seen | set(earlier) | ({seq_no} if seq_no is not None else set())
    data = dict(session.data or {})
    if new != seen:
        data["seq_nos"] = sorted(new)
    if offline:
        data["offline"] = True
    if data != (session.data or {}):
        session.data = data


def sequence_gap(session: ChargingSession) -> bool:
    """True when the transaction's seqNos seen so far miss a number between the lowest and the highest
    (OCPP 2.0.1 TransactionEventRequest.seqNo: "Incremental sequence number, helps with determining if all
    messages of a transaction have been received")."""
    seen = (session.data or {}).get("seq_nos") or []
    return bool(seen) and len(seen) < max(seen) - min(seen) + 1


def _may_be_incomplete(cp: ChargerRef, session: ChargingSession) -> bool:
    """A 2.0.1 session that ended while some of its messages may still be on their way: its start was never
    seen, or its seqNos have a gap. (A 1.6 StartTransaction that never arrived cannot come later under the
    same transaction id, which the central system assigns: waiting would change nothing.)"""
    if cp.ocpp_version.startswith("1.6"):
        return False
    return UNKNOWN_TRANSACTION in (session.flags or []) or sequence_gap(session)


def _superseded_awaiting_stop(session: ChargingSession) -> bool:
    """A session closed by a later start on its connector that is still held for that reason."""
    return (
        SUPERSEDED_BY_NEW_START in (session.flags or [])
        and session.pricing_state == PricingState.HELD
        and session.end_time is not None
    )


def _reopen(session: ChargingSession) -> None:
    """Undo :meth:`SessionStore._supersede_older`, so the stop that finally arrived ends the session."""
    session.end_time = None
    session.status = SessionStatus.ACTIVE
    session.meter_stop_wh = None
    session.flags = [f for f in session.flags if f != SUPERSEDED_BY_NEW_START and f not in ENERGY_FLAGS]
    session.pricing_state = PricingState.NOT_READY
    session.review_reason = None


def _open_for_data(session: ChargingSession) -> bool:
    """An ended session late data still changes: pricing has not taken it, or the gateway failed it for want of
    that data."""
    if session.pricing_state == PricingState.PENDING:
        return True
    return session.pricing_state == PricingState.FAILED and (session.pricing_error or "").startswith(
        NOT_PRICEABLE
    )


async def _record_holder(db_session: AsyncSession, session: ChargingSession) -> None:
    """Record on ``session`` the fleet, driver and vehicle of its token as they are now, once: when the gateway
    first knows the session's token (at its start, normally). Its CDRs are billed to them, not to wherever the
    token has moved by the time the session is priced (:func:`tariffs.cdr_builder.holder_for`)."""
    if session.holder_recorded or session.token_id is None:
        return
    token = await db_session.get(Token, session.token_id)
    if token is None:
        return
    for column, value in recorded_holder(token_holder(token)).items():
        setattr(session, column, value)


def _apply_start(
    session: ChargingSession, ev: SessionStarted, auth: AuthResult | None, created: bool
) -> None:
    """Fill in what a start event knows and the session does not yet (earlier start, meter start, id tag,
    token, remote start id, reservation id); a changed existing session gets a new ``last_updated``."""
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
    if session.meter_public_key is None and ev.meter_public_key:
        session.meter_public_key = ev.meter_public_key  # not in the OCPI session: last_updated stays
    if session.token_id is None and auth is not None and auth.token_id is not None:
        session.token_id = auth.token_id
        changed = True
    if ev.remote_start_id is not None and "remote_start_id" not in (session.data or {}):
        session.data = {**(session.data or {}), "remote_start_id": ev.remote_start_id}
        changed = True
    if ev.reservation_id is not None and "reservation_id" not in (session.data or {}):
        session.data = {**(session.data or {}), "reservation_id": ev.reservation_id}  # 2.0.1 (T7)
        changed = True
    if changed and not created:
        session.last_updated = utcnow()
