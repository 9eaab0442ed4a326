"""The reconciliation report over an invoice split from its lines outside the scope of VAT (issue 14): a monthly
or per-session invoice and its ``:O`` sibling (EN 16931 BR-O-11/12: category O on a document of its own) bill a
CDR's taxed lines on one and its O lines on the other, the CDR linked to the first. Together their lines equal
the CDRs, so both are reported as matching (difference 0, each naming the other in ``split_with``), and a real
difference (a CDR row changed behind billing's back) is still a ``lines_differ`` of the invoice it is linked
to, as is one document's line of a CDR changed (main or ``:O``). Real pricing, SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any, cast

import pytest
from sqlalchemy import update

from billing.core.vat import breakdown, totals
from billing.store import reports
from billing.store.codec import load_invoice, to_json
from kernel.db.engine import Database
from kernel.models import BillingDocument, Cdr
from tests.billing.documents_kit import (
    cdr_of,
    charge,
    documents,
    issue_month,
    price_with_parking_outside_vat,
    rate,
    seed_world,
    utc,
)

D = Decimal


async def _report(db: Database, period: str, today: date) -> reports.Reconciliation:
    async with db.session() as s:
        return await reports.reconciliation_report(s, period, today)


def _a_cent_more(document: dict[str, Any], cdr_uid: str) -> dict[str, Any]:
    """The stored invoice ``document`` with the first line of CDR ``cdr_uid`` a cent more, its VAT breakdown
    and totals following (still a valid invoice: only the lines no longer match the CDR)."""
    invoice = load_invoice(document)
    at = next(k for k, ln in enumerate(invoice.lines) if ln.cdr_id == cdr_uid)
    lines = list(invoice.lines)
    lines[at] = replace(lines[at], net=lines[at].net + D("0.01"))
    vat = tuple(
        replace(b, taxable=new.taxable, tax=new.tax)
        for b, new in zip(invoice.breakdown, breakdown(lines, invoice.currency), strict=True)
    )
    changed = replace(
        invoice,
        lines=tuple(lines),
        breakdown=vat,
        totals=totals(lines, vat, invoice.currency, invoice.totals.rounding),
    )
    return cast(dict[str, Any], to_json(changed))


@pytest.mark.clock("2026-12-01T10:00:00Z")
async def test_a_split_pair_reconciles_over_both_invoices_and_real_differences_still_show(
    db: Database,
) -> None:
    world = await seed_world(db)  # Roam has a registration id: O lines are invoiced apart, never held
    await price_with_parking_outside_vat(db, "AMS-01-1")  # energy at 21 %, parking with no VAT applicable
    await charge(db, "ACME-1", utc(2026, 11, 3, 8, 0), "parked", kwh="8", minutes=100, charge_minutes=40)
    await charge(db, "ACME-2", utc(2026, 11, 4, 8, 0), "plain", evse="AMS-01-2")  # taxed only
    await charge(db, "TOKEN-1", utc(2026, 12, 1, 7, 0), "app", kwh="6", minutes=90, charge_minutes=30)
    assert await rate(db) == 3  # the app driver's session gets its per-session pair from the CDR hook
    parked, plain, app = await cdr_of(db, "parked"), await cdr_of(db, "plain"), await cdr_of(db, "app")
    assert await issue_month(db, world.account_id, "2026-11") is not None
    by_key = {d.source_key: d for d in await documents(db)}
    month = f"monthly:{world.account_id}:2026-11"
    pairs = [
        ("2026-11", by_key[month], by_key[month + ":O"], [parked, plain]),
        ("2026-12", by_key[f"session:{app.id}"], by_key[f"session:{app.id}:O"], [app]),
    ]
    for period, main, outside, cdrs in pairs:
        rec = await _report(db, period, date(2027, 1, 5))
        checks = {c.number: c for c in rec.invoices}
        assert set(checks) == {main.number, outside.number}
        m, o = checks[main.number], checks[outside.number]
        assert rec.exceptions == ()  # no lines_differ (before: one for each of the pair)
        assert (m.difference, o.difference) == (0, 0)  # was lines_differ on both before
        assert (m.split_with, o.split_with) == (outside.number, main.number)
        assert (m.lines_excl_vat, o.lines_excl_vat) == (main.total_excl_vat, outside.total_excl_vat)
        assert o.lines_excl_vat > 0  # the O invoice does bill part of the CDRs
        assert m.cdrs == len(cdrs) and o.cdrs == 0  # every CDR is linked to the taxed invoice
        assert m.cdrs_excl_vat + o.cdrs_excl_vat == sum((c.total_cost_excl_vat for c in cdrs), D(0))
    async with db.session() as s:  # the CDR row changed behind billing's back: the pair no longer matches
        await s.execute(
            update(Cdr).where(Cdr.id == parked.id).values(total_cost_excl_vat=parked.total_cost_excl_vat + 1)
        )
    main, outside = pairs[0][1], pairs[0][2]
    rec = await _report(db, "2026-11", date(2027, 1, 5))
    [differ] = rec.exceptions
    assert (differ.kind, differ.ref, differ.amount) == ("lines_differ", main.number, D("-1.00"))
    assert f"split with {outside.number}" in differ.detail
    checks = {c.number: c for c in rec.invoices}
    assert checks[outside.number].difference == 0
    async with db.session() as s:
        text = await reports.report_csv(s, "reconciliation", today=date(2027, 1, 5), period="2026-11")
    rows = {r["ref"]: r for r in csv.DictReader(io.StringIO(text)) if r["record"] == "invoice"}
    assert rows[main.number]["split_with"] == outside.number and rows[main.number]["difference"] == "-1.00"
    assert rows[outside.number]["split_with"] == main.number and rows[outside.number]["difference"] == "0.00"


@pytest.mark.clock("2026-12-01T10:00:00Z")
@pytest.mark.parametrize("tampered", ["main", "outside"])
async def test_a_split_pair_whose_lines_no_longer_add_up_to_the_cdr_is_a_lines_differ(
    db: Database, tampered: str
) -> None:
    """A monthly pair reconciles (a CDR with lines on both documents); then one document's line of that CDR is
    changed in the stored JSON (main or ``:O``): the lines over both no longer equal the CDR, a ``lines_differ``
    of the invoice the CDR is linked to (the main one), by the amount changed."""
    world = await seed_world(db)
    await price_with_parking_outside_vat(db, "AMS-01-1")
    await charge(db, "ACME-1", utc(2026, 11, 3, 8, 0), "parked", kwh="8", minutes=100, charge_minutes=40)
    await charge(db, "ACME-2", utc(2026, 11, 4, 8, 0), "plain", evse="AMS-01-2")
    assert await rate(db) == 2
    parked = await cdr_of(db, "parked")
    assert await issue_month(db, world.account_id, "2026-11") is not None
    by_key = {d.source_key: d for d in await documents(db)}
    month = f"monthly:{world.account_id}:2026-11"
    main, outside = by_key[month], by_key[month + ":O"]
    assert parked.cdr_uid in {ln["cdr_id"] for ln in main.document["lines"]}  # the CDR's lines on both
    assert {ln["cdr_id"] for ln in outside.document["lines"]} == {parked.cdr_uid}
    rec = await _report(db, "2026-11", date(2027, 1, 5))
    assert [e.kind for e in rec.exceptions] == []  # the pair together equals its CDRs
    doc = main if tampered == "main" else outside
    async with db.session() as s:
        await s.execute(
            update(BillingDocument)
            .where(BillingDocument.id == doc.id)
            .values(document=_a_cent_more(doc.document, parked.cdr_uid))
        )
    rec = await _report(db, "2026-11", date(2027, 1, 5))
    [differ] = rec.exceptions
    assert (differ.kind, differ.ref, differ.currency, differ.amount) == (
        "lines_differ",
        main.number,
        "EUR",
        D("0.01"),
    )
    assert f"split with {outside.number}" in differ.detail
    checks = {c.number: c for c in rec.invoices}
    assert (checks[main.number].difference, checks[outside.number].difference) == (D("0.01"), 0)
