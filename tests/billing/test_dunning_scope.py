"""What the dunning job duns (issue 14): a party's (B2B) invoice gets its issuer's reminders only (no payment
retry, no lowered limit, no block, no fee), a fleet's invoice the whole schedule; and the job selects the open
invoices in SQL (due, with something outstanding or a hold to release), exactly on both databases."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import func, select

from billing.store.dunning import account_statuses, invoice_steps, open_invoices, run_dunning
from kernel.db.engine import Database
from kernel.models import (
    BillingCharge,
    BillingDocument,
    BillingHold,
    BillingPayment,
)
from kernel.timeutil import utcnow
from tests.billing.dunning_kit import Dunned, day, more_invoices, party_invoice, pay, seed

FEE_AND_ALL = {
    "rules": [
        {"name": "retry", "days_after_due": 1, "action": "retry_payment", "times": 2, "every_days": 2},
        {"name": "reminder", "days_after_due": 2, "action": "reminder"},
        {"name": "fee", "days_after_due": 3, "action": "fee", "fee": "5.00", "vat_rate": "19"},
        {"name": "lower-limit", "days_after_due": 4, "action": "lower_limit", "limit": "10.00"},
        {"name": "block", "days_after_due": 5, "action": "block_tokens"},
    ]
}


@pytest.mark.parametrize("schedule", [None, FEE_AND_ALL], ids=["default", "every-action"])
async def test_a_partys_invoice_gets_reminders_only(db: Database, schedule: dict | None) -> None:
    d = await seed(db, schedule=schedule)
    party_doc = await party_invoice(db, d)
    for n in range(0, 25):
        await run_dunning(db, today=day(d, n))
    async with db.session() as s:
        party = await s.get(BillingDocument, party_doc)
        fleet = await s.get(BillingDocument, d.document_id)
        assert party is not None and fleet is not None
        party_steps = {step.action for step in await invoice_steps(s, party)}
        fleet_steps = {step.action for step in await invoice_steps(s, fleet)}
        holds = (await s.scalars(select(BillingHold))).all()
        charges = (await s.scalars(select(BillingCharge))).all()
        statuses = {a.kind: a for a in await account_statuses(s, today=day(d, 24))}
    assert party_steps == {"reminder"}
    assert fleet_steps >= {"retry_payment", "reminder", "lower_limit", "block_tokens"}
    assert {h.document_id for h in holds} == {d.document_id}  # never a hold because of the party's invoice
    assert all(c.account_id == d.account_id for c in charges)  # nor a fee
    assert statuses["party"].state == "overdue" and statuses["fleet"].state == "blocked"


async def test_an_issuer_without_reminders_does_not_dun_its_parties(db: Database) -> None:
    d = await seed(db, schedule={"rules": [{"name": "block", "days_after_due": 1, "action": "block_tokens"}]})
    party_doc = await party_invoice(db, d)
    assert await run_dunning(db, today=day(d, 3)) == 1  # the fleet's block
    async with db.session() as s:
        party = await s.get(BillingDocument, party_doc)
        assert party is not None
        assert await invoice_steps(s, party) == []


async def _selected(db: Database, d: Dunned, n: int) -> set[int]:
    """The invoices the job's query selects ``n`` days after ``d``'s due date."""
    async with db.session() as s:
        rows = (await s.execute(open_invoices(day(d, n)))).all()
    return {r[0].id for r in rows}


async def test_the_job_selects_only_open_invoices_in_sql(db: Database) -> None:
    d = await seed(db, schedule={"rules": [{"name": "block", "days_after_due": 0, "action": "block_tokens"}]})
    paid, partly, exact, held = await more_invoices(db, d, 4)
    await pay(db, paid)
    async with db.session() as s:
        figures = {doc.id: doc.payable for doc in (await s.scalars(select(BillingDocument))).all()}
    await pay(db, partly, figures[partly] - Decimal("0.01"))  # one cent still owed
    third = (figures[exact] / 3).quantize(Decimal("0.01"))
    for part in (third, third, figures[exact] - 2 * third):  # paid in three parts that add up exactly
        await pay(db, exact, part)
    assert await _selected(db, d, -1) == set()  # nothing is due the day before
    assert await _selected(db, d, 0) == {d.document_id, partly, held}
    assert await run_dunning(db, today=day(d, 0)) == 3  # the three blocks
    await pay_without_release(db, held)  # paid, its block left for the job to release
    assert await _selected(db, d, 0) == {d.document_id, partly, held}
    assert await run_dunning(db, today=day(d, 1)) == 1  # the release
    assert await _selected(db, d, 1) == {d.document_id, partly}
    async with db.session() as s:
        total = await s.scalar(select(func.count()).select_from(BillingDocument))
        active = (
            await s.scalars(select(BillingHold.document_id).where(BillingHold.released_at.is_(None)))
        ).all()
    assert total == 5 and set(active) == {d.document_id, partly}


async def pay_without_release(db: Database, document_id: int) -> None:
    """A succeeded payment of all of it, recorded without releasing its holds (a hold left for the job)."""
    async with db.session() as s:
        doc = await s.get(BillingDocument, document_id)
        assert doc is not None
        payable, account_id = doc.payable, doc.account_id
    async with db.session() as s:
        s.add(
            BillingPayment(
                document_id=document_id,
                account_id=account_id,
                method="bank_transfer",
                provider="manual",
                idempotency_key=f"test-held-{document_id}",
                amount=payable,
                currency="EUR",
                status="succeeded",
                reference="held",
                settled_at=utcnow(),
            )
        )
