"""A CPO's back office over REST: sessions with meter values, CDRs with the price explanation, tokens and
locations, each scoped by the API key (a CPO key never sees another CPO's objects, by list or by id), and
paging on every list — against the real app, database and pricing engine."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from cpo_gateway.component import GatewayComponent
from evhub.app import create_app
from kernel.components import Hub
from kernel.db.engine import Database
from kernel.models import Cdr
from kernel.settings import load_settings
from settlement.component import SettlementComponent
from tests.world.api_network import ApiNetwork, seed_api_network


@pytest.fixture
async def network(db: Database) -> ApiNetwork:
    return await seed_api_network(db)


@pytest.fixture
async def client(db: Database, network: ApiNetwork) -> AsyncIterator[httpx.AsyncClient]:
    settings = load_settings(database_url=db.url, api_auth=True, _env_file=None)
    hub = Hub(settings=settings, db=db, node_name="test")
    hub.app = create_app(hub)
    GatewayComponent().install(hub)  # /api/chargers (not started: every charger is offline)
    SettlementComponent().install(hub)
    transport = httpx.ASGITransport(app=hub.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
        yield http


def _as(network: ApiNetwork, who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {network.keys[who]}"}


async def test_sessions_with_meter_values_scoped_by_key(
    client: httpx.AsyncClient, network: ApiNetwork
) -> None:
    everything = await client.get("/api/sessions", headers=_as(network, "hub"))
    assert everything.status_code == 200
    assert {s["id"] for s in everything.json()} == {"sess-ams", "sess-ldn"}
    mine = (await client.get("/api/sessions", headers=_as(network, "amp"))).json()
    assert [s["id"] for s in mine] == ["sess-ams"]
    assert mine[0]["charger"] == "CP-AMS-01-1" and mine[0]["token_uid"] == "TOKEN-AMS"
    assert mine[0]["energy_wh"] == "10000" and mine[0]["pricing_state"] == "priced" and mine[0]["cdrs"]
    one = await client.get("/api/sessions/sess-ams", headers=_as(network, "amp"))
    assert one.status_code == 200
    samples = one.json()["meter_values"]
    assert len(samples) == 61 and samples[0]["value"] == "1000" and samples[-1]["value"] == "11000"
    assert (await client.get("/api/sessions/sess-ldn", headers=_as(network, "amp"))).status_code == 404
    assert (await client.get("/api/sessions/sess-ams", headers=_as(network, "ldn"))).status_code == 404
    assert (await client.get("/api/sessions/nope", headers=_as(network, "hub"))).status_code == 404
    failed = await client.get("/api/sessions?pricing_state=failed", headers=_as(network, "hub"))
    assert failed.json() == [] and failed.headers["X-Total-Count"] == "0"


async def test_cdrs_carry_the_stored_explanation(
    client: httpx.AsyncClient, network: ApiNetwork, db: Database
) -> None:
    from sqlalchemy import select

    mine = (await client.get("/api/cdrs", headers=_as(network, "ldn"))).json()
    assert [c["session_id"] for c in mine] == ["sess-ldn"]
    cdr_id = mine[0]["id"]
    detail = await client.get(f"/api/cdrs/{cdr_id}", headers=_as(network, "ldn"))
    assert detail.status_code == 200
    body = detail.json()
    async with db.session() as s:
        stored = await s.scalar(select(Cdr).where(Cdr.cdr_uid == cdr_id))
    # The same explanation `evhub cdrs show` prints: the engine's, stored when the CDR was priced.
    assert body["explanation"]["tariffs_used"] == stored.explanation["tariffs_used"]
    assert body["explanation"]["tariffs_used"] and body["cdr"]["id"] == cdr_id
    assert body["currency"] == "GBP" and body["total_cost_excl_vat"] == str(stored.total_cost_excl_vat)
    assert (await client.get(f"/api/cdrs/{cdr_id}", headers=_as(network, "amp"))).status_code == 404
    assert (await client.get("/api/cdrs?session_id=sess-ldn", headers=_as(network, "amp"))).json() == []
    both = (await client.get("/api/cdrs", headers=_as(network, "hub"))).json()
    assert {c["session_id"] for c in both} == {"sess-ams", "sess-ldn"}


async def test_tokens_a_cpo_sees_are_those_that_charged_with_it(
    client: httpx.AsyncClient, network: ApiNetwork
) -> None:
    every = (await client.get("/api/tokens", headers=_as(network, "hub"))).json()
    assert {t["uid"] for t in every} == {"TOKEN-AMS", "TOKEN-LDN", "TOKEN-IDLE"}
    assert "driver_email" not in every[0]
    mine = (await client.get("/api/tokens", headers=_as(network, "amp"))).json()
    assert [t["uid"] for t in mine] == ["TOKEN-AMS"]
    own = await client.get("/api/tokens/NL/EMS/TOKEN-AMS", headers=_as(network, "amp"))
    assert own.status_code == 200 and own.json()["contract_id"]
    for uid in ("TOKEN-LDN", "TOKEN-IDLE"):
        assert (await client.get(f"/api/tokens/nl/ems/{uid}", headers=_as(network, "amp"))).status_code == 404
    assert (await client.get("/api/tokens/NL/EMS/TOKEN-IDLE", headers=_as(network, "hub"))).status_code == 200
    wrong_type = await client.get("/api/tokens/NL/EMS/TOKEN-AMS?type=APP_USER", headers=_as(network, "hub"))
    assert wrong_type.status_code == 404
    assert (
        await client.get("/api/tokens/NL/EMS/X?type=BOGUS", headers=_as(network, "hub"))
    ).status_code == 422


async def test_locations_by_list_and_id(client: httpx.AsyncClient, network: ApiNetwork) -> None:
    mine = (await client.get("/api/locations", headers=_as(network, "amp"))).json()
    assert [(loc["country_code"], loc["party_id"], loc["id"]) for loc in mine] == [
        ("NL", "AMP", "AMS-CENTRAAL")
    ]
    evse = mine[0]["evses"][0]
    assert evse["uid"] == "AMS-01-1" and evse["connectors"][0]["tariff_ids"]
    own = await client.get("/api/locations/NL/AMP/AMS-CENTRAAL", headers=_as(network, "amp"))
    assert own.status_code == 200 and own.json()["time_zone"] == "Europe/Amsterdam"
    other = await client.get("/api/locations/GB/LDN/LDN-KINGSX", headers=_as(network, "amp"))
    assert other.status_code == 404 and "LDN-KINGSX" in other.json()["detail"]
    assert (
        await client.get("/api/locations/GB/LDN/LDN-KINGSX", headers=_as(network, "hub"))
    ).status_code == 200


async def test_every_list_is_paged(client: httpx.AsyncClient, network: ApiNetwork) -> None:
    first = await client.get("/api/tokens?limit=2", headers=_as(network, "hub"))
    assert len(first.json()) == 2
    assert first.headers["X-Total-Count"] == "3" and first.headers["X-Limit"] == "2"
    next_url = first.headers["Link"].split(";")[0].strip("<>")
    rest = await client.get(next_url, headers=_as(network, "hub"))
    assert len(rest.json()) == 1 and "Link" not in rest.headers
    assert {t["uid"] for t in first.json() + rest.json()} == {"TOKEN-AMS", "TOKEN-LDN", "TOKEN-IDLE"}
    chargers = await client.get("/api/chargers?limit=1", headers=_as(network, "hub"))
    assert [c["identity"] for c in chargers.json()] == ["CP-AMS-01-1"]
    assert chargers.headers["X-Total-Count"] == "2" and "offset=1" in chargers.headers["Link"]
    for path in ("/api/parties", "/api/tariffs", "/api/locations", "/api/sessions", "/api/cdrs", "/api/tokens",
                 "/api/chargers", "/api/settlement/runs"):  # fmt: skip
        too_many = await client.get(f"{path}?limit=501", headers=_as(network, "hub"))
        assert too_many.status_code == 422 and isinstance(too_many.json()["detail"], list), path
        page = await client.get(f"{path}?limit=1&offset=0", headers=_as(network, "hub"))
        assert page.status_code == 200 and "X-Total-Count" in page.headers, path


async def test_unknown_command_is_refused_by_the_enum(client: httpx.AsyncClient, network: ApiNetwork) -> None:
    r = await client.post(
        "/api/chargers/CP-AMS-01-1/commands/self-destruct", headers=_as(network, "hub"), json={}
    )
    assert r.status_code == 422 and "reset" in r.text
    bad = await client.post(
        "/api/chargers/CP-AMS-01-1/commands/unlock-connector",
        headers=_as(network, "hub"),
        json={"evse_id": "x"},
    )
    assert bad.status_code == 422 and "invalid parameter" in bad.text


async def test_odd_identifiers_are_unknown_not_errors(client: httpx.AsyncClient, network: ApiNetwork) -> None:
    for path in ("/api/sessions/a%00b", "/api/cdrs/a%00b", "/api/chargers/a%00b", "/api/tokens/NL/EMS/a%00b",
                 "/api/locations/NL/AMP/a%00b", "/api/sessions?charger=a%00b", "/api/cdrs?session_id=%00"):  # fmt: skip
        r = await client.get(path, headers=_as(network, "hub"))
        assert r.status_code == 422 and "NUL" in r.json()["detail"], (path, r.status_code)
    r = await client.post("/api/agreements", headers=_as(network, "hub"), json=[{"kind": "roaming\u0000"}])
    assert r.status_code == 422 and "NUL" in r.json()["detail"]
