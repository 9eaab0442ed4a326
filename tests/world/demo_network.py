"""The demo network in the test database: the parties of the demo (AmsterPower in Amsterdam, London Charge Co,
the eMSP Roam, the hub, a site host), the locations and tariffs shipped in ``evhub/demo_data``, eMSP tokens and a
registered OCPI partner, each a small function; :func:`seed_pricing_network` composes what the pricing,
settlement and CLI tests run on. Everything goes through :mod:`evhub.provisioning`, as the CLI would."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from evhub import provisioning as prov
from kernel.db.engine import Database
from kernel.models import EVSE, Connector
from kernel.models.roaming import OcpiPartner, OcpiPartnerRole, PartnerStatus

DEMO = Path(__file__).resolve().parents[2] / "evhub" / "demo_data"
"""The demo's data files: locations.json, tariffs.json, grid_rules.json."""

PARTIES: dict[str, tuple[str, str]] = {
    "NL*AMP": ("CPO", "AmsterPower"),
    "GB*LDN": ("CPO", "London Charge Co"),
    "NL*EMS": ("EMSP", "Roam"),
    "NL*HUB": ("HUB", "evhub"),
    "NL*SIT": ("SITE_HOST", "Station Parking BV"),
}
"""Every party of the demo network: key -> (role, name)."""

ROAMING_PARTIES = ("NL*AMP", "GB*LDN", "NL*EMS")
"""The two CPOs and the eMSP, without the hub and the site host."""

NL_GRID_ZONE = "NL-NH"
"""The grid zone the Dutch demo locations are in when a test gives them one."""


def demo_json(name: str) -> Any:
    """One of the demo's data files (``locations.json``...), parsed (floats as floats)."""
    return json.loads((DEMO / name).read_text())


@dataclass(frozen=True)
class DemoNetwork:
    parties: dict[str, int]
    """Party key (``NL*AMP``) -> pk."""


async def seed_demo_network(
    db: Database,
    *,
    parties: Iterable[str] = ROAMING_PARTIES,
    countries: Iterable[str] = ("NL", "GB"),
    grid_zones: bool = True,
) -> DemoNetwork:
    """The ``parties`` (keys of :data:`PARTIES`), and the demo locations and tariffs of ``countries``; the Dutch
    locations in :data:`NL_GRID_ZONE` when ``grid_zones``. No tokens, no chargers."""
    wanted = set(countries)
    async with db.session() as s:
        pks = {}
        for key in parties:
            role, name = PARTIES[key]
            cc, pid = key.split("*")
            pks[key] = (await prov.add_party(s, cc, pid, role, name)).id
        for loc in demo_json("locations.json"):
            if loc["country_code"] in wanted:
                zone = NL_GRID_ZONE if grid_zones and loc["country_code"] == "NL" else None
                await prov.import_location(s, loc, grid_zone=zone)
        for tariff in demo_json("tariffs.json"):
            if tariff["country_code"] in wanted:
                await prov.import_tariff(s, tariff)
    return DemoNetwork(parties=pks)


async def seed_tokens(
    db: Database, *uids: str, issuer: str = "NL*EMS", driver_email: str | None = None
) -> dict[str, int]:
    """Tokens of the eMSP ``issuer``; returns uid -> pk."""
    async with db.session() as s:
        return {
            uid: (
                await prov.add_token(
                    s, prov.TokenSpec(uid=uid, issuer_party=issuer, driver_email=driver_email)
                )
            ).id
            for uid in uids
        }


async def seed_pricing_network(db: Database) -> DemoNetwork:
    """Every party of the demo, its locations (the Dutch ones in a grid zone) and tariffs, and the eMSP's
    ``TOKEN-1``: what ended sessions are priced and settled on."""
    network = await seed_demo_network(db, parties=PARTIES)
    await seed_tokens(db, "TOKEN-1")
    return network


async def seed_ocpi_partner(
    db: Database,
    party_pk: int,
    key: str = "NL*EMS",
    *,
    modules: Iterable[str] = ("cdrs", "tariffs", "sessions"),
) -> int:
    """The eMSP ``key`` (pk ``party_pk``) as a registered OCPI 2.2.1 partner named after it, receiving
    ``modules`` at ``https://emsp.test``; returns the partner's id."""
    cc, pid = key.split("*")
    async with db.session() as s:
        partner = OcpiPartner(
            name=PARTIES[key][1],
            status=PartnerStatus.REGISTERED,
            version="2.2.1",
            outgoing_token="token-c",
            endpoints=[
                {"identifier": m, "role": "RECEIVER", "url": f"https://emsp.test/ocpi/emsp/2.2.1/{m}"}
                for m in modules
            ],
        )
        s.add(partner)
        await s.flush()
        s.add(
            OcpiPartnerRole(
                partner_id=partner.id, party_pk=party_pk, country_code=cc, party_id=pid, role=PARTIES[key][0]
            )
        )
        return partner.id


MAX_PRICE_TARIFF: dict[str, Any] = {
    "country_code": "NL",
    "party_id": "AMP",
    "id": "AMS-MAX",
    "currency": "EUR",
    "max_price": {"excl_vat": 10.00, "incl_vat": 11.00},
    "elements": [
        {
            "price_components": [
                {"type": "FLAT", "price": 0.50, "vat": 20.0, "step_size": 1},
                {"type": "ENERGY", "price": 0.25, "vat": 10.0, "step_size": 1},
            ]
        }
    ],
    "last_updated": "2026-01-01T00:00:00Z",
}
"""A tariff capped by ``max_price`` (10.00 excl. / 11.00 incl. VAT): 50 kWh cost 12.50 of energy before the cap."""


async def price_with_max_price_tariff(db: Database, evse_uid: str = "AMS-01-1") -> None:
    """Import :data:`MAX_PRICE_TARIFF` and make it the only tariff of ``evse_uid``'s connector."""
    async with db.session() as s:
        await prov.import_tariff(s, MAX_PRICE_TARIFF)
        evse = await s.scalar(select(EVSE).where(EVSE.uid == evse_uid))
        assert evse is not None
        connector = await s.scalar(select(Connector).where(Connector.evse_pk == evse.id))
        assert connector is not None
        connector.tariff_ids = [MAX_PRICE_TARIFF["id"]]
