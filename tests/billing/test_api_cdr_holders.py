"""``/api/cdrs`` shows whom each CDR is billed to as recorded on it when it was made (issue 14): the fleet, driver
and vehicle of its token then (kernel.domain.cdr_holder), not the token's today; the hub's key sees them, a CPO's
key gets them empty (a fleet's drivers are its own business, as in /api/tokens)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from evhub.app import create_app
from kernel.components import Hub
from kernel.db.engine import Database
from kernel.models import Fleet, Token
from kernel.settings import load_settings
from tariffs.rating import rate_pending
from tests.world.api_network import START, ApiNetwork, seed_api_network
from tests.world.sessions import seed_ended_session


@pytest.fixture
async def network(db: Database) -> ApiNetwork:
    return await seed_api_network(db)


@pytest.fixture
async def client(db: Database, network: ApiNetwork) -> AsyncIterator[httpx.AsyncClient]:
    hub = Hub(
        settings=load_settings(database_url=db.url, api_auth=True, _env_file=None), db=db, node_name="t"
    )
    hub.app = create_app(hub)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hub.app), base_url="http://hub") as http:
        yield http


async def _holder(
    db: Database, uid: str, fleet_id: int | None, driver: str | None, vehicle: str | None
) -> None:
    async with db.session() as s:
        token = await s.scalar(select(Token).where(Token.uid == uid))
        assert token is not None
        token.fleet_id, token.driver_name, token.vehicle = fleet_id, driver, vehicle


def _holders(cdrs: list[dict[str, object]]) -> dict[str, tuple[object, ...]]:
    keys = ("fleet", "driver_name", "vehicle", "holder_recorded")
    return {str(c["session_id"]): tuple(c[k] for k in keys) for c in cdrs}


async def test_cdrs_show_their_recorded_holder_to_the_hub_only(
    client: httpx.AsyncClient, network: ApiNetwork, db: Database
) -> None:
    async with db.session() as s:
        fleet = Fleet(name="Acme Logistics", currency="EUR")
        s.add(fleet)
        await s.flush()
        fleet_id = fleet.id
    await _holder(db, "TOKEN-AMS", fleet_id, "Ann de Vries", "NL-AB-12")
    await seed_ended_session(
        db, "AMS-01-1", START + timedelta(days=1), 45, "8", uid="sess-ams-2", token_uid="TOKEN-AMS"
    )
    assert await rate_pending(db, ()) == 1
    # The token moves on: another driver, no fleet. The CDRs keep what they recorded.
    await _holder(db, "TOKEN-AMS", None, "Bob Jansen", None)
    hub = {"Authorization": f"Bearer {network.keys['hub']}"}
    listed = await client.get("/api/cdrs", headers=hub)
    assert listed.status_code == 200
    assert _holders(listed.json()) == {
        "sess-ams-2": ("Acme Logistics", "Ann de Vries", "NL-AB-12", True),
        "sess-ams": (None, None, None, True),  # priced when the token had no holder
        "sess-ldn": (None, None, None, True),
    }
    [second] = [c for c in listed.json() if c["session_id"] == "sess-ams-2"]
    one = (await client.get(f"/api/cdrs/{second['id']}", headers=hub)).json()
    assert (one["fleet"], one["driver_name"], one["vehicle"]) == (
        "Acme Logistics",
        "Ann de Vries",
        "NL-AB-12",
    )
    amp = {"Authorization": f"Bearer {network.keys['amp']}"}
    mine = (await client.get("/api/cdrs", headers=amp)).json()
    assert _holders(mine)["sess-ams-2"] == (None, None, None, True)
    assert (await client.get(f"/api/cdrs/{second['id']}", headers=amp)).json()["driver_name"] is None
    schema = (await client.get("/openapi.json")).json()["components"]["schemas"]["CdrOut"]["properties"]
    assert {"fleet", "driver_name", "vehicle", "holder_recorded"} <= set(schema)
