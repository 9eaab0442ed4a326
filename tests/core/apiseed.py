"""A small network for the API tests: two CPOs (the demo's AmsterPower and London Charge Co, with the demo
locations and tariffs shipped in evhub/demo_data), one eMSP with two tokens, a charger per CPO, one ended
session per CPO with a meter value a minute, priced by the real engine into CDRs, and three API keys."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from evhub import provisioning as prov
from kernel.apiauth import create_key
from kernel.db.engine import Database
from kernel.models import (
    EVSE,
    Cdr,
    ChargePoint,
    ChargingSession,
    Connector,
    Location,
    MeterValue,
    PricingState,
)
from tariffs.rating import rate_pending

DEMO = Path(__file__).resolve().parents[2] / "evhub" / "demo_data"
START = datetime(2026, 11, 10, 21, 30, tzinfo=UTC)


@dataclass(frozen=True)
class Network:
    keys: dict[str, str]  # "hub", "amp" (AmsterPower's back office), "ldn"
    sessions: dict[str, str]  # CPO -> session uid
    cdrs: dict[str, str]  # CPO -> uid of its session's CDR


async def _ended_session(
    db: Database, evse_uid: str, token_uid: str, uid: str, minutes: int, kwh: str
) -> None:
    async with db.session() as s:
        evse = await s.scalar(select(EVSE).where(EVSE.uid == evse_uid))
        loc = await s.get(Location, evse.location_id)
        connector = await s.scalar(select(Connector).where(Connector.evse_pk == evse.id))
        cp = await s.scalar(select(ChargePoint).where(ChargePoint.identity == f"CP-{evse_uid}"))
        token = await s.scalar(select(prov.Token).where(prov.Token.uid == token_uid))
        end = START + timedelta(minutes=minutes)
        total_wh = Decimal(kwh) * 1000
        session = ChargingSession(
            session_uid=uid,
            charge_point_id=cp.id,
            transaction_id=uid,
            cpo_id=loc.cpo_id,
            location_id=loc.id,
            evse_pk=evse.id,
            connector_pk=connector.id,
            token_id=token.id,
            id_tag=token_uid,
            start_time=START,
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
            s.add(
                MeterValue(
                    session_id=session.id,
                    timestamp=START + timedelta(minutes=minute),
                    value=Decimal(1000) + total_wh * minute / minutes,
                )
            )


async def seed(db: Database) -> Network:
    async with db.session() as s:
        amp = await prov.add_party(s, "NL", "AMP", "CPO", "AmsterPower")
        ldn = await prov.add_party(s, "GB", "LDN", "CPO", "London Charge Co")
        await prov.add_party(s, "NL", "EMS", "EMSP", "Roam")
        for loc in json.loads((DEMO / "locations.json").read_text()):
            await prov.import_location(s, loc)
        for tariff in json.loads((DEMO / "tariffs.json").read_text()):
            await prov.import_tariff(s, tariff)
        for uid in ("TOKEN-AMS", "TOKEN-LDN", "TOKEN-IDLE"):
            await prov.add_token(s, prov.TokenSpec(uid=uid, issuer_party="NL*EMS"))
        await prov.add_charger(
            s, "CP-AMS-01-1", password="long-enough", location="AMS-CENTRAAL", evse_uids=["AMS-01-1"]
        )
        await prov.add_charger(
            s, "CP-LDN-01-1", password="long-enough", location="LDN-KINGSX", evse_uids=["LDN-01-1"]
        )
        keys = {
            "hub": await create_key(s, "ops", None),
            "amp": await create_key(s, "amp-backoffice", amp),
            "ldn": await create_key(s, "ldn-backoffice", ldn),
        }
    await _ended_session(db, "AMS-01-1", "TOKEN-AMS", "sess-ams", 60, "10")
    await _ended_session(db, "LDN-01-1", "TOKEN-LDN", "sess-ldn", 30, "5")
    assert await rate_pending(db) == 2
    sessions = {"amp": "sess-ams", "ldn": "sess-ldn"}
    async with db.session() as s:
        cdrs = {
            cpo: await s.scalar(
                select(Cdr.cdr_uid)
                .join(ChargingSession, ChargingSession.id == Cdr.session_id)
                .where(ChargingSession.session_uid == uid)
            )
            for cpo, uid in sessions.items()
        }
    return Network(keys=keys, sessions=sessions, cdrs=cdrs)
