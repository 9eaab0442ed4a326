"""Billing reports (issue 14) on the real database, CLI and API: receivables aging as of a day (payments and
refunds counted only once settled), payments and refunds of a month with their succeeded totals, and the
reconciliation of invoices with their CDRs and payments with its exceptions (a CDR of a closed month on no
invoice, a payment on no invoice, an invoice whose lines differ from its CDRs); CSV from ``evhub billing report``
and ``/api/billing/reports/...`` (JSON or CSV; a party's key sees its own issuer only)."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

import billing
from billing import api_reports
from billing.store import reports
from billing.store.accounts import fleet_account
from evhub.app import create_app
from evhub.cli import app
from kernel.apiauth import create_key
from kernel.components import Hub
from kernel.db.engine import Database
from kernel.models import BillingIssuer, Cdr, Party
from kernel.settings import load_settings
from tests.billing import reports_kit as rk
from tests.world.fleets import add_fleet_with_manager, add_session, add_token, base_world

D = Decimal
CLOCK = pytest.mark.clock("2026-07-05T10:00:00+00:00")  # June is closed


async def _world(db: Database) -> dict[str, Any]:
    """evh invoices Acme (May: overdue 31-60 on 07-05; June: paid, then 1.00 refunded); the CPO's own issuer
    ``cpo`` invoices Globex (June, 5.00 paid by bank transfer); Acme's CDR of 06-20 is on no invoice; 10.00 paid
    on Acme's account on no invoice; a failed card payment."""
    world = await base_world(db)
    acme = await add_fleet_with_manager(db, world, "Acme", "boss@acme.test")
    globex = await add_fleet_with_manager(db, world, "Globex", "boss@globex.test")
    await add_token(db, world, "Acme", "ACME01", driver="Alice")
    await add_token(db, world, "Globex", "GLOBEX1", driver="Gina")
    await rk.add_issuer(db)
    async with db.session() as s:
        await billing.add_issuer(s, billing.Issuer(**{**_issuer_fields(), "key": "cpo"}))
        row = (await s.scalars(select(BillingIssuer).where(BillingIssuer.key == "cpo"))).one()
        row.party_id = world.cpo_id
    acme_acc = await rk.add_account(db, acme, "Acme")
    async with db.session() as s:
        cpo = (await s.scalars(select(BillingIssuer).where(BillingIssuer.key == "cpo"))).one()
        globex_acc = (await fleet_account(s, cpo, globex, rk.fleet_buyer("Globex"))).id
    _, c1 = await add_session(db, world, "ACME01", datetime(2026, 5, 1, 8, tzinfo=UTC), "20")
    _, c2 = await add_session(db, world, "ACME01", datetime(2026, 6, 5, 8, tzinfo=UTC), "10")
    _, c3 = await add_session(db, world, "GLOBEX1", datetime(2026, 6, 8, 8, tzinfo=UTC), "30")
    _, c4 = await add_session(db, world, "ACME01", datetime(2026, 6, 20, 8, tzinfo=UTC), "5")
    assert c1 and c2 and c3 and c4
    inv1 = await rk.invoice(db, c1, acme_acc, date(2026, 5, 2))  # due 05-16
    inv2 = await rk.invoice(db, c2, acme_acc, date(2026, 6, 6))  # due 06-20
    async with db.session() as s:
        inv3 = await billing.issue_session_invoice(
            s,
            issuer_key="cpo",
            cdr_id=c3,
            buyer=rk.fleet_buyer("Globex"),
            issue_date=date(2026, 6, 9),
            account_id=globex_acc,
        )  # due 06-23
    at = lambda day: datetime(2026, 6, day, 12, tzinfo=UTC)  # noqa: E731
    await rk.pay(db, inv2, str(inv2.payable), at(10), ref="pi_inv2")
    await rk.pay(db, inv1, str(inv1.payable), at(12), status="failed", ref="pi_failed")
    await rk.pay(db, inv3, "5.00", at(20), method="bank_transfer")
    await rk.pay(db, inv2, "1.00", at(25), kind="refund", ref="re_inv2")
    await rk.pay(db, None, "10.00", at(28), account_id=acme_acc, method="bank_transfer", ref="unapplied")
    return {"world": world, "inv": (inv1, inv2, inv3), "cdrs": (c1, c2, c3, c4)}


def _issuer_fields() -> dict[str, Any]:
    i = rk.ISSUER
    return {
        "key": i.key,
        "identity": i.identity,
        "currency": i.currency,
        "invoice_series": i.invoice_series,
        "credit_series": i.credit_series,
        "terms": i.terms,
    }


