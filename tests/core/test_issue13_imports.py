"""Issue 13 (item 5, what the hub sends is exactly OCPI): imported locations and tariffs with values OCPI does
not have are refused with the field named, a connector's ``terms_and_conditions`` survives the import, and a
grid rule's derived prices have an OCPI number's 4 decimals."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from evhub import provisioning as prov
from kernel.db.engine import Database
from kernel.models import Connector, Location, Party, TariffVersion
from ocpi.render_objects import load_location, location_object
from tariffs.core.grid_rules import GridRule, apply_rule
from tariffs.core.tariff_document import Tariff
from tariffs.core.tariff_json import to_jsonable

LOCATION: dict[str, Any] = {
    "country_code": "NL",
    "party_id": "INP",
    "id": "INP-1",
    "publish": True,
    "address": "Kade 2",
    "city": "Utrecht",
    "country": "NLD",
    "coordinates": {"latitude": "52.08940", "longitude": "5.11010"},
    "time_zone": "Europe/Amsterdam",
    "evses": [
        {
            "uid": "INP-1-1",
            "status": "AVAILABLE",
            "connectors": [
                {
                    "id": "1",
                    "standard": "IEC_62196_T2",
                    "format": "SOCKET",
                    "power_type": "AC_3_PHASE",
                    "max_voltage": 230,
                    "max_amperage": 32,
                    "tariff_ids": ["INP-T"],
                    "last_updated": "2026-01-01T00:00:00Z",
                }
            ],
            "last_updated": "2026-01-01T00:00:00Z",
        }
    ],
    "last_updated": "2026-01-01T00:00:00Z",
}

TARIFF: dict[str, Any] = {
    "country_code": "NL",
    "party_id": "INP",
    "id": "INP-T",
    "currency": "EUR",
    "elements": [{"price_components": [{"type": "ENERGY", "price": Decimal("0.3"), "step_size": 1}]}],
    "last_updated": "2026-01-01T00:00:00Z",
}

Spoil = Callable[[dict[str, Any]], Any]


def _evse(loc: dict[str, Any]) -> dict[str, Any]:
    return loc["evses"][0]


def _connector(loc: dict[str, Any]) -> dict[str, Any]:
    return loc["evses"][0]["connectors"][0]


def _energy_mix_spoils(prefix: str) -> list[tuple[str, str, Spoil]]:
    """The EnergyMix values OCPI does not have: a Location and a Tariff carry the same object, the same checks."""
    bad_mixes: list[tuple[str, str, dict[str, Any]]] = [
        (
            "energy-source",
            "energy_sources.0.source",
            {"energy_sources": [{"source": "BIOMASS", "percentage": 1}]},
        ),
        ("impact", "environ_impact.0.category", {"environ_impact": [{"category": "CO2", "amount": 1}]}),
        ("supplier", "supplier_name", {"supplier_name": "s" * 65}),
    ]

    def spoil(mix: dict[str, Any]) -> Spoil:
        return lambda obj: obj.update(energy_mix={"is_green_energy": True, **mix})

    return [(prefix + case, f"energy_mix.{field}", spoil(mix)) for case, field, mix in bad_mixes]


BAD_LOCATIONS: list[tuple[str, str, Spoil]] = [
    ("restriction", "parking_restrictions", lambda loc: _evse(loc).update(parking_restrictions=["TRUCKS"])),
    (
        "evse-directions",
        "directions",
        lambda loc: _evse(loc).update(directions=[{"language": "e", "text": "x"}]),
    ),
    ("image-category", "images.0.category", lambda loc: loc.update(images=[_image(category="LOGO")])),
    ("image-url", "images.0.url", lambda loc: loc.update(images=[_image(url="logo.png")])),
    ("image-type", "images.0.type", lambda loc: loc.update(images=[_image(type="jpeg2")])),
    ("website", "owner.website", lambda loc: loc.update(owner={"name": "O", "website": "www.example.com"})),
    (
        "logo",
        "suboperator.logo.category",
        lambda loc: loc.update(suboperator={"name": "S", "logo": _image("X")}),
    ),
    (
        "weekday",
        "opening_times.regular_hours.0.weekday",
        lambda loc: loc.update(opening_times=_hours(weekday=8)),
    ),
    (
        "hour",
        "opening_times.regular_hours.0.period_end",
        lambda loc: loc.update(opening_times=_hours(end="24:00")),
    ),
    (
        "closing",
        "opening_times.exceptional_closings.0.period_begin",
        lambda loc: loc.update(
            opening_times={
                "twentyfourseven": True,
                "exceptional_closings": [{"period_begin": "Christmas", "period_end": "2026-12-26T00:00:00Z"}],
            }
        ),
    ),
    *_energy_mix_spoils(""),
    (
        "related",
        "related_locations.0.latitude",
        lambda loc: loc.update(related_locations=[{"latitude": "52.1", "longitude": "5.11010"}]),
    ),
    (
        "publish-to",
        "publish_allowed_to.0.type",
        lambda loc: loc.update(publish_allowed_to=[{"type": "CARD"}]),
    ),
    ("closed", "charging_when_closed", lambda loc: loc.update(charging_when_closed="sometimes")),
    ("evse-coordinates", "evses.0.coordinates", lambda loc: _evse(loc).update(coordinates={"latitude": "x"})),
    (
        "schedule",
        "status_schedule.0.status",
        lambda loc: _evse(loc).update(
            status_schedule=[{"period_begin": "2026-01-01T00:00:00Z", "status": "BUSY"}]
        ),
    ),
    (
        "terms",
        "terms_and_conditions",
        lambda loc: _connector(loc).update(terms_and_conditions="see the sign"),
    ),
    ("tariff-id", "tariff_ids.0", lambda loc: _connector(loc).update(tariff_ids=["T" * 37])),
]


def _image(category: str = "CHARGER", url: str = "https://cpo.example.com/i.jpg", type: str = "jpeg") -> dict:
    return {"url": url, "category": category, "type": type}


def _hours(weekday: int = 1, end: str = "18:00") -> dict[str, Any]:
    return {
        "twentyfourseven": False,
        "regular_hours": [{"weekday": weekday, "period_begin": "08:00", "period_end": end}],
    }


async def _setup(db: Database) -> None:
    async with db.session() as s:
        await prov.add_party(s, "NL", "INP", "CPO", "Input BV")
        await prov.import_tariff(s, TARIFF)


async def _refused(
    db: Database,
    importer: Callable[[Any, dict[str, Any]], Awaitable[object]],
    obj: dict[str, Any],
    field: str,
    table: type[Any],
) -> None:
    """``importer`` refuses ``obj`` naming ``field``, and no row of ``table`` is stored."""
    async with db.session() as s:
        with pytest.raises(prov.ProvisioningError, match=field.replace(".", r"\.")):
            await importer(s, obj)
    async with db.session() as s:
        assert await s.scalar(select(func.count()).select_from(table)) == 0


@pytest.mark.parametrize(("case", "field", "spoil"), BAD_LOCATIONS, ids=[c for c, _, _ in BAD_LOCATIONS])
async def test_a_location_with_a_value_ocpi_does_not_have_is_refused(
    db: Database, case: str, field: str, spoil: Spoil
) -> None:
    """Each enum, length, URL, DateTime and regex of the OCPI 2.2.1 Location tables, nested objects included:
    the import names the field and stores nothing."""
    await _setup(db)
    loc = json.loads(json.dumps(LOCATION))
    spoil(loc)
    await _refused(db, prov.import_location, loc, field, Location)


async def test_a_location_with_every_kind_of_ocpi_value_imports_as_the_spec_spells_them(db: Database) -> None:
    """Spec values in every nested object are accepted; a connector standard in another case is stored as the
    spec spells it, mixed case included (``IEC_60309_2_single_16``, which upper-casing used to spoil)."""
    await _setup(db)
    loc = json.loads(json.dumps(LOCATION))
    _connector(loc)["standard"] = "iec_60309_2_SINGLE_16"
    _evse(loc).update(
        parking_restrictions=["EV_ONLY"],
        capabilities=["RFID_READER"],
        status_schedule=[{"period_begin": "2026-01-01T00:00:00+01:00", "status": "planned"}],
    )
    loc.update(
        state="s" * 45,
        parking_type="ON_STREET",
        facilities=["CAFE", "WIFI"],
        directions=[{"language": "nl", "text": "links"}],
        owner={"name": "o" * 100, "website": "https://owner.example.com", "logo": _image("OWNER")},
        opening_times=_hours(weekday=7, end="23:59"),
        energy_mix={
            "is_green_energy": True,
            "energy_sources": [{"source": "SOLAR", "percentage": 100}],
            "environ_impact": [{"category": "CARBON_DIOXIDE", "amount": 0}],
        },
        publish_allowed_to=[{"type": "RFID", "uid": "CARD-1"}],
    )
    async with db.session() as s:
        await prov.import_location(s, loc)
    async with db.session() as s:
        assert await s.scalar(select(Connector.standard)) == "IEC_60309_2_single_16"


async def _imported_and_rendered(db: Database, loc: dict[str, Any]) -> dict[str, Any]:
    """``loc`` imported, then loaded back and rendered as the Location object the hub serves and pushes."""
    async with db.session() as s:
        row, _ = await prov.import_location(s, loc)
        location_pk = row.id
    async with db.session() as s:
        stored = await load_location(s, location_pk)
        assert stored is not None
        cpo = await s.get(Party, stored.cpo_id)
        assert cpo is not None
        return location_object(stored, cpo)


async def test_a_connector_s_terms_and_conditions_are_kept_and_rendered(db: Database) -> None:
    """``terms_and_conditions`` has no column: it is kept with the EVSE's data and the Connector object the hub
    serves and pushes carries it (and only the spec's fields)."""
    await _setup(db)
    loc = json.loads(json.dumps(LOCATION))
    _connector(loc).update(terms_and_conditions="https://cpo.example.com/terms", x_pin="7")
    rendered = await _imported_and_rendered(db, loc)
    connector = rendered["evses"][0]["connectors"][0]
    assert connector["terms_and_conditions"] == "https://cpo.example.com/terms"
    assert "x_pin" not in connector
    assert connector["tariff_ids"] == ["INP-T"]


async def test_a_location_s_numbers_stay_json_numbers(db: Database) -> None:
    """A percentage read from the import file (as a Decimal, :func:`evhub.provisioning.load_json`) is stored and
    rendered as a JSON number, not as text; one with more than 4 decimals is refused."""
    await _setup(db)
    loc = json.loads(json.dumps(LOCATION))
    loc["energy_mix"] = {"is_green_energy": True, "energy_sources": [{"source": "SOLAR", "percentage": 12.5}]}
    rendered = await _imported_and_rendered(db, prov.load_json(json.dumps(loc), "location"))
    assert rendered["energy_mix"]["energy_sources"] == [{"source": "SOLAR", "percentage": 12.5}]
    loc["energy_mix"]["energy_sources"][0]["percentage"] = 12.34567
    async with db.session() as s:
        with pytest.raises(prov.ProvisioningError, match=r"energy_mix\.energy_sources\.0\.percentage"):
            await prov.import_location(s, prov.load_json(json.dumps(loc), "location"))


BAD_TARIFFS: list[tuple[str, str, Spoil]] = [
    ("id", "id", lambda t: t.update(id="T" * 37)),
    ("party", "party_id", lambda t: t.update(party_id="INPX")),
    *_energy_mix_spoils("tariff-"),
    (
        "language",
        "tariff_alt_text.0.language",
        lambda t: t.update(tariff_alt_text=[{"language": "eng", "text": "x"}]),
    ),
    (
        "alt-text",
        "tariff_alt_text.0.text",
        lambda t: t.update(tariff_alt_text=[{"language": "en", "text": "x" * 513}]),
    ),
    ("alt-url", "tariff_alt_url", lambda t: t.update(tariff_alt_url="tariffs.example.com/t")),
    (
        "price",
        "elements.0.price_components.0.price",
        lambda t: t["elements"][0]["price_components"][0].update(price=Decimal("0.30001")),
    ),
    (
        "vat",
        "elements.0.price_components.0.vat",
        lambda t: t["elements"][0]["price_components"][0].update(vat=Decimal("21.00001")),
    ),
    ("min-price", "min_price.excl_vat", lambda t: t.update(min_price={"excl_vat": Decimal("1.23456")})),
    (
        "max-price",
        "max_price.incl_vat",
        lambda t: t.update(max_price={"excl_vat": 5, "incl_vat": Decimal("6.050001")}),
    ),
]


@pytest.mark.parametrize(("case", "field", "spoil"), BAD_TARIFFS, ids=[c for c, _, _ in BAD_TARIFFS])
async def test_a_tariff_with_a_value_ocpi_does_not_have_is_refused(
    db: Database, case: str, field: str, spoil: Spoil
) -> None:
    """An id over 36 characters, a party id of 4, an energy source or impact OCPI does not list, a supplier over
    64, a language that is not ISO 639-1's 2 letters, a text over 512 characters, an alt URL that is not a URL,
    a price with more than 4 decimals (an OCPI number has 4): refused, the field named, nothing stored."""
    async with db.session() as s:
        await prov.add_party(s, "NL", "INP", "CPO", "Input BV")
    tariff = json.loads(json.dumps(TARIFF, default=str), parse_float=Decimal)
    spoil(tariff)
    await _refused(db, prov.import_tariff, tariff, field, TariffVersion)


def test_a_grid_rule_s_prices_are_rounded_to_4_decimals_half_up() -> None:
    """price x multiply + add is rounded once, to 4 decimals, ROUND_HALF_UP: 0.3333 x 1.1 = 0.36663 -> 0.3666,
    0.25 x 1.1 + 0.00005 = 0.27505 -> 0.2751; the derived version is a valid tariff (what partners receive)."""
    base = Tariff.model_validate(
        dict(
            TARIFF,
            elements=[
                {
                    "price_components": [
                        {"type": "ENERGY", "price": Decimal("0.3333"), "step_size": 1},
                        {"type": "TIME", "price": Decimal("0.25"), "step_size": 60},
                    ]
                }
            ],
        )
    )
    rule = GridRule.above(80, multiply="1.1", time="0.00005")
    derived = apply_rule(base, rule, datetime(2026, 3, 1, 12, tzinfo=UTC))
    prices = [pc.price for pc in derived.elements[0].price_components]
    assert prices == [Decimal("0.3666"), Decimal("0.2751")]
    Tariff.model_validate(to_jsonable(derived, decimals_as="keep"))
    base.elements[0].price_components[0].price = Decimal("0.333300")  # 4 decimals, trailing zeros: kept as is
    assert apply_rule(base, GridRule.above(80), datetime(2026, 3, 1, tzinfo=UTC)).elements[
        0
    ].price_components[0].price == (Decimal("0.333300"))
