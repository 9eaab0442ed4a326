"""A hand-made CDR, as a CPO's back office would have sent it: fixed totals (11.5 kWh, 1 h, 4.03 / 4.80 EUR)
for a session of :mod:`tests.world.sessions`, not priced by the engine."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from kernel.db.engine import Database
from kernel.models import Cdr, ChargingSession
from tests.world.sites import T0


async def seed_cdr(db: Database, session_pk: int, cpo_id: int, emsp_id: int | None, cdr_uid: str) -> int:
    """The CDR ``cdr_uid`` of the session, from :data:`T0` for an hour; returns its pk."""
    async with db.session() as s:
        cs = await s.get(ChargingSession, session_pk)
        assert cs is not None
        end = T0 + timedelta(hours=1)
        cdr = Cdr(
            cdr_uid=cdr_uid,
            session_id=session_pk,
            cpo_id=cpo_id,
            emsp_id=emsp_id,
            location_id=cs.location_id,
            token_id=cs.token_id,
            currency="EUR",
            start_date_time=T0,
            end_date_time=end,
            total_energy_kwh=Decimal("11.5"),
            total_time_hours=Decimal("1"),
            total_cost_excl_vat=Decimal("4.03"),
            total_cost_incl_vat=Decimal("4.80"),
            data={
                "country_code": "NL",
                "party_id": "CPO",
                "id": cdr_uid,
                "start_date_time": "2026-03-01T08:00:00Z",
                "end_date_time": "2026-03-01T09:00:00Z",
                "session_id": cs.session_uid,
                "currency": "EUR",
                "total_cost": {"excl_vat": 4.03, "incl_vat": 4.80},
                "total_energy": 11.5,
                "total_time": 1.0,
                "last_updated": "2026-03-01T09:00:00Z",
            },
            last_updated=end,
        )
        s.add(cdr)
        await s.flush()
        return cdr.id
