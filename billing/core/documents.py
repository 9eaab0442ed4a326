"""The billing documents: identities, invoice lines, VAT breakdown, totals, invoices and credit notes.

Every value is frozen and validated when it is made, so a document that exists is a consistent one (an issued
invoice is immutable; a correction is a credit note):

* one currency per document, one EN 16931 can carry (at most 2 decimals); every amount already rounded by
  :mod:`kernel.money`;
* lines add up to the totals (BR-CO-10, 13, 14, 15, 16), the VAT breakdown has exactly one entry per VAT
  category and rate of the lines, with the lines' taxable amount (BR-S-08 and its siblings) and the tax
  BR-CO-17 gives (an invoice exactly; a credit note within one minor unit, see :mod:`.credit_notes`);
* VAT categories as EN 16931 codes them (UNTDID 5305): ``S`` standard (rate > 0), ``Z`` zero rated, ``E``
  exempt, ``AE`` reverse charge, ``O`` outside the scope of VAT (rate 0, tax 0, an exemption reason);
* a seller VAT id for standard-rated supplies (BR-S-02), both VAT ids and the wording for reverse charge
  (BR-AE-02, :mod:`.vat`);
* an item net price (BT-146) is never negative (BR-27): a negative line (a credit CDR, a price cap) has a
  negative quantity.

Business terms are named after EN 16931-1 (BT-x) where a field is one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

import pycountry

from billing.core.en16931 import ZERO, category_tax, invoice_currency, is_rounded, minor_unit, total
from kernel.money import normalize_currency


class DocumentError(ValueError):
    """A document (or a part of one) that would break an invoicing rule; the message names the rule."""


class VatCategory(StrEnum):
    """EN 16931 VAT category codes (BT-151, BT-118; UNTDID 5305 subset)."""

    STANDARD = "S"
    ZERO_RATED = "Z"
    EXEMPT = "E"
    REVERSE_CHARGE = "AE"
    OUTSIDE_SCOPE = "O"


class Unit(StrEnum):
    """Units of invoiced quantity (BT-130), UN/ECE Recommendation 20 codes."""

    KWH = "KWH"
    HOUR = "HUR"
    ONE = "C62"


VAT_ID = re.compile(r"^[A-Z]{2}[0-9A-Z+*.]{2,13}$")
"""A VAT identifier: a 2-letter country prefix and 2 to 13 characters (the VIES shape)."""


def _country(code: str) -> str:
    value = (code or "").strip().upper()
    if len(value) != 2 or pycountry.countries.get(alpha_2=value) is None:
        raise DocumentError(f"country {code!r} is not an ISO 3166-1 alpha-2 code")
    return value


def normalize_vat_id(vat_id: str) -> str:
    """The VAT id upper-cased, without spaces and dashes; DocumentError unless it has the VIES shape and BR-CO-09
    holds (an ISO 3166-1 alpha-2 prefix; Greece ``EL``, Northern Ireland ``XI``)."""
    value = re.sub(r"[\s\-]", "", vat_id or "").upper()
    if not VAT_ID.match(value):
        raise DocumentError(f"VAT id {vat_id!r} is not a country prefix followed by 2-13 characters")
    prefix = value[:2]
    if prefix not in ("EL", "XI") and pycountry.countries.get(alpha_2=prefix) is None:
        raise DocumentError(f"VAT id {vat_id!r}: prefix {prefix} is not an ISO 3166-1 country (BR-CO-09)")
    return value


def _text(value: str, what: str) -> str:
    cleaned = (value or "").strip()
    if not cleaned:
        raise DocumentError(f"{what} must not be empty")
    return cleaned


@dataclass(frozen=True, slots=True)
class Address:
    """A postal address (BG-5 / BG-8); ``country`` is ISO 3166-1 alpha-2 (BT-40 / BT-55)."""

    street: str
    postal_code: str
    city: str
    country: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "country", _country(self.country))


@dataclass(frozen=True, slots=True)
class Identity:
    """A seller (BG-4) or buyer (BG-7): legal name, address, VAT id (BT-31 / BT-48), registration id, e-mail.

    ``business`` tells a business buyer (B2B, where reverse charge may apply) from a consumer."""

    legal_name: str
    address: Address
    vat_id: str | None = None
    registration_id: str | None = None
    email: str | None = None
    business: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "legal_name", _text(self.legal_name, "a legal name (BT-27 / BT-44)"))
        if self.vat_id is not None:
            object.__setattr__(self, "vat_id", normalize_vat_id(self.vat_id))

    @property
    def country(self) -> str:
        return self.address.country


def _aware(instant: datetime, what: str) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise DocumentError(f"{what} must be an aware instant")
    return instant


@dataclass(frozen=True, slots=True)
class SupplyPeriod:
    """When a supply happened (BG-14 / BG-26): aware instants, ``start <= end`` (BR-29, BR-30)."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        _aware(self.start, "a supply period start")
        _aware(self.end, "a supply period end")
        if self.end < self.start:
            raise DocumentError("a supply period ends before it starts (BR-29 / BR-30)")

    def covers(self, other: SupplyPeriod) -> bool:
        return self.start <= other.start and other.end <= self.end

    @staticmethod
    def span(periods: Sequence[SupplyPeriod]) -> SupplyPeriod:
        """The smallest period covering ``periods`` (at least one)."""
        if not periods:
            raise DocumentError("no supply period to span")
        return SupplyPeriod(min(p.start for p in periods), max(p.end for p in periods))


