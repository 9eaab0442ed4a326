"""Billing reports from the rows: accounts receivable aging, payments and refunds per period, and the
reconciliation of invoices with their payments and CDRs; each as typed rows and as CSV.

* :func:`aging_report`: every invoice issued on or before ``as_of``, its outstanding amount as it stood at the
  end of that day (credit notes issued and payments / refunds settled by then), aged by
  :func:`billing.core.aging.aging` per issuer and currency (never added across currencies), **customer**
  receivables (fleets, drivers) apart from **party** receivables (B2B invoices to a CPO or eMSP, whose
  account is a party's: paid by transfer between businesses, dunned with reminders only).
* :func:`payments_report`: the payments and refunds of a period (settled, else created, in it; UTC days), each
  with its document, and the succeeded totals per issuer, currency and kind.
* :func:`reconciliation_report`: each invoice of a period (a monthly invoice of that ``billing_period``, a
  per-session invoice issued in that month): its CDRs' total excl. VAT against its CDR lines (an invoice split
  from its lines outside the scope of VAT, its ``:O`` sibling, over the pair: :func:`_billed_cdrs`), what it
  asks for against what was credited and paid; and the exceptions: CDRs of a closed month that a billing
  account should pay and that are on no document, payments on no invoice, invoices whose lines differ from
  their CDRs, and what is held for an issuer without a registration id (``cdr_held``: a CDR with a line
  outside the scope of VAT, a per-session one as soon as it is held, a fleet's once the month is over;
  ``fee_held``: a fee outside the scope of VAT of a closed month), each with the reason.

Periods are ``YYYY-MM`` months (UTC). The issuer filter is an issuer key; ``issuer_ids`` restricts to a set of
issuers (a party's API key sees its own).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import Select, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from billing.core.aging import BUCKETS, AgingRow, Receivable, aging
from billing.core.documents import DocumentError, Invoice
from billing.core.lines import outside_vat
from billing.core.vat import outside_vat_held
from billing.store.accounts import DRIVER, FLEET, PARTY
from billing.store.cdrs import priced_cdr
from billing.store.codec import load_invoice
from billing.store.issuing import INVOICE, OUTSIDE_VAT
from kernel.domain.cdr_holder import billed_fleet
from kernel.models import (
    BillingAccount,
    BillingCharge,
    BillingDocument,
    BillingDocumentCdr,
    BillingIssuer,
    BillingPayment,
    Cdr,
    Token,
)
from kernel.money import round_amount

ZERO = Decimal("0")
SUCCEEDED = "succeeded"


class ReportError(ValueError):
    """A report that cannot be made from what was asked (a bad period, an unknown issuer)."""


def parse_period(period: str) -> tuple[date, date]:
    """``YYYY-MM`` -> (first day, first day of the next month); ReportError otherwise."""
    try:
        first = datetime.strptime(period.strip(), "%Y-%m").date()
    except ValueError:
        raise ReportError(f"period {period!r} is not a month YYYY-MM") from None
    if first.year >= date.max.year:
        raise ReportError(f"period {period!r} is out of range")
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return first, following


def _start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


async def _issuers(
    db_session: AsyncSession, issuer: str | None, issuer_ids: Iterable[int] | None
) -> dict[int, str]:
    query = select(BillingIssuer.id, BillingIssuer.key)
    if issuer is not None:
        query = query.where(BillingIssuer.key == issuer)
    if issuer_ids is not None:
        query = query.where(BillingIssuer.id.in_(list(issuer_ids)))
    found = {i: key for i, key in (await db_session.execute(query)).all()}
    if issuer is not None and not found:
        raise ReportError(f"no issuer {issuer!r}")
    return found


# ------------------------------------------------------------------------------------------------------ aging


@dataclass(frozen=True, slots=True)
class OpenItem:
    """One invoice's outstanding amount at the end of ``as_of``."""

    issuer: str
    number: str
    account_id: int | None
    currency: str
    issue_date: date
    due_date: date
    payable: Decimal
    credited: Decimal
    paid: Decimal  # payments minus refunds
    outstanding: Decimal
    receivables: str = "customer"  # or "party": a B2B invoice (the account is a party's)


