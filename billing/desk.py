"""The billing desk: billing as the fleet portal and the receipt e-mails see it (:class:`kernel.seams.BillingDesk`).

The portal never imports billing; it asks ``hub.services.billing`` (this :class:`Desk`) for a fleet's accounts
(balance, overdue amount, dunning state, payment method, documents with their status), one of the fleet's
documents as its Factur-X PDF (only the fleet's own: another fleet's number is None, the portal's 404), the
hosted payment-method flow (delegated to :mod:`billing.payments.setup`), and the per-session invoice of a CDR
for the receipt e-mail (number, PDF, HTML and a plain-text rendering of the same document). A credit note is
shown with every invoice it credits (:func:`credited_numbers`: BT-25's, then the others of BG-3), never only the
first.

Everything is read from the rows as they are now (:mod:`billing.store.balances`); "today" is the hub's clock.
An account's dunning state, its overdue amount and the invoices its holds wait for are the dunning store's
(:func:`billing.store.dunning.account_statuses`, as ``evhub dunning status`` and the API show them), never
computed here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from babel.dates import format_date
from babel.numbers import format_currency, format_decimal
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.api_paths import filename
from billing.core.aging import BUCKETS
from billing.core.documents import CreditNote, Invoice
from billing.einvoice import render_html, render_pdf
from billing.payments import setup
from billing.store import reports
from billing.store.accounts import FLEET
from billing.store.balances import Balance, balances
from billing.store.codec import load_credit_note, load_invoice
from billing.store.dunning import account_statuses
from billing.store.issuing import CREDIT_NOTE, INVOICE, document_of, session_invoices
from kernel.db.engine import Database
from kernel.models import BillingAccount, BillingDocument, BillingIssuer, BillingPayment
from kernel.seams import (
    BillingAccountView,
    BillingAgingView,
    BillingDocumentView,
    BillingPaymentView,
    BillingStatement,
    InvoiceAttachment,
    PaymentSetup,
)
from kernel.settings import Settings
from kernel.timeutil import utcnow

log = logging.getLogger(__name__)

ZERO = Decimal("0")
UNIT_NAMES = {"KWH": " kWh", "HUR": " h", "C62": ""}


@dataclass(frozen=True, slots=True)
class _Printable:
    """A document read, to print once its transaction has ended: a transaction never waits for WeasyPrint
    (on SQLite it would hold the database's write lock)."""

    doc: Invoice | CreditNote
    locale: str
    logo: str | None

    async def pdf(self) -> bytes:
        # printing takes a while (WeasyPrint): off the event loop
        return await asyncio.to_thread(render_pdf, self.doc, locale=self.locale, logo=self.logo)


class DeskError(ValueError):
    """A request the desk refuses (an account that is not the fleet's, no payment provider configured)."""


def document(row: BillingDocument) -> Invoice | CreditNote:
    """The issued document of a ``billing_documents`` row, as the core's object."""
    # a self-billed invoice (B2B, kind ``self_billed``) is an invoice too
    return load_credit_note(row.document) if row.kind == CREDIT_NOTE else load_invoice(row.document)


def render_text(doc: Invoice | CreditNote, locale: str = "en") -> str:
    """A plain-text rendering of ``doc`` (the e-mail's text part): the same number, lines, VAT and totals as
    its HTML and PDF, amounts and dates localized with Babel."""

    def money(amount: Decimal) -> str:
        return str(format_currency(amount, doc.currency, locale=locale))

    def day(value: object) -> str:
        return str(format_date(value, format="medium", locale=locale))  # type: ignore[arg-type]

    is_invoice = isinstance(doc, Invoice)
    title = "Invoice" if is_invoice else "Credit note"
    seller, buyer = doc.seller, doc.buyer
    out = [f"{title} {doc.number}", f"Issue date: {day(doc.issue_date)}"]
    if isinstance(doc, Invoice):
        out.append(f"Due date: {day(doc.due_date)}")
    else:
        credited = [
            (doc.invoice_number, doc.invoice_date),
            *((r.number, r.issue_date) for r in doc.also_credits),
        ]
        which = ", ".join(f"{number} of {day(issued)}" for number, issued in credited)
        out.append(f"Credits invoice{'s' if len(credited) > 1 else ''} {which}: {doc.reason}")
    out += ["", "Seller:", f"  {seller.legal_name}", f"  {seller.address.street}"]
    out.append(f"  {seller.address.postal_code} {seller.address.city}, {seller.address.country}")
    if seller.vat_id:
        out.append(f"  VAT id: {seller.vat_id}")
    out += ["Buyer:", f"  {buyer.legal_name}", f"  {buyer.address.street}"]
    out.append(f"  {buyer.address.postal_code} {buyer.address.city}, {buyer.address.country}")
    if buyer.vat_id:
        out.append(f"  VAT id: {buyer.vat_id}")
    out += ["", "Lines:"]
    for line in doc.lines:
        quantity = format_decimal(line.quantity.normalize(), locale=locale, decimal_quantization=False)
        unit = UNIT_NAMES.get(line.unit.value, "")
        out.append(
            f"  {line.description}: {quantity}{unit} x {money(line.unit_price)}"
            f" = {money(line.net)} (VAT {line.vat_category.value} {line.vat_rate.normalize():f} %)"
        )
        if line.signed_data_ref:
            out.append(f"    signed meter data: {line.signed_data_ref}")
    out += ["", "VAT:"]
    for vat in doc.breakdown:
        out.append(
            f"  {vat.category.value} {vat.rate.normalize():f} %: {money(vat.tax)} on {money(vat.taxable)}"
        )
        if vat.exemption_reason:
            out.append(f"    {vat.exemption_reason}")
    totals = doc.totals
    out += [
        "",
        f"Total excl. VAT: {money(totals.tax_exclusive)}",
        f"VAT: {money(totals.tax)}",
        f"Total incl. VAT: {money(totals.tax_inclusive)}",
    ]
    if totals.rounding:
        out.append(f"Rounding: {money(totals.rounding)}")
    out.append(f"Amount due: {money(totals.payable)}")
    for note in doc.notes:
        out.append(note)
    return "\n".join(out) + "\n"


def credited_numbers(row: BillingDocument, invoices: dict[int, str]) -> tuple[str, ...]:
    """Every invoice a credit note row credits: the one it carries the credit against (BT-25,
    ``credits_document_id``) first, then the others its document names (``also_credits``, BG-3: a B2B period's
    credit note may correct several invoices), each once, as the document lists them."""
    first = (row.document or {}).get("invoice_number") or invoices.get(row.credits_document_id or -1)
    others = [ref.get("number") for ref in (row.document or {}).get("also_credits", ())]
    return tuple(dict.fromkeys(n for n in (first, *others) if n))


def _credit_note_view(
    row: BillingDocument, invoices: dict[int, str], refunded: set[int]
) -> BillingDocumentView:
    credited = credited_numbers(row, invoices)
    return BillingDocumentView(
        number=row.number,
        kind=CREDIT_NOTE,
        issue_date=row.issue_date,
        due_date=None,
        currency=row.currency,
        payable=row.payable,
        outstanding=ZERO,
        status="refunded" if row.id in refunded else "issued",
        billing_period=row.billing_period,
        credits=", ".join(credited) or None,  # every invoice it credits, BT-25's first
        document_id=row.id,
    )


def _invoice_view(row: BillingDocument, bal: Balance, today: object) -> BillingDocumentView:
    return BillingDocumentView(
        number=row.number,
        kind=INVOICE,
        issue_date=row.issue_date,
        due_date=row.due_date,
        currency=row.currency,
        payable=row.payable,
        outstanding=bal.outstanding,
        status=bal.status(today),  # type: ignore[arg-type]
        billing_period=row.billing_period,
        document_id=row.id,
    )


async def account_documents(
    db_session: AsyncSession, account_ids: Sequence[int]
) -> tuple[list[BillingDocument], dict[int, Balance]]:
    """The documents of the accounts, newest first, and the balance of each invoice among them."""
    if not account_ids:
        return [], {}
    rows = list(
        (
            await db_session.scalars(
                select(BillingDocument)
                .where(BillingDocument.account_id.in_(account_ids))
                .order_by(BillingDocument.issue_date.desc(), BillingDocument.id.desc())
            )
        ).all()
    )
    return rows, await balances(db_session, [r for r in rows if r.kind == INVOICE])


STATEMENT_HEADER = [
    "record",
    "issuer",
    "number",
    "kind",
    "date",
    "due_date",
    "period",
    "currency",
    "amount",
    "outstanding",
    "status",
    "detail",
]


def statement_csv(
    accounts: Sequence[BillingAccountView],
    payments: Sequence[BillingPaymentView],
    aging: Sequence[BillingAgingView],
) -> str:
    """A fleet's statement as CSV: one row per document, payment and aging bucket (``record`` says which)."""
    rows: list[list[str]] = []
    for account in accounts:
        for d in account.documents:
            rows.append(
                [
                    "document",
                    account.issuer,
                    d.number,
                    d.kind,
                    d.issue_date.isoformat(),
                    d.due_date.isoformat() if d.due_date else "",
                    d.billing_period or "",
                    d.currency,
                    str(d.payable),
                    str(d.outstanding),
                    d.status,
                    f"credits {d.credits}" if d.credits else "",
                ]
            )
    for p in payments:
        rows.append(
            [
                p.kind,
                "",
                p.document or "",
                p.method,
                p.day.isoformat(),
                "",
                "",
                p.currency,
                str(p.amount),
                "",
                p.status,
                p.reference or "",
            ]
        )
    for a in aging:
        for bucket, amount in a.buckets:
            rows.append(["aging", a.issuer, "", bucket, "", "", "", a.currency, str(amount), "", "", ""])
    return reports.to_csv(STATEMENT_HEADER, rows)


class Desk:
    """:class:`kernel.seams.BillingDesk` on the hub's database."""

    def __init__(self, db: Database, settings: Settings | None = None) -> None:
        self.db = db
        self.settings = settings  # the payment provider's keys (None: no payment method setup)

    def _settings(self) -> Settings:
        if self.settings is None:
            raise DeskError("adding a payment method is not available: no payment provider is configured")
        return self.settings

    async def _fleet_accounts(self, db_session: AsyncSession, fleet_id: int) -> list[BillingAccount]:
        return list(
            (
                await db_session.scalars(
                    select(BillingAccount)
                    .where(BillingAccount.fleet_id == fleet_id, BillingAccount.kind == FLEET)
                    .order_by(BillingAccount.currency, BillingAccount.id)
                )
            ).all()
        )

    async def fleet_accounts(self, fleet_id: int) -> list[BillingAccountView]:
        today = utcnow().date()
        async with self.db.session() as db_session:
            accounts = await self._fleet_accounts(db_session, fleet_id)
            ids = [a.id for a in accounts]
            rows, bals = await account_documents(db_session, ids)
            issuers = {
                i.id: i.legal_name
                for i in (
                    await db_session.scalars(
                        select(BillingIssuer).where(BillingIssuer.id.in_({a.issuer_id for a in accounts}))
                    )
                ).all()
            }
            dunning = {a.account_id: a for a in await account_statuses(db_session, account_ids=ids)}
            refunded: set[int] = {
                doc
                for doc in (
                    await db_session.scalars(
                        select(BillingPayment.document_id).where(
                            BillingPayment.document_id.in_([r.id for r in rows if r.kind == CREDIT_NOTE]),
                            BillingPayment.kind == "refund",
                            BillingPayment.status == "succeeded",
                        )
                    )
                ).all()
                if doc is not None
            }
        numbers = {r.id: r.number for r in rows}
        views = []
        for account in accounts:
            docs = []
            balance = ZERO
            for row in rows:
                if row.account_id != account.id:
                    continue
                if row.kind == INVOICE:
                    bal = bals[row.id]
                    view = _invoice_view(row, bal, today)
                    balance += bal.outstanding
                else:
                    view = _credit_note_view(row, numbers, refunded)
                docs.append(view)
            status = dunning[account.id]
            views.append(
                BillingAccountView(
                    account_id=account.id,
                    issuer=issuers.get(account.issuer_id, ""),
                    currency=account.currency,
                    balance=balance,
                    overdue=status.overdue,
                    dunning_state=status.state,
                    payment_method=account.payment_method_label,
                    documents=tuple(docs),
                    held_for=status.held_for,
                )
            )
        return views

    async def fleet_statement(self, fleet_id: int) -> BillingStatement:
        today = utcnow().date()
        accounts = await self.fleet_accounts(fleet_id)
        ids = [a.account_id for a in accounts]
        async with self.db.session() as db_session:
            aged = await reports.aging_report(db_session, today, account_ids=ids) if ids else []
            paid = await reports.payment_lines(db_session, None, None, account_ids=ids) if ids else []
            names = {
                i.key: i.legal_name
                for i in (await db_session.scalars(select(BillingIssuer))).all()
                if i.key in {r.issuer for r in aged}
            }
        payments = tuple(
            BillingPaymentView(
                day=p.day,
                kind=p.kind,
                method=p.method,
                document=p.document,
                currency=p.currency,
                amount=p.amount,
                status=p.status,
                reference=p.reference,
            )
            for p in reversed(paid)
        )
        aging = tuple(
            BillingAgingView(
                issuer=names.get(r.issuer, r.issuer),
                currency=r.currency,
                buckets=tuple((b, r.buckets[b]) for b in BUCKETS),
                total=r.total,
            )
            for r in aged
        )
        return BillingStatement(
            today, tuple(accounts), payments, aging, statement_csv(accounts, payments, aging)
        )

    @staticmethod
    async def _printable(db_session: AsyncSession, row: BillingDocument, language: str | None) -> _Printable:
        issuer = await db_session.get(BillingIssuer, row.issuer_id)
        return _Printable(document(row), language or "en", issuer.logo if issuer else None)

    async def document_pdf(self, document_id: int) -> bytes | None:
        async with self.db.session() as db_session:
            row = await db_session.get(BillingDocument, document_id)
            if row is None:
                return None
            account = await db_session.get(BillingAccount, row.account_id) if row.account_id else None
            printable = await self._printable(db_session, row, account.language if account else None)
        return await printable.pdf()

    async def fleet_document_pdf(
        self, fleet_id: int, account_id: int, document_id: int
    ) -> tuple[str, bytes] | None:
        async with self.db.session() as db_session:
            found = (
                await db_session.execute(
                    select(BillingDocument, BillingAccount.language)
                    .join(BillingAccount, BillingAccount.id == BillingDocument.account_id)
                    .where(
                        BillingAccount.id == account_id,
                        BillingAccount.fleet_id == fleet_id,
                        BillingAccount.kind == FLEET,
                        BillingDocument.id == document_id,
                    )
                )
            ).first()
            if found is None:
                return None
            row, language = found
            printable = await self._printable(db_session, row, language)
        return f"{row.number}.pdf", await printable.pdf()

    async def _own_account(self, fleet_id: int, account_id: int) -> None:
        async with self.db.session() as db_session:
            account = await db_session.get(BillingAccount, account_id)
            if account is None or account.fleet_id != fleet_id or account.kind != FLEET:
                raise DeskError(f"no billing account {account_id} for this fleet")

    async def start_payment_setup(self, fleet_id: int, account_id: int) -> PaymentSetup:
        await self._own_account(fleet_id, account_id)
        return await setup.start_setup(self.db, self._settings(), fleet_id, account_id)

    async def finish_payment_setup(self, fleet_id: int, account_id: int, setup_intent_id: str) -> str:
        await self._own_account(fleet_id, account_id)
        return await setup.finish_setup(self.db, self._settings(), fleet_id, account_id, setup_intent_id)

    async def session_invoice(self, db_session: AsyncSession, cdr_id: int) -> InvoiceAttachment | None:
        row = await document_of(db_session, cdr_id, INVOICE)
        if row is None or row.billing_period is not None:  # none, or the CDR is on a monthly invoice
            return None
        account = await db_session.get(BillingAccount, row.account_id) if row.account_id else None
        language = account.language if account is not None else "en"
        issuer = await db_session.get(BillingIssuer, row.issuer_id)
        logo = issuer.logo if issuer else None

        def attachment(part: BillingDocument) -> InvoiceAttachment:
            doc = document(part)
            return InvoiceAttachment(
                number=part.number,
                filename=filename(part.number),
                document_id=part.id,
                html=render_html(doc, locale=language, logo=logo),
                text=render_text(doc, language),
            )

        # the session's lines outside VAT may be on an invoice of their own: the receipt carries both
        first, *others = await session_invoices(db_session, row)
        return replace(attachment(first), others=tuple(attachment(o) for o in others))
