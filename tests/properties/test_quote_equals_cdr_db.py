"""Property d, DB level (issue 12, item 6): the quote the API gives for a location is the CDR rating makes.

A generated tariff is stored as a new tariff id on one connector of the demo network; ``POST
/api/tariffs/quote`` (over real HTTP, the location and EVSE named) quotes a plan (constant power P for D minutes,
then K minutes parked); the same session is stored with a linear meter series at power P and rated. The quote's
total and the CDR's are the same, excl. and incl. VAT (one selection of tariff versions, one engine path).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from hypothesis import HealthCheck, event, given
from hypothesis import strategies as st
from sqlalchemy import select

from evhub import provisioning as prov
from evhub.app import RunningHub
from kernel.clock import pinned
from kernel.db.engine import Database
from kernel.models import (
    EVSE,
    Cdr,
    ChargePoint,
    ChargingSession,
    Connector,
    Location,
    MeterValue,
    OcppVersion,
    Party,
    PricingState,
    Token,
)
from kernel.settings import load_settings
from tariffs.component import PricingComponent
from tariffs.core.tariff_document import Tariff
from tariffs.rating import rate_session
from tests.world.demo_network import seed_pricing_network

from .strategies import budget, start_instants, tariff_json, tariffs_any, to_json

D = Decimal
EVSE_UID = "AMS-01-1"
_ids = itertools.count(1)


@pytest.fixture
async def priced_hub(db: Database) -> AsyncIterator[tuple[RunningHub, str]]:
    """The demo network and a running hub (HTTP API) over it; the location id of :data:`EVSE_UID`."""
    await seed_pricing_network(db)
    async with db.session() as s:
        evse = await s.scalar(select(EVSE).where(EVSE.uid == EVSE_UID))
        assert evse is not None
        loc = await s.get(Location, evse.location_id)
        assert loc is not None
        connector = await s.scalar(select(Connector).where(Connector.evse_pk == evse.id))
        assert connector is not None
        connector.max_electric_power = 50_000  # W: the plans charge at up to 49.8 kW
        location_id = loc.ocpi_id
    settings = load_settings(database_url=db.url, http_host="127.0.0.1", http_port=0, _env_file=None)
    hub = RunningHub(settings, components=[PricingComponent(interval=3600)])
    await hub.start()
    try:
        yield hub, location_id
    finally:
        await hub.stop()


async def _store_session(
    db: Database, tariff: Tariff, start: datetime, power_w: int, minutes: int, parked: int
) -> int:
    """``tariff`` as a new tariff id on the connector, and the ended session metered linearly at ``power_w``."""
    n = next(_ids)
    end = start + timedelta(minutes=minutes + parked)
    async with db.session() as s:
        evse = await s.scalar(select(EVSE).where(EVSE.uid == EVSE_UID))
        assert evse is not None
        loc = await s.get(Location, evse.location_id)
        connector = await s.scalar(select(Connector).where(Connector.evse_pk == evse.id))
        assert loc is not None and connector is not None
        cpo = await s.get(Party, loc.cpo_id)
        assert cpo is not None
        body = tariff_json(tariff)
        body.update(country_code=cpo.country_code, party_id=cpo.party_id, id=f"PROP-Q{n}")
        await prov.import_tariff(s, to_json(body))
        connector.tariff_ids = [f"PROP-Q{n}"]
        cp = await s.scalar(select(ChargePoint).where(ChargePoint.identity == "CP-PROPQ"))
        if cp is None:
            cp = ChargePoint(
                identity="CP-PROPQ", ocpp_version=OcppVersion.V16, cpo_id=loc.cpo_id, location_id=loc.id
            )
            s.add(cp)
            await s.flush()
        token_id = await s.scalar(select(Token.id).order_by(Token.id))
        energy = D(power_w) * minutes / 60
        session = ChargingSession(
            session_uid=f"propq-{n}",
            charge_point_id=cp.id,
            transaction_id=f"Q{n}",
            cpo_id=loc.cpo_id,
            location_id=loc.id,
            evse_pk=evse.id,
            connector_pk=connector.id,
            token_id=token_id,
            start_time=start,
            end_time=end,
            meter_start_wh=D(0),
            meter_stop_wh=energy,
            energy_wh=energy,
            status="COMPLETED",
            pricing_state=PricingState.PENDING,
            last_updated=end,
        )
        s.add(session)
        await s.flush()
        for m in range(minutes + parked + 1):
            at = start + timedelta(minutes=m)
            charging = m < minutes
            s.add(MeterValue(session_id=session.id, timestamp=at, value=D(power_w) * min(m, minutes) / 60))
            s.add(
                MeterValue(
                    session_id=session.id,
                    timestamp=at,
                    measurand="Power.Active.Import",
                    unit="W",
                    value=D(power_w) if charging else D(0),
                )
            )
        return session.id


@budget(15, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    tariffs_any(),
    start_instants(),
    st.integers(1, 830).map(lambda k: k * 60),
    st.integers(1, 300),
    st.sampled_from([0, 0, 5, 30, 95]),
)
async def test_api_quote_equals_the_rated_cdr(
    priced_hub: tuple[RunningHub, str],
    db: Database,
    tariff: Tariff,
    start: datetime,
    power_w: int,
    minutes: int,
    parked: int,
) -> None:
    """Issue 12 item 6d (T2, T3, T8), DB level: for a location, ``POST /api/tariffs/quote`` (P, D, K) answers the
    total of the CDR that rating makes of the same session metered at power P (excl. and incl. VAT); when the
    quote refuses (no version valid) the session fails too. (The hub's one gateway-free running process is
    shared by the examples: each uses a tariff id and a session of its own.)"""
    hub, location_id = priced_hub
    start = start.replace(microsecond=0)  # the API reads the planned start to the second
    sid = await _store_session(db, tariff, start, power_w, minutes, parked)
    async with httpx.AsyncClient(base_url=hub.hub.endpoints["http"], timeout=60.0) as client:
        r = await client.post(
            "/api/tariffs/quote",
            json={
                "location_id": location_id,
                "evse_uid": EVSE_UID,
                "planned_kwh": str(D(power_w) * minutes / 60 / 1000),
                "duration_minutes": minutes,
                "parking_minutes": parked,
                "start": start.isoformat().replace("+00:00", "Z"),
                "power_kw": str(D(power_w) / 1000),
            },
        )
    with pinned(start + timedelta(minutes=minutes + parked + 30)):
        cdr, _created = await rate_session(db, sid, ())
    event("quoted" if r.status_code == 200 else f"refused {r.status_code}")
    if r.status_code != 200:
        assert cdr is None, r.text
        return
    assert cdr is not None, r.text
    async with db.session() as s:
        row = await s.scalar(select(Cdr).where(Cdr.session_id == sid))
        assert row is not None
        quoted = r.json()["quote"]["total_cost"]
        assert (D(quoted["excl_vat"]), D(quoted["incl_vat"])) == (
            row.total_cost_excl_vat,
            row.total_cost_incl_vat,
        )
