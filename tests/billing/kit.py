"""Billing test kit: identities, priced CDRs from the real pricing engine, and invoice builders.

:func:`engine_cdrs` prices generated sessions with the tariff engine (:func:`tariffs.core.engine.price_session`)
over every tariff feature the property strategies draw (tests/properties/strategies.py: every dimension,
restrictions, step sizes, VAT None/0/21, min/max price, reservations, the 18 OCPI examples) and turns the
:class:`~tariffs.core.pricing_result.PricingResult` into the :class:`billing.core.lines.PricedCdr` an adapter
will build from a CDR row: one component per rounded line, the min/max adjustment as ADJUSTMENT.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from hypothesis import assume
from hypothesis import strategies as st

from billing.core.documents import Address, Identity, Invoice, PaymentTerms
from billing.core.invoices import monthly_invoice, session_invoice
from billing.core.lines import CdrComponent, Dimension, PricedCdr
from billing.core.vat import NORMAL, VatTreatment
from tariffs.core.compiled_tariff import compile_tariff
from tariffs.core.engine import PricingError, price_session
from tariffs.core.meter_periods import periods_from_meter_values
from tariffs.core.pricing_result import PricingResult
from tests.properties.strategies import TZ, meter_profiles, versions

D = Decimal
SELLER = Identity(
    "Voltstreet Charging B.V.",
    Address("Keizersgracht 1", "1015 CJ", "Amsterdam", "NL"),
    vat_id="NL123456789B01",
    business=True,
)
CONSUMER = Identity("Ada Driver", Address("Damrak 5", "1012 LG", "Amsterdam", "NL"), email="ada@example.org")
FLEET = Identity(
    "Logistik GmbH", Address("Hafenstr. 3", "20457", "Hamburg", "DE"), vat_id="DE123456789", business=True
)
TERMS = PaymentTerms(14)
ISSUE = date(2026, 7, 1)
T0 = datetime(2026, 6, 2, 8, 0, tzinfo=UTC)


def dimension_of(line: object) -> Dimension:
    kind, dim = line.kind, line.dimension  # type: ignore[attr-defined]
    if kind != "component":
        return Dimension.ADJUSTMENT
    if dim == "FLAT" and line.charges and line.charges[0].reservation:  # type: ignore[attr-defined]
        return Dimension.RESERVATION_FLAT
    return Dimension(dim)


def priced_cdr(result: PricingResult, cdr_id: str, *, group: tuple[str, ...] = ()) -> PricedCdr:
    """The PricedCdr of an engine result, as the adapter will make it from the CDR's explanation lines."""
    components = tuple(
        CdrComponent(
            dimension_of(ln),
            ln.quantity,
            ln.amount_excl,
            ln.vat,
            ln.unit_price,
        )
        for ln in result.lines
    )
    return PricedCdr(
        cdr_id=cdr_id,
        session_ref=f"S-{cdr_id}",
        currency=result.currency,
        start=result.session_start,
        end=result.session_end,
        total_excl=result.total_cost.excl_vat,
        total_incl=result.total_cost.incl_vat,
        components=components,
        signed_data_ref=f"signed:{cdr_id}",
        location="AMS-01",
        group=group,
    )


def credit_of(cdr: PricedCdr) -> PricedCdr:
    """The credit CDR of ``cdr`` (tariffs.rating.credit_for: amounts negated, quantities kept)."""
    return replace(
        cdr,
        cdr_id=f"{cdr.cdr_id}-credit",
        total_excl=-cdr.total_excl,
        total_incl=None if cdr.total_incl is None else -cdr.total_incl,
        components=tuple(replace(c, net=-c.net) for c in cdr.components),
        is_credit=True,
        credit_of=cdr.cdr_id,
    )


@st.composite
def engine_results(draw: st.DrawFn) -> PricingResult:
    """A session priced by the real engine: generated tariff versions, a generated meter profile."""
    profile = draw(meter_profiles())
    tariffs = draw(versions(profile.start))
    compiled = [compile_tariff(t) for t in tariffs]
    try:
        periods = periods_from_meter_values(profile.samples(), profile.start, profile.end, compiled, TZ)
        result = price_session(compiled, periods, profile.start, profile.end, TZ, precut=True)
    except PricingError:
        assume(False)
        raise
    assume(result.currency == "EUR")
    return result


@st.composite
def engine_cdrs(draw: st.DrawFn, cdr_id: str = "CDR-1", group: tuple[str, ...] = ()) -> PricedCdr:
    return priced_cdr(draw(engine_results()), cdr_id, group=group)