async def open_items(
    db_session: AsyncSession,
    as_of: date,
    *,
    issuer: str | None = None,
    issuer_ids: Iterable[int] | None = None,
    account_ids: Sequence[int] | None = None,
    document_ids: Sequence[int] | None = None,
) -> list[OpenItem]:
    """Every invoice issued by ``as_of`` with its figures at the end of that day (zero outstanding included)."""
    issuers = await _issuers(db_session, issuer, issuer_ids)
    query = select(BillingDocument).where(
        BillingDocument.kind == INVOICE,
        BillingDocument.issue_date <= as_of,
        BillingDocument.issuer_id.in_(list(issuers)),
    )
    if account_ids is not None:
        query = query.where(BillingDocument.account_id.in_(list(account_ids)))
    if document_ids is not None:
        query = query.where(BillingDocument.id.in_(list(document_ids)))
    invoices = list((await db_session.scalars(query.order_by(BillingDocument.id))).all())
    ids = [d.id for d in invoices]
    accounts = {d.account_id for d in invoices if d.account_id is not None}
    party = set(
        (
            await db_session.scalars(
                select(BillingAccount.id).where(BillingAccount.id.in_(accounts), BillingAccount.kind == PARTY)
            )
        ).all()
        if accounts
        else ()
    )
    credited: dict[int, Decimal] = {}
    paid: dict[int, Decimal] = {}
    if ids:  # summed here, not in SQL: SQLite would add the exact amounts as floats
        notes = await db_session.execute(
            select(BillingDocument.credits_document_id, BillingDocument.payable).where(
                BillingDocument.credits_document_id.in_(ids), BillingDocument.issue_date <= as_of
            )
        )
        for doc, amount in notes:
            if doc is not None:
                credited[doc] = credited.get(doc, ZERO) + amount
        settled = func.coalesce(BillingPayment.settled_at, BillingPayment.created_at)
        payments = await db_session.execute(
            select(BillingPayment.document_id, BillingPayment.kind, BillingPayment.amount).where(
                BillingPayment.document_id.in_(ids),
                BillingPayment.status == SUCCEEDED,
                settled < _start(as_of + timedelta(days=1)) if as_of < date.max else true(),
            )
        )
        for doc, kind, amount in payments:
            if doc is not None:
                paid[doc] = paid.get(doc, ZERO) + (-amount if kind == "refund" else amount)
    out = []
    for d in invoices:
        due = d.due_date or d.issue_date
        c, p = credited.get(d.id, ZERO), paid.get(d.id, ZERO)
        out.append(
            OpenItem(
                issuers[d.issuer_id],
                d.number,
                d.account_id,
                d.currency,
                d.issue_date,
                due,
                round_amount(d.payable, d.currency),
                round_amount(c, d.currency),
                round_amount(p, d.currency),
                round_amount(d.payable - c - p, d.currency),
                PARTY_RECEIVABLES if d.account_id in party else CUSTOMER_RECEIVABLES,
            )
        )
    return out


CUSTOMER_RECEIVABLES = "customer"
PARTY_RECEIVABLES = "party"
SEGMENTS = (CUSTOMER_RECEIVABLES, PARTY_RECEIVABLES)


@dataclass(frozen=True, slots=True)
class AgingLine:
    """One issuer's customer or party receivables in one currency, per bucket (a core :class:`AgingRow`)."""

    receivables: str  # customer, party
    row: AgingRow

    @property
    def issuer(self) -> str:
        return self.row.issuer

    @property
    def currency(self) -> str:
        return self.row.currency

    @property
    def buckets(self) -> dict[str, Decimal]:
        return self.row.buckets

    @property
    def total(self) -> Decimal:
        return self.row.total


async def aging_report(
    db_session: AsyncSession,
    as_of: date,
    *,
    issuer: str | None = None,
    issuer_ids: Iterable[int] | None = None,
    account_ids: Sequence[int] | None = None,
) -> list[AgingLine]:
    """Receivables aging at the end of ``as_of`` per issuer key and currency, customer receivables first and
    party (B2B) receivables apart (what is owed back, a negative outstanding amount, is not a receivable and is
    left out)."""
    items = await open_items(db_session, as_of, issuer=issuer, issuer_ids=issuer_ids, account_ids=account_ids)
    out = []
    for segment in SEGMENTS:
        receivables = [
            Receivable(i.issuer, i.number, i.currency, i.due_date, i.outstanding)
            for i in items
            if i.outstanding > 0 and i.receivables == segment
        ]
        out += [AgingLine(segment, row) for row in aging(receivables, as_of)]
    return out


