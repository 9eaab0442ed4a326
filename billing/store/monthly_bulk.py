"""Monthly invoices in bulk from the database: one period's invoices of many fleet accounts, a batch at a time.

:func:`issue_period` is what the monthly job runs. It bills the same CDRs as the per-account path
(:func:`billing.store.monthly.issue_monthly_invoice`, whose selection is :func:`billing.store.monthly._billable`:
the fleet's CDRs in the account's currency, ended before the month's end, on no invoice, a credit CDR while its
original is on no invoice either) and stores the same documents to the byte, but reads the CDRs as columns (no
ORM objects; on PostgreSQL one COPY with the explanation's lines unnested, into pandas: :mod:`billing.store.bulk_read`;
on SQLite the rows streamed) and builds the documents with :mod:`billing.core.bulk` instead of the core's frozen objects.

Accounts are taken in batches (at most :data:`BATCH` accounts and about :data:`CDRS_PER_BATCH` CDRs, by a count
per fleet first), one transaction per batch: the counters of the batch's issuers are locked first (as
:func:`billing.store.numbers.lock` does, in issuer id order), the accounts already invoiced for the
period are dropped under those locks (a concurrent run or a per-account issue got there first), the CDRs are
read, the numbers taken (consecutive, in account order per issuer), and the documents, their
``billing_document_cdrs`` links (COPY on PostgreSQL) and their collection requests
(:func:`billing.payments.collection.request_collection`, passed as ``on_issue``) are written before the commit.
A crash rolls the batch back whole, numbers included: no gap, and the next run issues the batch again.

Accounts the bulk path does not build go through the per-account path, each in its own transaction (and
whatever error it raises is logged, as the job did before): an account with uninvoiced fees
(``billing_charges``), one with a CDR that has a line outside the scope of VAT (category O goes on an invoice of
its own, ``monthly:<account>:<period>:O``, or, when the issuer has no registration id to name itself by there,
the CDR is held: :func:`billing.store.monthly.issue_monthly_invoice`; never a document mixing O with other
categories), a second account of the same fleet and currency, and every account of a batch the core would refuse a document of (DocumentError) or that
failed otherwise (rolled back whole, logged).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from sqlalchemy import case, exists, func, insert, literal_column, or_, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from billing.core import bulk
from billing.core.documents import DocumentError
from billing.core.lines import Dimension
from billing.store.accounts import FLEET, buyer_of
from billing.store.bulk_read import CdrColumns, read_copy
from billing.store.codec import to_json
from billing.store.issuers import from_row
from billing.store.issuing import INVOICE, OUTSIDE_VAT
from billing.store.monthly import month_bounds, source_key
from billing.store.numbers import take
from kernel import jsonutil
from kernel.db.engine import Database
from kernel.domain.cdr_holder import (
    billed_driver,
    billed_fleet,
    billed_to_fleets,
    billed_vehicle,
    fleet_where,
)
from kernel.models import BillingAccount, BillingCharge, BillingDocument, BillingDocumentCdr, Location, Token
from kernel.models.billing import BillingIssuer, BillingNumberSeries
from kernel.models.cdrs import Cdr
from kernel.money import minor_units
from kernel.timeutil import utcnow

log = logging.getLogger(__name__)

BATCH = 5_000
"""Accounts per transaction at most."""
CDRS_PER_BATCH = 250_000
"""CDRs per transaction at most (an account with more is a batch of its own)."""
PARTITION = 50_000
"""CDR rows fetched at a time from the (server-side, on PostgreSQL) cursor."""
_DIMS = {d.value: i for i, d in enumerate(bulk.DIMENSIONS)}
_ADJ = bulk.DIMENSIONS.index(Dimension.ADJUSTMENT)
_EMPTY: tuple[Any, ...] = (None, False, "", 0, [], {})

OnIssue = Callable[[AsyncSession, BillingDocument], Awaitable[None]]
PerAccount = Callable[[int, str], Awaitable[bool]]
"""Issue one account's invoice of a period in a transaction of its own (True: one was issued)."""


def _sqlite_lines(explanation: Any) -> list[list[Any]] | None:
    lines = (explanation or {}).get("lines")
    if not lines:
        return None
    return [
        [ln.get(k) for k in ("kind", "dimension", "quantity", "unit_price", "vat", "amount_excl_vat")]
        for ln in lines
    ]


@dataclass
class _Texts:
    """Decimal texts parsed once: ``str(Decimal(str(v)))`` as :func:`billing.store.cdrs.priced_cdr` makes them."""

    memo: dict[str, Decimal] = field(default_factory=dict)

    def dec(self, value: Any) -> Decimal:
        key = value if isinstance(value, str) else str(value)  # Decimal("9") == Decimal("9.00"): by text
        found = self.memo.get(key)
        if found is None:
            found = self.memo[key] = Decimal(key)
        return found


