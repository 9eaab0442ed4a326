"""What chargers report about themselves, stored: identity and EVSE map, presence, boot data, EVSE status, and
meter values sampled outside a transaction. (Charging sessions are :mod:`cpo_gateway.session_store`'s.)

Every method runs in a transaction of its own and commits before it returns, so the caller answers the
charger only after the data is durable.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, String, any_, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY

from cpo_gateway.events import Boot, ChargerRef, Sample, StatusChanged
from cpo_gateway.hook_runner import run_hooks
from cpo_gateway.idempotent_insert import insert_ignoring_duplicates, rows_written
from cpo_gateway.meter_rules import merged_rows
from kernel.coalesce import Coalescer
from kernel.db.engine import Database
from kernel.models import EVSE, ChargePoint, ChargePointEvse, ChargerMeterValue
from kernel.seams import Hooks
from kernel.timeutil import utcnow

BOOT_PENDING_RETRY = (5, 15)
"""A BootNotification answered Pending because too many boots already wait to be stored is asked to boot again
after a random interval in this range (seconds): a storm's boots come back spread instead of timing out."""

SQLITE_IDS_PER_STATEMENT = 500
"""SQLite has no array parameters: ``touch`` matches the ids in chunks of this many (below its variable limit)."""


@dataclass(frozen=True, slots=True)
class ChargerAuth:
    """What the upgrade checks of a charger: its security profile and stored password hash."""

    security_profile: int
    password_hash: str | None