AGING_HEADER = ["receivables", "issuer", "currency", *BUCKETS, "total"]


def aging_rows(rows: Sequence[AgingLine]) -> list[list[str]]:
    return [
        [r.receivables, r.issuer, r.currency, *(str(r.buckets[b]) for b in BUCKETS), str(r.total)]
        for r in rows
    ]


# --------------------------------------------------------------------------------------------------- payments


@dataclass(frozen=True, slots=True)
class PaymentLine:
    """One payment or refund of the period."""

    day: date
    issuer: str
    document: str | None
    account_id: int | None
    kind: str
    method: str
    provider: str
    provider_ref: str | None
    reference: str | None
    currency: str
    amount: Decimal
    status: str


@dataclass(frozen=True, slots=True)
class PaymentTotal:
    """Succeeded payments or refunds of one issuer in one currency."""

    issuer: str
    currency: str
    kind: str
    count: int
    amount: Decimal


def _payments_query(
    start: datetime | None, end: datetime | None, issuers: dict[int, str], account_ids: Sequence[int] | None
) -> Select:
    settled = func.coalesce(BillingPayment.settled_at, BillingPayment.created_at)
    query = (
        select(BillingPayment, BillingDocument.number, BillingDocument.issuer_id, BillingAccount.issuer_id)
        .outerjoin(BillingDocument, BillingDocument.id == BillingPayment.document_id)
        .outerjoin(BillingAccount, BillingAccount.id == BillingPayment.account_id)
        .where(
            or_(
                BillingDocument.issuer_id.in_(list(issuers)),
                BillingDocument.id.is_(None) & BillingAccount.issuer_id.in_(list(issuers)),
            )
        )
    )
    if start is not None:
        query = query.where(settled >= start)
    if end is not None:
        query = query.where(settled < end)
    if account_ids is not None:
        query = query.where(
            or_(
                BillingPayment.account_id.in_(list(account_ids)),
                BillingDocument.account_id.in_(list(account_ids)),
            )
        )
    return query.order_by(settled, BillingPayment.id)


async def payment_lines(
    db_session: AsyncSession,
    start: datetime | None,
    end: datetime | None,
    *,
    issuer: str | None = None,
    issuer_ids: Iterable[int] | None = None,
    account_ids: Sequence[int] | None = None,
) -> list[PaymentLine]:
    """The payments and refunds settled (else created) in [start, end), every status."""
    issuers = await _issuers(db_session, issuer, issuer_ids)
    rows = (await db_session.execute(_payments_query(start, end, issuers, account_ids))).all()
    out = []
    for pay, number, doc_issuer, account_issuer in rows:
        when = pay.settled_at or pay.created_at
        out.append(
            PaymentLine(
                when.astimezone(UTC).date(),
                issuers.get(doc_issuer if doc_issuer is not None else account_issuer, ""),
                number,
                pay.account_id,
                pay.kind,
                pay.method,
                pay.provider,
                pay.provider_ref,
                pay.reference,
                pay.currency,
                round_amount(pay.amount, pay.currency),
                pay.status,
            )
        )
    return out


def payment_totals(lines: Sequence[PaymentLine]) -> list[PaymentTotal]:
    """Succeeded payments and refunds per issuer, currency and kind, sorted."""
    sums: dict[tuple[str, str, str], tuple[int, Decimal]] = {}
    for line in lines:
        if line.status != SUCCEEDED:
            continue
        count, amount = sums.get((line.issuer, line.currency, line.kind), (0, ZERO))
        sums[(line.issuer, line.currency, line.kind)] = (count + 1, amount + line.amount)
    return [PaymentTotal(i, c, k, n, round_amount(a, c)) for (i, c, k), (n, a) in sorted(sums.items())]


async def payments_report(
    db_session: AsyncSession,
    period: str,
    *,
    issuer: str | None = None,
    issuer_ids: Iterable[int] | None = None,
) -> tuple[list[PaymentLine], list[PaymentTotal]]:
    """The payments and refunds of ``period`` (``YYYY-MM``) and their succeeded totals."""
    first, following = parse_period(period)
    lines = await payment_lines(
        db_session, _start(first), _start(following), issuer=issuer, issuer_ids=issuer_ids
    )
    return lines, payment_totals(lines)


