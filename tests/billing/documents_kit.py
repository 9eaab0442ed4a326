"""Billing documents test kit (issue 14): the demo's pricing network (AmsterPower in Amsterdam and London, the eMSP
Roam ``NL*EMS`` with its app driver's ``TOKEN-1``, an ad-hoc ``ADHOC-1``), the fleet Acme with two drivers' tokens,
Roam as an issuer,
Acme's billing account (months of Europe/Amsterdam), and ended sessions priced by the real engine
(:func:`tariffs.rating.rate_pending`) with billing's real CDR hook (:data:`HOOKS`, as ``evhub serve`` wires it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select

import billing
from billing.component import cdr_hook
from evhub import provisioning as prov
from kernel.db.engine import Database
from kernel.models import EVSE, BillingDocument, Cdr, ChargingSession, Connector
from portal.admin import add_fleet
from tariffs.rating import rate_pending
from tests.world.demo_network import seed_pricing_network
from tests.world.sessions import seed_ended_session

HOOKS = (cdr_hook,)
ISSUER = billing.Issuer(
    key="roam",
    identity=billing.Identity(
        "Roam B.V.",
        billing.Address("Stationsplein 1", "1012 AB", "Amsterdam", "NL"),
        vat_id="NL123456789B01",
        registration_id="KvK 12345678",
        business=True,
    ),
    currency="EUR",
    invoice_series=billing.Series("INV"),
    credit_series=billing.Series("CN"),
    terms=billing.PaymentTerms(14),
)
ACME = billing.Identity(
    "Acme Logistics B.V.",
    billing.Address("Havenweg 5", "1043 AA", "Amsterdam", "NL"),
    vat_id="NL999999999B01",
    business=True,
)
DRIVERS = {"ACME-1": ("Ann", "EV-1 Tesla"), "ACME-2": ("Bob", "EV-2 Kona")}


@dataclass(frozen=True)
class World:
    parties: dict[str, int]
    account_id: int
    fleet_id: int


async def seed_world(db: Database, *, timezone: str = "Europe/Amsterdam", issuer_party: bool = True) -> World:
    """The network, Roam as issuer (of party ``NL*EMS`` when ``issuer_party``), fleet Acme with tokens
    ``ACME-1`` (Ann) and ``ACME-2`` (Bob), and Acme's account with Roam for the months of ``timezone``."""
    network = await seed_pricing_network(db)
    fleet = await add_fleet(db, "Acme", "EUR")
    async with db.session() as s:
        party = network.parties["NL*EMS"] if issuer_party else None
        await billing.add_issuer(s, ISSUER, party)
        for uid, (driver, vehicle) in DRIVERS.items():
            await prov.add_token(
                s,
                prov.TokenSpec(
                    uid=uid, issuer_party="NL*EMS", fleet="Acme", driver_name=driver, vehicle=vehicle
                ),
            )
        await prov.add_token(  # an ad-hoc driver at AmsterPower's chargers: the CPO sells to them
            s,
            prov.TokenSpec(
                uid="ADHOC-1", issuer_party="NL*EMS", type="AD_HOC_USER", driver_name="Eve Walk-in"
            ),
        )
        account = await billing.add_fleet_account(s, "Acme", "roam", ACME, timezone=timezone)
        return World(parties=network.parties, account_id=account.id, fleet_id=fleet.id)


async def charge(
    db: Database,
    token: str,
    start: datetime,
    uid: str,
    *,
    kwh: str = "10",
    minutes: int = 60,
    evse: str = "AMS-01-1",
    charge_minutes: int | None = None,
) -> None:
    """An ended session of ``token`` waiting to be priced (parked after ``charge_minutes``, if given)."""
    await seed_ended_session(
        db, evse, start, minutes, kwh, uid=uid, token_uid=token, charge_minutes=charge_minutes
    )


PARKING_OUTSIDE_VAT: dict[str, object] = {
    "country_code": "NL",
    "party_id": "AMP",
    "id": "AMS-PARK",
    "currency": "EUR",
    "elements": [
        {"price_components": [{"type": "ENERGY", "price": 0.30, "vat": 21.0, "step_size": 1}]},
        {"price_components": [{"type": "PARKING_TIME", "price": 2.40, "step_size": 60}]},  # no VAT applicable
    ],
    "last_updated": "2026-01-01T00:00:00Z",
}
"""A tariff whose parking is outside the scope of VAT (OCPI: no ``vat``): its CDRs mix categories S and O."""


async def price_with_parking_outside_vat(db: Database, evse_uid: str = "AMS-01-1") -> None:
    """Import :data:`PARKING_OUTSIDE_VAT` and make it the only tariff of ``evse_uid``'s connector."""
    async with db.session() as s:
        await prov.import_tariff(s, PARKING_OUTSIDE_VAT)
        evse = await s.scalar(select(EVSE).where(EVSE.uid == evse_uid))
        assert evse is not None
        connector = await s.scalar(select(Connector).where(Connector.evse_pk == evse.id))
        assert connector is not None
        connector.tariff_ids = [PARKING_OUTSIDE_VAT["id"]]


async def rate(db: Database) -> int:
    """Price every pending session with billing's CDR hook; the CDRs made."""
    return await rate_pending(db, HOOKS)


async def cdr_of(db: Database, session_uid: str, *, credit: bool = False, revision: int = 0) -> Cdr:
    async with db.session() as s:
        row = await s.scalar(
            select(Cdr)
            .join(ChargingSession, ChargingSession.id == Cdr.session_id)
            .where(
                ChargingSession.session_uid == session_uid,
                Cdr.is_credit.is_(credit),
                Cdr.revision == revision,
            )
        )
        assert row is not None, f"no CDR of session {session_uid}"
        return row


async def documents(db: Database) -> list[BillingDocument]:
    async with db.session() as s:
        return list((await s.scalars(select(BillingDocument).order_by(BillingDocument.id))).all())


async def issue_month(db: Database, account_id: int, period: str) -> BillingDocument | None:
    async with db.session() as s:
        return await billing.issue_monthly_invoice(s, account_id, period)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def net(rows: list[Cdr]) -> Decimal:
    return sum((r.total_cost_excl_vat for r in rows), Decimal(0))
