"""Dunning: a schedule evaluated purely into the next steps, each naming its rule; a step done is never
repeated (idempotent), retries stop at their cap, payment ends dunning and releases a block once."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.core.credit_notes import full_credit
from billing.core.dunning import (
    DunningAction,
    DunningError,
    DunningRule,
    DunningSchedule,
    InvoiceStanding,
    next_steps,
    standing_of,
)
from billing.core.lines import Dimension
from kernel.money import Money
from tests.properties.strategies import budget

from .kit import ISSUE, consumer_invoice, simple_cdr

D = Decimal
DUE = date(2026, 7, 15)
SCHEDULE = DunningSchedule(
    "CPO-1",
    (
        DunningRule("retry", 1, DunningAction.RETRY_PAYMENT, times=3, every_days=3),
        DunningRule("reminder-1", 7, DunningAction.REMINDER),
        DunningRule("limit", 14, DunningAction.LOWER_LIMIT, limit=Money(D("50.00"), "EUR")),
        DunningRule("fee", 21, DunningAction.FEE, fee=Money(D("5.00"), "EUR")),
        DunningRule("block", 30, DunningAction.BLOCK_TOKENS),
    ),
)
UNPAID = InvoiceStanding("INV-2026-000001", "EUR", DUE, D("42.00"))


def run(standing: InvoiceStanding, days: list[int], done: set[str]) -> list[str]:
    """The job on each of ``days`` after the due date, recording every step it did."""
    keys = []
    for d in days:
        for step in next_steps(standing, SCHEDULE, DUE + timedelta(days=d), done):
            assert step.key not in done
            done.add(step.key)
            keys.append(step.key)
    return keys


def test_the_schedule_day_by_day() -> None:
    done: set[str] = set()
    keys = run(UNPAID, list(range(-3, 40)), done)
    assert [k.split(":", 1)[1] for k in keys] == [
        "retry:1",
        "retry:2",
        "retry:3",  # day 7, before the reminder of the same day: schedule order
        "reminder-1:1",
        "limit:1",
        "fee:1",
        "block:1",
    ]
    assert run(UNPAID, list(range(0, 60)), done) == []  # the cap: no fourth retry, nothing repeated
    paid = InvoiceStanding(UNPAID.invoice, "EUR", DUE, D("42.00"), paid=D("42.00"))
    assert [s.action for s in next_steps(paid, SCHEDULE, DUE + timedelta(days=41), done)] == [
        DunningAction.RELEASE
    ]
    assert run(paid, [41, 41, 42], done) == [f"{UNPAID.invoice}:release:1"]


def test_steps_carry_their_rule_fee_and_limit_and_a_late_job_catches_up_once() -> None:
    steps = next_steps(UNPAID, SCHEDULE, DUE + timedelta(days=22), set())
    assert [(s.rule, s.occurrence) for s in steps] == [
        ("retry", 3),
        ("reminder-1", 1),
        ("limit", 1),
        ("fee", 1),
    ]
    assert steps[2].limit == Money(D("50.00"), "EUR") and steps[3].fee == Money(D("5.00"), "EUR")


def test_nothing_before_due_when_paid_or_on_hold() -> None:
    assert next_steps(UNPAID, SCHEDULE, DUE, set()) == ()
    held = InvoiceStanding(UNPAID.invoice, "EUR", DUE, D("42.00"), on_hold=True)
    assert next_steps(held, SCHEDULE, DUE + timedelta(days=40), set()) == ()
    credited = InvoiceStanding(UNPAID.invoice, "EUR", DUE, D("42.00"), paid=D("40.00"), credited=D("2.00"))
    assert next_steps(credited, SCHEDULE, DUE + timedelta(days=40), set()) == ()  # nothing to release either


@budget(150)
@given(st.lists(st.integers(-5, 70), min_size=1, max_size=30), st.booleans())
def test_dunning_is_idempotent_whatever_days_the_job_runs(days, twice) -> None:
    done: set[str] = set()
    days = sorted(days)
    keys = run(UNPAID, [d for d in days for _ in range(2 if twice else 1)], done)
    assert len(keys) == len(set(keys))
    assert sum(1 for k in keys if ":retry:" in k) <= 3
    # running every day again from the start repeats nothing already done
    again = run(UNPAID, list(range(-5, max(days) + 1)), set(done))
    assert not set(again) & set(keys)


def test_a_bad_schedule_is_refused() -> None:
    chf = InvoiceStanding("INV-CHF", "CHF", DUE, D("10.00"))
    with pytest.raises(DunningError, match="in EUR"):
        next_steps(chf, SCHEDULE, DUE + timedelta(days=30), set())
    with pytest.raises(DunningError):
        DunningRule("fee", 3, DunningAction.FEE)
    with pytest.raises(DunningError):
        DunningRule("retry", 1, DunningAction.RETRY_PAYMENT, times=3)
    with pytest.raises(DunningError):
        DunningSchedule(
            "X", (DunningRule("a", 1, DunningAction.REMINDER), DunningRule("a", 2, DunningAction.REMINDER))
        )


def test_the_standing_of_an_invoice_counts_payments_and_credit_notes() -> None:
    cdr = simple_cdr("S", [(Dimension.ENERGY, "10", "3.00", "21")], total_incl="3.63")
    invoice = consumer_invoice(cdr)
    unpaid = standing_of(invoice, D("1.00"), [])
    assert (unpaid.amount_due, unpaid.outstanding, unpaid.due_date) == (
        D("3.63"),
        D("2.63"),
        invoice.due_date,
    )
    note = full_credit(invoice, [], series="CN", number="CN-1", issue_date=ISSUE, reason="cancelled")
    refund = standing_of(invoice, D("3.63"), [note])
    assert refund.outstanding == D("-3.63")  # paid, then credited: a refund is owed
    assert next_steps(refund, SCHEDULE, invoice.due_date + timedelta(days=40), set()) == ()
