"""Accounts receivable: aging buckets per issuer and currency, and payment allocation (partial payments,
overpayment) that conserves money."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.core.aging import (
    OpenInvoice,
    Receivable,
    ReceivableError,
    aging,
    allocate_payment,
    bucket,
)
from tests.properties.strategies import budget

D = Decimal
TODAY = date(2026, 9, 30)


def test_buckets_by_days_past_due() -> None:
    cases = {
        1: "current",
        0: "0-30",
        -30: "0-30",
        -31: "31-60",
        -60: "31-60",
        -61: "61-90",
        -90: "61-90",
        -91: "90+",
    }
    for offset, name in cases.items():
        assert bucket(TODAY + timedelta(days=offset), TODAY) == name, offset


def test_aging_per_issuer_and_currency_never_mixes_currencies() -> None:
    rows = aging(
        [
            Receivable("CPO-1", "INV-1", "EUR", TODAY - timedelta(days=5), D("10.00")),
            Receivable("CPO-1", "INV-2", "EUR", TODAY - timedelta(days=45), D("2.50")),
            Receivable("CPO-1", "INV-3", "CHF", TODAY - timedelta(days=100), D("7.00")),
            Receivable("HUB", "INV-4", "EUR", TODAY + timedelta(days=3), D("1.00")),
        ],
        TODAY,
    )
    assert [(r.issuer, r.currency, r.total) for r in rows] == [
        ("CPO-1", "CHF", D("7.00")),
        ("CPO-1", "EUR", D("12.50")),
        ("HUB", "EUR", D("1.00")),
    ]
    assert rows[1].buckets == {
        "current": D(0),
        "0-30": D("10.00"),
        "31-60": D("2.50"),
        "61-90": D(0),
        "90+": D(0),
    }
    assert rows[0].buckets["90+"] == D("7.00") and rows[2].buckets["current"] == D("1.00")


def test_a_payment_goes_to_the_invoice_it_names_then_oldest_due_first() -> None:
    open_ = [
        OpenInvoice("INV-2", "EUR", date(2026, 8, 1), D("20.00")),
        OpenInvoice("INV-1", "EUR", date(2026, 7, 1), D("10.00")),
        OpenInvoice("INV-3", "EUR", date(2026, 9, 1), D("5.00")),
        OpenInvoice("INV-9", "CHF", date(2026, 1, 1), D("99.00")),
    ]
    partial = allocate_payment(D("15.00"), "EUR", open_)
    assert partial.applied == (("INV-1", D("10.00")), ("INV-2", D("5.00"))) and partial.unapplied == 0
    named = allocate_payment(D("50.00"), "EUR", open_, names="INV-3")
    assert named.applied == (("INV-3", D("5.00")), ("INV-1", D("10.00")), ("INV-2", D("20.00")))
    assert named.unapplied == D("15.00")  # an overpayment: the buyer's credit, not another currency's
    with pytest.raises(ReceivableError):
        allocate_payment(D("0.001"), "EUR", open_)


amounts = st.integers(1, 10_000).map(lambda c: D(c) / 100)


@budget(200)
@given(amounts, st.lists(st.tuples(amounts, st.integers(0, 90)), max_size=8))
def test_allocation_conserves_the_payment_and_never_overpays_an_invoice(amount, invoices) -> None:
    open_ = [
        OpenInvoice(f"INV-{i}", "EUR", date(2026, 6, 1) + timedelta(days=d), o)
        for i, (o, d) in enumerate(invoices)
    ]
    result = allocate_payment(amount, "EUR", open_)
    assert sum((a for _, a in result.applied), D(0)) + result.unapplied == amount
    outstanding = {i.invoice: i.outstanding for i in open_}
    assert all(0 < a <= outstanding[i] for i, a in result.applied)
    if result.unapplied:
        assert sum(outstanding.values(), D(0)) == sum((a for _, a in result.applied), D(0))


@budget(150)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["CPO-1", "HUB"]),
            st.sampled_from(["EUR", "CHF", "JPY"]),
            st.integers(-40, 200),
            amounts,
        ),
        max_size=12,
    )
)
def test_aging_keeps_every_amount_in_one_bucket_of_its_issuer_and_currency(items) -> None:
    receivables = [
        Receivable(
            issuer,
            f"INV-{n}",
            currency,
            TODAY - timedelta(days=days),
            amount.quantize(D(1)) if currency == "JPY" else amount,
        )
        for n, (issuer, currency, days, amount) in enumerate(items)
    ]
    rows = aging(receivables, TODAY)
    for row in rows:
        mine = [r for r in receivables if (r.issuer, r.currency) == (row.issuer, row.currency)]
        assert row.total == sum((r.outstanding for r in mine), D(0))
        for name in row.buckets:
            assert row.buckets[name] == sum(
                (r.outstanding for r in mine if bucket(r.due_date, TODAY) == name), D(0)
            )
    assert len(rows) == len({(r.issuer, r.currency) for r in receivables})
