"""Documents as JSON and back: the ``billing_documents.document`` column holds the document as issued.

Amounts are written as strings with their exact digits, dates and instants in ISO 8601, enums by value, so
:func:`load_invoice` / :func:`load_credit_note` give back an equal document (the core validates it again).
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from billing.core.documents import (
    Address,
    CreditNote,
    CreditScope,
    Identity,
    Invoice,
    InvoiceLine,
    InvoiceReference,
    PaymentTerms,
    SupplyPeriod,
    Totals,
    Unit,
    VatBreakdown,
    VatCategory,
)


def to_json(value: Any) -> Any:
    """A document (or any part of one) as JSON data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [to_json(v) for v in value]
    return value


def _d(value: Any) -> Decimal:
    return Decimal(str(value))


def _identity(data: dict[str, Any]) -> Identity:
    return Identity(**{**data, "address": Address(**data["address"])})


def _period(data: dict[str, Any] | None) -> SupplyPeriod | None:
    if data is None:
        return None
    return SupplyPeriod(datetime.fromisoformat(data["start"]), datetime.fromisoformat(data["end"]))


def _line(data: dict[str, Any]) -> InvoiceLine:
    return InvoiceLine(
        **{
            **data,
            "quantity": _d(data["quantity"]),
            "unit": Unit(data["unit"]),
            "unit_price": _d(data["unit_price"]),
            "net": _d(data["net"]),
            "vat_category": VatCategory(data["vat_category"]),
            "vat_rate": _d(data["vat_rate"]),
            "supply": _period(data["supply"]),
            "group": tuple(data["group"]),
        }
    )


def _breakdown(data: dict[str, Any]) -> VatBreakdown:
    return VatBreakdown(
        **{
            **data,
            "category": VatCategory(data["category"]),
            "rate": _d(data["rate"]),
            "taxable": _d(data["taxable"]),
            "tax": _d(data["tax"]),
        }
    )


def _totals(data: dict[str, Any]) -> Totals:
    amounts: dict[str, Any] = {k: _d(v) for k, v in data.items() if k != "currency"}
    return Totals(**amounts, currency=data["currency"])


def _body(data: dict[str, Any]) -> dict[str, Any]:
    return {
        **data,
        "issue_date": date.fromisoformat(data["issue_date"]),
        "seller": _identity(data["seller"]),
        "buyer": _identity(data["buyer"]),
        "lines": tuple(_line(ln) for ln in data["lines"]),
        "breakdown": tuple(_breakdown(b) for b in data["breakdown"]),
        "totals": _totals(data["totals"]),
        "notes": tuple(data["notes"]),
    }


def load_invoice(data: dict[str, Any]) -> Invoice:
    """The :class:`Invoice` stored as ``data`` by :func:`to_json`."""
    body = _body(data)
    return Invoice(
        **{
            **body,
            "supply_period": _period(data["supply_period"]),
            "payment_terms": PaymentTerms(**data["payment_terms"]),
            "due_date": date.fromisoformat(data["due_date"]),
        }
    )


def load_credit_note(data: dict[str, Any]) -> CreditNote:
    """The :class:`CreditNote` stored as ``data`` by :func:`to_json`."""
    body = _body(data)
    return CreditNote(
        **{
            **body,
            "invoice_date": date.fromisoformat(data["invoice_date"]),
            "scope": CreditScope(data["scope"]),
            "also_credits": tuple(
                InvoiceReference(ref["number"], date.fromisoformat(ref["issue_date"]))
                for ref in data.get("also_credits", ())
            ),
        }
    )
