"""Issue 13: "2.0.1 real-time authorization sends type=ISO14443 (an OCPP IdTokenEnumType) to the eMSP instead of
an OCPI token type". The gateway's token check (:class:`cpo_gateway.authorization.Authorizer`, called with the
type a 2.0.1 charger reported, as ``cpo_gateway.v201`` does) reaches the eMSP through the real-time seam: the eMSP
must be asked with an OCPI TokenType, the stored one when the hub knows the token."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest

from cpo_gateway.authorization import Authorizer
from kernel.models import Token
from ocpi.realtime_authorization import OCPP_ID_TOKEN_TYPES, ocpi_token_type
from simulators.emsp import EmspSimulator
from tests.ocpi._helpers import connect, token_pk
from tests.world.sites import seed_charge_point, seed_cpo, seed_location


async def _world(hub, *sims: EmspSimulator) -> tuple[Authorizer, int, int]:  # type: ignore[no-untyped-def]
    cpo = await seed_cpo(hub.db)
    loc = await seed_location(hub.db, cpo, "LOC1")
    cp = await seed_charge_point(hub.db, cpo, loc)
    for sim in sims:
        await connect(hub, sim)
    return Authorizer(hub.db, hub.services), cp, loc


def _asked(sim: EmspSimulator) -> list[tuple[str, str]]:
    """(uid, type) of every real-time authorization request the eMSP received."""
    out = []
    for r in sim.log:
        if r.method == "POST" and r.path.endswith("/authorize"):
            uid = r.path.rstrip("/").split("/")[-2]
            out.append((uid, parse_qs(r.query).get("type", [""])[0]))
    return out


def test_every_ocpp_201_id_token_type_has_an_ocpi_token_type() -> None:
    assert {
        "Central",
        "eMAID",
        "ISO14443",
        "ISO15693",
        "KeyCode",
        "Local",
        "MacAddress",
        "NoAuthorization",
    } == set(OCPP_ID_TOKEN_TYPES)
    assert ocpi_token_type("ISO14443") == ocpi_token_type("ISO15693") == "RFID"
    assert ocpi_token_type("Central") == "APP_USER"
    for other in ("eMAID", "KeyCode", "Local", "MacAddress"):
        assert ocpi_token_type(other) == "OTHER"
    assert ocpi_token_type("NoAuthorization") is None
    for ocpi_type in ("RFID", "APP_USER", "AD_HOC_USER", "OTHER"):  # an OCPI type (1.6: RFID) as it is
        assert ocpi_token_type(ocpi_type) == ocpi_type


@pytest.mark.parametrize("reported", ["ISO14443", "ISO15693"])
async def test_unknown_card_at_a_201_charger_is_asked_as_rfid(hub, sim, reported: str) -> None:
    gateway, cp, loc = await _world(hub, sim)
    sim.tokens[("CARD-201", "RFID")] = sim.make_token("CARD-201")  # the eMSP knows it; the hub does not
    auth = await gateway.authorize("CARD-201", reported, charge_point_id=cp, location_id=loc)
    assert _asked(sim) == [("CARD-201", "RFID")]
    assert auth.accepted and auth.auth_method == "AUTH_REQUEST"


async def test_known_token_is_asked_with_its_stored_type_at_its_emsp_only(hub, sim, sim2) -> None:
    gateway, cp, loc = await _world(hub, sim, sim2)
    await sim.push_token(sim.make_token("APP-201", whitelist="NEVER", token_type="APP_USER"))
    await sim.push_token(sim.make_token("RFID-201", whitelist="NEVER"))
    # an app's id the charger reports as Central, an RFID card it reports as ISO15693
    app = await gateway.authorize("app-201", "Central", charge_point_id=cp, location_id=loc)
    card = await gateway.authorize("RFID-201", "ISO15693", charge_point_id=cp, location_id=loc)
    assert _asked(sim) == [("APP-201", "APP_USER"), ("RFID-201", "RFID")]
    assert _asked(sim2) == []  # the token's issuer decides; nobody else is asked
    assert app.accepted and card.accepted and app.token_id is not None


async def test_no_authorization_is_never_asked_at_an_emsp(hub, sim) -> None:
    gateway, cp, loc = await _world(hub, sim)
    auth = await gateway.authorize("", "NoAuthorization", charge_point_id=cp, location_id=loc)
    assert not auth.accepted and _asked(sim) == []


async def test_a_uid_of_two_issuers_is_asked_at_its_holder_only(hub, sim, sim2) -> None:
    gateway, cp, loc = await _world(hub, sim, sim2)
    await sim.push_token(sim.make_token("SHARED-1", whitelist="NEVER", token_type="APP_USER"))
    await sim2.push_token(sim2.make_token("OTHER-1"))
    intruder = await token_pk(hub.db, "OTHER-1")
    async with hub.db.session() as s:  # a row of another issuer stored before the one-issuer rule
        s.add(
            Token(
                country_code="FR",
                party_id="OTH",
                uid="SHARED-1",
                type="RFID",
                contract_id="FR-OTH-SHARED",
                issuer="Other eMSP",
                emsp_id=intruder.emsp_id,
                whitelist="NEVER",
                last_updated=intruder.last_updated,
            )
        )
    sim2.tokens[("SHARED-1", "RFID")] = sim2.make_token("SHARED-1")
    auth = await gateway.authorize("SHARED-1", "ISO14443", charge_point_id=cp, location_id=loc)
    assert _asked(sim) == [("SHARED-1", "APP_USER")] and _asked(sim2) == []
    assert auth.accepted
