"""The portal's world: a CPO with one site in Europe/Berlin, fleets with managers, drivers' tokens, and completed
sessions with a hand-priced CDR (AC-STD: energy and a flat fee, 19 % VAT).

"Now" here is :func:`kernel.timeutil.utcnow`, which tests/conftest.py pins to a mid-month instant, so data seeded
in "the current month" lands in the same month, far from its ends, whatever day the suite runs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from kernel.db.engine import Database
from kernel.domain.cdr_holder import recorded_holder, token_holder
from kernel.models import (
    EVSE,
    Cdr,
    ChargingSession,
    Location,
    SessionStatus,
    Token,
)
from kernel.models.portal import FleetDriver
from kernel.timeutil import utcnow
from portal.admin import add_fleet, add_manager
from tests.world.sites import seed_charge_point, seed_cpo

PASSWORD = "correct horse battery"


@dataclass
class FleetWorld:
    """What the portal tests refer to: pks of the CPO, its site, EVSE and charger; fleet name -> pk; token uid ->
    pk."""

    cpo_id: int
    location_id: int
    evse_pk: int
    charge_point_id: int
    fleets: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)


async def base_world(db: Database) -> FleetWorld:
    """The CPO ``DE*CPO`` (Charge GmbH), its site Alexanderplatz in Berlin with the EVSE ``DE*CPO*E1`` and the
    charger ``CP-1``; no fleets yet."""
    now = utcnow()
    cpo_id = await seed_cpo(db, "DE", "CPO", "Charge GmbH")
    async with db.session() as s:
        loc = Location(
            cpo_id=cpo_id,
            ocpi_id="LOC1",
            name="Alexanderplatz",
            address="Alexanderplatz 1",
            city="Berlin",
            postal_code="10178",
            country="DEU",
            latitude="52.521918",
            longitude="13.413215",
            time_zone="Europe/Berlin",
            last_updated=now,
        )
        s.add(loc)
        await s.flush()
        evse = EVSE(location_id=loc.id, uid="EVSE1", evse_id="DE*CPO*E1", last_updated=now)
        s.add(evse)
        await s.flush()
        location_id, evse_pk = loc.id, evse.id
    charge_point_id = await seed_charge_point(db, cpo_id, location_id, "CP-1")
    return FleetWorld(
        cpo_id=cpo_id, location_id=location_id, evse_pk=evse_pk, charge_point_id=charge_point_id
    )


async def add_fleet_with_manager(db: Database, world: FleetWorld, name: str, email: str) -> int:
    fleet = await add_fleet(db, name, "EUR")
    await add_manager(db, name, email, PASSWORD)
    world.fleets[name] = fleet.id
    return fleet.id


async def add_token(
    db: Database,
    world: FleetWorld,
    fleet: str,
    uid: str,
    *,
    driver: str | None = None,
    email: str | None = None,
    vehicle: str | None = None,
) -> int:
    async with db.session() as s:
        tok = Token(
            country_code="DE",
            party_id="FLT",
            uid=uid,
            contract_id=f"DE-FLT-{uid}",
            issuer=fleet,
            fleet_id=world.fleets[fleet],
            driver_name=driver,
            driver_email=email,
            vehicle=vehicle,
            last_updated=utcnow(),
        )
        s.add(tok)
        if driver:
            s.add(FleetDriver(fleet_id=world.fleets[fleet], name=driver, email=email))
        await s.flush()
        world.tokens[uid] = tok.id
        return tok.id


def explanation(kwh: Decimal, price: Decimal, flat: Decimal) -> dict:
    energy = (kwh * price).quantize(Decimal("0.01"))
    return {
        "currency": "EUR",
        "tariffs_used": [{"tariff_id": "AC-STD", "version": "AC-STD@2025-01-01T00:00:00Z"}],
        "lines": [
            {
                "kind": "component",
                "dimension": "ENERGY",
                "tariff_id": "AC-STD",
                "quantity": str(kwh),
                "unit_price": str(price),
                "vat": "19",
                "amount_excl_vat": str(energy),
                "amount_incl_vat": str((energy * Decimal("1.19")).quantize(Decimal("0.01"))),
            },
            {
                "kind": "component",
                "dimension": "FLAT",
                "tariff_id": "AC-STD",
                "quantity": "1",
                "unit_price": str(flat),
                "vat": "19",
                "amount_excl_vat": str(flat),
                "amount_incl_vat": str((flat * Decimal("1.19")).quantize(Decimal("0.01"))),
            },
        ],
    }


async def add_session(
    db: Database,
    world: FleetWorld,
    token_uid: str,
    start: datetime,
    kwh: str,
    *,
    price: str = "0.40",
    flat: str = "1.00",
    priced: bool = True,
    signed: str | None = 'OCMF|{"FV":"1.0","RD":[{"TM":"start"}]}|{"SD":"3045022100"}',
) -> tuple[int, int | None]:
    """A completed session (and its CDR when ``priced``). Returns (session id, cdr id)."""
    energy = Decimal(kwh)
    end = start + timedelta(hours=1, minutes=30)
    async with db.session() as s:
        sess = ChargingSession(
            session_uid=str(uuid.uuid4()),
            charge_point_id=world.charge_point_id,
            transaction_id=uuid.uuid4().hex[:12],
            cpo_id=world.cpo_id,
            location_id=world.location_id,
            evse_pk=world.evse_pk,
            token_id=world.tokens[token_uid],
            id_tag=token_uid,
            status=SessionStatus.COMPLETED,
            start_time=start,
            end_time=end,
            meter_start_wh=Decimal(1_000_000),
            meter_stop_wh=Decimal(1_000_000) + energy * 1000,
            energy_wh=energy * 1000,
            signed_meter_data=signed,
            currency="EUR",
            last_updated=end,
        )
        s.add(sess)
        await s.flush()
        if not priced:
            return sess.id, None
        expl = explanation(energy, Decimal(price), Decimal(flat))
        excl = sum((Decimal(ln["amount_excl_vat"]) for ln in expl["lines"]), Decimal(0))
        incl = sum((Decimal(ln["amount_incl_vat"]) for ln in expl["lines"]), Decimal(0))
        token = await s.get(Token, world.tokens[token_uid])
        cdr = Cdr(
            cdr_uid=f"CDR-{sess.id}-{uuid.uuid4().hex[:8]}",
            session_id=sess.id,
            cpo_id=world.cpo_id,
            location_id=world.location_id,
            token_id=world.tokens[token_uid],
            **recorded_holder(token_holder(token)),  # whom it is billed to, as pricing records it
            currency="EUR",
            start_date_time=start,
            end_date_time=end,
            total_energy_kwh=energy,
            total_time_hours=Decimal("1.5"),
            total_cost_excl_vat=excl,
            total_cost_incl_vat=incl,
            tariff_versions=["AC-STD@2025-01-01T00:00:00Z"],
            explanation=expl,
            data={"id": "x"},
        )
        s.add(cdr)
        await s.flush()
        return sess.id, cdr.id


def cost_incl(kwh: str, price: str = "0.40", flat: str = "1.00") -> Decimal:
    expl = explanation(Decimal(kwh), Decimal(price), Decimal(flat))
    return sum((Decimal(ln["amount_incl_vat"]) for ln in expl["lines"]), Decimal(0))