PAYMENTS_HEADER = [
    "date",
    "issuer",
    "document",
    "kind",
    "method",
    "provider",
    "provider_ref",
    "reference",
    "currency",
    "amount",
    "status",
]


def payment_rows(lines: Sequence[PaymentLine]) -> list[list[str]]:
    return [
        [
            p.day.isoformat(),
            p.issuer,
            p.document or "",
            p.kind,
            p.method,
            p.provider,
            p.provider_ref or "",
            p.reference or "",
            p.currency,
            str(p.amount),
            p.status,
        ]
        for p in lines
    ]


# --------------------------------------------------------------------------------------------- reconciliation


@dataclass(frozen=True, slots=True)
class InvoiceCheck:
    """One invoice against its CDRs and its payments."""

    issuer: str
    number: str
    currency: str
    cdrs: int  # the CDRs linked to it
    cdrs_excl_vat: Decimal  # its CDRs' total excl. VAT (a split invoice: the part billed on it, _billed_cdrs)
    lines_excl_vat: Decimal  # the sum of its CDR lines' net
    payable: Decimal
    credited: Decimal
    paid: Decimal  # payments minus refunds, succeeded
    outstanding: Decimal
    # the other invoice of a split pair (the one of its lines outside the scope of VAT, or the taxed one)
    split_with: str = ""

    @property
    def difference(self) -> Decimal:
        return self.lines_excl_vat - self.cdrs_excl_vat


@dataclass(frozen=True, slots=True)
class ReconciliationException:
    """Something that does not reconcile: ``kind`` is ``cdr_not_invoiced``, ``cdr_held``, ``fee_held``,
    ``payment_without_invoice`` or ``lines_differ``; ``ref`` the CDR, fee (``fee:<id>``), payment or invoice;
    ``detail`` says why (a hold: its reason, :func:`billing.core.vat.outside_vat_held`)."""

    kind: str
    issuer: str
    ref: str
    currency: str
    amount: Decimal
    detail: str


@dataclass(frozen=True, slots=True)
class Reconciliation:
    period: str
    closed: bool  # the month is over on ``today``: its uninvoiced CDRs are exceptions
    invoices: tuple[InvoiceCheck, ...]
    exceptions: tuple[ReconciliationException, ...]


async def _cdr_totals(db_session: AsyncSession, ids: Sequence[int]) -> dict[int, dict[str, Decimal]]:
    """Each document's linked CDRs (kind ``invoice``): CDR id (``cdr_uid``) -> total excl. VAT (summed in
    Python: SQLite adds floats)."""
    if not ids:
        return {}
    rows = await db_session.execute(
        select(BillingDocumentCdr.document_id, Cdr.cdr_uid, Cdr.total_cost_excl_vat)
        .join(Cdr, Cdr.id == BillingDocumentCdr.cdr_id)
        .where(BillingDocumentCdr.document_id.in_(ids), BillingDocumentCdr.kind == INVOICE)
    )
    out: dict[int, dict[str, Decimal]] = {}
    for doc, uid, amount in rows:
        out.setdefault(doc, {})[uid] = amount
    return out


def _split_pairs(invoices: Sequence[BillingDocument]) -> dict[int, BillingDocument]:
    """Invoice id -> its sibling, for the invoices split in two (a monthly or per-session invoice and the one of
    its lines outside the scope of VAT, ``source_key`` plus ``:O``: :mod:`.monthly`, :mod:`.issuing`), both of
    the same issuer and among ``invoices``."""
    by_key = {(d.issuer_id, d.source_key): d for d in invoices if d.source_key}
    out: dict[int, BillingDocument] = {}
    for d in invoices:
        if d.source_key and d.source_key.endswith(OUTSIDE_VAT):
            main = by_key.get((d.issuer_id, d.source_key.removesuffix(OUTSIDE_VAT)))
            if main is not None:
                out[main.id], out[d.id] = d, main
    return out


def _cdr_lines(doc: Invoice) -> dict[str, Decimal]:
    """The net of the document's lines per CDR (``cdr_uid``)."""
    out: dict[str, Decimal] = {}
    for line in doc.lines:
        if line.cdr_id is not None:
            out[line.cdr_id] = out.get(line.cdr_id, ZERO) + line.net
    return out


