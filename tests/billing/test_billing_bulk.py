"""billing.core.bulk is the core's monthly invoice in bulk: for generated months (the core property tests'
generators: engine-priced CDRs over every tariff feature, credit CDRs, synthetic CDRs at every EU rate with
price caps) under every VAT treatment, each bulk invoice's stored JSON is the core invoice's, to the byte, and
what the core refuses the bulk path refuses. Months in JPY (no decimals) too."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from billing.core import bulk
from billing.core.documents import DocumentError, Invoice
from billing.core.invoices import monthly_invoice
from billing.core.lines import Dimension, PricedCdr
from billing.core.vat import NORMAL, TreatmentKind, VatTreatment
from billing.store.codec import load_invoice, to_json
from tests.billing.kit import FLEET, SELLER, TERMS, credit_of, fleet_months, simple_cdr, synthetic_months

TREATMENTS = [
    NORMAL,
    VatTreatment(TreatmentKind.REVERSE_CHARGE),
    VatTreatment(TreatmentKind.EXEMPT, "Art. 132"),
]


def heads(treatments: list[VatTreatment]) -> list[bulk.InvoiceHead]:
    return [
        bulk.InvoiceHead("INV", f"INV-2026-{n + 1:06d}", date(2026, 7, 1), SELLER, FLEET, TERMS, treatment)
        for n, treatment in enumerate(treatments)
    ]


def core_invoice(cdrs: list[PricedCdr], head: bulk.InvoiceHead) -> Invoice:
    return monthly_invoice(
        cdrs,
        series=head.series,
        number=head.number,
        issue_date=head.issue_date,
        seller=head.seller,
        buyer=head.buyer,
        terms=head.terms,
        treatment=head.treatment,
    )


def core_or_error(cdrs: list[PricedCdr], head: bulk.InvoiceHead) -> str | None:
    try:
        return json.dumps(to_json(core_invoice(cdrs, head)))
    except DocumentError:
        return None


def in_yen(month: list[PricedCdr]) -> list[PricedCdr]:
    """The same month in JPY (no decimals): every amount's cents as yen."""

    def yen(amount: Decimal) -> Decimal:
        return Decimal(int(amount.scaleb(2)))

    return [
        replace(
            c,
            currency="JPY",
            total_excl=yen(c.total_excl),
            total_incl=None,
            components=tuple(replace(k, net=yen(k.net)) for k in c.components),
        )
        for c in month
    ]


months_and_treatments = st.lists(
    st.tuples(
        st.one_of(synthetic_months(), fleet_months(), synthetic_months().map(in_yen)),
        st.sampled_from(TREATMENTS),
    ),
    min_size=1,
    max_size=3,
)


@settings(
    max_examples=150,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow],
)
@given(months_and_treatments, st.sampled_from([3, 10**6]))
def test_bulk_invoices_are_the_core_invoices_to_the_byte(months_and_treatments, chunk) -> None:
    months = [m for m, _ in months_and_treatments]
    hs = heads([t for _, t in months_and_treatments])
    expected = [core_or_error(m, h) for m, h in zip(months, hs, strict=True)]
    table = bulk.table_of(months)
    for i, month in enumerate(months):
        assert bulk.priced_cdrs(table, i) == [replace(c, total_incl=None) for c in month]
    old, bulk.CHUNK_LINES = bulk.CHUNK_LINES, chunk
    try:
        if None in expected:
            with pytest.raises(DocumentError):
                bulk.monthly_invoices(table, hs)
            ok = [i for i, e in enumerate(expected) if e is not None]
            table = bulk.table_of([months[i] for i in ok])
            hs, expected = [hs[i] for i in ok], [expected[i] for i in ok]
            if not ok:
                return
        got = bulk.monthly_invoices(table, hs)
    finally:
        bulk.CHUNK_LINES = old
    assert [g.document for g in got] == expected
    for g, h in zip(got, hs, strict=True):
        invoice = load_invoice(json.loads(g.document))
        assert (g.number, g.totals, g.breakdown, g.n_lines) == (
            h.number,
            invoice.totals,
            invoice.breakdown,
            len(invoice.lines),
        )


