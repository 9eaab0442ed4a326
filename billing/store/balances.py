"""What is paid, refunded, credited and outstanding on a document, from the rows (never stored twice).

An invoice's standing: its amount due (BT-115), the credit notes issued against it (their amounts due), the
succeeded payments minus the succeeded refunds (``billing_payments``). ``outstanding`` below zero is money the
hub owes the buyer back (a credit note after payment: a refund). The status the portal and the reports show is
derived from those figures and the due date:

* ``credited``: credit notes cover the whole invoice and nothing was paid;
* ``paid``: nothing outstanding and something paid (``refunded`` once the refund owed was paid back);
* ``partially_paid``: something paid, something outstanding; ``overdue``: outstanding after the due date;
* ``open``: nothing paid, not yet due. A credit note is ``issued`` (``refunded`` once refunded).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.core.dunning import InvoiceStanding
from kernel.models import BillingDocument, BillingPayment

ZERO = Decimal("0")
SUCCEEDED = "succeeded"
PAYMENT = "payment"
REFUND = "refund"


@dataclass(frozen=True, slots=True)
class Balance:
    """An invoice's figures, in its currency."""

    document_id: int
    number: str
    currency: str
    payable: Decimal
    credited: Decimal
    paid: Decimal  # payments succeeded
    refunded: Decimal  # refunds succeeded
    due_date: date | None

    @property
    def net_paid(self) -> Decimal:
        return self.paid - self.refunded

    @property
    def outstanding(self) -> Decimal:
        return self.payable - self.credited - self.net_paid

    def status(self, today: date) -> str:
        if self.outstanding == ZERO and self.refunded > ZERO:  # paid, credited, and the money given back
            return "refunded"
        if self.outstanding == ZERO and self.net_paid == ZERO and self.credited > ZERO:
            return "credited"
        if self.outstanding <= ZERO and self.net_paid > ZERO:
            return "paid"
        if self.outstanding > ZERO and self.due_date is not None and today > self.due_date:
            return "overdue"
        if self.net_paid > ZERO:
            return "partially_paid"
        return "open"

    def standing(self, *, on_hold: bool = False) -> InvoiceStanding:
        """The core's standing of this invoice, for :func:`billing.core.dunning.next_steps`."""
        assert self.due_date is not None, "an invoice has a due date"
        return InvoiceStanding(
            self.number, self.currency, self.due_date, self.payable, self.net_paid, self.credited, on_hold
        )


async def _sums(db_session: AsyncSession, ids: Sequence[int]) -> dict[tuple[int, str], Decimal]:
    # summed in Python: exact on every backend (SQLite keeps amounts as text; its SUM is a float)
    rows = await db_session.execute(
        select(BillingPayment.document_id, BillingPayment.kind, BillingPayment.amount).where(
            BillingPayment.document_id.in_(ids), BillingPayment.status == SUCCEEDED
        )
    )
    out: dict[tuple[int, str], Decimal] = {}
    for doc, kind, amount in rows:
        if doc is not None:
            out[(doc, kind)] = out.get((doc, kind), ZERO) + amount
    return out


async def _credited(db_session: AsyncSession, ids: Sequence[int]) -> dict[int, Decimal]:
    rows = await db_session.execute(
        select(BillingDocument.credits_document_id, BillingDocument.payable).where(
            BillingDocument.credits_document_id.in_(ids)
        )
    )
    out: dict[int, Decimal] = {}
    for doc, payable in rows:
        if doc is not None:
            out[doc] = out.get(doc, ZERO) + payable
    return out


async def balances(db_session: AsyncSession, invoices: Sequence[BillingDocument]) -> dict[int, Balance]:
    """The balance of each invoice (by document id), in three queries whatever their number."""
    ids = [d.id for d in invoices]
    if not ids:
        return {}
    sums, credited = await _sums(db_session, ids), await _credited(db_session, ids)
    return {
        d.id: Balance(
            d.id,
            d.number,
            d.currency,
            d.payable,
            credited.get(d.id, ZERO),
            sums.get((d.id, PAYMENT), ZERO),
            sums.get((d.id, REFUND), ZERO),
            d.due_date,
        )
        for d in invoices
    }


async def balance(db_session: AsyncSession, invoice: BillingDocument) -> Balance:
    """One invoice's balance."""
    return (await balances(db_session, [invoice]))[invoice.id]