@CLOCK
async def test_aging_as_of_a_day(db: Database) -> None:
    w = await _world(db)
    inv1, inv2, inv3 = w["inv"]
    async with db.session() as s:
        now = {(r.issuer, r.currency): r.buckets for r in await reports.aging_report(s, date(2026, 7, 5))}
        before = {(r.issuer, r.currency): r.buckets for r in await reports.aging_report(s, date(2026, 6, 8))}
        only_cpo = await reports.aging_report(s, date(2026, 7, 5), issuer="cpo")
        with pytest.raises(reports.ReportError, match="no issuer"):
            await reports.aging_report(s, date(2026, 7, 5), issuer="nobody")
    # 07-05: inv1 is 50 days past due; inv2 owes the 1.00 refunded after payment; inv3 what the transfer left
    assert now[("evh", "EUR")] == {
        "current": D("0.00"),
        "0-30": D("1.00"),
        "31-60": inv1.payable,
        "61-90": D("0.00"),
        "90+": D("0.00"),
    }
    assert now[("cpo", "EUR")]["0-30"] == inv3.payable - D("5.00")
    # 06-08: inv2 was issued and not yet paid (not due), inv1 23 days past due, inv3 not issued yet
    assert before[("evh", "EUR")]["current"] == inv2.payable
    assert before[("evh", "EUR")]["0-30"] == inv1.payable
    assert ("cpo", "EUR") not in before
    assert [(r.issuer, r.total) for r in only_cpo] == [("cpo", inv3.payable - D("5.00"))]


@CLOCK
async def test_payments_and_reconciliation(db: Database) -> None:
    w = await _world(db)
    inv1, inv2, inv3 = w["inv"]
    _c1, c2, _c3, c4 = w["cdrs"]
    async with db.session() as s:  # a CDR row changed behind billing's back: its invoice no longer matches
        await s.execute(update(Cdr).where(Cdr.id == c2).values(total_cost_excl_vat=D("4.99")))
    async with db.session() as s:
        lines, totals = await reports.payments_report(s, "2026-06")
        rec = await reports.reconciliation_report(s, "2026-06", date(2026, 7, 5))
        open_month = await reports.reconciliation_report(s, "2026-07", date(2026, 7, 5))
        with pytest.raises(reports.ReportError, match="YYYY-MM"):
            await reports.payments_report(s, "June")
    assert [(p.day.day, p.kind, p.status, p.document) for p in lines] == [
        (10, "payment", "succeeded", inv2.number),
        (12, "payment", "failed", inv1.number),
        (20, "payment", "succeeded", inv3.number),
        (25, "refund", "succeeded", inv2.number),
        (28, "payment", "succeeded", None),
    ]
    assert [(t.issuer, t.kind, t.count, t.amount) for t in totals] == [
        ("cpo", "payment", 1, D("5.00")),
        ("evh", "payment", 2, inv2.payable + D("10.00")),
        ("evh", "refund", 1, D("1.00")),
    ]
    assert rec.closed and not open_month.closed
    checks = {c.number: c for c in rec.invoices}
    assert set(checks) == {inv2.number, inv3.number}  # inv1 is May's
    good = checks[inv3.number]
    assert good.cdrs == 1 and good.difference == 0 and good.paid == D("5.00")
    assert good.outstanding == inv3.payable - D("5.00")
    bad = checks[inv2.number]
    assert bad.cdrs_excl_vat == D("4.99") and bad.lines_excl_vat == inv2.total_excl_vat
    assert bad.paid == inv2.payable - D("1.00") and bad.outstanding == D("1.00")
    kinds = sorted((e.kind, e.issuer, e.amount) for e in rec.exceptions)
    async with db.session() as s:
        c4_row = await s.get(Cdr, c4)
        assert c4_row is not None
        c4_uid, c4_excl = c4_row.cdr_uid, c4_row.total_cost_excl_vat
    assert kinds == sorted(
        [
            ("lines_differ", "evh", inv2.total_excl_vat - D("4.99")),
            ("cdr_not_invoiced", "evh", c4_excl),
            ("payment_without_invoice", "evh", D("10.00")),
        ]
    )
    assert next(e for e in rec.exceptions if e.kind == "cdr_not_invoiced").ref == c4_uid
    assert not open_month.exceptions  # July is not closed: nothing is late yet


