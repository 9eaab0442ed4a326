"""The dunning job on the real database (issue 14): the default schedule walked day by day (retry, reminders
through the outbox, lowered limit, block), each step once and recorded with its rule, caught up after missed
days, fees as charges, reminders in the account's language, the account's time zone, release on payment, and two
concurrent runs doing each step once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import select

from billing.dunning_job import run_dunning_job
from billing.store.dunning import account_statuses, invoice_steps, run_dunning
from cpo_gateway.authorization import ACCEPTED, BLOCKED, NO_CREDIT, Authorizer
from kernel.components import Hub
from kernel.db.engine import Database
from kernel.models import BillingCharge, BillingDocument, BillingDunningStep, BillingHold, OutboxMessage
from kernel.settings import load_settings
from tests.billing.dunning_kit import MANAGER, TOKEN, Dunned, day, more_invoices, pay, seed


async def _steps(db: Database) -> list[tuple[str, str, str]]:
    async with db.session() as s:
        rows = await s.scalars(select(BillingDunningStep).order_by(BillingDunningStep.id))
        return [(r.key, r.rule, r.action) for r in rows]


async def _holds(db: Database) -> list[tuple[str, Decimal | None, bool]]:
    async with db.session() as s:
        rows = await s.scalars(select(BillingHold).order_by(BillingHold.id))
        return [(h.action, h.limit, h.released_at is None) for h in rows]


async def _outbox(db: Database) -> list[OutboxMessage]:
    async with db.session() as s:
        return list((await s.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all())


async def _authorize(db: Database, d: Dunned) -> tuple[str, str]:
    result = await Authorizer(db).authorize(TOKEN, charge_point_id=d.world.charge_point_id)
    return result.status, result.reason


async def test_the_default_schedule_day_by_day_each_step_once(db: Database) -> None:
    d = await seed(db)
    key = f"voltstreet/{d.number}"
    assert await run_dunning(db, today=d.due) == 0  # nothing before it is overdue
    assert await run_dunning(db, today=day(d, 1)) == 1
    assert await run_dunning(db, today=day(d, 1)) == 0  # the same day again: nothing twice
    assert await run_dunning(db, today=day(d, 3)) == 1  # reminder-1 (the retry's 2nd is on day 4)
    assert await run_dunning(db, today=day(d, 4)) == 1
    [reminder] = await _outbox(db)
    assert reminder.channel == "email" and reminder.destination == MANAGER
    assert reminder.dedupe_key == f"{key}:reminder-1:1"
    assert reminder.payload["to"] == MANAGER and d.number in reminder.payload["subject"]
    assert d.number in reminder.payload["text"] and "<html" in reminder.payload["html"]
    assert await _authorize(db, d) == (ACCEPTED, "")
    assert await run_dunning(db, today=day(d, 14)) == 3  # retry 3 (day 7, caught up), reminder-2, lower-limit
    assert [(a, lim) for a, lim, _ in await _holds(db)] == [("lower_limit", Decimal("50.00"))]
    assert await run_dunning(db, today=day(d, 21)) == 1
    assert await run_dunning(db, today=day(d, 40)) == 0
    assert await _steps(db) == [
        (f"{key}:retry:1", "retry", "retry_payment"),
        (f"{key}:reminder-1:1", "reminder-1", "reminder"),
        (f"{key}:retry:2", "retry", "retry_payment"),
        (f"{key}:retry:3", "retry", "retry_payment"),
        (f"{key}:reminder-2:1", "reminder-2", "reminder"),
        (f"{key}:lower-limit:1", "lower-limit", "lower_limit"),
        (f"{key}:block:1", "block", "block_tokens"),
    ]
    assert len(await _outbox(db)) == 2
    assert await _authorize(db, d) == (BLOCKED, f"unpaid invoice {d.number}")
    async with db.session() as s:
        doc = await s.get(BillingDocument, d.document_id)
        assert doc is not None
        steps = await invoice_steps(s, doc)
        assert steps[0].detail["attempt"] == 1 and steps[2].detail["attempt"] == 2
        [status] = await account_statuses(s, today=day(d, 21))
    assert status.state == "blocked" and status.outstanding == d.payable == status.overdue
    assert status.held_for == (d.number,) and status.last_step is not None
    assert status.last_step.rule == "block"

    # paid: the holds are released at once, with the release step; the job then has nothing to do
    assert await pay(db, d.document_id) == 2
    assert [active for _, _, active in await _holds(db)] == [False, False]
    assert await _authorize(db, d) == (ACCEPTED, "")
    assert (await _steps(db))[-1] == (f"{key}:release:1", "release", "release")
    assert await run_dunning(db, today=day(d, 22)) == 0
    assert await pay(db, d.document_id, Decimal("0")) == 0  # again: nothing more to release
    async with db.session() as s:
        [status] = await account_statuses(s, today=day(d, 22))
    assert status.state == "ok" and status.outstanding == 0


async def test_a_job_that_missed_days_catches_up_with_each_rules_latest_step(db: Database) -> None:
    d = await seed(db)
    assert await run_dunning(db, today=day(d, 30)) == 5
    keys = [k.split("/", 1)[1] for k, _, _ in await _steps(db)]
    assert keys == [
        f"{d.number}:retry:3",
        f"{d.number}:reminder-1:1",
        f"{d.number}:reminder-2:1",
        f"{d.number}:lower-limit:1",
        f"{d.number}:block:1",
    ]


async def test_release_by_the_job_when_paid_without_release_if_settled(db: Database) -> None:
    d = await seed(db)
    assert await run_dunning(db, today=day(d, 21)) == 5
    async with db.session() as s:  # a payment recorded by a path that did not release
        from kernel.models import BillingPayment

        s.add(BillingPayment(document_id=d.document_id, method="card", provider="manual", status="succeeded",
                             idempotency_key="k1", amount=d.payable, currency="EUR"))  # fmt: skip
    assert await _authorize(db, d) == (BLOCKED, f"unpaid invoice {d.number}")
    assert await run_dunning(db, today=day(d, 22)) == 1
    assert [active for _, _, active in await _holds(db)] == [False, False]
    assert (await _steps(db))[-1][1:] == ("release", "release")
    assert await _authorize(db, d) == (ACCEPTED, "")


FEES = {
    "rules": [
        {"name": "remind", "days_after_due": 2, "action": "reminder"},
        {"name": "fee", "days_after_due": 5, "action": "fee", "fee": "7.50", "vat_rate": "19"},
        {"name": "limit", "days_after_due": 6, "action": "lower_limit", "limit": "5"},
    ]
}


async def test_an_issuers_fee_becomes_a_charge_once_and_a_lower_limit_refuses(db: Database) -> None:
    d = await seed(db, schedule=FEES, language="de-DE")
    assert await run_dunning(db, today=day(d, 5)) == 2
    assert await run_dunning(db, today=day(d, 5)) == 0
    async with db.session() as s:
        [charge] = (await s.scalars(select(BillingCharge))).all()
    assert (charge.amount, charge.currency, charge.vat_rate) == (Decimal("7.50"), "EUR", Decimal("19"))
    assert charge.account_id == d.account_id and charge.document_id is None
    assert charge.source_key == f"voltstreet/{d.number}:fee:1" and d.number in charge.description
    [mail] = await _outbox(db)
    amount = f"{d.payable:.2f}".replace(".", ",") + "\xa0€"
    assert mail.payload["subject"] == f"Zahlungserinnerung: Rechnung {d.number} ({amount})"
    assert "Mit freundlichen Grüßen" in mail.payload["text"] and 'lang="de"' in mail.payload["html"]
    assert await _authorize(db, d) == (ACCEPTED, "")  # spent 9.52 this month; limit not lowered yet
    assert await run_dunning(db, today=day(d, 6)) == 1
    status, reason = await _authorize(db, d)
    assert status == NO_CREDIT and f"lowered for unpaid invoice {d.number}" in reason and "5.00 EUR" in reason


@pytest.mark.clock("2026-07-02T12:30:00Z")  # the invoice of 2 July is due on 16 July
async def test_today_is_the_accounts_date_in_its_time_zone(db: Database) -> None:
    from kernel.clock import pinned

    d = await seed(db, timezone="Pacific/Auckland", schedule={"rules": [
        {"name": "remind", "days_after_due": 1, "action": "reminder"}]})  # fmt: skip
    hub = Hub(settings=load_settings(database_url=db.url), db=db, node_name="t")
    with pinned(datetime(d.due.year, d.due.month, d.due.day, 11, 0, tzinfo=UTC)):
        assert await run_dunning_job(hub) == 0  # 23:00 on the due date in Auckland
    with pinned(datetime(d.due.year, d.due.month, d.due.day, 12, 30, tzinfo=UTC)):
        assert await run_dunning_job(hub) == 1  # 00:30 the day after, in Auckland (still the due date in UTC)


async def test_three_concurrent_runs_do_each_step_once(db: Database) -> None:
    d = await seed(db)
    await more_invoices(db, d, 3)  # four invoices, five steps each on day 21
    others = [Database(db.url), Database(db.url)]
    try:
        counts = await asyncio.gather(*(run_dunning(x, today=day(d, 21)) for x in [db, *others]))
    finally:
        for other in others:
            await other.dispose()
    assert sum(counts) == 20, counts
    steps = await _steps(db)
    assert len(steps) == len({key for key, _, _ in steps}) == 20
    assert len(await _holds(db)) == 8 and len(await _outbox(db)) == 8
    assert await run_dunning(db, today=day(d, 21)) == 0


async def test_a_retry_calls_the_collector_with_its_attempt_and_records_the_outcome(db: Database) -> None:
    d = await seed(db)
    calls: list[tuple[int, int]] = []

    async def collect(database: Database, document_id: int, attempt: int) -> str:
        calls.append((document_id, attempt))
        if attempt == 2:
            raise RuntimeError("card declined")
        return "pending"

    assert await run_dunning(db, today=day(d, 1), collect=collect) == 1
    assert await run_dunning(db, today=day(d, 4), collect=collect) == 2  # with reminder-1 (day 3)
    assert await run_dunning(db, today=day(d, 4), collect=collect) == 0
    assert calls == [(d.document_id, 1), (d.document_id, 2)]
    async with db.session() as s:
        doc = await s.get(BillingDocument, d.document_id)
        assert doc is not None
        first, second = [st for st in await invoice_steps(s, doc) if st.rule == "retry"]
    assert first.detail == {"attempt": 1, "outcome": "pending"}
    assert second.detail["outcome"] == "error" and "card declined" in second.detail["error"]


async def test_the_fee_is_a_line_of_the_accounts_next_monthly_invoice(db: Database) -> None:
    from billing.monthly_job import issue_monthly_invoice

    d = await seed(db, schedule=FEES)
    assert await run_dunning(db, today=day(d, 5)) == 2  # the reminder and the fee, charged on 5 July
    from kernel.clock import pinned

    with pinned(datetime(2026, 8, 1, 9, 0, tzinfo=UTC)):  # July is over in Berlin
        async with db.session() as s:
            monthly = await issue_monthly_invoice(s, d.account_id, "2026-07")
    async with db.session() as s:
        assert monthly is not None
        lines = monthly.document["lines"]
        charge = (await s.scalars(select(BillingCharge))).one()
    fees = [(ln["description"], Decimal(ln["net"]), Decimal(ln["vat_rate"])) for ln in lines]
    assert (f"Dunning fee (fee), invoice {d.number}", Decimal("7.50"), Decimal("19")) in fees
    assert charge.document_id == monthly.id
    assert await run_dunning(db, today=day(d, 5)) == 0  # charged once
