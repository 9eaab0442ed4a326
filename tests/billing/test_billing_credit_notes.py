"""Credit notes never credit more than is left on the invoice (per line, per VAT rate, in total, VAT included),
whatever the sequence of partial credits; a full credit (or the last part) reverses the invoice to the cent; a
credit CDR credits exactly its CDR's lines."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from billing.core.credit_notes import CreditError, credit_for_cdr, full_credit, partial_credit, remaining
from billing.core.documents import CreditScope
from billing.core.en16931 import category_tax
from billing.core.lines import Dimension
from tests.properties.strategies import budget

from .kit import ISSUE, consumer_invoice, credit_of, engine_cdrs, fleet_invoice, simple_cdr, synthetic_months

D = Decimal
CENT = D("0.01")
MIXED = simple_cdr(
    "MIX",
    [
        (Dimension.ENERGY, "20", "6.01", "21"),
        (Dimension.TIME, "1.5", "1.99", "21"),
        (Dimension.FLAT, "1", "0.35", "9"),
        (Dimension.PARKING_TIME, "0.25", "0.75", None),
    ],
)
OTHER = simple_cdr("OTHER", [(Dimension.ENERGY, "3", "0.97", "21")], start=MIXED.end)


def _numbers():
    n = 0
    while True:
        n += 1
        yield f"CN-2026-{n:06d}"


def credited_vat(notes, key):
    return sum((b.tax for note in notes for b in note.breakdown if b.key == key), D(0))


@budget(150)
@given(
    st.one_of(st.just([MIXED, OTHER]), synthetic_months()),
    st.lists(st.tuples(st.booleans(), st.integers(1, 400)), max_size=8),
    st.data(),
)
def test_partial_credits_never_exceed_the_invoice_and_a_full_credit_closes_it(cdrs, steps, data) -> None:
    consumer = data.draw(st.booleans())  # a consumer's per-session invoice of the first CDR (BT-114 rounding)
    assume(sum((c.total_excl for c in (cdrs[:1] if consumer else cdrs)), D(0)) > 0)
    invoice = consumer_invoice(cdrs[0]) if consumer else fleet_invoice(cdrs)
    numbers, notes = _numbers(), []
    for by_line, cents in steps:
        left = remaining(invoice, notes)
        kw = {"series": "CN", "number": next(numbers), "issue_date": ISSUE, "reason": "goodwill"}
        if by_line:
            line_id = data.draw(st.sampled_from(sorted(left)))
            request = {"lines": {line_id: D(cents) * CENT}}
            ok = 0 < D(cents) * CENT <= left[line_id]
        else:
            request = {"amount": D(cents) * CENT}
            ok = D(cents) * CENT <= sum(left.values(), D(0))
        if not ok:
            with pytest.raises(CreditError):
                partial_credit(invoice, notes, **kw, **request)
            continue
        notes.append(partial_credit(invoice, notes, **kw, **request))
        for b in invoice.breakdown:  # never more VAT than charged, per rate
            assert credited_vat(notes, b.key) == category_tax(
                sum((n_b.taxable for note in notes for n_b in note.breakdown if n_b.key == b.key), D(0)),
                b.rate,
                "EUR",
            )
            assert 0 <= credited_vat(notes, b.key) <= b.tax
        for note in notes:  # each note within BR-CO-17's one unit
            for b in note.breakdown:
                assert abs(b.tax - category_tax(b.taxable, b.rate, "EUR")) <= CENT
        left = remaining(invoice, notes)
        assert all(min(0, ln.net) <= left[ln.line_id] <= max(0, ln.net) for ln in invoice.lines)
    if any(remaining(invoice, notes).values()):
        notes.append(
            full_credit(invoice, notes, series="CN", number=next(numbers), issue_date=ISSUE, reason="closing")
        )
        assert notes[-1].scope is CreditScope.FULL
    assert sum((n.totals.tax_exclusive for n in notes), D(0)) == invoice.totals.tax_exclusive
    assert sum((n.totals.tax for n in notes), D(0)) == invoice.totals.tax
    assert sum((n.totals.tax_inclusive for n in notes), D(0)) == invoice.totals.tax_inclusive
    assert sum((n.totals.payable for n in notes), D(0)) == invoice.totals.payable
    with pytest.raises(CreditError, match="nothing left"):
        full_credit(invoice, notes, series="CN", number="CN-X", issue_date=ISSUE, reason="again")


def test_a_full_credit_mirrors_the_invoice() -> None:
    invoice = fleet_invoice([MIXED, OTHER])
    note = full_credit(
        invoice, [], series="CN", number="CN-2026-000001", issue_date=ISSUE, reason="cancelled"
    )
    assert note.scope is CreditScope.FULL and note.invoice_number == invoice.number
    assert [(ln.net, ln.quantity, ln.credits_line) for ln in note.lines] == [
        (ln.net, ln.quantity, ln.line_id) for ln in invoice.lines
    ]
    assert note.breakdown == invoice.breakdown and note.totals == invoice.totals


def test_cumulative_vat_keeps_three_small_credits_within_the_invoices_vat() -> None:
    small = simple_cdr("SMALL", [(Dimension.ENERGY, "1", "0.10", "21")])
    invoice = fleet_invoice([small])  # VAT 0.021 -> 0.02
    notes = []
    for n, cents in enumerate(("0.03", "0.03", "0.04"), 1):
        notes.append(
            partial_credit(
                invoice, notes, series="CN", number=f"CN-{n}", issue_date=ISSUE, reason="r", amount=D(cents)
            )
        )
    # credited one by one, each 0.03 x 21 % would round to 0.01: three notes would credit 0.03 of a 0.02 VAT
    assert [n.totals.tax for n in notes] == [D("0.01"), D("0.00"), D("0.01")]
    assert notes[-1].scope is CreditScope.FULL


@budget(80)
@given(engine_cdrs(cdr_id="CDR-A"), engine_cdrs(cdr_id="CDR-B"))
def test_a_credit_cdr_credits_exactly_its_cdrs_lines(a, b) -> None:
    b = type(b)(**{**{f: getattr(b, f) for f in b.__slots__}, "group": ("Z",)})
    if not a.components or a.total_excl <= 0:
        return
    invoice = fleet_invoice([a, b])
    note = credit_for_cdr(invoice, credit_of(a), [], series="CN", number="CN-1", issue_date=ISSUE)
    assert note.totals.tax_exclusive == a.total_excl
    assert {ln.credits_line for ln in note.lines} == {
        ln.line_id
        for ln in invoice.lines
        if ln.cdr_id == "CDR-A" and ln.net  # a zero line has nothing to credit
    }
    assert note.credit_cdr == "CDR-A-credit"
    with pytest.raises(CreditError, match="already credited"):
        credit_for_cdr(invoice, credit_of(a), [note], series="CN", number="CN-2", issue_date=ISSUE)


def test_refusals_name_the_problem() -> None:
    invoice = fleet_invoice([MIXED])
    kw = {"series": "CN", "issue_date": ISSUE, "reason": "r"}
    with pytest.raises(CreditError, match="exceeds what is left"):
        partial_credit(invoice, [], number="CN-1", amount=D("9.11"), **kw)
    with pytest.raises(CreditError, match="exceeds what is left on it"):
        partial_credit(invoice, [], number="CN-1", lines={"MIX:1": D("6.02")}, **kw)
    with pytest.raises(CreditError, match="no line"):
        partial_credit(invoice, [], number="CN-1", lines={"NOPE": D("1.00")}, **kw)
    with pytest.raises(CreditError, match="not on invoice"):
        credit_for_cdr(invoice, credit_of(OTHER), [], series="CN", number="CN-1", issue_date=ISSUE)
    wrong = credit_of(MIXED)
    wrong = type(wrong)(
        **{
            **{f: getattr(wrong, f) for f in wrong.__slots__},
            "components": wrong.components[:1],
            "total_excl": wrong.components[0].net,
        }
    )
    with pytest.raises(CreditError, match="was invoiced"):
        credit_for_cdr(invoice, wrong, [], series="CN", number="CN-1", issue_date=ISSUE)


def test_crediting_a_consumers_invoice_gives_back_exactly_what_was_due() -> None:
    """The per-session invoice is due at the CDR's price (0.14: 0.12 with VAT plus 0.02 rounding); its credit
    notes together credit 0.14, the closing one carrying the rounding amount."""
    cdr = simple_cdr(
        "CENTS",
        [(Dimension.ENERGY, "0.18", "0.05", "21"), (Dimension.TIME, "0.05", "0.05", "21")],
        total_incl="0.14",
    )
    invoice = consumer_invoice(cdr)
    assert invoice.totals.payable == D("0.14")
    full = full_credit(invoice, [], series="CN", number="CN-1", issue_date=ISSUE, reason="r")
    assert full.totals.payable == D("0.14") and full.totals.rounding == D("0.02")
    part = partial_credit(
        invoice, [], series="CN", number="CN-1", issue_date=ISSUE, reason="r", amount=D("0.04")
    )
    rest = full_credit(invoice, [part], series="CN", number="CN-2", issue_date=ISSUE, reason="r")
    assert part.totals.rounding == 0 and part.totals.payable + rest.totals.payable == D("0.14")
