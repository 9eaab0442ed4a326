"""``/api/billing/payments`` and ``POST /api/billing/invoices/{number}/payments`` on the real app with API keys
(issue 14): bank transfers recorded once per reference, paging, a CPO's key sees only its own issuer's payments,
and bad input is a 4xx with one sentence."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from billing import api_payments
from evhub.app import create_app
from kernel.apiauth import create_key
from kernel.components import Hub
from kernel.db.engine import Database
from kernel.models import BillingDocument, BillingIssuer, Party, PartyRole
from kernel.settings import load_settings
from tests.billing.payments_kit import fleet_with_account, invoices


@dataclass
class Api:
    http: httpx.AsyncClient
    keys: dict[str, str]
    invoices: list[BillingDocument]

    async def get(self, who: str, path: str, **params: Any) -> httpx.Response:
        return await self.http.get(path, params=params, headers={"Authorization": f"Bearer {self.keys[who]}"})

    async def post(self, who: str, path: str, body: dict[str, Any]) -> httpx.Response:
        return await self.http.post(path, json=body, headers={"Authorization": f"Bearer {self.keys[who]}"})


@pytest.fixture
async def api(db: Database) -> AsyncIterator[Api]:
    _, account_id = await fleet_with_account(db)
    docs = await invoices(db, account_id, 2)
    async with db.session() as s:
        vlt = await s.scalar(select(Party).where(Party.party_id == "VLT"))
        assert vlt is not None
        issuer = await s.scalar(select(BillingIssuer).where(BillingIssuer.key == "voltstreet"))
        assert issuer is not None
        issuer.party_id = vlt.id  # Voltstreet's CPO issues these invoices
        other = Party(country_code="NL", party_id="OTH", role=PartyRole.CPO, name="Other CPO")
        s.add(other)
        await s.flush()
        keys = {
            "hub": await create_key(s, "ops", None),
            "vlt": await create_key(s, "vlt-backoffice", vlt),
            "oth": await create_key(s, "oth-backoffice", other),
        }
    hub = Hub(
        settings=load_settings(database_url=db.url, api_auth=True, _env_file=None), db=db, node_name="t"
    )
    hub.app = create_app(hub)
    hub.app.include_router(api_payments.router, prefix="/api")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hub.app), base_url="http://hub") as http:
        yield Api(http, keys, docs)


async def test_bank_transfers_and_the_payments_list(api: Api) -> None:
    first, second = (d.number for d in api.invoices)
    made = await api.post(
        "hub", f"/api/billing/invoices/{first}/payments", {"amount": "4.00", "reference": "R-1"}
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert (body["invoice"], body["amount"], body["method"], body["provider"], body["status"]) == (
        first,
        "4.00",
        "bank_transfer",
        "manual",
        "succeeded",
    )
    again = await api.post(
        "hub", f"/api/billing/invoices/{first}/payments", {"amount": "4.00", "reference": "R-1"}
    )
    assert again.status_code == 201 and again.json()["id"] == body["id"]
    transfer = {"amount": "5.41", "reference": "R-2", "received_on": "2026-06-10"}
    assert (await api.post("hub", f"/api/billing/invoices/{second}/payments", transfer)).status_code == 201
    listed = await api.get("hub", "/api/billing/payments")
    assert [(p["invoice"], p["amount"]) for p in listed.json()] == [(first, "4.00"), (second, "5.41")]
    assert listed.headers["X-Total-Count"] == "2"
    paged = await api.get("hub", "/api/billing/payments", limit=1)
    assert len(paged.json()) == 1 and 'rel="next"' in paged.headers["Link"]
    only = await api.get("hub", "/api/billing/payments", invoice=second)
    assert [p["reference"] for p in only.json()] == ["R-2"] and only.headers["X-Total-Count"] == "1"
    assert only.json()[0]["settled_at"].startswith("2026-06-10")
    # party isolation: the issuing CPO sees its payments, another CPO none of them
    assert len((await api.get("vlt", "/api/billing/payments")).json()) == 2
    other = await api.get("oth", "/api/billing/payments")
    assert other.status_code == 200 and other.json() == [] and other.headers["X-Total-Count"] == "0"
    assert (await api.get("oth", "/api/billing/payments", invoice=first)).status_code == 404


async def test_refusals(api: Api) -> None:
    number = api.invoices[0].number
    path = f"/api/billing/invoices/{number}/payments"
    assert (await api.post("hub", path, {"amount": "4.00", "reference": "R-1"})).status_code == 201
    for who, url, body, code, text in [
        ("hub", path, {"amount": "3.00", "reference": "R-1"}, 409, "already recorded"),
        (
            "hub",
            "/api/billing/invoices/INV-1999-000001/payments",
            {"amount": "1", "reference": "X"},
            404,
            "no invoice",
        ),
        ("hub", path, {"amount": "1.005", "reference": "X"}, 422, "more decimals"),
        ("hub", path, {"amount": "0", "reference": "X"}, 422, "greater than 0"),
        ("hub", path, {"amount": "1", "reference": ""}, 422, "at least 1 character"),
        ("vlt", path, {"amount": "1", "reference": "X"}, 403, "hub operator"),
    ]:
        r = await api.post(who, url, body)
        assert r.status_code == code and text in r.text, (body, r.status_code, r.text)
    assert (await api.get("hub", "/api/billing/payments", invoice="nope")).status_code == 404
    assert len((await api.get("hub", "/api/billing/payments")).json()) == 1