def _billed_cdrs(
    linked: dict[str, Decimal],
    sibling_linked: dict[str, Decimal],
    lines: dict[str, Decimal],
    sibling_lines: dict[str, Decimal],
) -> Decimal:
    """What an invoice's CDRs come to excl. VAT, where the invoice is split in two with a sibling: the totals of
    the CDRs linked to it, less what their lines on the sibling bill, plus what the lines on it bill of the
    CDRs linked to the sibling. Each CDR's total is so counted once over the pair, on the invoice holding each
    part of its lines (a CDR is linked to one invoice only, its O lines being on the other), and a difference
    (a CDR whose lines do not add up to it) shows on the invoice the CDR is linked to."""
    moved_out = sum((sibling_lines.get(uid, ZERO) for uid in linked), ZERO)
    moved_in = sum((lines.get(uid, ZERO) for uid in sibling_linked), ZERO)
    return sum(linked.values(), ZERO) - moved_out + moved_in


async def _unregistered(db_session: AsyncSession, issuers: dict[int, str]) -> set[int]:
    """The issuers (ids) without a registration id: what they cannot invoice outside the scope of VAT is held."""
    rows = await db_session.scalars(
        select(BillingIssuer.id).where(
            BillingIssuer.id.in_(list(issuers)),
            or_(BillingIssuer.registration_id.is_(None), func.trim(BillingIssuer.registration_id) == ""),
        )
    )
    return set(rows.all())


async def _held_cdrs(db_session: AsyncSession, ids: Sequence[int]) -> set[int]:
    """Of the CDRs ``ids`` (uninvoiced, of issuers without a registration id), those with a line outside the
    scope of VAT (a credit CDR: its original's lines), which issuing holds."""
    if not ids:
        return set()
    rows = {c.id: c for c in (await db_session.scalars(select(Cdr).where(Cdr.id.in_(list(ids))))).all()}
    wanted = {c.credit_of for c in rows.values() if c.is_credit and c.credit_of is not None} - set(rows)
    originals = {c.id: c for c in rows.values()}
    if wanted:
        found = await db_session.scalars(select(Cdr).where(Cdr.id.in_(list(wanted))))
        originals.update({c.id: c for c in found.all()})
    held = set()
    for cdr in rows.values():
        try:
            priced = priced_cdr(cdr, originals.get(cdr.credit_of or 0) if cdr.is_credit else None)
        except DocumentError:  # no priced lines: not invoiceable at all, not held
            continue
        if outside_vat(priced):
            held.add(cdr.id)
    return held


async def _uninvoiced_cdrs(
    db_session: AsyncSession,
    first: date,
    following: date,
    issuers: dict[int, str],
    unregistered: set[int],
    *,
    closed: bool,
) -> list[ReconciliationException]:
    """CDRs ended in the month, of a token a billing account of these issuers pays for (its fleet's or its
    own), on no billing document: ``cdr_held`` when issuing holds it (a line outside the scope of VAT, an
    issuer without a registration id), else ``cdr_not_invoiced``. Before the month is over (not ``closed``),
    only the held CDRs of drivers (per-session invoices: a fleet's CDRs wait for the month's end anyway).
    ``unregistered``: the issuers without a registration id."""
    if not closed and not unregistered:
        return []
    billed = select(BillingDocumentCdr.cdr_id).where(BillingDocumentCdr.cdr_id == Cdr.id).exists()
    fleet = (
        select(BillingAccount.issuer_id)
        .where(
            BillingAccount.kind == FLEET,
            BillingAccount.fleet_id == billed_fleet(),  # the CDR's fleet (kernel.domain.cdr_holder)
            BillingAccount.currency == Cdr.currency,
            BillingAccount.issuer_id.in_(list(issuers)),
        )
        .limit(1)
        .scalar_subquery()
    )
    driver = (
        select(BillingAccount.issuer_id)
        .where(
            BillingAccount.kind == DRIVER,
            BillingAccount.token_id == Token.id,
            BillingAccount.currency == Cdr.currency,
            BillingAccount.issuer_id.in_(list(issuers)),
        )
        .limit(1)
        .scalar_subquery()
    )
    query = (
        select(Cdr.id, Cdr.cdr_uid, Cdr.currency, Cdr.total_cost_excl_vat, Cdr.end_date_time, fleet, driver)
        .join(Token, Token.id == Cdr.token_id)
        .where(
            Cdr.end_date_time >= _start(first),
            Cdr.end_date_time < _start(following),
            ~billed,
            or_(fleet.is_not(None), driver.is_not(None)),
        )
        .order_by(Cdr.end_date_time, Cdr.id)
    )
    if not closed:
        query = query.where(fleet.is_(None), driver.in_(list(unregistered)))
    rows = [
        (pk, uid, currency, amount, end, f if f is not None else d)
        for pk, uid, currency, amount, end, f, d in (await db_session.execute(query)).all()
    ]
    held = await _held_cdrs(db_session, [pk for pk, *_, issuer_id in rows if issuer_id in unregistered])
    out = []
    for pk, uid, currency, amount, end, issuer_id in rows:
        ended = f"ended {end.astimezone(UTC).isoformat()}, on no invoice or credit note"
        if pk in held:
            kind, detail = "cdr_held", f"{ended}: {outside_vat_held(issuers.get(issuer_id, ''))}"
        elif closed:
            kind, detail = "cdr_not_invoiced", ended
        else:
            continue
        out.append(
            ReconciliationException(
                kind, issuers.get(issuer_id, ""), uid, currency, round_amount(amount, currency), detail
            )
        )
    return out