def _cli(db: Database, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("EVHUB_DATABASE_URL", db.url)
    runner = CliRunner()

    async def invoke(*args: str) -> Any:
        return await asyncio.to_thread(runner.invoke, app, ["billing", "report", *args])

    return invoke


@CLOCK
async def test_cli_writes_the_reports_as_csv(
    db: Database, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    w = await _world(db)
    inv1, inv2, _inv3 = w["inv"]
    cli = _cli(db, monkeypatch)
    out = tmp_path / "aging.csv"
    result = await cli("aging", "--as-of", "2026-07-05", "--issuer", "evh", "--csv", str(out))
    assert result.exit_code == 0, result.output
    [row] = list(csv.DictReader(io.StringIO(out.read_text())))
    assert row["issuer"] == "evh" and row["31-60"] == str(inv1.payable) and row["0-30"] == "1.00"
    result = await cli("payments", "--period", "2026-06")  # to stdout
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["amount"] for r in rows] == [str(inv2.payable), str(inv1.payable), "5.00", "1.00", "10.00"]
    assert rows[2]["method"] == "bank_transfer" and rows[2]["reference"] == "SEPA-REF-1"
    result = await cli("reconciliation", "--period", "2026-06", "--csv", "-")
    assert result.exit_code == 0, result.output
    records = [r["record"] for r in csv.DictReader(io.StringIO(result.stdout))]
    assert records.count("invoice") == 2 and "cdr_not_invoiced" in records
    assert "payment_without_invoice" in records
    for args, text in [
        (("payments", "--period", "2026-13"), "is not a month"),
        (("aging", "--as-of", "yesterday"), "is not a day"),
        (("aging", "--issuer", "nobody"), "no issuer"),
    ]:
        bad = await cli(*args)
        lines = [ln for ln in bad.output.splitlines() if ln.strip()]
        assert bad.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error:"), bad.output
        assert text in lines[0]


@CLOCK
async def test_api_json_csv_and_party_scope(db: Database) -> None:
    w = await _world(db)
    inv1, _inv2, inv3 = w["inv"]
    async with db.session() as s:
        hub_key = await create_key(s, "ops", None)
        cpo_party = await s.get(Party, w["world"].cpo_id)
        cpo_key = await create_key(s, "cpo", cpo_party)
        other = Party(country_code="DE", party_id="OTH", role=cpo_party.role, name="Other")  # type: ignore[union-attr]
        s.add(other)
        await s.flush()
        other_key = await create_key(s, "other", other)
    settings = load_settings(database_url=db.url, log_level="WARNING", api_auth=True, _env_file=None)
    hub = Hub(settings=settings, db=db, node_name="reports-test")
    app = create_app(hub)
    hub.app = app
    app.include_router(api_reports.router, prefix="/api")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:

        def auth(key: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {key}"}

        assert (await client.get("/api/billing/reports/aging")).status_code == 401
        aging = await client.get("/api/billing/reports/aging", headers=auth(hub_key))
        assert aging.status_code == 200, aging.text
        body = aging.json()
        assert body["as_of"] == "2026-07-05"
        rows = {r["issuer"]: r for r in body["rows"]}
        assert D(rows["evh"]["buckets"]["31-60"]) == inv1.payable and set(rows) == {"evh", "cpo"}
        # the CPO's key sees its own issuer only, and another issuer is a 404
        mine = (await client.get("/api/billing/reports/aging", headers=auth(cpo_key))).json()
        assert [r["issuer"] for r in mine["rows"]] == ["cpo"]
        assert D(mine["rows"][0]["total"]) == inv3.payable - D("5.00")
        refused = await client.get("/api/billing/reports/aging?issuer=evh", headers=auth(cpo_key))
        assert refused.status_code == 404 and "no issuer" in refused.json()["detail"]
        nothing = (
            await client.get("/api/billing/reports/payments?period=2026-06", headers=auth(other_key))
        ).json()
        assert nothing["payments"] == [] and nothing["totals"] == []
        # CSV by format= or by Accept
        as_csv = await client.get(
            "/api/billing/reports/payments?period=2026-06&format=csv", headers=auth(hub_key)
        )
        assert as_csv.headers["content-type"].startswith("text/csv")
        assert len(list(csv.DictReader(io.StringIO(as_csv.text)))) == 5
        accept = await client.get(
            "/api/billing/reports/reconciliation?period=2026-06",
            headers={**auth(cpo_key), "Accept": "text/csv"},
        )
        recs = list(csv.DictReader(io.StringIO(accept.text)))
        assert [(r["record"], r["ref"]) for r in recs] == [("invoice", inv3.number)]
        rec = (
            await client.get("/api/billing/reports/reconciliation?period=2026-06", headers=auth(hub_key))
        ).json()
        assert rec["closed"] is True and {e["kind"] for e in rec["exceptions"]} == {
            "cdr_not_invoiced",
            "payment_without_invoice",
        }
        # JSON lists are paged as every list of the API; totals stay whole
        paged = await client.get(
            "/api/billing/reports/payments?period=2026-06&limit=2&offset=1", headers=auth(hub_key)
        )
        assert paged.headers["x-total-count"] == "5" and 'rel="next"' in paged.headers["link"]
        assert [p["status"] for p in paged.json()["payments"]] == ["failed", "succeeded"]
        assert len(paged.json()["totals"]) == 3
        bad = await client.get("/api/billing/reports/payments?period=2026-6x", headers=auth(hub_key))
        assert bad.status_code == 422 and "YYYY-MM" in bad.json()["detail"]
        far = await client.get("/api/billing/reports/aging?as_of=9999-12-31", headers=auth(hub_key))
        assert far.status_code == 200 and {r["issuer"] for r in far.json()["rows"]} == {"evh", "cpo"}
        bad = await client.get("/api/billing/reports/reconciliation?period=9999-12", headers=auth(hub_key))
        assert bad.status_code == 422 and "out of range" in bad.json()["detail"]
        bad = await client.get("/api/billing/reports/aging?format=xml", headers=auth(hub_key))
        assert bad.status_code == 422