class ChargerStore:
    """The chargers' own rows. One instance per gateway process, named ``node_name`` in ``connected_node``."""

    def __init__(self, db: Database, node_name: str = "", hooks: Hooks | None = None) -> None:
        """``hooks.evse_status`` runs in the transaction that changed an EVSE's status."""
        self.db = db
        self.node_name = node_name
        self.hooks = hooks if hooks is not None else Hooks()
        self._boots: Coalescer[tuple[ChargerRef, Boot], str] = Coalescer(self.record_boots)
        self.max_booting = 1000
        """BootNotifications that may wait to be stored before the next one is answered Pending."""

    async def boot(self, cp: ChargerRef, boot: Boot) -> tuple[str, int | None]:
        """A BootNotification: its data stored (coalesced with a storm's other boots, see
        :meth:`record_boots`); the registration status to answer and, when that is Pending because
        :attr:`max_booting` boots already wait (admission control: nothing stored, the charger may only boot
        again), the interval to ask for (None: the caller's usual one)."""
        if self._boots.backlog >= self.max_booting:
            cp.registration_status = "Pending"
            return "Pending", random.randint(*BOOT_PENDING_RETRY)
        return await self._boots.submit((cp, boot)), None

    async def load_charger(self, identity: str) -> tuple[ChargePoint, ChargerRef] | None:
        """The charger row and the gateway's reference to it (with its EVSE map); None for an unknown one."""
        async with self.db.session() as db_session:
            cp = await db_session.scalar(select(ChargePoint).where(ChargePoint.identity == identity))
            if cp is None:
                return None
            rows = (
                await db_session.execute(
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

    def _matching(self, column: Any, values: Sequence[Any], kind: Any) -> list[ColumnElement[bool]]:
        """``column`` among ``values``: one array parameter on PostgreSQL, chunks of IN on SQLite."""
        if self.db.is_sqlite:
            step = SQLITE_IDS_PER_STATEMENT
            return [column.in_(values[i : i + step]) for i in range(0, len(values), step)]
        return [column == any_(bindparam("values", list(values), type_=ARRAY(kind)))]

    async def load_chargers(self, identities: Sequence[str]) -> list[tuple[ChargerAuth, ChargerRef] | None]:
        """:meth:`load_charger` for many identities in one transaction (a reconnect storm's upgrades,
        coalesced): each identity's auth data and reference, None for an unknown one, in the given order."""
        wanted = list(dict.fromkeys(identities))
        cp = ChargePoint
        found: dict[str, tuple[ChargerAuth, ChargerRef]] = {}
        async with self.db.session() as db_session:
            by_id: dict[int, ChargerRef] = {}
            for match in self._matching(cp.identity, wanted, String):
                rows = await db_session.execute(
                    select(
                        cp.id, cp.identity, cp.cpo_id, cp.location_id, cp.ocpp_version,
                        cp.registration_status, cp.security_profile, cp.password_hash,
                    ).where(match)
                )  # fmt: skip
                for row in rows:
                    ref = ChargerRef(
                        id=row.id,
                        identity=row.identity,
                        cpo_id=row.cpo_id,
                        location_id=row.location_id,
                        ocpp_version=str(row.ocpp_version),
                        registration_status=str(row.registration_status),
                        evse_map={},
                    )
                    by_id[row.id] = ref
                    found[row.identity] = (ChargerAuth(row.security_profile, row.password_hash), ref)
            ids = list(by_id)
            for match in self._matching(ChargePointEvse.charge_point_id, ids, BigInteger) if ids else []:
                evses = await db_session.execute(
                    select(
                        ChargePointEvse.charge_point_id, ChargePointEvse.ocpp_evse_id, ChargePointEvse.evse_pk
                    ).where(match)
                )
                for owner, ocpp_evse_id, evse_pk in evses:
                    by_id[owner].evse_map[int(ocpp_evse_id)] = int(evse_pk)
        return [found.get(identity) for identity in identities]

    async def set_connections(self, refs: Sequence[ChargerRef], online: bool) -> None:
        """These chargers connected to this process, or their connections here closed (a newer connection to
        another process is left alone), in one transaction (coalesced by the gateway)."""
        if not refs:
            return
        ids = list(dict.fromkeys(ref.id for ref in refs))
        now = utcnow()
        async with self.db.session() as db_session:
            for match in self._matching(ChargePoint.id, ids, BigInteger):
                stmt = update(ChargePoint).where(match)
                if online:
                    stmt = stmt.values(status="online", connected_node=self.node_name, last_seen=now)
                else:
                    stmt = stmt.where(ChargePoint.connected_node == self.node_name).values(
                        status="offline", connected_node=None
                    )
                await db_session.execute(stmt)

    async def record_boots(self, boots: Sequence[tuple[ChargerRef, Boot]]) -> list[str]:
        """The chargers' BootNotification identity data stored in one transaction (coalesced by the gateway): one
        executemany UPDATE, then each charger's registration status as stored, in the given order."""
        if not boots:
            return []
        now = utcnow()
        params = [
            {
                "b_id": ref.id,
                "b_vendor": boot.vendor[:50],
                "b_model": boot.model[:50],
                "b_serial": boot.serial_number[:50] if boot.serial_number else None,
                "b_firmware": boot.firmware_version[:50] if boot.firmware_version else None,
                "b_now": now,
            }
            for ref, boot in boots
        ]
        cp = ChargePoint
        stmt = (
            update(cp.__table__)  # type: ignore[arg-type]
            .where(cp.__table__.c.id == bindparam("b_id"))
            .values(
                vendor=bindparam("b_vendor"),
                model=bindparam("b_model"),
                serial_number=func.coalesce(
                    bindparam("b_serial", type_=String), cp.__table__.c.serial_number
                ),
                firmware_version=func.coalesce(
                    bindparam("b_firmware", type_=String), cp.__table__.c.firmware_version
                ),
                last_seen=bindparam("b_now", type_=cp.__table__.c.last_seen.type),
            )
        )
        ids = list(dict.fromkeys(ref.id for ref, _ in boots))
        statuses: dict[int, str] = {}
        async with self.db.session() as db_session:
            await db_session.execute(stmt, params)
            for match in self._matching(cp.id, ids, BigInteger):
                for row_id, status in await db_session.execute(
                    select(cp.id, cp.registration_status).where(match)
                ):
                    statuses[row_id] = str(status)
        answers = []
        for ref, _ in boots:
            ref.registration_status = statuses.get(ref.id, ref.registration_status)
            answers.append(ref.registration_status)
        return answers

    async def touch(self, charger_ids: list[int]) -> None:
        """Record that these chargers were heard from (batched by the liveness sweeper)."""
        if not charger_ids:
            return
        now = utcnow()
        async with self.db.session() as db_session:
            # one array parameter on PostgreSQL: IN with 10,000 ids would render and encode 10,000 parameters in
            # the event loop every sweep, which stalled every charger's answers for a moment
            matches = self._matching(ChargePoint.id, charger_ids, BigInteger)
            for match in matches:
                await db_session.execute(
                    update(ChargePoint)
                    .where(match, ChargePoint.connected_node == self.node_name)
                    .values(last_seen=now, status="online")
                )

    async def mark_stale_offline(self, seconds: float) -> None:
        """Chargers whose process stopped hearing from them (or died) for ``seconds`` are offline."""
        cutoff = utcnow() - timedelta(seconds=seconds)
        async with self.db.session() as db_session:
            await db_session.execute(
                update(ChargePoint)
                .where(ChargePoint.status == "online", ChargePoint.last_seen < cutoff)
                .values(status="offline", connected_node=None)
            )

    async def record_status(self, cp: ChargerRef, ev: StatusChanged) -> None:
        """The OCPI status of the EVSE (EVSE 0: all of them, when inoperative or out of order), unless a newer
        one is stored; ``hooks.evse_status`` runs for each EVSE that changed."""
        if ev.ocpi_status is None:
            return
        if ev.evse_id == 0:
            targets = list(cp.evse_map.values()) if ev.ocpi_status in ("INOPERATIVE", "OUTOFORDER") else []
        else:
            pk = cp.evse_map.get(ev.evse_id)
            targets = [pk] if pk is not None else []
        if not targets:
            return
        async with self.db.session() as db_session:
            result = await db_session.execute(
                update(EVSE)
                .where(EVSE.id.in_(targets), EVSE.last_updated <= ev.timestamp)
                .values(status=ev.ocpi_status, last_updated=ev.timestamp)
            )
            if rows_written(result) and self.hooks.evse_status:
                for evse in (await db_session.scalars(select(EVSE).where(EVSE.id.in_(targets)))).all():
                    await run_hooks(db_session, "evse_status", self.hooks.evse_status, evse)

    async def charger_meter_values(self, cp: ChargerRef, evse_id: int, samples: Iterable[Sample]) -> int:
        """Store samples reported outside a transaction (per EVSE, 0 = the whole charger); idempotent.
        Returns the number of new rows."""
        base = {
            "charge_point_id": cp.id,
            "ocpp_evse_id": evse_id,
            "evse_pk": cp.evse_map.get(evse_id),
            "received_at": utcnow(),
        }
        rows = merged_rows(base, samples)
        if not rows:
            return 0
        async with self.db.session() as db_session:
            result = await db_session.execute(insert_ignoring_duplicates(self.db, ChargerMeterValue), rows)
            return rows_written(result)
