"""A credit note that credits several invoices names every one of them wherever it is listed or shown (issue 14):
a B2B period's credit note corrects each earlier invoice a credited CDR was billed on (BG-3,
``CreditNote.also_credits``, kept in the stored document); the desk's view (portal list, fleet statement CSV),
its plain-text rendering (the e-mail's text part) and ``/api/billing/invoices`` (list and one) show them all,
BT-25's first, not only the one the credit is carried against (``credits_document_id``)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

import billing
from billing import api_documents
from billing.desk import _credit_note_view, render_text, statement_csv
from billing.settlement_documents import run_settlement_documents_job
from billing.store.codec import load_credit_note
from evhub.app import create_app
from kernel.apiauth import create_key
from kernel.components import Hub
from kernel.db.engine import Database
from kernel.models import Cdr, ChargingSession, MeterValue
from kernel.seams import BillingAccountView
from kernel.settings import load_settings
from settlement.job import run_period
from tariffs.rating import correct_cdr, rate_pending
from tests.billing.b2b_kit import (
    CLOCK,
    add_issuers,
    b2b_hub,
    documents_by_number,
    settled_period,
    site_host_account,
)
from tests.world.sessions import seed_ended_session

pytestmark = pytest.mark.clock(CLOCK)


async def _quarter(db: Database, cdr_uid: str) -> None:
    """The session of ``cdr_uid`` charged a quarter of what it said (the operator corrects its data)."""
    async with db.session() as s:
        cdr = await s.scalar(select(Cdr).where(Cdr.cdr_uid == cdr_uid))
        assert cdr is not None
        session = await s.get(ChargingSession, cdr.session_id)
        assert session is not None and session.meter_stop_wh is not None
        session.energy_wh = session.energy_wh / 4
        session.meter_stop_wh = session.meter_start_wh + session.energy_wh
        for value in await s.scalars(select(MeterValue).where(MeterValue.session_id == session.id)):
            value.value = session.meter_start_wh + (value.value - session.meter_start_wh) / 4


async def test_every_credited_invoice_is_named_by_the_desk_the_text_and_the_api(
    db: Database, tmp_path: Path
) -> None:
    await settled_period(db, tmp_path / "nov", sessions=1)
    await add_issuers(db)
    await site_host_account(db)
    assert await run_settlement_documents_job(b2b_hub(db)) == 3
    await seed_ended_session(db, "AMS-01-1", datetime(2026, 12, 4, 9, tzinfo=UTC), 50, "9.5", uid="dec-0")
    await rate_pending(db, ())
    december = await run_period(db, "2026-12", out_dir=tmp_path / "dec", close=True)
    assert december.run_id is not None
    await billing.issue_settlement_documents(db, december.run_id)
    async with db.session() as s:
        uids = list(await s.scalars(select(Cdr.cdr_uid).where(Cdr.is_credit.is_(False)).order_by(Cdr.id)))
    for uid in uids:
        await _quarter(db, uid)
        await correct_cdr(db, uid, ())
    january = await run_period(db, "2027-01", out_dir=tmp_path / "jan", close=True)
    assert january.run_id is not None
    outcomes = await billing.issue_settlement_documents(db, january.run_id)
    assert [o.number for o in outcomes] == ["AMPC-2026-000001", "HUBC-2026-000001", "SBC-2026-000001"]
    docs = await documents_by_number(db)
    numbers = {row.id: row.number for row in docs.values()}
    expected = {
        "AMPC-2026-000001": ["AMP-2026-000002", "AMP-2026-000001"],
        "HUBC-2026-000001": ["HUB-2026-000002", "HUB-2026-000001"],
        "SBC-2026-000001": ["SB-2026-000002", "SB-2026-000001"],
    }

    # the desk: its view of the note (the portal's list) and the statement CSV built from it
    for number, credited in expected.items():
        view = _credit_note_view(docs[number], numbers, set())
        assert view.credits == ", ".join(credited)
        text = render_text(load_credit_note(docs[number].document))
        assert f"Credits invoices {credited[0]} of " in text and f", {credited[1]} of " in text
        account = BillingAccountView(
            account_id=1,
            issuer="AmsterPower",
            currency="EUR",
            balance=Decimal(0),
            overdue=Decimal(0),
            dunning_state="current",
            payment_method=None,
            documents=(view,),
        )
        csv = statement_csv([account], [], [])
        assert f'"credits {credited[0]}, {credited[1]}"' in csv

    # the API, list and one document
    async with db.session() as s:
        key = await create_key(s, "ops", None)
    hub = Hub(
        settings=load_settings(database_url=db.url, api_auth=True, _env_file=None), db=db, node_name="t"
    )
    hub.app = create_app(hub)
    hub.app.include_router(api_documents.router, prefix="/api")
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hub.app), base_url="http://hub") as http:
        listed = (await http.get("/api/billing/invoices", headers=headers, params={"limit": 100})).json()
        by_number = {d["number"]: d for d in listed}
        for number, credited in expected.items():
            assert by_number[number]["credits"] == credited[0]
            assert by_number[number]["credits_all"] == credited
            one = (await http.get(f"/api/billing/invoices/{number}", headers=headers)).json()
            assert one["credits_all"] == credited
        assert all(d["credits_all"] == [] for d in listed if d["number"] not in expected)
