"""The aging report shows party (B2B) receivables apart from customer receivables (issue 14), per issuer and
currency: an issuer's fleet invoice and its invoice to a CPO's party account are two lines, never one sum; the
CSV and the API say which is which, and the fleet's statement in the portal has its customer line only."""

from __future__ import annotations

import csv
import io

from billing.desk import Desk
from billing.store import reports
from kernel.db.engine import Database
from kernel.models import BillingDocument
from tests.billing.dunning_kit import day, party_invoice, seed


async def test_party_receivables_are_aged_apart_from_customer_receivables(db: Database) -> None:
    d = await seed(db)
    party_doc = await party_invoice(db, d)
    async with db.session() as s:
        lines = await reports.aging_report(s, day(d, 5))
        text = await reports.report_csv(s, "aging", today=day(d, 5))
        party = await s.get(BillingDocument, party_doc)
    assert party is not None
    assert [(r.receivables, r.issuer, r.currency, r.buckets["0-30"]) for r in lines] == [
        ("customer", "voltstreet", "EUR", d.payable),
        ("party", "voltstreet", "EUR", party.payable),
    ]
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["receivables"], r["issuer"], r["total"]) for r in rows] == [
        ("customer", "voltstreet", str(d.payable)),
        ("party", "voltstreet", str(party.payable)),
    ]
    statement = await Desk(db).fleet_statement(d.world.fleets["Acme Logistics"])
    assert [a.total for a in statement.aging] == [d.payable]  # the fleet's own: customer receivables