@dataclass(frozen=True, slots=True)
class PaymentTerms:
    """Payment terms (BT-20): due ``days`` after the issue date; ``text`` is printed on the document."""

    days: int
    text: str = ""

    def __post_init__(self) -> None:
        if self.days < 0:
            raise DocumentError("payment terms cannot be due before the issue date")
        if not self.text:
            object.__setattr__(self, "text", f"Payable within {self.days} days of the invoice date")

    def due_date(self, issue_date: date) -> date:
        return issue_date + timedelta(days=self.days)


@dataclass(frozen=True, slots=True)
class InvoiceLine:
    """One invoice line (BG-25): what was supplied, how much, at what net price, under which VAT.

    ``net`` (BT-131) is rounded and signed, ``unit_price`` (BT-146) is never negative (BR-27), so the sign of
    the line is the sign of ``quantity`` (BT-129). ``cdr_id``, ``session_ref`` and ``signed_data_ref`` tie a
    line to the CDR, the charging session and its signed meter data; ``group`` (driver, vehicle) places it on a
    monthly invoice; ``credits_line`` is, on a credit note, the id of the invoice line it credits."""

    line_id: str
    description: str
    quantity: Decimal
    unit: Unit
    unit_price: Decimal
    net: Decimal
    currency: str
    vat_category: VatCategory
    vat_rate: Decimal
    cdr_id: str | None = None
    session_ref: str | None = None
    signed_data_ref: str | None = None
    supply: SupplyPeriod | None = None
    group: tuple[str, ...] = ()
    credits_line: str | None = None

    def __post_init__(self) -> None:
        _text(self.line_id, "a line id (BT-126)")
        _text(self.description, "a line description (BT-153)")
        object.__setattr__(self, "currency", invoice_currency(self.currency))
        if not is_rounded(self.net, self.currency):
            raise DocumentError(
                f"line {self.line_id}: net {self.net} is not a rounded {self.currency} amount"
            )
        if self.unit_price < 0:
            raise DocumentError(f"line {self.line_id}: the item net price is negative (BR-27)")
        if self.net and (self.net < 0) != (self.quantity < 0):
            raise DocumentError(
                f"line {self.line_id}: net {self.net} and quantity {self.quantity} differ in sign"
            )
        _check_rate(self.vat_category, self.vat_rate, f"line {self.line_id}")


def _check_rate(category: VatCategory, rate: Decimal, where: str) -> None:
    if category is VatCategory.STANDARD and rate <= 0:
        raise DocumentError(f"{where}: a standard-rated VAT rate must be above zero (BR-S-05)")
    if category is not VatCategory.STANDARD and rate != 0:
        raise DocumentError(f"{where}: VAT category {category.value} has rate 0 (BR-Z/E/AE/O-05)")


@dataclass(frozen=True, slots=True)
class VatBreakdown:
    """One VAT breakdown (BG-23): per VAT category and rate, the taxable amount (BT-116) and the tax (BT-117);
    an exemption reason (BT-120) for every category but ``S`` and ``Z`` (BR-E-10, BR-AE-10, BR-O-10)."""

    category: VatCategory
    rate: Decimal
    taxable: Decimal
    tax: Decimal
    currency: str
    exemption_reason: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "currency", invoice_currency(self.currency))
        where = f"VAT breakdown {self.category.value} {self.rate}%"
        _check_rate(self.category, self.rate, where)
        if not (is_rounded(self.taxable, self.currency) and is_rounded(self.tax, self.currency)):
            raise DocumentError(f"{where}: amounts must be rounded {self.currency} amounts")
        if self.category not in (VatCategory.STANDARD, VatCategory.ZERO_RATED) and not self.exemption_reason:
            raise DocumentError(f"{where}: an exemption reason is required (BR-{self.category.value}-10)")

    @property
    def key(self) -> tuple[VatCategory, Decimal]:
        return (self.category, self.rate)


