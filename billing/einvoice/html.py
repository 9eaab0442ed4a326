"""The human-readable invoice or credit note: ``billing/templates/invoice.html`` rendered with Jinja2.

The same template gives the HTML the portal shows and the PDF (:mod:`.pdf`), so both always carry the same
number, lines, VAT breakdown and totals. Dates and amounts are localized with Babel (``locale``, default
English); amounts are shown as the document holds them, never re-rounded.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal

from babel.dates import format_date
from babel.numbers import format_currency, format_decimal
from jinja2 import Environment, PackageLoader, select_autoescape

from billing.core.documents import CreditNote, Invoice

Document = Invoice | CreditNote

_ENV = Environment(
    loader=PackageLoader("billing", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _filters(currency: str, locale: str) -> dict[str, Callable[..., str]]:
    def money(amount: Decimal) -> str:
        return str(format_currency(amount, currency, locale=locale))

    def number(value: Decimal) -> str:
        return str(format_decimal(value.normalize(), locale=locale, decimal_quantization=False))

    def day(value: date | datetime) -> str:
        if isinstance(value, datetime):
            value = value.astimezone(UTC).date()
        return str(format_date(value, format="medium", locale=locale))

    return {"money": money, "number": number, "day": day}


def title_of(doc: Document) -> str:
    """What the document is, as its heading, the HTML's title and the PDF's metadata name it."""
    if isinstance(doc, Invoice):
        return "Self-billed invoice" if doc.self_billed else "Invoice"
    return "Self-billed credit note" if doc.self_billed else "Credit note"


def render_html(doc: Document, *, locale: str = "en", logo: str | None = None) -> str:
    """The HTML of ``doc`` in ``locale`` (a Babel locale such as ``en``, ``de_DE``, ``fr_FR``); ``logo`` is the
    issuer's logo URL or ``data:`` URI, if any."""
    env = _ENV.overlay()
    env.filters.update(_filters(doc.currency, locale))
    template = env.get_template("invoice.html")
    is_invoice = isinstance(doc, Invoice)
    return template.render(
        doc=doc,
        is_invoice=is_invoice,
        title=title_of(doc),
        lang=locale.split("_")[0],
        logo=logo,
    )
