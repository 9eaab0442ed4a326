"""Document numbers with ``/`` in ``/api/billing/invoices/{number}/...`` (issue 14): an issuer whose series is
``AMP/INV/`` (``AMP/INV-2026-000001``) has its invoice shown, printed (a safe file name),
credited, its dunning read and a bank transfer recorded through the API, with every billing router mounted in
the component's order (the document route never swallows another route's trailing word)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import billing
from billing import api_documents, api_dunning, api_payments, api_reports
from billing.api_paths import DOCUMENT_NUMBER, filename
from billing.einvoice.pdf import embedded_xml
from evhub.app import create_app
from kernel.apiauth import create_key
from kernel.components import Hub
from kernel.db.engine import Database
from kernel.settings import load_settings
from tests.billing.documents_kit import ACME, cdr_of, charge, rate, seed_world, utc
from tests.cli_kit import Cli, one_error

SLASHED = billing.Issuer(
    key="amp",
    identity=billing.Identity(
        "AmsterPower B.V.",
        billing.Address("Dam 1", "1012 JS", "Amsterdam", "NL"),
        vat_id="NL000000001B01",
        registration_id="KvK 33000001",
    ),
    currency="EUR",
    invoice_series=billing.Series("AMP/INV"),
    credit_series=billing.Series("AMP/CN"),
    terms=billing.PaymentTerms(7),
)
NUMBER = "AMP/INV-2026-000001"


@dataclass
class Api:
    http: httpx.AsyncClient
    key: str

    async def get(self, path: str) -> httpx.Response:
        return await self.http.get(path, headers={"Authorization": f"Bearer {self.key}"})

    async def post(self, path: str, body: object) -> httpx.Response:
        return await self.http.post(path, json=body, headers={"Authorization": f"Bearer {self.key}"})


@pytest.fixture
async def api(db: Database) -> AsyncIterator[Api]:
    world = await seed_world(db)
    await charge(db, "ACME-2", utc(2026, 11, 4, 8, 0), "by-amp")
    assert await rate(db) == 1
    by_amp = (await cdr_of(db, "by-amp")).id
    async with db.session() as s:
        await billing.add_issuer(s, SLASHED, world.parties["NL*AMP"])
        row = await billing.issue_session_invoice(s, issuer_key="amp", cdr_id=by_amp, buyer=ACME)
        assert row.number == NUMBER
        key = await create_key(s, "ops", None)
    hub = Hub(
        settings=load_settings(database_url=db.url, api_auth=True, _env_file=None), db=db, node_name="t"
    )
    hub.app = create_app(hub)
    for module in (api_documents, api_payments, api_dunning, api_reports):  # billing.component's order
        hub.app.include_router(module.router, prefix="/api")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hub.app), base_url="http://hub") as http:
        yield Api(http, key)


@pytest.mark.clock("2026-12-01T10:00:00Z")
async def test_a_number_with_slashes_is_shown_printed_credited_dunned_and_paid(api: Api) -> None:
    shown = await api.get(f"/api/billing/invoices/{NUMBER}")
    assert shown.status_code == 200 and shown.json()["number"] == NUMBER, shown.text
    pdf = await api.get(f"/api/billing/invoices/{NUMBER}/pdf")
    assert pdf.status_code == 200 and NUMBER.encode() in embedded_xml(pdf.content)
    assert pdf.headers["content-disposition"] == 'inline; filename="AMP_INV-2026-000001.pdf"'
    dunning = await api.get(f"/api/billing/invoices/{NUMBER}/dunning")
    assert dunning.status_code == 200 and dunning.json()["invoice"] == NUMBER, dunning.text
    paid = await api.post(
        f"/api/billing/invoices/{NUMBER}/payments", {"amount": "0.01", "reference": "BANK-1"}
    )
    assert paid.status_code == 201, paid.text
    note = await api.post(f"/api/billing/invoices/{NUMBER}/credit", {"amount": "0.50", "reason": "Goodwill"})
    assert note.status_code == 201 and note.json()["credits"] == NUMBER, note.text
    assert note.json()["number"] == "AMP/CN-2026-000001"
    credit_note = await api.get("/api/billing/invoices/AMP/CN-2026-000001")
    assert credit_note.status_code == 200 and credit_note.json()["credits"] == NUMBER
    missing = await api.get("/api/billing/invoices/AMP/INV-2026-000009")
    assert missing.status_code == 404 and "no document AMP/INV-2026-000009" in missing.json()["detail"]


@pytest.mark.clock("2026-12-01T10:00:00Z")
async def test_the_cli_takes_a_number_with_slashes_as_it_is(api: Api, cli: Cli, tmp_path: Path) -> None:
    shown = json.loads((await cli("invoices", "show", NUMBER)).output)
    assert shown["number"] == NUMBER
    pdf = tmp_path / "invoice.pdf"
    assert f"wrote {NUMBER}" in (await cli("invoices", "pdf", NUMBER, "--out", str(pdf))).output
    assert NUMBER.encode() in embedded_xml(pdf.read_bytes())
    out = (await cli("invoices", "credit", NUMBER, "--reason", "Goodwill", "--amount", "0.50")).output
    assert "credit note AMP/CN-2026-000001" in out and f"credits {NUMBER}" in out
    one_error(
        await cli("invoices", "show", "AMP/INV-2026-000009", ok=False), "no document AMP/INV-2026-000009"
    )


def test_the_number_parameter_stops_before_a_routes_own_word() -> None:
    import re

    pdf = re.compile(rf"^/billing/invoices/(?P<number>{DOCUMENT_NUMBER})/pdf$")
    one = re.compile(rf"^/billing/invoices/(?P<number>{DOCUMENT_NUMBER})$")
    match = pdf.match("/billing/invoices/INV/2026/000001/pdf")
    assert match is not None and match["number"] == "INV/2026/000001"
    assert one.match("/billing/invoices/INV/2026/000001/dunning") is None
    assert one.match("/billing/invoices/INV-2026-000001")["number"] == "INV-2026-000001"  # type: ignore[index]
    assert filename("INV/2026/000001") == "INV_2026_000001.pdf"
