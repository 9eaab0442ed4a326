"""The world the OCPI push tests share (tests/ocpi/test_push.py, test_issue13_outbox.py, test_v211_push.py,
test_v211_e2e.py): a CPO with a location, a charger and a registered eMSP simulator holding a card
(:func:`seed_push_world`); a meter reading that moves a session on and queues its PATCH (:func:`meter`); a
charger the gateway's session store drives, with a DEFAULT tariff of the CPO (:func:`seed_priced_charger`); a
version of the CPO's dynamic tariff DYN (:func:`dyn_tariff_version`), stored and queued (:func:`queue_dyn_tariff`)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from cpo_gateway.events import ChargerRef
from cpo_gateway.session_store import SessionStore
from evhub import provisioning as prov
from kernel.db.engine import Database
from kernel.models import EVSE, ChargingSession, MeterValue, TariffVersion, Token
from ocpi.push.session_push import enqueue_session_update
from ocpi.push.tariff_push import enqueue_tariff
from simulators.emsp import EmspSimulator
from tests.ocpi._helpers import connect, seed_site, token_pk
from tests.world.sites import T0, seed_charge_point

if TYPE_CHECKING:
    from tests.ocpi.conftest import RunningHub

ENERGY_030 = [{"price_components": [{"type": "ENERGY", "price": 0.30, "step_size": 1}]}]
"""The elements of a DEFAULT tariff of 0.30 per kWh."""


async def seed_push_world(hub: RunningHub, sim: EmspSimulator) -> tuple[int, int, int, int, Token]:
    """A CPO, its location LOC1 and a charger, ``sim`` registered, its card CARD-1 pushed and stored:
    (cpo, location, charge point, partner id, token)."""
    cpo, loc, cp = await seed_site(hub.db)
    partner_id = await connect(hub, sim)
    await sim.push_token(sim.make_token("CARD-1"))
    token = await token_pk(hub.db, "CARD-1")
    return cpo, loc, cp, partner_id, token


async def meter(db: Database, session_pk: int, minutes: int, wh: int) -> None:
    """A reading of ``wh`` at T0 + ``minutes`` on the session: its energy and last_updated move, its PATCH is
    queued."""
    async with db.session() as s:
        s.add(MeterValue(session_id=session_pk, timestamp=T0 + timedelta(minutes=minutes), value=Decimal(wh)))
        cs = await s.get(ChargingSession, session_pk)
        assert cs is not None
        cs.energy_wh = Decimal(wh) - (cs.meter_start_wh or 0)
        cs.last_updated = T0 + timedelta(minutes=minutes)
        await enqueue_session_update(cs, s)


async def seed_priced_charger(
    hub: RunningHub, cpo: int, loc: int, name: str, elements: list[dict[str, Any]] = ENERGY_030
) -> tuple[SessionStore, ChargerRef]:
    """A 1.6 charger ``name`` at ``loc`` (its EVSEs numbered 1.. in id order) and the CPO's (NL*CPO) DEFAULT
    tariff of ``elements``: the gateway's session store and the charger's reference."""
    cp = await seed_charge_point(hub.db, cpo, loc, name)
    async with hub.db.session() as s:
        evses = (await s.scalars(select(EVSE).where(EVSE.location_id == loc).order_by(EVSE.id))).all()
        await prov.import_tariff(
            s,
            {
                "country_code": "NL",
                "party_id": "CPO",
                "id": "DEFAULT",
                "currency": "EUR",
                "elements": elements,
                "last_updated": "2026-01-01T00:00:00Z",
            },
        )
    evse_map = {n: e.id for n, e in enumerate(evses, start=1)}
    return SessionStore(hub.db, hub.hooks), ChargerRef(cp, name, cpo, loc, "1.6", "Accepted", evse_map)


def dyn_tariff_version(
    cpo: int, version: int, price: float, stamped: str = "2026-03-01T08:00:00Z"
) -> TariffVersion:
    """Version ``version`` of the CPO's grid-priced tariff DYN: ``price`` per kWh, its OCPI ``last_updated``
    ``stamped``, stored at T0 + ``version`` minutes."""
    return TariffVersion(
        cpo_id=cpo,
        tariff_id="DYN",
        version=version,
        currency="EUR",
        source="grid",
        data={
            "id": "DYN",
            "currency": "EUR",
            "elements": [{"price_components": [{"type": "ENERGY", "price": price, "step_size": 1}]}],
            "last_updated": stamped,
        },
        last_updated=T0 + timedelta(minutes=version),
    )


async def queue_dyn_tariff(db: Database, cpo: int, version: int, price: float) -> None:
    """:func:`dyn_tariff_version` stored, and its push queued to the one partner that may see it."""
    async with db.session() as s:
        tv = dyn_tariff_version(cpo, version, price)
        s.add(tv)
        await s.flush()
        assert await enqueue_tariff(tv, s) == 1