def two_rates_and_a_cap() -> list[PricedCdr]:
    first = simple_cdr(
        "C-1",
        [
            (Dimension.ENERGY, "10.5", "3.33", "21"),
            (Dimension.PARKING_TIME, "0.5", "1.01", "9"),
            (Dimension.ADJUSTMENT, "1", "-0.77", None),
        ],
        group=("Bob", "NL-CD-34"),
    )
    second = simple_cdr("C-0", [(Dimension.FLAT, "1", "0.35", None)], group=("Ada", "NL-AB-12"))
    return [first, second, credit_of(second)]


def test_an_adjustment_is_split_over_the_rates_and_groups_come_in_order() -> None:
    month = two_rates_and_a_cap()
    [got] = bulk.monthly_invoices(bulk.table_of([month]), heads([NORMAL]))
    assert got.document == json.dumps(to_json(core_invoice(month, heads([NORMAL])[0])))
    lines = json.loads(got.document)["lines"]
    assert [ln["line_id"] for ln in lines] == [
        "C-0:1",
        "C-0-credit:1",
        "C-1:1",
        "C-1:2",
        "C-1:a1.1",
        "C-1:a1.2",
    ]
    assert [ln["net"] for ln in lines] == ["0.35", "-0.35", "3.33", "1.01", "-0.59", "-0.18"]
    assert lines[1]["quantity"] == "-1" and lines[1]["description"].startswith(
        "Correction (credit of CDR C-0)"
    )
    yen = in_yen(month)
    both = bulk.monthly_invoices(bulk.table_of([month, yen]), heads([NORMAL, NORMAL]))
    assert both[1].document == json.dumps(to_json(core_invoice(yen, heads([NORMAL, NORMAL])[1])))
    yen_nets = [ln["net"] for ln in json.loads(both[1].document)["lines"]]
    assert yen_nets == ["35", "-35", "333", "101", "-59", "-18"]


def test_what_the_core_refuses_the_bulk_path_refuses() -> None:
    month = two_rates_and_a_cap()
    table = bulk.table_of([month])
    off = replace(table, total_excl=table.total_excl + np.array([1, 0, 0]))
    with pytest.raises(DocumentError, match="do not add up"):
        bulk.monthly_invoices(off, heads([NORMAL]))
    credits_only = [credit_of(month[0])]
    with pytest.raises(DocumentError, match="below zero"):
        bulk.monthly_invoices(bulk.table_of([credits_only]), heads([NORMAL]))
    with pytest.raises(DocumentError, match="BR-16"):
        bulk.monthly_invoices(bulk.table_of([month, []]), heads([NORMAL, NORMAL]))
    no_vat_id = replace(heads([NORMAL])[0], seller=replace(SELLER, vat_id=None))
    with pytest.raises(DocumentError, match="BR-S-02"):
        bulk.monthly_invoices(table, [no_vat_id])


ODD_TEXT = st.text(
    st.characters(blacklist_categories=("Cs",)) | st.sampled_from(['"', "\\", "\x01", "\n", "é", "€", "😀"]),
    max_size=12,
)


@st.composite
def months_with_odd_texts(draw: st.DrawFn) -> list[PricedCdr]:
    """A fleet's month whose ids, location and driver and vehicle names hold quotes, backslashes, control
    characters and non-ASCII text (what JSON must escape)."""
    month = draw(st.one_of(fleet_months(), synthetic_months()))
    ids = {c.cdr_id: f"{draw(ODD_TEXT)}#{n}" for n, c in enumerate(month) if not c.is_credit}
    return [
        replace(
            c,
            cdr_id=ids.get(c.cdr_id) or f"{draw(ODD_TEXT)}#c{n}",
            credit_of=ids.get(c.credit_of or "", c.credit_of),
            session_ref=draw(ODD_TEXT),
            location=draw(ODD_TEXT),
            group=(draw(ODD_TEXT), draw(ODD_TEXT)),
        )
        for n, c in enumerate(month)
    ]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(months_with_odd_texts(), min_size=1, max_size=3))
def test_odd_texts_are_escaped_as_the_core_escapes_them(months) -> None:
    hs = heads([NORMAL] * len(months))
    expected = [core_or_error(m, h) for m, h in zip(months, hs, strict=True)]
    keep = [i for i, e in enumerate(expected) if e is not None]
    if not keep:
        return
    got = bulk.monthly_invoices(bulk.table_of([months[i] for i in keep]), [hs[i] for i in keep])
    assert [g.document for g in got] == [expected[i] for i in keep]