@dataclass
class _Columns:
    """The :class:`bulk.CdrTable` of one batch, being filled row by row."""

    invoice: list[int] = field(default_factory=list)
    cdr_id: list[str] = field(default_factory=list)
    session_ref: list[Any] = field(default_factory=list)
    signed: list[Any] = field(default_factory=list)
    location: list[Any] = field(default_factory=list)
    credit_of: list[Any] = field(default_factory=list)
    group: list[tuple[str, str]] = field(default_factory=list)
    currency: list[str] = field(default_factory=list)
    start: list[datetime] = field(default_factory=list)
    end: list[datetime] = field(default_factory=list)
    total: list[int] = field(default_factory=list)
    credit: list[bool] = field(default_factory=list)
    comp_cdr: list[int] = field(default_factory=list)
    comp_dim: list[int] = field(default_factory=list)
    comp_qty: list[str] = field(default_factory=list)
    comp_up: list[str | None] = field(default_factory=list)
    comp_net: list[int] = field(default_factory=list)
    comp_vat: list[Decimal | None] = field(default_factory=list)
    comp_text: list[str] = field(default_factory=list)
    db_ids: list[int] = field(default_factory=list)

    def table(self) -> bulk.CdrTable:
        epoch = bulk.EPOCH
        us = timedelta(microseconds=1)
        return bulk.CdrTable(
            invoice=np.array(self.invoice, dtype=np.int64),
            cdr_id=bulk.Codes.of(self.cdr_id),
            session_ref=bulk.Codes.of(self.session_ref),
            signed_data_ref=bulk.Codes.of(self.signed),
            location=bulk.Codes.of(self.location),
            credit_of=bulk.Codes.of(self.credit_of),
            group=bulk.Codes.of(self.group),
            currency=bulk.Codes.of(self.currency),
            start=bulk.Codes.of([s.isoformat() for s in self.start]),
            end=bulk.Codes.of([e.isoformat() for e in self.end]),
            start_us=np.array([(s - epoch) // us for s in self.start], dtype=np.int64),
            end_us=np.array([(e - epoch) // us for e in self.end], dtype=np.int64),
            total_excl=np.array(self.total, dtype=np.int64),
            is_credit=np.array(self.credit, dtype=bool),
            comp_cdr=np.array(self.comp_cdr, dtype=np.int64),
            comp_dimension=np.array(self.comp_dim, dtype=np.int64),
            comp_quantity=bulk.Codes.of(self.comp_qty),
            comp_unit_price=bulk.Codes.of(self.comp_up),
            comp_net=np.array(self.comp_net, dtype=np.int64),
            comp_vat=bulk.Codes.of(self.comp_vat),
            comp_net_text=bulk.Codes.of(self.comp_text),
        )


@dataclass(frozen=True)
class _Account:
    id: int
    fleet_id: int
    currency: str
    issuer_id: int
    start: datetime
    end: datetime
    row: BillingAccount


def _uninvoiced(cdr_id: Any) -> Any:
    return ~exists().where(BillingDocumentCdr.cdr_id == cdr_id, BillingDocumentCdr.kind == INVOICE)


def _minor(amount: Decimal, currency: str) -> int:
    value = amount.scaleb(minor_units(currency))
    if value != value.to_integral_value():
        raise DocumentError(f"{amount} is not a {currency} amount in minor units")
    return int(value)


async def issue_period(
    db: Database,
    account_ids: Sequence[int],
    period: str,
    *,
    issue_date: date | None = None,
    on_issue: OnIssue | None = None,
    per_account: PerAccount,
    batch: int = BATCH,
    cdrs_per_batch: int = CDRS_PER_BATCH,
) -> int:
    """Issue ``period``'s monthly invoice of every fleet account of ``account_ids`` that has none yet (see the
    module); ``per_account`` issues those the bulk path leaves to the per-account path. The number of
    invoices issued."""
    issued = 0
    ids = sorted(set(account_ids))
    async with db.session() as db_session:
        owners = (
            await db_session.execute(
                select(BillingAccount.id, BillingAccount.fleet_id, BillingAccount.currency).where(
                    BillingAccount.id.in_(ids)
                )
            )
        ).all()
        # the month's end in the last zone to end it: an upper bound of what any account bills
        last_end = month_bounds(period, "Etc/GMT+12")[1]
        sizes = await _counts(db_session, [(a, f, c) for a, f, c in owners], last_end)
    if db.dialect == "postgresql":
        await _analyze(db)
    # a second account of a fleet and currency bills what the first leaves (nothing, once it is issued): the
    # per-account path, after the batches, so that no two batches (one of them read ahead) select the same CDRs
    seen: set[tuple[int | None, str]] = set()
    shared: list[int] = []
    for a, f, c in sorted(owners):
        if (f, c) in seen:
            shared.append(a)
        seen.add((f, c))
    parts: list[list[int]] = [[]]
    weight = 0
    shared_ids = set(shared)
    for account_id in ids:
        if account_id in shared_ids:
            continue
        n = sizes.get(account_id, 0)
        if parts[-1] and (len(parts[-1]) >= batch or weight + n > cdrs_per_batch):
            parts.append([])
            weight = 0
        parts[-1].append(account_id)
        weight += n
    parts = [p for p in parts if p]
    ahead: _NextRead | None = None
    for k, part in enumerate(parts):
        following = parts[k + 1] if k + 1 < len(parts) and db.dialect == "postgresql" else []
        next_read = _NextRead(db, following, period, issue_date)
        next_read.start()  # batch k + 1 is read and built while batch k issues (see _NextRead)
        try:
            async with db.session() as db_session:
                count, left = await _issue_batch(
                    db_session, db.dialect, part, period, issue_date, on_issue, ahead
                )
        except DocumentError as exc:
            log.warning(
                "monthly invoices %s: a batch of %d accounts goes one by one: %s", period, len(part), exc
            )
            count, left = 0, part
        except Exception:  # rolled back whole; each account then fails (and is logged) or not on its own
            log.exception("monthly invoices %s: a batch of %d accounts failed; one by one", period, len(part))
            count, left = 0, part
        if ahead is not None:
            await ahead.result()  # a read ahead the batch did not take (it failed first) ends here
        ahead = next_read
        issued += count
        if count and db.dialect == "postgresql" and len(parts) > 1:
            await _analyze(db)
        for account_id in left:
            issued += await _one(per_account, account_id, period)
    if ahead is not None:
        await ahead.result()
    for account_id in shared:
        issued += await _one(per_account, account_id, period)
    return issued


async def _one(per_account: PerAccount, account_id: int, period: str) -> int:
    """One account through the per-account path: 1 if it issued an invoice (an error is logged)."""
    try:
        return int(await per_account(account_id, period))
    except Exception:
        log.exception("could not issue the %s invoice of billing account %s", period, account_id)
        return 0


async def _analyze(db: Database) -> None:
    """Refresh the planner's statistics of ``billing_document_cdrs`` before the first batch and after each:
    the next batch's read tests each CDR against it (not invoiced yet), and statistics of an empty table made
    PostgreSQL scan it once per CDR."""
    async with db.engine.connect() as connection:
        await connection.execute(text(f"ANALYZE {BillingDocumentCdr.__tablename__}"))
        await connection.commit()


@dataclass(frozen=True)
class _Plan:
    """What a batch bills, decided from its accounts (``by_owner``), their CDRs and their issuers: the accounts
    billed in bulk (``billed``, in order; those of ``apart`` have a line outside the scope of VAT and go to the
    per-account path), their CDRs (``columns``; ``table`` with ``invoice`` the index into ``billed``) and each
    invoice's head but for its number (``drafts``) with its supply period (``spans``)."""

    billed: list[_Account]
    apart: set[int]
    columns: CdrColumns
    table: bulk.CdrTable | None
    drafts: list[bulk.InvoiceHead]
    spans: list[tuple[datetime, datetime]]

    def same(self, other: _Plan) -> bool:
        """Whether ``other`` bills the same accounts with the same heads (so the same bodies), given that both
        were planned on the same columns."""
        return (
            [a.id for a in self.billed] == [a.id for a in other.billed]
            and self.apart == other.apart
            and self.drafts == other.drafts
        )


def _plan(
    by_owner: dict[tuple[int, str], _Account],
    columns: CdrColumns,
    outside: set[int],
    issuers: dict[int, BillingIssuer],
    day: date,
) -> _Plan:
    """The batch's :class:`_Plan`. O lines: split into an invoice of their own, or held when the issuer has
    no registration id (EN 16931 BR-O-11/12, BR-O-02, BR-CO-26); both are the per-account path's, so the rules
    live in one place."""
    apart = {a.id for a in by_owner.values() if a.id in outside}
    present = columns.accounts()
    billed = [a for a in by_owner.values() if a.id not in apart and a.id in present]
    if apart:
        columns = columns.without(apart)
    if not billed:
        return _Plan(billed, apart, columns, None, [], [])
    table, starts, ends = columns.numbered([a.id for a in billed])
    drafts = []
    spans = []
    for i, a in enumerate(billed):
        issuer = from_row(issuers[a.issuer_id])
        buyer = buyer_of(a.row)
        first = min(a.start, starts[i])
        last = max(a.end - timedelta(seconds=1), ends[i])
        spans.append((first, last))
        drafts.append(
            bulk.InvoiceHead(
                issuer.invoice_series.prefix,
                "",
                day,
                issuer.identity,
                buyer,
                issuer.terms,
                issuer.treatment(buyer),
                (first.isoformat(), last.isoformat()),
            )
        )
    return _Plan(billed, apart, columns, table, drafts, spans)


def _bodies(plan: _Plan) -> list[bulk.BulkBody]:
    """The plan's invoices but for their numbers (in a thread: Arrow assembles the text with the GIL
    released)."""
    assert plan.table is not None
    return bulk.monthly_bodies(plan.table, plan.drafts)


@dataclass(frozen=True)
class _Built:
    """A batch's invoices built ahead from its read ahead: the plan they were built on, and the bodies (or
    the DocumentError the core's rules raised for one of them)."""

    plan: _Plan
    bodies: list[bulk.BulkBody] | DocumentError


@dataclass(frozen=True)
class _ReadAhead:
    """A batch's CDRs read (and its invoices built) before its transaction (:func:`_read_ahead`), and for which
    accounts: ``owners`` maps each (fleet, currency) read to its account's (id, end of its month)."""

    owners: dict[tuple[int, str], tuple[int, datetime]]
    columns: CdrColumns
    outside: set[int]
    built: _Built | None = None


@dataclass
class _NextRead:
    """Reading the next batch's CDRs (``account_ids``; none after the last batch, or on SQLite, whose one
    writer would wait for the batch) and building its invoices but for their numbers, ahead, while this batch
    issues its own; the next batch takes both if, under its counters' locks, it bills the same accounts with the
    same heads (:meth:`_Plan.same`), and only numbers and stamps them (:func:`billing.core.bulk.stamp`).

    :meth:`start` as this batch starts (the read's COPY and decoding go on in the event loop, the build in a
    thread, while this batch stamps and writes its documents and links). The read tests each CDR against the
    links by their key (:data:`_READ_SETTINGS`), so this batch's uncommitted links cost it nothing; planned on
    statistics that counted no links, it had scanned them for every CDR (708 s instead of 7 s for a batch of
    250,000 at 1M CDRs, when this batch's links were written meanwhile)."""

    db: Database
    account_ids: list[int]
    period: str
    issue_date: date | None = None
    task: asyncio.Task[_ReadAhead | None] | None = None

    def start(self) -> None:
        if self.account_ids and self.task is None:
            self.task = asyncio.create_task(
                _read_ahead(self.db, self.account_ids, self.period, self.issue_date)
            )

    async def result(self) -> _ReadAhead | None:
        """What was read (and built), once (None: nothing to read, or the read failed; the batch then reads
        under its locks)."""
        task, self.task = self.task, None
        if task is None:
            return None
        try:
            return await task
        except Exception:
            log.exception("monthly invoices %s: reading a batch ahead failed; it reads again", self.period)
            return None


async def _accounts(db_session: AsyncSession, account_ids: list[int], period: str) -> list[_Account]:
    """The fleet accounts of ``account_ids`` whose month of ``period`` has ended, in id order."""
    rows = (
        await db_session.scalars(
            select(BillingAccount)
            .where(BillingAccount.id.in_(account_ids), BillingAccount.kind == FLEET)
            .order_by(BillingAccount.id)
        )
    ).all()
    now = utcnow()
    accounts: list[_Account] = []
    for row in rows:
        if row.fleet_id is None:
            continue
        start, end = month_bounds(period, row.timezone)
        if now >= end:
            accounts.append(_Account(row.id, row.fleet_id, row.currency, row.issuer_id, start, end, row))
    return accounts


async def _owners(
    db_session: AsyncSession, accounts: list[_Account], period: str
) -> tuple[dict[tuple[int, str], _Account], list[int]]:
    """The accounts the bulk path bills, by (fleet, currency), and those it leaves to the per-account path
    (with uninvoiced fees, or a second of a fleet and currency); those already invoiced for ``period`` are
    neither. Under the counters' locks (:func:`_lock_all`) this is final: what a concurrent run or a
    per-account issue has issued is issued."""
    keys = {source_key(a.id, period): a.id for a in accounts}
    keys.update({key + OUTSIDE_VAT: aid for key, aid in list(keys.items())})
    done = set(
        (
            await db_session.scalars(
                select(BillingDocument.source_key).where(
                    BillingDocument.kind == INVOICE, BillingDocument.source_key.in_(list(keys))
                )
            )
        ).all()
    )
    invoiced = {keys[k] for k in done if k is not None}
    with_fees = set(
        (
            await db_session.scalars(
                select(BillingCharge.account_id)
                .where(
                    BillingCharge.account_id.in_([a.id for a in accounts]),
                    BillingCharge.document_id.is_(None),
                )
                .distinct()
            )
        ).all()
    )
    left: list[int] = []
    by_owner: dict[tuple[int, str], _Account] = {}
    for a in accounts:
        if a.id in invoiced:
            continue
        if a.id in with_fees or (a.fleet_id, a.currency) in by_owner:
            left.append(a.id)
        else:
            by_owner[(a.fleet_id, a.currency)] = a
    return by_owner, left


async def _issuers(db_session: AsyncSession, accounts: Iterable[_Account]) -> dict[int, BillingIssuer]:
    """The issuers of ``accounts``, by id."""
    rows = await db_session.scalars(
        select(BillingIssuer).where(BillingIssuer.id.in_({a.issuer_id for a in accounts}))
    )
    return {r.id: r for r in rows.all()}


async def _read_ahead(
    db: Database, account_ids: list[int], period: str, issue_date: date | None
) -> _ReadAhead | None:
    """The CDRs the batch of ``account_ids`` will bill, read in a transaction of its own while the batch
    before it issues its documents (PostgreSQL: the server's reading of one batch overlaps this process's
    building of the other), and its invoices built but for their numbers. :func:`_issue_batch` takes them if
    its accounts, decided under the counters' locks, are among those read for (and the bodies if it bills the
    same accounts with the same heads); a CDR invoiced meanwhile by someone else cannot be invoiced twice (the
    links' key, ``(cdr_id, kind)``, refuses it and the batch goes one by one)."""
    async with db.session() as db_session:
        by_owner, _ = await _owners(db_session, await _accounts(db_session, account_ids, period), period)
        if not by_owner:
            return None
        issuers = await _issuers(db_session, by_owner.values())
        columns, outside = await _read(db_session, db.dialect, by_owner)
    owners = {k: (a.id, a.end) for k, a in by_owner.items()}
    plan = _plan(by_owner, columns, outside, issuers, issue_date or utcnow().date())
    if not plan.billed:
        return _ReadAhead(owners, columns, outside)
    try:
        bodies: list[bulk.BulkBody] | DocumentError = await asyncio.to_thread(_bodies, plan)
    except DocumentError as exc:  # the batch raises it, if it bills the same
        bodies = exc
    return _ReadAhead(owners, columns, outside, _Built(plan, bodies))


async def _columns_of(
    db_session: AsyncSession,
    dialect: str,
    by_owner: dict[tuple[int, str], _Account],
    ahead: _NextRead | None,
) -> tuple[CdrColumns, set[int], bool, _Built | None]:
    """The batch's CDRs: those read ahead when they were read for (at least) the batch's accounts, without
    the others' (an account invoiced meanwhile); else read now, under the locks. True: read ahead; and what
    was built ahead on exactly these CDRs."""
    early = await ahead.result() if ahead is not None else None
    if early is not None and all(early.owners.get(k) == (a.id, a.end) for k, a in by_owner.items()):
        extra = {aid for aid, _ in early.owners.values()} - {a.id for a in by_owner.values()}
        if not extra:
            return early.columns, early.outside, True, early.built
        return early.columns.without(extra), early.outside - extra, True, None
    return (*await _read(db_session, dialect, by_owner), False, None)


def _stamped(bodies: list[bulk.BulkBody], heads: list[bulk.InvoiceHead]) -> list[bulk.BulkInvoice]:
    return [bulk.stamp(body, heads[body.index]) for body in bodies]


async def _issue_batch(
    db_session: AsyncSession,
    dialect: str,
    account_ids: list[int],
    period: str,
    issue_date: date | None,
    on_issue: OnIssue | None,
    ahead: _NextRead | None = None,
) -> tuple[int, list[int]]:
    """One batch in the caller's transaction: the number of invoices issued and the accounts left to the
    per-account path. ``ahead``: its CDRs read (and its invoices built) ahead (see :class:`_NextRead`). The
    numbers are taken once the bodies are built (a DocumentError takes none)."""
    accounts = await _accounts(db_session, account_ids, period)
    if not accounts:
        return 0, []
    day = issue_date or utcnow().date()
    issuers = await _issuers(db_session, accounts)
    counters = await _lock_all(db_session, dialect, issuers, day)
    by_owner, left = await _owners(db_session, accounts, period)
    if not by_owner:
        return 0, left
    t_read = time.perf_counter()
    columns, outside, read_ahead, built = await _columns_of(db_session, dialect, by_owner, ahead)
    t_build = time.perf_counter()
    plan = _plan(by_owner, columns, outside, issuers, day)
    left.extend(sorted(plan.apart))
    if not plan.billed:
        return 0, sorted(left)
    billed = plan.billed
    if built is not None and built.plan.same(plan):
        if isinstance(built.bodies, DocumentError):
            raise built.bodies
        bodies = built.bodies
    else:
        built = None
        bodies = await asyncio.to_thread(_bodies, plan)
    series = {k: from_row(r).invoice_series for k, r in issuers.items()}
    numbers = []
    heads = []
    for a, draft in zip(billed, plan.drafts, strict=True):
        number = take(counters[a.issuer_id], series[a.issuer_id], day)
        numbers.append(number)
        heads.append(replace(draft, number=number.number))
    documents = await asyncio.to_thread(_stamped, bodies, heads)
    del bodies
    t_write = time.perf_counter()
    pg = dialect == "postgresql"
    created = utcnow()
    params = []
    for doc in documents:
        a = billed[doc.index]
        number = numbers[doc.index]
        first, last = plan.spans[doc.index]
        params.append(
            {
                "account_id": a.id,
                "billing_period": period,
                "source_key": source_key(a.id, period),
                "issuer_id": a.issuer_id,
                "kind": INVOICE,
                "series": heads[doc.index].series,
                "period": number.period,
                "sequence": number.sequence,
                "number": doc.number,
                "issue_date": day,
                "due_date": heads[doc.index].terms.due_date(day),
                "supply_start": first,
                "supply_end": last,
                "buyer": to_json(heads[doc.index].buyer),
                "currency": doc.currency,
                "total_excl_vat": doc.totals.tax_exclusive,
                "total_vat": doc.totals.tax,
                "total_incl_vat": doc.totals.tax_inclusive,
                "payable": doc.totals.payable,
                "document": doc.document,
                "credits_document_id": None,
                "status": "issued",
                "created_at": created,
            }
        )
    new_ids = await _insert_documents(db_session, pg, params)
    t_links = time.perf_counter()
    document_of = np.array(new_ids, dtype=np.int64)[np.argsort([d.index for d in documents])]
    assert plan.table is not None
    links = zip(document_of[plan.table.invoice].tolist(), plan.columns.db_id.tolist(), strict=True)
    await _link(db_session, pg, links)
    t_flush = time.perf_counter()
    await db_session.flush()  # the counters
    if on_issue is not None:
        for doc_id, p in zip(new_ids, params, strict=True):
            await on_issue(
                db_session,
                BillingDocument(id=doc_id, kind=INVOICE, account_id=p["account_id"], payable=p["payable"]),
            )
    log.info(
        "monthly invoices %s: %d invoices of %d CDRs in bulk: read %.2f s%s, build %.2f s%s, write %.2f s "
        "(documents %.2f s, links %.2f s)",
        period,
        len(documents),
        len(plan.columns.db_id),
        t_build - t_read,
        " (ahead)" if read_ahead else "",
        t_write - t_build,
        " (ahead)" if built is not None else "",
        time.perf_counter() - t_write,
        t_links - t_write,
        t_flush - t_links,
    )
    return len(documents), sorted(left)


_DOCUMENT_COLUMNS = (
    *("id", "account_id", "billing_period", "source_key", "issuer_id", "kind", "series", "period"),
    *("sequence", "number", "issue_date", "due_date", "supply_start", "supply_end", "buyer", "currency"),
    *("total_excl_vat", "total_vat", "total_incl_vat", "payable", "document", "credits_document_id"),
    *("status", "created_at"),
)


async def _insert_documents(db_session: AsyncSession, pg: bool, params: list[dict[str, Any]]) -> list[int]:
    """Insert the documents of ``params`` (``document`` is the stored JSON's text); their ids, in order. On
    PostgreSQL the ids are taken from the table's sequence and the rows written with COPY (the JSON texts
    become JSONB on the server; compressed with lz4 where the server has it, far cheaper than pglz for
    these large documents); elsewhere one executemany."""
    if not params:
        return []
    if not pg:
        statement = insert(BillingDocument).returning(BillingDocument.id, sort_by_parameter_order=True)
        rows = [{**p, "document": json.loads(p["document"])} for p in params]
        return list((await db_session.execute(statement, rows)).scalars().all())
    table = BillingDocument.__tablename__
    if await db_session.scalar(
        text("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
    ):
        await db_session.execute(text("SET LOCAL default_toast_compression = 'lz4'"))
    ids = list(
        (
            await db_session.execute(
                text(f"SELECT nextval(pg_get_serial_sequence('{table}', 'id')) FROM generate_series(1, :n)"),
                {"n": len(params)},
            )
        )
        .scalars()
        .all()
    )
    records = []
    for doc_id, p in zip(ids, params, strict=True):
        row = {**p, "id": doc_id, "buyer": jsonutil.dumps(p["buyer"])}
        records.append(tuple(row[c] for c in _DOCUMENT_COLUMNS))
    connection = await db_session.connection()
    driver = (await connection.get_raw_connection()).driver_connection
    assert driver is not None
    await driver.copy_records_to_table(table, records=records, columns=list(_DOCUMENT_COLUMNS))
    return ids


async def _lock_all(
    db_session: AsyncSession, dialect: str, issuers: dict[int, BillingIssuer], day: date
) -> dict[int, BillingNumberSeries]:
    """The invoice counter of every issuer of ``issuers`` for ``day``, created if missing and locked until the
    transaction ends, in issuer id order (what :func:`billing.store.numbers.lock` does for one, in two
    statements for all)."""
    keys = []
    for issuer_id in sorted(issuers):
        series = from_row(issuers[issuer_id]).invoice_series
        keys.append({"issuer_id": issuer_id, "series": series.prefix, "period": series.period(day) or 0})
    upsert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    await db_session.execute(
        upsert(BillingNumberSeries)
        .values([{**k, "next_number": 1} for k in keys])
        .on_conflict_do_nothing(index_elements=["issuer_id", "series", "period"])
    )
    wanted = {(k["issuer_id"], k["series"], k["period"]) for k in keys}
    rows = (
        await db_session.scalars(
            select(BillingNumberSeries)
            .where(
                BillingNumberSeries.issuer_id.in_(sorted(issuers)),
                BillingNumberSeries.series.in_({k["series"] for k in keys}),
                BillingNumberSeries.period.in_({k["period"] for k in keys}),
            )
            .order_by(BillingNumberSeries.issuer_id, BillingNumberSeries.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).all()
    return {r.issuer_id: r for r in rows if (r.issuer_id, r.series, r.period) in wanted}


async def _counts(
    db_session: AsyncSession, accounts: list[tuple[int, int | None, str]], end: datetime
) -> dict[int, int]:
    """About how many CDRs each account (id, fleet, currency) bills: its fleet's (the CDR's billed fleet,
    :mod:`kernel.domain.cdr_holder`) in its currency that ended before ``end`` (invoiced or not; to size the
    batches)."""
    fleet = billed_fleet()
    query = (
        select(fleet, Cdr.currency, func.count())
        .join(Token, Token.id == Cdr.token_id)
        .where(fleet_where(lambda f: f.is_not(None)), Cdr.end_date_time < end)
        .group_by(fleet, Cdr.currency)
    )
    by_owner = {(f, c): n for f, c, n in (await db_session.execute(query)).all()}
    return {a: by_owner.get((f, c), 0) for a, f, c in accounts}


async def _link(db_session: AsyncSession, pg: bool, links: Any) -> None:
    """The ``billing_document_cdrs`` rows (document id, CDR id): COPY on PostgreSQL, batched inserts else."""
    if pg:
        connection = await db_session.connection()
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        await driver.copy_records_to_table(
            BillingDocumentCdr.__tablename__,
            records=[(d, c, INVOICE) for d, c in links],
            columns=["document_id", "cdr_id", "kind"],
        )
        return
    rows = [{"document_id": d, "cdr_id": c, "kind": INVOICE} for d, c in links]
    for k in range(0, len(rows), 10_000):
        await db_session.execute(insert(BillingDocumentCdr), rows[k : k + 10_000])


def _of_original(column: Any) -> Any:
    """``column`` of the CDR a credit CDR credits (NULL for any other): a subquery run for credits only, not
    a join. Joined, the planner read every CDR (a hash of the whole table, or its primary key in order) for
    the few credits of a batch (docs/benchmarks.md, session 16)."""
    original = aliased(Cdr, name="orig")
    found = select(getattr(original, column.key)).where(original.id == Cdr.credit_of).scalar_subquery()
    return case((Cdr.is_credit.is_(True), found), else_=None)


def _selection(by_owner: dict[tuple[int, str], _Account], columns: Sequence[Any], before: Any) -> Any:
    """The batch's billable CDRs (``columns`` of them; what a credit takes of the CDR it credits is
    :func:`_of_original`'s):
    its accounts' fleets' CDRs in their currencies, ended before ``before`` (the latest month's end), on no
    invoice, a credit CDR while its original is on no invoice either."""
    return (
        select(*columns)
        .join(Token, Token.id == Cdr.token_id)
        .outerjoin(Location, Location.id == Cdr.location_id)
        .where(
            billed_to_fleets({f for f, _ in by_owner}),
            Cdr.currency.in_(sorted({c for _, c in by_owner})),
            Cdr.end_date_time < before,
            _uninvoiced(Cdr.id),
            or_(Cdr.is_credit.is_(False), _uninvoiced(Cdr.credit_of)),
        )
    )


def _us(column: Any) -> Any:
    return literal_column(f"(extract(epoch FROM {column}) * 1000000)::bigint")


_READ_SETTINGS = (
    *(("jit", "off"), ("work_mem", "'64MB'"), ("enable_hashjoin", "off")),
    *(("enable_mergejoin", "off"), ("enable_seqscan", "off")),
)
"""The planner settings of a batch's read, for its transaction only (docs/benchmarks.md, session 16). The read
takes a batch's CDRs (250,000, scattered over a table of 10M) by the fleet and token indexes, and joins each
to one row by a key: its token, its location, its link if it is on an invoice (the anti-join), the CDR a
credit credits. So: every join by an index, per CDR (hashed, the anti-join read every link of the earlier
batches, 10M rows at the month's end: 8.2 s a batch against 3.0 s; merged, the credited CDRs' join read the
whole primary key in order); no scan of a whole table (the links above; and planned on statistics that count
no links, a scan of them per CDR: 708 s for a batch whose predecessor's links were being written); no JIT (it
compiled for 1.2 s in each of the query's processes); a bitmap of the batch's CDRs that stays exact (in 4 MB it
was lossy, and every CDR of a lossy page was tested again against the batch's tokens: 45 s at 1M)."""


def _read_sql(by_owner: dict[tuple[int, str], _Account]) -> str:
    """The SQL of :func:`_read_pg`'s selection (the COPY runs :func:`billing.store.bulk_read.copy_query` of
    it)."""
    max_end = max(a.end for a in by_owner.values())
    columns = [
        Cdr.id.label("id"),
        Cdr.cdr_uid.label("uid"),
        Cdr.is_credit.label("is_credit"),
        Cdr.currency.label("currency"),
        _us("cdrs.start_date_time").label("start_us"),
        _us("cdrs.end_date_time").label("end_us"),
        Cdr.total_cost_excl_vat.label("total_excl"),
        Cdr.data["session_id"].as_string().label("session_ref"),
        literal_column(  # as the row path's ``signed not in _EMPTY``
            "coalesce(cdrs.data->'signed_data' NOT IN ('null'::jsonb, 'false'::jsonb, '\"\"'::jsonb, "
            "'0'::jsonb, '[]'::jsonb, '{}'::jsonb), false)"
        ).label("signed"),
        _of_original(Cdr.cdr_uid).label("original_uid"),
        Location.name.label("location"),
        billed_fleet().label(
            "fleet_id"
        ),  # the fleet, driver and vehicle of the CDR (kernel.domain.cdr_holder)
        billed_driver().label("driver"),
        Token.visual_number.label("visual"),
        Token.contract_id.label("contract"),
        billed_vehicle().label("vehicle"),
        literal_column(
            "CASE WHEN cdrs.is_credit THEN (SELECT orig.explanation->'lines' FROM cdrs AS orig "
            "WHERE orig.id = cdrs.credit_of) ELSE cdrs.explanation->'lines' END"
        ).label("lines"),
    ]
    selection = _selection(by_owner, columns, literal_column(f"'{max_end.isoformat()}'::timestamptz"))
    return str(selection.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))


async def _read_pg(
    db_session: AsyncSession, by_owner: dict[tuple[int, str], _Account]
) -> tuple[CdrColumns, set[int]]:
    """:func:`_read` on PostgreSQL: one COPY of the selection with the lines unnested
    (:func:`billing.store.bulk_read.read_copy`)."""
    sql = _read_sql(by_owner)
    owners = {key: (a.id, (a.end - bulk.EPOCH) // timedelta(microseconds=1)) for key, a in by_owner.items()}
    for name, value in _READ_SETTINGS:
        await db_session.execute(text(f"SET LOCAL {name} = {value}"))
    connection = await db_session.connection()
    driver = (await connection.get_raw_connection()).driver_connection
    read = await read_copy(driver, sql, owners)
    for name, _ in _READ_SETTINGS:  # the batch's writes, when it read under its locks, plan as ever
        await db_session.execute(text(f"SET LOCAL {name} TO DEFAULT"))
    return read


async def _read(
    db_session: AsyncSession,
    dialect: str,
    by_owner: dict[tuple[int, str], _Account],
) -> tuple[CdrColumns, set[int]]:
    """The billable CDRs of the batch's accounts as columns (``invoice`` is the account id), and the accounts
    that have a line outside the scope of VAT."""
    if dialect == "postgresql":
        return await _read_pg(db_session, by_owner)
    columns, outside = await _read_rows(db_session, by_owner)
    return CdrColumns(columns.table(), np.array(columns.db_ids, dtype=np.int64)), outside


async def _read_rows(
    db_session: AsyncSession, by_owner: dict[tuple[int, str], _Account]
) -> tuple[_Columns, set[int]]:
    """The SQLite path of :func:`_read`: the rows, a Python loop per CDR and line."""
    statement = _selection(
        by_owner,
        [
            *(Cdr.id, Cdr.cdr_uid, Cdr.is_credit, Cdr.credit_of, Cdr.currency, Cdr.start_date_time),
            *(
                Cdr.end_date_time,
                Cdr.total_cost_excl_vat,
                Cdr.explanation,
                Cdr.data["session_id"].as_string(),
            ),
            *(Cdr.data["signed_data"], _of_original(Cdr.cdr_uid), _of_original(Cdr.explanation)),
            Location.name,
            billed_fleet(),  # the fleet, driver and vehicle of the CDR (kernel.domain.cdr_holder)
            billed_driver(),
            Token.visual_number,
            Token.contract_id,
            billed_vehicle(),
        ],
        max(a.end for a in by_owner.values()),
    ).execution_options(yield_per=PARTITION)
    columns = _Columns()
    outside: set[int] = set()
    texts = _Texts()
    groups: dict[tuple[Any, ...], tuple[str, str]] = {}
    result = await db_session.stream(statement)
    async for chunk in result.partitions(PARTITION):
        for (
            pk,
            uid,
            is_credit,
            _credit_of,
            currency,
            start,
            end,
            total_excl,
            own,
            session_ref,
            signed,
            original_uid,
            theirs,
            location,
            fleet_id,
            driver,
            visual,
            contract,
            vehicle,
        ) in chunk:
            account = by_owner.get((fleet_id, currency))
            if account is None or end >= account.end:
                continue
            if is_credit and original_uid is None:
                raise DocumentError(f"credit CDR {uid} needs the CDR it credits")
            source = theirs if is_credit else own
            parsed = _sqlite_lines(source)
            if not parsed:
                raise DocumentError(f"CDR {uid} has no priced lines to invoice")
            row = len(columns.invoice)
            sign = -1 if is_credit else 1
            priced = 0
            for kind, dimension, quantity, unit_price, vat, amount in parsed:
                adjustment = kind != "component"
                if adjustment:
                    dim = _ADJ
                else:
                    found = _DIMS.get(dimension)
                    if found is None:
                        raise DocumentError(f"an explanation line of dimension {dimension!r}")
                    dim = found
                    priced += 1
                qty = texts.dec(quantity) if quantity is not None and quantity != "" else Decimal(0)
                net = sign * texts.dec(amount)
                rate = None if vat is None else texts.dec(vat)
                if rate is None and not adjustment:
                    outside.add(account.id)
                columns.comp_cdr.append(row)
                columns.comp_dim.append(dim)
                columns.comp_qty.append(str(qty if qty else Decimal(0)))
                columns.comp_up.append(
                    None if adjustment or unit_price is None else str(texts.dec(unit_price))
                )
                columns.comp_net.append(_minor(net, currency))
                columns.comp_vat.append(rate)
                columns.comp_text.append(str(net))
            if not priced:
                outside.add(account.id)
            key = (driver, visual, contract, vehicle)
            group = groups.get(key)
            if group is None:
                group = groups[key] = (driver or f"Card {visual or contract}", vehicle or "No vehicle")
            columns.invoice.append(account.id)
            columns.cdr_id.append(uid)
            columns.session_ref.append(session_ref)
            columns.signed.append(None if signed in _EMPTY else uid)
            columns.location.append(location or None)
            columns.credit_of.append(original_uid if is_credit else None)
            columns.group.append(group)
            columns.currency.append(currency)
            columns.start.append(start)
            columns.end.append(end)
            columns.total.append(_minor(total_excl, currency))
            columns.credit.append(bool(is_credit))
            columns.db_ids.append(pk)
    return columns, outside
