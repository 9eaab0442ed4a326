"""The operators' API needs a key; a CPO's key sees only that CPO — proven over real HTTP."""

from __future__ import annotations

import json

import httpx
import pytest

from evhub import provisioning as prov
from evhub.app import RunningHub
from kernel.apiauth import create_key, revoke_key
from kernel.db.engine import Database
from kernel.settings import load_settings
from tests.conftest import OCPI_EXAMPLES


@pytest.fixture
async def hub(db: Database):
    location = json.loads((OCPI_EXAMPLES / "location_example.json").read_text())
    async with db.session() as s:
        await prov.add_party(s, "BE", "BEC", "CPO", "BeCharged")
        other = await prov.add_party(s, "NL", "OTH", "CPO", "Other CPO")
        await prov.import_location(s, location)
        await prov.import_location(s, dict(location, country_code="NL", party_id="OTH", id="OTH-1"))
        await prov.add_charger(s, "BEC-1", password="long-enough", location="LOC1", evse_uids=["3256"])
        await prov.add_charger(s, "OTH-1", password="long-enough", location="OTH-1", evse_uids=["3256"])
        keys = {
            "hub": await create_key(s, "ops", None),
            "bec": await create_key(
                s, "bec-backoffice", await prov.find_party(s, "BE*BEC", prov.PartyRole.CPO)
            ),
            "oth": await create_key(s, "oth-backoffice", other),
        }
    from cpo_gateway.component import GatewayComponent
    from ocpi.component import OcpiComponent
    from settlement.component import SettlementComponent
    from tariffs.component import PricingComponent

    settings = load_settings(
        database_url=db.url,
        http_host="127.0.0.1",
        http_port=0,
        ocpp_host="127.0.0.1",
        ocpp_port=0,
        api_auth=True,
        _env_file=None,
    )
    running = RunningHub(
        settings, components=[GatewayComponent(), PricingComponent(), OcpiComponent(), SettlementComponent()]
    )
    await running.start()
    try:
        yield running, keys
    finally:
        await running.stop()


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_no_or_wrong_key_is_refused(hub) -> None:
    running, _keys = hub
    async with httpx.AsyncClient(base_url=running.hub.endpoints["http"], timeout=60.0) as client:
        for path in ("/api/chargers", "/api/locations", "/api/partners", "/api/settlement/runs"):
            r = await client.get(path)
            assert r.status_code == 401 and "API key" in r.json()["detail"], path
            r = await client.get(path, headers=_auth("evh_not-a-key"))
            assert r.status_code == 401, path
        assert (await client.get("/health")).status_code == 200  # health, metrics and docs stay open


async def test_each_cpo_sees_only_its_own(hub) -> None:
    running, keys = hub
    async with httpx.AsyncClient(base_url=running.hub.endpoints["http"], timeout=60.0) as client:
        everything = (await client.get("/api/chargers", headers=_auth(keys["hub"]))).json()
        assert {c["identity"] for c in everything} == {"BEC-1", "OTH-1"}
        mine = (await client.get("/api/chargers", headers=_auth(keys["bec"]))).json()
        assert [c["identity"] for c in mine] == ["BEC-1"]
        locations = (await client.get("/api/locations", headers=_auth(keys["oth"]))).json()
        assert [loc["id"] for loc in locations] == ["OTH-1"]
        parties = (await client.get("/api/parties", headers=_auth(keys["oth"]))).json()
        assert [p["party_id"] for p in parties] == ["OTH"]
        # Another CPO's charger does not exist for this key, not even for commands.
        assert (await client.get("/api/chargers/OTH-1", headers=_auth(keys["bec"]))).status_code == 404
        reset = await client.post("/api/chargers/OTH-1/commands/reset", headers=_auth(keys["bec"]), json={})
        assert reset.status_code == 404
        own = await client.post("/api/chargers/BEC-1/commands/reset", headers=_auth(keys["bec"]), json={})
        assert own.status_code == 409  # visible, but not connected
        # Hub-only endpoints.
        assert (await client.get("/api/partners", headers=_auth(keys["bec"]))).status_code == 403
        assert (await client.get("/api/partners", headers=_auth(keys["hub"]))).status_code == 200
        grid = await client.post("/api/grid/Z/load", headers=_auth(keys["bec"]), json={"load_percent": "50"})
        assert grid.status_code == 403


async def test_revoked_key_stops_working(hub, db: Database) -> None:
    running, keys = hub
    async with httpx.AsyncClient(base_url=running.hub.endpoints["http"], timeout=60.0) as client:
        assert (await client.get("/api/locations", headers=_auth(keys["bec"]))).status_code == 200
        async with db.session() as s:
            await revoke_key(s, "bec-backoffice")
        assert (await client.get("/api/locations", headers=_auth(keys["bec"]))).status_code == 401


async def test_commands_respect_registration_state(hub, db: Database) -> None:
    from sqlalchemy import select

    from kernel.models import ChargePoint, RegistrationStatus

    running, keys = hub
    async with httpx.AsyncClient(base_url=running.hub.endpoints["http"], timeout=60.0) as client:
        for state, command, expected in [
            (RegistrationStatus.REJECTED, "reset", "Rejected"),
            (RegistrationStatus.PENDING, "remote-start", "Pending"),
        ]:
            async with db.session() as s:
                cp = await s.scalar(select(ChargePoint).where(ChargePoint.identity == "BEC-1"))
                cp.registration_status = state
            r = await client.post(
                f"/api/chargers/BEC-1/commands/{command}",
                headers=_auth(keys["hub"]),
                json={"id_tag": "AABB", "connector_id": 1},
            )
            assert r.status_code == 409 and expected in r.text, r.text
        # A pending charger may still be asked for information: that goes to the charger (offline here: 409).
        r = await client.post(
            "/api/chargers/BEC-1/commands/trigger-message",
            headers=_auth(keys["hub"]),
            json={"message": "BootNotification"},
        )
        assert r.status_code == 409 and "Pending" not in r.text and "offline" in r.text