@dataclass(frozen=True, slots=True)
class Totals:
    """Document totals (BG-22): BT-106 line net, BT-109 without VAT, BT-110 VAT, BT-112 with VAT, BT-114
    rounding amount, BT-115 amount due. Nothing is prepaid at issue (BT-113 is zero); payments come later."""

    line_net: Decimal
    tax_exclusive: Decimal
    tax: Decimal
    tax_inclusive: Decimal
    rounding: Decimal
    payable: Decimal
    currency: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "currency", invoice_currency(self.currency))
        if self.tax_exclusive != self.line_net:
            raise DocumentError("total without VAT must equal the sum of line net amounts (BR-CO-13)")
        if self.tax_inclusive != self.tax_exclusive + self.tax:
            raise DocumentError("total with VAT must equal total without VAT plus VAT (BR-CO-15)")
        if self.payable != self.tax_inclusive + self.rounding:
            raise DocumentError("amount due must equal total with VAT plus the rounding amount (BR-CO-16)")


def _same_key(line: InvoiceLine) -> tuple[VatCategory, Decimal]:
    return (line.vat_category, line.vat_rate)


def _check_parties(seller: Identity, buyer: Identity, categories: set[VatCategory]) -> None:
    if VatCategory.STANDARD in categories and not (seller.vat_id or seller.registration_id):
        raise DocumentError("a standard-rated supply needs the seller's VAT id (BR-S-02)")
    if VatCategory.REVERSE_CHARGE in categories and not (seller.vat_id and buyer.vat_id):
        raise DocumentError("reverse charge needs the seller's and the buyer's VAT id (BR-AE-02)")


def _check_body(
    currency: str,
    lines: Sequence[InvoiceLine],
    breakdown: Sequence[VatBreakdown],
    totals: Totals,
    tax_tolerance: Decimal,
) -> None:
    """The rules shared by invoices and credit notes: one currency, lines -> breakdown -> totals."""
    if not lines:
        raise DocumentError("a document has at least one line (BR-16)")
    ids = [ln.line_id for ln in lines]
    if len(set(ids)) != len(ids):
        raise DocumentError("line ids must be unique within a document (BT-126)")
    currencies = {ln.currency for ln in lines} | {b.currency for b in breakdown} | {totals.currency}
    if currencies != {currency}:
        raise DocumentError(f"a document has one currency ({currency}); a line, breakdown or total differs")
    keys = [b.key for b in breakdown]
    if len(set(keys)) != len(keys):
        raise DocumentError("one VAT breakdown per VAT category and rate")
    if set(keys) != {_same_key(ln) for ln in lines}:
        raise DocumentError("the VAT breakdown must have one entry per VAT category and rate of the lines")
    for b in breakdown:
        taxable = total((ln.net for ln in lines if _same_key(ln) == b.key), currency)
        if b.taxable != taxable:
            raise DocumentError(
                f"VAT breakdown {b.category.value} {b.rate}%: taxable {b.taxable} is not the sum of its lines "
                f"{taxable} (BR-{b.category.value}-08)"
            )
        if abs(b.tax - category_tax(b.taxable, b.rate, currency)) > tax_tolerance:
            raise DocumentError(f"VAT breakdown {b.category.value} {b.rate}%: tax {b.tax} breaks BR-CO-17")
    if totals.line_net != total((ln.net for ln in lines), currency):
        raise DocumentError("sum of line net amounts (BT-106) must equal the lines (BR-CO-10)")
    if totals.tax != total((b.tax for b in breakdown), currency):
        raise DocumentError("total VAT (BT-110) must equal the sum of the breakdown's tax (BR-CO-14)")