async def _held_fees(
    db_session: AsyncSession, first: date, following: date, issuers: dict[int, str], unregistered: set[int]
) -> list[ReconciliationException]:
    """``fee_held``: fees charged in the month, outside the scope of VAT (no VAT rate), on no invoice, of an
    account whose issuer is one of ``unregistered`` (no registration id: the monthly invoice holds them)."""
    if not unregistered:
        return []
    rows = await db_session.execute(
        select(BillingCharge, BillingAccount.issuer_id)
        .join(BillingAccount, BillingAccount.id == BillingCharge.account_id)
        .where(
            BillingAccount.issuer_id.in_(list(unregistered)),
            BillingCharge.document_id.is_(None),
            BillingCharge.vat_rate.is_(None),
            BillingCharge.charged_on >= first,
            BillingCharge.charged_on < following,
        )
        .order_by(BillingCharge.charged_on, BillingCharge.id)
    )
    return [
        ReconciliationException(
            "fee_held",
            issuers[issuer_id],
            f"fee:{fee.id}",
            fee.currency,
            round_amount(fee.amount, fee.currency),
            f"{fee.description}, charged {fee.charged_on.isoformat()} to account {fee.account_id}, on no "
            f"invoice: {outside_vat_held(issuers[issuer_id])}",
        )
        for fee, issuer_id in rows
    ]


