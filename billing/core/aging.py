"""Accounts receivable: aging buckets per issuer and currency, and payments allocated to invoices.

* :func:`aging`: every open receivable (an invoice's outstanding amount) in the bucket of its days past due on
  ``today``: ``current`` (not yet due), ``0-30``, ``31-60``, ``61-90``, ``90+``, summed per issuer and currency
  (currencies are never added together).
* :func:`allocate_payment`: a payment (partial, exact or over) applied to a buyer's open invoices: the invoice it
  names first, then the oldest due first (due date, then number); what is left over is the buyer's unapplied
  credit (an overpayment), never spread onto invoices of another currency.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from billing.core.en16931 import ZERO, is_rounded
from kernel.money import normalize_currency, round_amount

BUCKETS = ("current", "0-30", "31-60", "61-90", "90+")


class ReceivableError(ValueError):
    """A receivable or payment that cannot be aged or applied."""


@dataclass(frozen=True, slots=True)
class Receivable:
    """An issued invoice's open amount: ``outstanding`` = amount due - paid - credited (not negative)."""

    issuer: str
    invoice: str
    currency: str
    due_date: date
    outstanding: Decimal

    def __post_init__(self) -> None:
        object.__setattr__(self, "currency", normalize_currency(self.currency))
        if self.outstanding < 0 or not is_rounded(self.outstanding, self.currency):
            raise ReceivableError(
                f"invoice {self.invoice}: outstanding {self.outstanding} is not a rounded amount >= 0"
            )


def bucket(due_date: date, today: date) -> str:
    """The aging bucket of an amount due on ``due_date``, seen on ``today``."""
    days = (today - due_date).days
    if days < 0:
        return "current"
    if days <= 30:
        return "0-30"
    if days <= 60:
        return "31-60"
    if days <= 90:
        return "61-90"
    return "90+"


@dataclass(frozen=True, slots=True)
class AgingRow:
    """One issuer's receivables in one currency, per bucket, and their total."""

    issuer: str
    currency: str
    buckets: dict[str, Decimal] = field(default_factory=dict)

    @property
    def total(self) -> Decimal:
        return sum(self.buckets.values(), ZERO)


def aging(receivables: Sequence[Receivable], today: date) -> list[AgingRow]:
    """Rows per (issuer, currency), sorted, with every bucket present (zero when empty)."""
    rows: dict[tuple[str, str], dict[str, Decimal]] = {}
    for r in receivables:
        zero = round_amount(ZERO, r.currency)
        amounts = rows.setdefault((r.issuer, r.currency), dict.fromkeys(BUCKETS, zero))
        amounts[bucket(r.due_date, today)] += r.outstanding
    return [AgingRow(issuer, currency, amounts) for (issuer, currency), amounts in sorted(rows.items())]


@dataclass(frozen=True, slots=True)
class OpenInvoice:
    """An invoice of the payer that is still open."""

    invoice: str
    currency: str
    due_date: date
    outstanding: Decimal


@dataclass(frozen=True, slots=True)
class Allocation:
    """How a payment was applied: (invoice, amount) in order, and the unapplied rest (an overpayment)."""

    applied: tuple[tuple[str, Decimal], ...]
    unapplied: Decimal


def allocate_payment(
    amount: Decimal, currency: str, open_invoices: Sequence[OpenInvoice], *, names: str | None = None
) -> Allocation:
    """Apply a payment of ``amount`` ``currency`` to ``open_invoices`` (the one it ``names`` first, then oldest
    due first); invoices in other currencies are left alone."""
    currency = normalize_currency(currency)
    if amount <= 0 or not is_rounded(amount, currency):
        raise ReceivableError(f"a payment is a positive rounded {currency} amount, not {amount}")
    candidates = sorted(
        (i for i in open_invoices if normalize_currency(i.currency) == currency and i.outstanding > 0),
        key=lambda i: (i.invoice != names, i.due_date, i.invoice),
    )
    left = amount
    applied = []
    for inv in candidates:
        if left <= 0:
            break
        part = min(left, inv.outstanding)
        applied.append((inv.invoice, part))
        left -= part
    return Allocation(tuple(applied), left)
