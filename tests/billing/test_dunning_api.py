"""``GET /api/billing/dunning`` and ``GET /api/billing/invoices/{number}/dunning`` over real HTTP in-process
(issue 14): typed answers (amounts as strings, dates), a CPO's key sees only the accounts of its own issuer, and
an invoice of another party is answered as unknown."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest

from billing import api_dunning
from billing.store.dunning import run_dunning
from evhub.app import create_app
from kernel.apiauth import create_key
from kernel.components import Hub
from kernel.db.engine import Database
from kernel.models import Party, PartyRole
from kernel.settings import load_settings
from tests.billing.dunning_kit import Dunned, day, pay, seed


@pytest.fixture
async def api(db: Database) -> AsyncIterator[tuple[httpx.AsyncClient, Dunned, dict[str, str]]]:
    d = await seed(db)
    async with db.session() as s:
        other = Party(country_code="NL", party_id="OTH", role=PartyRole.CPO, name="Other CPO")
        s.add(other)
        await s.flush()
        issuer_party = await s.get(Party, d.world.cpo_id)
        keys = {
            "hub": await create_key(s, "ops", None),
            "cpo": await create_key(s, "cpo-backoffice", issuer_party),
            "oth": await create_key(s, "oth-backoffice", other),
        }
    hub = Hub(
        settings=load_settings(database_url=db.url, api_auth=True, _env_file=None), db=db, node_name="t"
    )
    hub.app = create_app(hub)
    hub.app.include_router(api_dunning.router, prefix="/api")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hub.app), base_url="http://hub") as http:
        yield http, d, keys


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_status_and_an_invoices_steps_with_party_isolation(
    api: tuple[httpx.AsyncClient, Dunned, dict[str, str]], db: Database
) -> None:
    http, d, keys = api
    [before] = (await http.get("/api/billing/dunning", headers=_auth(keys["hub"]))).json()
    assert before["state"] == "ok" and before["last_step"] is None and before["outstanding"] == str(d.payable)
    assert await run_dunning(db, today=day(d, 14)) == 4
    answer = await http.get(
        "/api/billing/dunning", params={"issuer": "voltstreet"}, headers=_auth(keys["cpo"])
    )
    assert answer.status_code == 200 and answer.headers["X-Total-Count"] == "1"
    [status] = answer.json()
    assert status["state"] == "limited" and status["held_for"] == [d.number] and status["currency"] == "EUR"
    assert status["last_step"]["rule"] == "lower-limit" and status["last_step"]["action"] == "lower_limit"
    assert (await http.get("/api/billing/dunning", headers=_auth(keys["oth"]))).json() == []
    nobody = await http.get("/api/billing/dunning", params={"issuer": "nobody"}, headers=_auth(keys["hub"]))
    assert nobody.status_code == 404 and nobody.json()["detail"] == "no issuer nobody"

    url = f"/api/billing/invoices/{d.number}/dunning"
    body = (await http.get(url, headers=_auth(keys["cpo"]))).json()
    assert body["invoice"] == d.number and body["issuer"] == "voltstreet" and body["due_date"] == str(d.due)
    assert [(s["rule"], s["action"], s["due_on"]) for s in body["steps"]] == [
        ("retry", "retry_payment", str(day(d, 7))),
        ("reminder-1", "reminder", str(day(d, 3))),
        ("reminder-2", "reminder", str(day(d, 10))),
        ("lower-limit", "lower_limit", str(day(d, 14))),
    ]
    [hold] = body["holds"]
    assert (hold["action"], Decimal(hold["limit"]), hold["currency"], hold["released_at"]) == (
        "lower_limit", Decimal("50"), "EUR", None)  # fmt: skip
    hidden = await http.get(url, headers=_auth(keys["oth"]))
    assert hidden.status_code == 404 and d.number in hidden.json()["detail"]
    unknown = await http.get("/api/billing/invoices/INV-0/dunning", headers=_auth(keys["hub"]))
    assert unknown.status_code == 404 and "no invoice INV-0" in unknown.json()["detail"]
    assert (await http.get(url)).status_code == 401

    await pay(db, d.document_id)
    body = (await http.get(url, headers=_auth(keys["hub"]))).json()
    assert Decimal(body["outstanding"]) == 0 and body["holds"][0]["released_at"] is not None
    assert body["steps"][-1]["rule"] == "release"
