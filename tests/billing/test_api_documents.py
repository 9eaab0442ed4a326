"""``/api/billing`` documents (issue 14) over real HTTP in-process (httpx ASGITransport) with API keys on: issuers,
invoices (paged, filtered), one document, its PDF, monthly invoices on demand, operator credits, accounts; writes
need the hub's key, and a CPO's key never sees another issuer's documents or accounts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

import billing
from billing import api_documents
from billing.einvoice.pdf import embedded_xml
from evhub.app import create_app
from kernel.apiauth import create_key
from kernel.components import Hub
from kernel.db.engine import Database
from kernel.models import Party
from kernel.settings import load_settings
from tests.billing.documents_kit import ACME, cdr_of, charge, documents, rate, seed_world, utc

AMP = billing.Issuer(
    key="amp",
    identity=billing.Identity(
        "AmsterPower B.V.",
        billing.Address("Dam 1", "1012 JS", "Amsterdam", "NL"),
        vat_id="NL000000001B01",
        registration_id="KvK 33000001",
    ),
    currency="EUR",
    invoice_series=billing.Series("AMP"),
    credit_series=billing.Series("AMPC"),
    terms=billing.PaymentTerms(7),
)


@dataclass
class Api:
    http: httpx.AsyncClient
    keys: dict[str, str]
    account_id: int

    async def get(self, who: str, path: str, **params: object) -> httpx.Response:
        return await self.http.get(path, params=params, headers={"Authorization": f"Bearer {self.keys[who]}"})

    async def post(self, who: str, path: str, body: object) -> httpx.Response:
        return await self.http.post(path, json=body, headers={"Authorization": f"Bearer {self.keys[who]}"})


@pytest.fixture
async def api(db: Database) -> AsyncIterator[Api]:
    """Roam (eMSP NL*EMS) invoices fleet Acme and the app driver; AmsterPower (CPO NL*AMP) issued one invoice; keys
    of the hub operator, of AmsterPower's and of London Charge's back office."""
    world = await seed_world(db)
    await charge(db, "ACME-1", utc(2026, 11, 3, 8, 0), "fleet")
    await charge(db, "ACME-2", utc(2026, 11, 4, 8, 0), "by-amp")
    await charge(db, "TOKEN-1", utc(2026, 11, 5, 8, 0), "app")  # Roam's per-session invoice (the hook)
    assert await rate(db) == 3
    by_amp = (await cdr_of(db, "by-amp")).id
    async with db.session() as s:
        await billing.add_issuer(s, AMP, world.parties["NL*AMP"])
        await billing.issue_session_invoice(s, issuer_key="amp", cdr_id=by_amp, buyer=ACME)
        keys = {
            "hub": await create_key(s, "ops", None),
            "amp": await create_key(s, "amp-backoffice", await s.get(Party, world.parties["NL*AMP"])),
            "ldn": await create_key(s, "ldn-backoffice", await s.get(Party, world.parties["GB*LDN"])),
        }
    hub = Hub(
        settings=load_settings(database_url=db.url, api_auth=True, _env_file=None), db=db, node_name="t"
    )
    hub.app = create_app(hub)
    hub.app.include_router(api_documents.router, prefix="/api")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hub.app), base_url="http://hub") as http:
        yield Api(http, keys, world.account_id)


@pytest.mark.clock("2026-12-01T10:00:00Z")
async def test_a_cpo_key_sees_only_its_own_issuers_documents_and_accounts(api: Api) -> None:
    hub = (await api.get("hub", "/api/billing/invoices")).json()
    assert [(d["number"], d["issuer"]) for d in hub] == [
        ("INV-2026-000001", "roam"),
        ("AMP-2026-000001", "amp"),
    ]
    made = await api.post(
        "hub", "/api/billing/invoices/monthly", {"account_id": api.account_id, "period": "2026-11"}
    )
    assert made.status_code == 200 and made.json()["created"] is True
    monthly = made.json()["invoice"]["number"]
    mine = await api.get("amp", "/api/billing/invoices")
    assert mine.status_code == 200 and [d["number"] for d in mine.json()] == ["AMP-2026-000001"]
    assert mine.headers["X-Total-Count"] == "1"
    assert (await api.get("ldn", "/api/billing/invoices")).json() == []
    for other in ("INV-2026-000001", monthly):  # Roam's: unknown to AmsterPower, whatever the way asked
        assert (await api.get("amp", f"/api/billing/invoices/{other}")).status_code == 404
        assert (await api.get("amp", f"/api/billing/invoices/{other}/pdf")).status_code == 404
        assert (await api.get("amp", "/api/billing/invoices", issuer="roam")).json() == []
    assert (await api.get("amp", "/api/billing/invoices", account=api.account_id)).json() == []
    own = await api.get("amp", "/api/billing/invoices/AMP-2026-000001")
    assert (
        own.status_code == 200
        and own.json()["document"]["totals"]["tax_exclusive"] == own.json()["total_excl_vat"]
    )
    assert [i["key"] for i in (await api.get("amp", "/api/billing/issuers")).json()] == ["amp"]
    assert [i["key"] for i in (await api.get("hub", "/api/billing/issuers")).json()] == ["amp", "roam"]
    assert (await api.get("amp", "/api/billing/accounts")).json() == []
    assert (await api.get("ldn", "/api/billing/issuers")).json() == []
    accounts = (await api.get("hub", "/api/billing/accounts")).json()
    assert {(a["kind"], a["issuer"]) for a in accounts} == {("fleet", "roam"), ("driver", "roam")}
    for path, body in (
        ("/api/billing/invoices/monthly", {"account_id": api.account_id, "period": "2026-11"}),
        ("/api/billing/invoices/AMP-2026-000001/credit", {"full": True, "reason": "mine"}),
        ("/api/billing/issuers", {"key": "x"}),
    ):
        assert (await api.post("amp", path, body)).status_code == 403


@pytest.mark.clock("2026-12-01T10:00:00Z")
async def test_the_hub_issues_monthly_invoices_credits_and_issuers_with_clear_refusals(
    api: Api, db: Database
) -> None:
    body = {"account_id": api.account_id, "period": "2026-11"}
    first = (await api.post("hub", "/api/billing/invoices/monthly", body)).json()
    again = (await api.post("hub", "/api/billing/invoices/monthly", body)).json()
    assert (
        first["created"] and not again["created"] and again["invoice"]["number"] == first["invoice"]["number"]
    )
    number = first["invoice"]["number"]
    assert (
        first["invoice"]["billing_period"] == "2026-11" and first["invoice"]["account_id"] == api.account_id
    )
    nothing = (await api.post("hub", "/api/billing/invoices/monthly", {**body, "period": "2026-10"})).json()
    assert nothing == {"created": False, "invoice": None}
    refused = await api.post("hub", "/api/billing/invoices/monthly", {**body, "period": "Nov"})
    assert refused.status_code == 422 and "YYYY-MM" in refused.json()["detail"]
    assert (
        await api.post("hub", "/api/billing/invoices/monthly", {**body, "account_id": 999})
    ).status_code == 404
    note = await api.post(
        "hub", f"/api/billing/invoices/{number}/credit", {"amount": "1.00", "reason": "Goodwill"}
    )
    assert (
        note.status_code == 201
        and note.json()["credits"] == number
        and note.json()["total_excl_vat"] == "1.00"
    )
    for bad, text in (
        ({"amount": "99999", "reason": "x"}, "exceeds"),
        ({"amount": "1.00", "full": True, "reason": "x"}, "either"),
        ({"reason": "x"}, "either"),
    ):
        answer = await api.post("hub", f"/api/billing/invoices/{number}/credit", bad)
        assert answer.status_code == 422 and text in answer.json()["detail"], answer.text
    assert (
        await api.post("hub", "/api/billing/invoices/INV-9/credit", {"full": True, "reason": "x"})
    ).status_code == 404
    notes = (await api.get("hub", "/api/billing/invoices", kind="credit_note")).json()
    assert [n["number"] for n in notes] == ["CN-2026-000001"]
    page = await api.get("hub", "/api/billing/invoices", limit=1)
    assert page.headers["X-Total-Count"] == "4" and 'rel="next"' in page.headers["Link"]
    pdf = await api.get("hub", f"/api/billing/invoices/{number}/pdf")
    assert pdf.headers["content-type"] == "application/pdf" and number.encode() in embedded_xml(pdf.content)
    issuer = {
        "key": "ldn", "party": "GB*LDN", "legal_name": "London Charge Co Ltd", "street": "1 King's Cross",
        "postal_code": "N1C 4AX", "city": "London", "country": "GB", "vat_id": "GB123456789", "currency": "GBP",
        "registration_id": "Companies House 01234567",
    }  # fmt: skip
    unregistered = await api.post("hub", "/api/billing/issuers", {**issuer, "registration_id": None})
    assert unregistered.status_code == 422 and "legal registration id" in unregistered.json()["detail"]
    added = await api.post("hub", "/api/billing/issuers", issuer)
    assert added.status_code == 201 and added.json()["party"] == "GB*LDN"
    assert (await api.post("hub", "/api/billing/issuers", issuer)).status_code == 409
    bad = await api.post("hub", "/api/billing/issuers", {**issuer, "key": "x", "country": "XX"})
    assert bad.status_code == 422 and "ISO 3166-1" in bad.json()["detail"]
    bad = await api.post("hub", "/api/billing/issuers", {**issuer, "key": "y", "party": "ZZ*ZZZ"})
    assert bad.status_code == 422 and "no party" in bad.json()["detail"]
    assert [i["key"] for i in (await api.get("ldn", "/api/billing/issuers")).json()] == ["ldn"]
    assert len(await documents(db)) == 4
