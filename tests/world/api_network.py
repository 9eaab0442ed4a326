"""The back-office API's world: the demo's two CPOs (AmsterPower, London Charge Co) with their locations and
tariffs, the eMSP Roam with three tokens, a charger per CPO, one ended session per CPO priced by the real
engine into a CDR, and three API keys (the hub operator's and each CPO's back office)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select

from evhub import provisioning as prov
from kernel.apiauth import create_key
from kernel.db.engine import Database
from kernel.models import Cdr, ChargingSession, Party
from tariffs.rating import rate_pending
from tests.world.demo_network import seed_demo_network, seed_tokens
from tests.world.sessions import seed_ended_session

START = datetime(2026, 11, 10, 21, 30, tzinfo=UTC)
"""When both sessions start."""


@dataclass(frozen=True)
class ApiNetwork:
    keys: dict[str, str]  # "hub", "amp" (AmsterPower's back office), "ldn"
    sessions: dict[str, str]  # CPO -> session uid
    cdrs: dict[str, str]  # CPO -> uid of its session's CDR


async def seed_api_network(db: Database) -> ApiNetwork:
    network = await seed_demo_network(db, grid_zones=False)
    await seed_tokens(db, "TOKEN-AMS", "TOKEN-LDN", "TOKEN-IDLE")
    async with db.session() as s:
        await prov.add_charger(
            s, "CP-AMS-01-1", password="long-enough", location="AMS-CENTRAAL", evse_uids=["AMS-01-1"]
        )
        await prov.add_charger(
            s, "CP-LDN-01-1", password="long-enough", location="LDN-KINGSX", evse_uids=["LDN-01-1"]
        )
        keys = {
            "hub": await create_key(s, "ops", None),
            "amp": await create_key(s, "amp-backoffice", await s.get(Party, network.parties["NL*AMP"])),
            "ldn": await create_key(s, "ldn-backoffice", await s.get(Party, network.parties["GB*LDN"])),
        }
    await seed_ended_session(db, "AMS-01-1", START, 60, "10", uid="sess-ams", token_uid="TOKEN-AMS")
    await seed_ended_session(db, "LDN-01-1", START, 30, "5", uid="sess-ldn", token_uid="TOKEN-LDN")
    assert await rate_pending(db, ()) == 2
    sessions = {"amp": "sess-ams", "ldn": "sess-ldn"}
    async with db.session() as s:
        cdrs = {
            cpo: (
                await s.scalars(
                    select(Cdr.cdr_uid)
                    .join(ChargingSession, ChargingSession.id == Cdr.session_id)
                    .where(ChargingSession.session_uid == uid)
                )
            ).one()
            for cpo, uid in sessions.items()
        }
    return ApiNetwork(keys=keys, sessions=sessions, cdrs=cdrs)
