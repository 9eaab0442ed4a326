"""VAT of a document: the category of each line, the breakdown per category and rate, the totals, the wording.

* **Category** (:func:`classify`): a CDR component's tariff VAT (OCPI ``vat``: a percentage, or absent for "no
  VAT applicable") under the document's :class:`VatTreatment`: ``S`` for a rate above zero, ``Z`` for 0 %,
  ``O`` (outside the scope of VAT) when the tariff has none; ``AE`` for every taxable line under reverse charge;
  ``E`` for every line of an exempt issuer (its exemption reason printed).
* **Reverse charge** (:func:`treatment_for`): a business buyer with a VAT id in another EU member state than
  the seller (who has one too), where the issuer allows it for this supply. Whether it legally applies to a
  given charging supply is the issuer's decision (EV charging is often taxed where the charger is); the core
  only checks the conditions BR-AE-02 needs and writes the mandatory wording (Directive 2006/112/EC, Article
  226(11a)) as a note and as the breakdown's exemption reason.
* **Outside the scope of EU VAT** (:func:`outside_eu_scope`): a B2B service whose place of supply is the
  customer's establishment (VAT Directive Art. 44) sold by an EU seller to a business established outside the
  EU is not subject to EU VAT: every line ``O`` with :data:`OUTSIDE_EU_REASON` as its exemption reason. Such a
  document carries no seller or buyer VAT id (BR-O-02), so it names the seller by its legal registration id
  (BT-30, BR-CO-26): :func:`outside_scope_parties`.
* **Breakdown and totals** (:func:`breakdown`, :func:`totals`): per category and rate, the taxable amount is
  the sum of the lines' net amounts, the tax is BR-CO-17's (taxable x rate, rounded once by kernel.money);
  BT-110 is the sum of the categories' tax, never the sum of per-line or per-CDR VAT.

Invoice VAT and the CDRs' incl.-VAT totals: a CDR's ``total_cost.incl_vat`` is the sum of its lines each
rounded with VAT; the invoice's VAT is per rate over the lines' net. The two may differ by a few cents (see
docs/billing.md). The invoice's VAT is the VAT owed, always; what the buyer pays is decided in
:mod:`.invoices` (per-session: the CDR's incl.-VAT total, the difference as the BT-114 rounding amount; monthly:
the invoice total) and :func:`reconcile` reports the difference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum

from billing.core.documents import DocumentError, Identity, InvoiceLine, Totals, VatBreakdown, VatCategory
from billing.core.en16931 import ZERO, category_tax, total

EU_MEMBER_STATES = frozenset(
    [
        "AT",
        "BE",
        "BG",
        "CY",
        "CZ",
        "DE",
        "DK",
        "EE",
        "ES",
        "FI",
        "FR",
        "GR",
        "HR",
        "HU",
        "IE",
        "IT",
        "LT",
        "LU",
        "LV",
        "MT",
        "NL",
        "PL",
        "PT",
        "RO",
        "SE",
        "SI",
        "SK",
    ]
)
"""The 27 EU member states (ISO 3166-1 alpha-2; Greece's VAT ids use the prefix EL)."""

REVERSE_CHARGE_NOTE = "Reverse charge: VAT to be accounted for by the recipient (Council Directive 2006/112/EC, Article 226(11a))."
"""The mention an invoice must carry when the customer is liable for the VAT."""

OUTSIDE_SCOPE_REASON = "Not subject to VAT"
OUTSIDE_EU_REASON = (
    "Not subject to VAT: service to a business established outside the EU, place of supply where the customer "
    "is established (Council Directive 2006/112/EC, Article 44)"
)
"""BT-120 of a B2B service to a customer established outside the EU (category ``O``)."""


class TreatmentKind(StrEnum):
    NORMAL = "normal"
    REVERSE_CHARGE = "reverse_charge"
    EXEMPT = "exempt"
    OUTSIDE_SCOPE = "outside_scope"


@dataclass(frozen=True, slots=True)
class VatTreatment:
    """How VAT applies to one document: normally, reverse charged, exempt (with the issuer's reason), or not at
    all (outside the scope of EU VAT, with the reason)."""

    kind: TreatmentKind = TreatmentKind.NORMAL
    exemption_reason: str | None = None

    def __post_init__(self) -> None:
        if self.kind is TreatmentKind.EXEMPT and not (self.exemption_reason or "").strip():
            raise DocumentError("an exempt issuer states its exemption reason (BR-E-10)")
        if self.kind is TreatmentKind.OUTSIDE_SCOPE and not (self.exemption_reason or "").strip():
            raise DocumentError("a supply outside the scope of VAT states why (BR-O-10)")


NORMAL = VatTreatment()


def treatment_for(
    seller: Identity, buyer: Identity, *, reverse_charge_allowed: bool = False, exemption: str | None = None
) -> VatTreatment:
    """The treatment of a supply from ``seller`` to ``buyer``.

    ``exemption`` (the issuer is VAT exempt, e.g. a small-business scheme) wins; then reverse charge when the
    issuer allows it for this supply and the buyer is a business with a VAT id in another EU member state than
    the seller, who has a VAT id too; else the normal treatment."""
    if exemption:
        return VatTreatment(TreatmentKind.EXEMPT, exemption)
    if (
        reverse_charge_allowed
        and buyer.business
        and buyer.vat_id
        and seller.vat_id
        and seller.country in EU_MEMBER_STATES
        and buyer.country in EU_MEMBER_STATES
        and seller.country != buyer.country
    ):
        return VatTreatment(TreatmentKind.REVERSE_CHARGE)
    return NORMAL


OUTSIDE_EU = VatTreatment(TreatmentKind.OUTSIDE_SCOPE, OUTSIDE_EU_REASON)


def outside_eu_scope(seller: Identity, buyer: Identity) -> bool:
    """Whether a B2B service taxed where the customer is established (VAT Directive Art. 44) falls outside the
    scope of EU VAT: an EU seller, a business buyer established outside the EU."""
    return buyer.business and seller.country in EU_MEMBER_STATES and buyer.country not in EU_MEMBER_STATES


def outside_scope_parties(seller: Identity, buyer: Identity) -> tuple[Identity, Identity]:
    """The seller and buyer as a document outside the scope of VAT names them: without VAT ids (BR-O-02), the
    seller by its legal registration id (BT-30; BR-CO-26 wants it, the seller identifier or the VAT id);
    DocumentError when the seller has none."""
    if not seller.registration_id:
        raise DocumentError(
            f"{seller.legal_name} has no legal registration id: a document outside the scope of VAT carries no "
            "VAT id (BR-O-02) and names the seller by it (BT-30, BR-CO-26); set the issuer's registration id"
        )
    return replace(seller, vat_id=None), replace(buyer, vat_id=None)


def require_registration_id(seller: Identity) -> None:
    """The rule for an issuer set up now (``evhub issuers add``, ``POST /api/billing/issuers``): it has its
    legal registration id (BT-30: the trade register's, e.g. KvK, HRB, SIREN, Companies House). A CDR's lines
    outside the scope of VAT (a tariff's "no VAT applicable" parking, a late fee) and a B2B service to a
    business outside the EU need an invoice of their own (BR-O-11, BR-O-12) without VAT ids (BR-O-02), which
    names the seller by it (BR-CO-26); without it they would sit next to taxed lines, which EN 16931 refuses.
    DocumentError (its message the fix) otherwise."""
    if not (seller.registration_id or "").strip():
        raise DocumentError(
            f"{seller.legal_name}: an issuer needs its legal registration id (the trade register's number, "
            "EN 16931 BT-30): lines outside the scope of VAT go on an invoice of their own that carries no VAT "
            "id (BR-O-02) and names the seller by it (BR-CO-26)"
        )


def outside_vat_held(issuer_key: str) -> str:
    """Why lines outside the scope of VAT (category O) are held, not invoiced, for an issuer without a legal
    registration id (one stored before it was required): a document with an O line may have only O lines
    (BR-O-11, BR-O-12) and no VAT id (BR-O-02), so it names the seller by that id (BR-CO-26). The one reason
    the log, the reconciliation report (CLI and API) and a refused ``invoices issue`` give."""
    return (
        f"held: outside the scope of VAT (category O) and issuer {issuer_key} has no legal registration id: "
        "a document with an O line may have only O lines (EN 16931 BR-O-11/BR-O-12) and no VAT id (BR-O-02), "
        "so it names the seller by its registration id (BR-CO-26); set it (evhub issuers set "
        f"{issuer_key} --registration-id ID, or PATCH /api/billing/issuers/{issuer_key}) and the next run "
        "invoices it on an invoice of its own"
    )


def plain_rate(rate: Decimal) -> Decimal:
    """A rate without trailing zeros or exponent (``21.00`` -> ``21``, ``5.50`` -> ``5.5``)."""
    if rate == rate.to_integral_value():
        return rate.quantize(Decimal(1))
    return rate.normalize()


def classify(tariff_rate: Decimal | None, treatment: VatTreatment) -> tuple[VatCategory, Decimal]:
    """(category, rate) of a line whose tariff VAT is ``tariff_rate`` (None: OCPI "no VAT applicable")."""
    if tariff_rate is not None and tariff_rate < 0:
        raise DocumentError(f"VAT rate {tariff_rate} is negative")
    if tariff_rate is None or treatment.kind is TreatmentKind.OUTSIDE_SCOPE:
        return VatCategory.OUTSIDE_SCOPE, ZERO
    if treatment.kind is TreatmentKind.EXEMPT:
        return VatCategory.EXEMPT, ZERO
    if treatment.kind is TreatmentKind.REVERSE_CHARGE:
        return VatCategory.REVERSE_CHARGE, ZERO
    if tariff_rate == 0:
        return VatCategory.ZERO_RATED, ZERO
    return VatCategory.STANDARD, plain_rate(tariff_rate)


def exemption_reason(category: VatCategory, treatment: VatTreatment) -> str | None:
    """BT-120 for a category: the reverse-charge wording, the issuer's exemption, or "Not subject to VAT" (with
    its reason under the outside-the-scope treatment)."""
    if category is VatCategory.REVERSE_CHARGE:
        return REVERSE_CHARGE_NOTE
    if category is VatCategory.EXEMPT:
        return treatment.exemption_reason
    if category is VatCategory.OUTSIDE_SCOPE:
        if treatment.kind is TreatmentKind.OUTSIDE_SCOPE:
            return treatment.exemption_reason
        return OUTSIDE_SCOPE_REASON
    return None


_ORDER = {c: i for i, c in enumerate(VatCategory)}


def _key(line: InvoiceLine) -> tuple[VatCategory, Decimal]:
    return (line.vat_category, line.vat_rate)


def taxable_amounts(
    lines: Sequence[InvoiceLine], currency: str
) -> dict[tuple[VatCategory, Decimal], Decimal]:
    """Per (category, rate), the sum of the lines' net amounts (BT-116), in category then rate order."""
    keys = sorted({_key(ln) for ln in lines}, key=lambda k: (_ORDER[k[0]], k[1]))
    return {k: total((ln.net for ln in lines if _key(ln) == k), currency) for k in keys}


def breakdown(
    lines: Sequence[InvoiceLine], currency: str, treatment: VatTreatment = NORMAL
) -> tuple[VatBreakdown, ...]:
    """The VAT breakdown (BG-23) of ``lines``: BR-CO-17 per category and rate."""
    return tuple(
        VatBreakdown(
            category,
            rate,
            taxable,
            category_tax(taxable, rate, currency),
            currency,
            exemption_reason(category, treatment),
        )
        for (category, rate), taxable in taxable_amounts(lines, currency).items()
    )


def totals(
    lines: Sequence[InvoiceLine],
    vat: Sequence[VatBreakdown],
    currency: str,
    rounding: Decimal = ZERO,
) -> Totals:
    """The totals (BG-22) of ``lines`` with breakdown ``vat``; ``rounding`` is BT-114."""
    net = total((ln.net for ln in lines), currency)
    tax = total((b.tax for b in vat), currency)
    rounding = total([rounding], currency)
    return Totals(net, net, tax, net + tax, rounding, net + tax + rounding, currency)


def notes(vat: Sequence[VatBreakdown]) -> tuple[str, ...]:
    """The notes (BT-22) the VAT requires: the reverse-charge wording when a line is reverse charged."""
    return (REVERSE_CHARGE_NOTE,) if any(b.category is VatCategory.REVERSE_CHARGE for b in vat) else ()


@dataclass(frozen=True, slots=True)
class VatReconciliation:
    """The CDRs' incl.-VAT totals next to the invoice's total with VAT (BT-112) for the same lines."""

    cdr_total_incl: Decimal
    invoice_total_incl: Decimal

    @property
    def difference(self) -> Decimal:
        """What the CDRs say minus what the invoice says (positive: the CDRs show more)."""
        return self.cdr_total_incl - self.invoice_total_incl


def reconcile(cdr_totals_incl: Sequence[Decimal], invoice_totals: Totals) -> VatReconciliation:
    """Compare the sum of the CDRs' ``total_cost.incl_vat`` with the invoice's BT-112."""
    return VatReconciliation(total(cdr_totals_incl, invoice_totals.currency), invoice_totals.tax_inclusive)