@st.composite
def fleet_months(draw: st.DrawFn) -> list[PricedCdr]:
    """1-6 sessions of 1-3 drivers/vehicles of a fleet, some corrected (a credit CDR among them)."""
    out: list[PricedCdr] = []
    for n in range(draw(st.integers(1, 6))):
        group = draw(st.sampled_from([("Ada", "NL-AB-12"), ("Bob", "NL-CD-34"), ("Bob", "NL-EF-56")]))
        cdr = draw(engine_cdrs(cdr_id=f"CDR-{n}", group=group))
        out.append(cdr)
        if draw(st.integers(0, 4)) == 0:
            out.append(credit_of(cdr))
    assume(sum((c.total_excl for c in out), D(0)) >= 0)
    return out


def consumer_invoice(cdr: PricedCdr, number: str = "INV-2026-000001") -> Invoice:
    return session_invoice(
        cdr,
        series="INV",
        number=number,
        issue_date=ISSUE,
        seller=SELLER,
        buyer=CONSUMER,
        terms=TERMS,
        treatment=NORMAL,
    )


def fleet_invoice(
    cdrs: list[PricedCdr], treatment: VatTreatment = NORMAL, number: str = "INV-2026-000002"
) -> Invoice:
    return monthly_invoice(
        cdrs,
        series="INV",
        number=number,
        issue_date=ISSUE,
        seller=SELLER,
        buyer=FLEET,
        terms=TERMS,
        treatment=treatment,
    )


def simple_cdr(
    cdr_id: str,
    parts: list[tuple[Dimension, str, str, str | None]],
    *,
    total_incl: str | None = None,
    start: datetime = T0,
    group: tuple[str, ...] = (),
) -> PricedCdr:
    """A hand-made CDR: parts (dimension, quantity, net, VAT %)."""
    components = tuple(
        CdrComponent(
            dim,
            D(q),
            D(net),
            None if vat is None else D(vat),
            None if dim is Dimension.ADJUSTMENT else (abs(D(net)) / D(q)).quantize(D("0.000001")),
        )
        for dim, q, net, vat in parts
    )
    return PricedCdr(
        cdr_id=cdr_id,
        session_ref=f"S-{cdr_id}",
        currency="EUR",
        start=start,
        end=start + timedelta(hours=1),
        total_excl=sum((c.net for c in components), D("0.00")),
        total_incl=None if total_incl is None else D(total_incl),
        components=components,
        group=group,
    )


RATES = [None, D(0), D("5.5"), D(7), D(9), D(19), D(21), D("25.5")]


@st.composite
def synthetic_cdrs(draw: st.DrawFn, cdr_id: str, start: datetime = T0) -> PricedCdr:
    """A CDR of 1-6 components at any of :data:`RATES` (EU rates, 0 %, none), nets of 0.00-99.99 with many
    half-cent VAT ties, and sometimes a price cap; its incl.-VAT total rounded per line, as the engine does."""
    parts = []
    for _ in range(draw(st.integers(1, 6))):
        dim = draw(
            st.sampled_from([Dimension.ENERGY, Dimension.TIME, Dimension.PARKING_TIME, Dimension.FLAT])
        )
        net = D(draw(st.one_of(st.integers(0, 9999), st.sampled_from([5, 50, 150, 250, 1050])))) / 100
        parts.append((dim, net, draw(st.sampled_from(RATES))))
    components = [CdrComponent(dim, D(1), net, rate, net) for dim, net, rate in parts]
    incl = sum(
        ((net * (1 + (rate or D(0)) / 100)).quantize(D("0.01"), ROUND_HALF_UP) for _, net, rate in parts),
        D("0.00"),
    )
    excl = sum((net for _, net, _ in parts), D("0.00"))
    if excl and draw(st.integers(0, 3)) == 0:
        cap = -D(draw(st.integers(1, int(excl * 100)))) / 100
        components.append(CdrComponent(Dimension.ADJUSTMENT, D(1), cap))
        excl += cap
        incl = max(D("0.00"), incl + cap)
    return PricedCdr(
        cdr_id=cdr_id,
        session_ref=f"S-{cdr_id}",
        currency="EUR",
        start=start,
        end=start + timedelta(minutes=draw(st.integers(1, 600))),
        total_excl=excl,
        total_incl=incl,
        components=tuple(components),
        group=draw(st.sampled_from([("Ada", "NL-AB-12"), ("Bob", "NL-CD-34")])),
    )


@st.composite
def synthetic_months(draw: st.DrawFn) -> list[PricedCdr]:
    return [
        draw(synthetic_cdrs(f"SYN-{n}", T0 + timedelta(hours=12 * n))) for n in range(draw(st.integers(1, 8)))
    ]
