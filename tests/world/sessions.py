"""Charging sessions as the gateway would have stored them: ended, with a meter value a minute and waiting to be
priced (:func:`seed_ended_session`), or still open (:func:`seed_session`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy import select

from kernel.db.engine import Database
from kernel.models import (
    EVSE,
    ChargePoint,
    ChargingSession,
    Connector,
    Location,
    MeterValue,
    OcppVersion,
    PricingState,
    Token,
)
from tests.world.sites import T0


async def seed_ended_session(
    db: Database,
    evse_uid: str,
    start: datetime,
    minutes: int,
    kwh: str,
    *,
    uid: str = "sess-1",
    charge_minutes: int | None = None,
    token_uid: str | None = None,
) -> int:
    """An ended session at ``evse_uid`` from ``start`` for ``minutes``, ``kwh`` charged linearly over the first
    ``charge_minutes`` (default: all of them) then idle (parking), with a meter value per minute; pending pricing.

    The charger is ``CP-{evse_uid}`` (created when the network has none). ``token_uid`` names the token that
    charged, which is also the id tag the charger saw; without it the session is the network's first token's and
    records no id tag. Returns the session's pk."""
    charge_minutes = charge_minutes or minutes
    async with db.session() as s:
        evse = await s.scalar(select(EVSE).where(EVSE.uid == evse_uid))
        assert evse is not None, f"no EVSE {evse_uid}"
        loc = await s.get(Location, evse.location_id)
        assert loc is not None
        connector = await s.scalar(select(Connector).where(Connector.evse_pk == evse.id))
        assert connector is not None, f"EVSE {evse_uid} has no connector"
        cp = await s.scalar(select(ChargePoint).where(ChargePoint.identity == f"CP-{evse_uid}"))
        if cp is None:
            cp = ChargePoint(
                identity=f"CP-{evse_uid}", ocpp_version=OcppVersion.V16, cpo_id=loc.cpo_id, location_id=loc.id
            )
            s.add(cp)
            await s.flush()
        if token_uid is None:
            token_id = (await s.scalars(select(Token.id).order_by(Token.id))).first()
        else:
            token_id = await s.scalar(select(Token.id).where(Token.uid == token_uid))
            assert token_id is not None, f"no token {token_uid}"
        end = start + timedelta(minutes=minutes)
        total_wh = Decimal(kwh) * 1000
        session = ChargingSession(
            session_uid=uid,
            charge_point_id=cp.id,
            transaction_id=uid,
            cpo_id=loc.cpo_id,
            location_id=loc.id,
            evse_pk=evse.id,
            connector_pk=connector.id,
            token_id=token_id,
            id_tag=token_uid,
            start_time=start,
            end_time=end,
            meter_start_wh=Decimal(1000),
            meter_stop_wh=Decimal(1000) + total_wh,
            energy_wh=total_wh,
            status="COMPLETED",
            pricing_state=PricingState.PENDING,
            last_updated=end,
        )
        s.add(session)
        await s.flush()
        for minute in range(minutes + 1):
            done = min(minute, charge_minutes)
            s.add(
                MeterValue(
                    session_id=session.id,
                    timestamp=start + timedelta(minutes=minute),
                    value=Decimal(1000) + total_wh * done / charge_minutes,
                )
            )
        return session.id


async def seed_session(
    db: Database, cpo_id: int, cp_id: int, location_id: int, token: Token, uid: str, *, tx: str = "1"
) -> int:
    """An open EUR session of ``token`` at the location's first EVSE, started at :data:`T0` with nothing
    charged yet; returns its pk."""
    async with db.session() as s:
        loc = await s.get(Location, location_id)
        evse = await s.scalar(select(EVSE).where(EVSE.location_id == location_id).order_by(EVSE.id))
        assert loc is not None and evse is not None
        cs = ChargingSession(
            session_uid=uid,
            charge_point_id=cp_id,
            transaction_id=tx,
            cpo_id=cpo_id,
            location_id=location_id,
            evse_pk=evse.id,
            token_id=token.id,
            id_tag=token.uid,
            start_time=T0,
            meter_start_wh=Decimal(1000),
            energy_wh=Decimal(0),
            currency="EUR",
            last_updated=T0,
        )
        s.add(cs)
        await s.flush()
        return cs.id
