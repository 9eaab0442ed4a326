"""The world of the CDRs external CPOs post to the hub as their eMSP (issue 14, item 4): the hosted eMSP ``NL*EVH``
issuing the fleet card ``ACME0001`` of Acme Logistics (an account with the issuer NL*EVH, billed monthly in
Europe/Amsterdam), two external CPO partners (``BE*ION``, ``FR*CPX``) and an eMSP partner; a CDR body as a CPO
posts it, and posting it as exact JSON (amounts as JSON numbers, never through a float)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import select

import billing
from kernel import jsonutil
from kernel.db.engine import Database
from kernel.models import Cdr, ChargingSession, Token
from kernel.timeutil import format_rfc3339
from portal.admin import add_fleet
from tests.ocpi.cpo_partner_kit import add_cpo_partner, add_emsp_token, add_hosted_emsp, cpo_headers

CARD = "ACME0001"
FLEET = "Acme Logistics"
ION_TOKEN, CPX_TOKEN, EMSP_TOKEN = "ion-token-c", "cpx-token-c", "ems-token-c"
BUYER = billing.Identity(
    "Acme Logistics B.V.",
    billing.Address("Havenweg 5", "1043 AA", "Amsterdam", "NL"),
    vat_id="NL009876543B01",
    business=True,
)
ISSUER = billing.Issuer(
    key="NL*EVH",
    identity=billing.Identity(
        "evhub Fleet Services B.V.",
        billing.Address("Stationsplein 1", "1012 AB", "Amsterdam", "NL"),
        vat_id="NL001234567B01",
        registration_id="KVK 12345678",
        business=True,
    ),
    currency="EUR",
    invoice_series=billing.Series("INV"),
    credit_series=billing.Series("CN"),
    terms=billing.PaymentTerms(14),
)


@dataclass
class EmspWorld:
    emsp_pk: int  # the hosted eMSP NL*EVH
    fleet_id: int
    token_id: int  # the fleet card ACME0001
    ion: int  # partner ids: the CPOs BE*ION and FR*CPX, the eMSP DE*EMS
    cpx: int
    ems: int
    account_id: int | None = None


async def emsp_world(db: Database, *, account: bool = False) -> EmspWorld:
    """The hosted eMSP, the fleet and its card, the partners; with ``account`` the issuer NL*EVH and the fleet's
    monthly account."""
    emsp = await add_hosted_emsp(db, "NL*EVH")
    fleet = await add_fleet(db, FLEET, "EUR")
    token = await add_emsp_token(db, emsp, CARD, fleet_id=fleet.id, driver_name="Ann", vehicle="Van NL-1")
    ion = await add_cpo_partner(db, None, key="BE*ION", token_c=ION_TOKEN)
    cpx = await add_cpo_partner(db, None, key="FR*CPX", token_c=CPX_TOKEN)
    ems = await add_cpo_partner(db, None, key="DE*EMS", role="EMSP", token_c=EMSP_TOKEN)
    world = EmspWorld(emsp, fleet.id, token, ion, cpx, ems)
    if account:
        async with db.session() as s:
            await billing.add_issuer(s, ISSUER, party_id=emsp)
            row = await billing.add_fleet_account(s, FLEET, ISSUER.key, BUYER, timezone="Europe/Amsterdam")
            world.account_id = row.id
    return world


def ion_headers(**kwargs: str) -> dict[str, str]:
    return cpo_headers(ION_TOKEN, **kwargs)


def cpx_headers(**kwargs: str) -> dict[str, str]:
    return cpo_headers(CPX_TOKEN, sender="FR*CPX", **kwargs)


def cdr_body(
    cdr_id: str = "ION-CDR-0001",
    *,
    start: datetime,
    session_id: str | None = "ION-SESSION-0001",
    uid: str = CARD,
    cpo: str = "BE*ION",
    energy: str = "20.5",
    energy_cost: tuple[str, str] = ("7.50", "9.08"),
    time_cost: tuple[str, str] = ("2.00", "2.42"),
    fixed_cost: tuple[str, str] | None = ("0.50", "0.61"),
    total: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """A CDR of CPO ``cpo`` for the card ``uid`` of NL*EVH, 90 minutes from ``start`` (30 of them parked); its
    total is the components' unless ``total`` says (excl., incl. VAT). Amounts are Decimals (exact JSON)."""
    cc, pid = cpo.split("*")
    parts = [energy_cost, time_cost, *([fixed_cost] if fixed_cost else [])]
    excl, incl = total or (str(sum(Decimal(p[0]) for p in parts)), str(sum(Decimal(p[1]) for p in parts)))

    def price(pair: tuple[str, str]) -> dict[str, Decimal]:
        return {"excl_vat": Decimal(pair[0]), "incl_vat": Decimal(pair[1])}

    body: dict[str, Any] = {
        "country_code": cc,
        "party_id": pid,
        "id": cdr_id,
        "start_date_time": format_rfc3339(start),
        "end_date_time": format_rfc3339(start + timedelta(minutes=90)),
        "cdr_token": {
            "country_code": "NL",
            "party_id": "EVH",
            "uid": uid,
            "type": "RFID",
            "contract_id": f"NLEVHC{uid}",
        },
        "auth_method": "WHITELIST",
        "cdr_location": {
            "id": "ION-LOC-1",
            "name": "Gent Zuid",
            "address": "F.Rooseveltlaan 3A",
            "city": "Gent",
            "postal_code": "9000",
            "country": "BEL",
            "coordinates": {"latitude": "51.047599", "longitude": "3.729944"},
            "evse_uid": "3256",
            "evse_id": "BE*ION*E041503003",
            "connector_id": "1",
            "connector_standard": "IEC_62196_T2",
            "connector_format": "SOCKET",
            "connector_power_type": "AC_3_PHASE",
        },
        "currency": "EUR",
        "charging_periods": [
            {
                "start_date_time": format_rfc3339(start),
                "dimensions": [{"type": "ENERGY", "volume": Decimal(energy)}],
            }
        ],
        "total_cost": {"excl_vat": Decimal(excl), "incl_vat": Decimal(incl)},
        "total_energy": Decimal(energy),
        "total_energy_cost": price(energy_cost),
        "total_time": Decimal("1.5"),
        "total_time_cost": price(time_cost),
        "total_parking_time": Decimal("0.5"),
        "last_updated": format_rfc3339(start + timedelta(minutes=95)),
    }
    if session_id is not None:
        body["session_id"] = session_id
    if fixed_cost is not None:
        body["total_fixed_cost"] = price(fixed_cost)
    return body


def cdrs_url(hub_url: str) -> str:
    return f"{hub_url}/ocpi/emsp/2.2.1/cdrs"


async def post_cdr(
    client: httpx.AsyncClient, url: str, body: Any, headers: dict[str, str]
) -> tuple[httpx.Response, Any]:
    """POST ``body`` (exact JSON; a ``str`` or ``bytes`` as it is) to ``url``: the reply and its JSON."""
    content = body if isinstance(body, str | bytes) else jsonutil.dumps(body)
    reply = await client.post(url, content=content, headers={**headers, "Content-Type": "application/json"})
    return reply, jsonutil.loads(reply.content)


async def received_rows(db: Database) -> list[tuple[Cdr, ChargingSession]]:
    async with db.session() as s:
        rows = await s.execute(
            select(Cdr, ChargingSession)
            .join(ChargingSession, ChargingSession.id == Cdr.session_id)
            .where(Cdr.received.is_(True))
            .order_by(Cdr.id)
        )
        return [(c, cs) for c, cs in rows.all()]


async def token_uid(db: Database, token_id: int) -> str:
    async with db.session() as s:
        token = await s.get(Token, token_id)
        assert token is not None
        return token.uid