async def reconciliation_report(
    db_session: AsyncSession,
    period: str,
    today: date,
    *,
    issuer: str | None = None,
    issuer_ids: Iterable[int] | None = None,
) -> Reconciliation:
    """Invoices of ``period`` against their CDRs and payments, and what does not reconcile."""
    first, following = parse_period(period)
    issuers = await _issuers(db_session, issuer, issuer_ids)
    month = f"{first:%Y-%m}"
    invoices = list(
        (
            await db_session.scalars(
                select(BillingDocument)
                .where(
                    BillingDocument.kind == INVOICE,
                    BillingDocument.issuer_id.in_(list(issuers)),
                    or_(
                        BillingDocument.billing_period == month,
                        BillingDocument.billing_period.is_(None)
                        & (BillingDocument.issue_date >= first)
                        & (BillingDocument.issue_date < following),
                    ),
                )
                .order_by(BillingDocument.issuer_id, BillingDocument.number)
            )
        ).all()
    )
    ids = [d.id for d in invoices]
    linked = await _cdr_totals(db_session, ids)
    siblings = _split_pairs(invoices)
    latest = date.max  # every credit note and payment so far
    items = {
        (i.issuer, i.number): i
        for i in await open_items(db_session, latest, issuer_ids=list(issuers), document_ids=ids)
    }
    lines_of = {d.id: _cdr_lines(load_invoice(d.document)) for d in invoices}
    checks, exceptions = [], []
    for d in invoices:
        mine = linked.get(d.id, {})
        lines = sum(lines_of[d.id].values(), ZERO)
        sibling = siblings.get(d.id)
        if sibling is None:
            cdrs = sum(mine.values(), ZERO)
        else:
            cdrs = _billed_cdrs(mine, linked.get(sibling.id, {}), lines_of[d.id], lines_of[sibling.id])
        item = items[(issuers[d.issuer_id], d.number)]
        check = InvoiceCheck(
            issuers[d.issuer_id],
            d.number,
            d.currency,
            len(mine),
            round_amount(cdrs, d.currency),
            round_amount(lines, d.currency),
            round_amount(d.payable, d.currency),
            item.credited,
            item.paid,
            item.outstanding,
            sibling.number if sibling is not None else "",
        )
        checks.append(check)
        if check.difference != ZERO:
            pair = f" (split with {sibling.number}: over both)" if sibling is not None else ""
            exceptions.append(
                ReconciliationException(
                    "lines_differ",
                    check.issuer,
                    d.number,
                    d.currency,
                    check.difference,
                    f"CDR lines {check.lines_excl_vat} vs CDRs {check.cdrs_excl_vat} excl. VAT{pair}",
                )
            )
    closed = following <= today
    unregistered = await _unregistered(db_session, issuers)
    exceptions += await _uninvoiced_cdrs(db_session, first, following, issuers, unregistered, closed=closed)
    if closed:
        exceptions += await _held_fees(db_session, first, following, issuers, unregistered)
    payments = await payment_lines(db_session, _start(first), _start(following), issuer_ids=list(issuers))
    for p in payments:
        if p.document is None and p.status == SUCCEEDED:
            exceptions.append(
                ReconciliationException(
                    "payment_without_invoice",
                    p.issuer,
                    p.provider_ref or p.reference or f"account {p.account_id}",
                    p.currency,
                    p.amount,
                    f"{p.kind} by {p.method} on {p.day.isoformat()}",
                )
            )
    return Reconciliation(month, closed, tuple(checks), tuple(exceptions))


RECONCILIATION_HEADER = [
    "record",
    "issuer",
    "ref",
    "currency",
    "cdrs",
    "cdrs_excl_vat",
    "lines_excl_vat",
    "difference",
    "payable",
    "credited",
    "paid",
    "outstanding",
    "detail",
    "split_with",
]


def reconciliation_rows(rec: Reconciliation) -> list[list[str]]:
    out = [
        [
            "invoice",
            c.issuer,
            c.number,
            c.currency,
            str(c.cdrs),
            str(c.cdrs_excl_vat),
            str(c.lines_excl_vat),
            str(c.difference),
            str(c.payable),
            str(c.credited),
            str(c.paid),
            str(c.outstanding),
            "",
            c.split_with,
        ]
        for c in rec.invoices
    ]
    out += [
        [e.kind, e.issuer, e.ref, e.currency, "", "", "", str(e.amount), "", "", "", "", e.detail, ""]
        for e in rec.exceptions
    ]
    return out


def to_csv(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """RFC 4180 CSV (CRLF line ends) with a header row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


REPORTS = ("aging", "payments", "reconciliation")


async def report_csv(
    db_session: AsyncSession,
    name: str,
    *,
    today: date,
    as_of: date | None = None,
    period: str | None = None,
    issuer: str | None = None,
    issuer_ids: Iterable[int] | None = None,
) -> str:
    """The CSV of report ``name`` (one of :data:`REPORTS`): aging at the end of ``as_of`` (``today`` by
    default), payments or reconciliation of ``period`` (this month by default)."""
    if name == "aging":
        rows = await aging_report(db_session, as_of or today, issuer=issuer, issuer_ids=issuer_ids)
        return to_csv(AGING_HEADER, aging_rows(rows))
    month = period or f"{today:%Y-%m}"
    if name == "payments":
        lines, _ = await payments_report(db_session, month, issuer=issuer, issuer_ids=issuer_ids)
        return to_csv(PAYMENTS_HEADER, payment_rows(lines))
    if name == "reconciliation":
        rec = await reconciliation_report(db_session, month, today, issuer=issuer, issuer_ids=issuer_ids)
        return to_csv(RECONCILIATION_HEADER, reconciliation_rows(rec))
    raise ReportError(f"no report {name!r}: one of {', '.join(REPORTS)}")