@dataclass(frozen=True, slots=True)
class Invoice:
    """A VAT invoice (EN 16931 type 380), complete and consistent; immutable once made.

    ``series`` and ``number`` (BT-1, formatted by :mod:`.numbering`), ``issue_date`` (BT-2), ``supply_period``
    (BG-14, covering every line's), ``due_date`` (BT-9), ``notes`` (BT-22: e.g. the reverse-charge wording).
    ``self_billed``: a self-billed invoice (BT-3 type 389), issued by the buyer on the seller's behalf under a
    self-billing agreement (VAT Directive Art. 224); the seller is still the supplier."""

    series: str
    number: str
    issue_date: date
    supply_period: SupplyPeriod
    seller: Identity
    buyer: Identity
    currency: str
    lines: tuple[InvoiceLine, ...]
    breakdown: tuple[VatBreakdown, ...]
    totals: Totals
    payment_terms: PaymentTerms
    due_date: date
    notes: tuple[str, ...] = ()
    self_billed: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "currency", invoice_currency(self.currency))
        _text(self.number, "an invoice number (BT-1)")
        _check_body(self.currency, self.lines, self.breakdown, self.totals, ZERO)
        if any(ln.credits_line for ln in self.lines):
            raise DocumentError("an invoice line credits nothing; that is a credit note's")
        if self.totals.tax_inclusive < 0:
            raise DocumentError("an invoice total below zero is a credit note, not an invoice")
        if self.due_date < self.issue_date:
            raise DocumentError("the due date is before the issue date")
        if any(ln.supply and not self.supply_period.covers(ln.supply) for ln in self.lines):
            raise DocumentError("the invoice's supply period must cover every line's")
        _check_parties(self.seller, self.buyer, {ln.vat_category for ln in self.lines})

    def line(self, line_id: str) -> InvoiceLine:
        for ln in self.lines:
            if ln.line_id == line_id:
                return ln
        raise KeyError(line_id)


@dataclass(frozen=True, slots=True)
class InvoiceReference:
    """A preceding invoice a credit note corrects (BG-3): its number (BT-25) and issue date (BT-26)."""

    number: str
    issue_date: date

    def __post_init__(self) -> None:
        _text(self.number, "a preceding invoice's number (BT-25)")


class CreditScope(StrEnum):
    """What a credit note credits: all that was left on the invoice, or a part of it."""

    FULL = "full"
    PARTIAL = "partial"


@dataclass(frozen=True, slots=True)
class CreditNote:
    """A credit note (EN 16931 type 381) against an invoice (BT-25 its number, BT-26 its date; others in
    ``also_credits``).

    Amounts are positive for what is credited (a line credited from a negative invoice line is negative). Its
    lines name the invoice lines they credit; its VAT is the cumulative VAT of the invoice's credits (see
    :mod:`.credit_notes`), so it may differ from its own taxable x rate by at most one minor unit (inside the
    official EN 16931 Schematron's BR-CO-17 tolerance of one unit)."""

    series: str
    number: str
    issue_date: date
    seller: Identity
    buyer: Identity
    currency: str
    invoice_number: str
    invoice_date: date
    reason: str
    scope: CreditScope
    lines: tuple[InvoiceLine, ...]
    breakdown: tuple[VatBreakdown, ...]
    totals: Totals
    credit_cdr: str | None = None
    notes: tuple[str, ...] = field(default=())
    self_billed: bool = False
    """A self-billed credit note (BT-3 type 261): the self-biller credits its self-billed invoice (389)."""
    also_credits: tuple[InvoiceReference, ...] = ()
    """Further preceding invoices it corrects (BG-3 is 0..n in EN 16931 and in the Factur-X EN 16931 CII),
    after the one of ``invoice_number``: a B2B period's credit note whose credited CDRs were billed on several
    earlier invoices names them all."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "currency", invoice_currency(self.currency))
        _text(self.number, "a credit note number (BT-1)")
        _text(self.invoice_number, "the credited invoice's number (BT-25)")
        _text(self.reason, "a credit reason")
        _check_body(self.currency, self.lines, self.breakdown, self.totals, minor_unit(self.currency))
        if any(not ln.credits_line for ln in self.lines):
            raise DocumentError("every credit note line names the invoice line it credits")
        if self.totals.tax_exclusive <= 0:
            raise DocumentError("a credit note credits a positive amount")
        if self.issue_date < self.invoice_date:
            raise DocumentError("a credit note cannot predate the invoice it credits")
        numbers = [self.invoice_number, *(ref.number for ref in self.also_credits)]
        if len(set(numbers)) != len(numbers):
            raise DocumentError("a credit note names each preceding invoice once (BG-3)")
        if any(self.issue_date < ref.issue_date for ref in self.also_credits):
            raise DocumentError("a credit note cannot predate an invoice it credits")
        _check_parties(self.seller, self.buyer, {ln.vat_category for ln in self.lines})


def currency_of(lines: Sequence[InvoiceLine]) -> str:
    """The one currency of ``lines``, or DocumentError."""
    currencies = {ln.currency for ln in lines}
    if len(currencies) != 1:
        raise DocumentError(f"lines in {len(currencies)} currencies; one document per currency")
    return normalize_currency(currencies.pop())
