"""A fleet account's monthly invoice: every uninvoiced CDR of the fleet's tokens up to the month's end, once.

:func:`issue_monthly_invoice` bills one account (a fleet with one issuer and currency) for one calendar month
of the account's time zone: every CDR billed to the fleet (the fleet its token was in when the CDR was made,
``cdrs.fleet_id``: :mod:`kernel.domain.cdr_holder`; a token moved to another fleet since leaves its CDRs here)
in the account's currency whose session ended before the month's end and that is on no invoice yet
(``billing_document_cdrs`` kind ``invoice``). That is the month's CDRs, plus any that arrived after an earlier
month was invoiced (a late CDR goes on the next monthly invoice). A credit CDR whose original is on no invoice
yet is a negative line next to it; one whose original was invoiced gets a credit note instead
(:mod:`billing.cdr_hook`). Lines are grouped by driver and vehicle (the CDR's ``driver_name`` and ``vehicle``:
the token's when the CDR was made, which the portal's assignment copies onto it; the token's current ones for a
CDR from before they were recorded), then the account's uninvoiced ``billing_charges`` follow as fee lines and are
marked with the invoice's id. Lines outside the scope of VAT (category O: a CDR's tariff dimension without VAT,
a fee without a VAT rate) go on an invoice of their own (EN 16931's BR-O rules); an issuer without a registration
id cannot issue that one (BR-O-02, BR-CO-26), so its CDRs with an O line and its O fees are held -- left off,
on no invoice, with a warning when first held (and as ``cdr_held`` / ``fee_held`` in the reconciliation report,
:mod:`.reports`) -- and the first invoice after the id is set takes them, split.

One invoice per account and period (``source_key`` ``monthly:<account>:<period>``, UNIQUE per issuer and
kind), in the caller's transaction: the issuer's invoice counter is locked first (:mod:`.numbers`) and the
invoice and its CDRs are looked up again under the lock, so two concurrent calls issue one invoice. A month with
nothing to bill issues nothing (None). The fleet accounts these invoices go to are added
(:func:`add_fleet_account`) and listed (:func:`account_items`) here too.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import ColumnElement, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from billing.core.documents import Identity, InvoiceLine, SupplyPeriod, VatCategory
from billing.core.en16931 import invoice_currency
from billing.core.invoices import monthly_invoice
from billing.core.lines import LineGroup, PricedCdr, fee_line, group_lines, monthly_lines, outside_vat
from billing.core.vat import NORMAL, outside_vat_held
from billing.store.accounts import FLEET, buyer_of, fleet_account, summary
from billing.store.cdrs import priced_cdr
from billing.store.codec import load_invoice
from billing.store.held import cdr_item, fee_item, newly_held
from billing.store.issuers import from_row, get_issuer
from billing.store.issuing import INVOICE, OUTSIDE_VAT, BillingError, _insert, _row
from billing.store.numbers import Allocated, lock, take
from kernel.domain.cdr_holder import billed_to_fleets, holder_of
from kernel.models import (
    BillingAccount,
    BillingCharge,
    BillingDocument,
    BillingDocumentCdr,
    Fleet,
    Location,
    Party,
    Token,
)
from kernel.models.billing import BillingIssuer
from kernel.models.cdrs import Cdr
from kernel.timeutil import utcnow

log = logging.getLogger(__name__)
PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def month_bounds(period: str, timezone: str) -> tuple[datetime, datetime]:
    """The UTC instants [start, end) of calendar month ``period`` ("2026-11") in IANA zone ``timezone``."""
    match = PERIOD.match(period or "")
    if match is None:
        raise BillingError(f"period {period!r} is not a month as YYYY-MM")
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise BillingError(f"time zone {timezone!r} is not an IANA zone") from None
    year, month = int(match.group(1)), int(match.group(2))
    following = (year + 1, 1) if month == 12 else (year, month + 1)
    start = datetime(year, month, 1, tzinfo=zone)
    end = datetime(*following, 1, tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


def previous_period(now: datetime, timezone: str) -> str:
    """The month before the one ``now`` is in, in zone ``timezone`` ("2026-11" on 1 December)."""
    local = now.astimezone(ZoneInfo(timezone))
    first = local.date().replace(day=1) - timedelta(days=1)
    return f"{first.year:04d}-{first.month:02d}"


def source_key(account_id: int, period: str) -> str:
    return f"monthly:{account_id}:{period}"


async def monthly_invoice_of(
    db_session: AsyncSession, account: BillingAccount, period: str
) -> BillingDocument | None:
    """The account's invoice of ``period``, if it was issued (the one outside VAT when it is the only one)."""
    key = source_key(account.id, period)
    rows = (
        await db_session.scalars(
            select(BillingDocument).where(
                BillingDocument.issuer_id == account.issuer_id,
                BillingDocument.kind == INVOICE,
                BillingDocument.source_key.in_((key, key + OUTSIDE_VAT)),
            )
        )
    ).all()
    return min(rows, key=lambda row: row.source_key != key, default=None)


def _uninvoiced(cdr_id: Any) -> ColumnElement[bool]:
    return ~exists().where(BillingDocumentCdr.cdr_id == cdr_id, BillingDocumentCdr.kind == INVOICE)


async def _billable(
    db_session: AsyncSession, account: BillingAccount, end: datetime, limit: int | None = None
) -> list[tuple[Cdr, Token]]:
    """The fleet's CDRs to put on the invoice: billed to the fleet (:func:`kernel.domain.cdr_holder.billed_to_fleets`:
    the CDR's recorded fleet, else its token's), ended before ``end``, in the account's currency, on no
    invoice; a credit CDR only while its original is on no invoice either (the first ``limit``)."""
    if account.fleet_id is None:
        return []
    original = aliased(Cdr)
    statement = (
        select(Cdr, Token)
        .join(Token, Token.id == Cdr.token_id)
        .outerjoin(original, original.id == Cdr.credit_of)
        .where(
            billed_to_fleets([account.fleet_id]),
            Cdr.currency == account.currency,
            Cdr.end_date_time < end,
            _uninvoiced(Cdr.id),
            or_(Cdr.is_credit.is_(False), _uninvoiced(original.id)),
        )
        .order_by(Cdr.end_date_time, Cdr.id)
        .limit(limit)
    )
    return [(cdr, token) for cdr, token in (await db_session.execute(statement)).all()]


def _group(cdr: Cdr, token: Token) -> tuple[str, str]:
    """The invoice group of ``cdr``: its driver and vehicle when it was made (:func:`holder_of`), the card's
    number for a driver without a name."""
    holder = holder_of(cdr, token)
    driver = holder.driver_name or f"Card {token.visual_number or token.contract_id}"
    return (driver, holder.vehicle or "No vehicle")


async def _priced(db_session: AsyncSession, rows: list[tuple[Cdr, Token]]) -> list[PricedCdr]:
    originals = {c.credit_of for c, _ in rows if c.is_credit and c.credit_of is not None}
    by_id = {c.id: c for c, _ in rows}
    missing = originals - set(by_id)
    if missing:
        for row in (await db_session.scalars(select(Cdr).where(Cdr.id.in_(missing)))).all():
            by_id[row.id] = row
    location_ids = {c.location_id for c, _ in rows if c.location_id is not None}
    names: dict[int, str | None] = {}
    if location_ids:
        query = select(Location.id, Location.name).where(Location.id.in_(location_ids))
        names = {pk: name for pk, name in (await db_session.execute(query)).all()}
    out = []
    for cdr, token in rows:
        original = by_id.get(cdr.credit_of) if cdr.is_credit and cdr.credit_of is not None else None
        priced = priced_cdr(cdr, original)
        out.append(replace(priced, group=_group(cdr, token), location=names.get(cdr.location_id or 0) or ""))
    return out


OnIssue = Callable[[AsyncSession, BillingDocument], Awaitable[None]]


async def issue_monthly_invoice(
    db_session: AsyncSession,
    account_id: int,
    period: str,
    issue_date: date | None = None,
    *,
    on_issue: OnIssue | None = None,
) -> BillingDocument | None:
    """The monthly invoice of fleet account ``account_id`` for ``period`` ("2026-11", the account's time zone),
    issued on ``issue_date`` (today by the hub's clock); the existing one if it was issued, None when there is
    nothing to bill. Lines outside the scope of VAT go on an invoice of their own (:func:`_outside_vat_invoice`);
    when the issuer has no registration id to name itself by there, the CDRs with such a line
    (:func:`_held_outside_vat`) and the O fees are held for the first invoice after it is set (a warning when
    one is held that was not before, :mod:`.held`), the rest is invoiced. ``on_issue`` runs in the transaction for each new invoice (the collection
    request, :func:`billing.monthly_job.issue_monthly_invoice`). BillingError for an unknown or non-fleet
    account, a bad period, or a month not over yet."""
    account = await db_session.get(BillingAccount, account_id)
    if account is None:
        raise BillingError(f"no billing account {account_id}")
    if account.kind != FLEET or account.fleet_id is None:
        raise BillingError(f"billing account {account_id} is not a fleet's: it gets no monthly invoice")
    start, end = month_bounds(period, account.timezone)
    if utcnow() < end:
        raise BillingError(f"{period} is not over yet in {account.timezone}: its invoice is issued after it")
    existing = await monthly_invoice_of(db_session, account, period)
    if existing is not None:
        return existing
    if not await _billable(db_session, account, end, 1) and not await _charges(
        db_session, account, end, lock_rows=False
    ):
        return None
    issuer_row = await db_session.get(BillingIssuer, account.issuer_id)
    assert issuer_row is not None  # a foreign key
    issuer = from_row(issuer_row)
    day = issue_date or utcnow().date()
    counter = await lock(db_session, issuer_row.id, issuer.invoice_series, day)
    # under the counter's lock: a concurrent call has issued it, or taken some of the CDRs, or not
    existing = await monthly_invoice_of(db_session, account, period)
    if existing is not None:
        return existing
    rows = await _billable(db_session, account, end)
    charges = await _charges(db_session, account, end, lock_rows=True)
    if not rows and not charges:
        return None
    buyer = buyer_of(account)
    treatment = issuer.treatment(buyer)
    cdrs = await _priced(db_session, rows)
    fees = [
        (c, fee_line(f"fee:{c.id}", c.description, c.amount, c.currency, c.vat_rate, treatment))
        for c in charges
    ]
    # EN 16931 allows no other VAT category next to O (BR-O-11/12), nor VAT ids on it (BR-O-02): the O lines go on
    # an invoice of their own, whose seller is named by its registration id (BR-CO-26) -- when the issuer has
    # one; without it the CDRs with an O line and the O fees wait for it (held), and the rest is invoiced
    apart = bool(issuer.identity.registration_id)
    outside = VatCategory.OUTSIDE_SCOPE
    if not apart:
        held = _held_outside_vat(cdrs)
        if held:
            new = await newly_held(db_session, issuer_row.id, [cdr_item(uid) for uid in sorted(held)])
            log.log(
                logging.WARNING if new else logging.DEBUG,  # warned when the held set grows (.held)
                "billing account %s: %d CDR(s) with lines outside the scope of VAT wait (%s; newly held: %s): "
                "%s",
                account.id,
                len(held),
                ", ".join(sorted(held)),
                ", ".join(i.removeprefix("cdr:") for i in new) or "none",
                outside_vat_held(issuer.key),
            )
            cdrs = [c for c in cdrs if c.cdr_id not in held]
            rows = [(cdr, token) for cdr, token in rows if cdr.cdr_uid not in held]
    session_lines = monthly_lines(cdrs, treatment)
    main_lines = [ln for ln in session_lines if ln.vat_category is not outside]
    o_lines = [ln for ln in session_lines if ln.vat_category is outside]
    main_fees = [(c, ln) for c, ln in fees if ln.vat_category is not outside]
    o_fees = [(c, ln) for c, ln in fees if ln.vat_category is outside]
    if o_fees and not apart:
        new = await newly_held(db_session, issuer_row.id, [fee_item(c.id) for c, _ in o_fees])
        log.log(
            logging.WARNING if new else logging.DEBUG,
            "billing account %s: %d fee(s) outside the scope of VAT wait (%s; newly held: %s): %s",
            account.id,
            len(o_fees),
            ", ".join(f"fee:{c.id}" for c, _ in o_fees),
            ", ".join(new) or "none",
            outside_vat_held(issuer.key),
        )
        o_fees = []
    ids = {cdr.cdr_uid: cdr.id for cdr, _ in rows}
    on_main = {ln.cdr_id for ln in main_lines}
    first = min([start, *(c.start for c in cdrs)])
    last = max([end - timedelta(seconds=1), *(c.end for c in cdrs)])
    issued: list[BillingDocument] = []
    if main_lines or main_fees:
        number = take(counter, issuer.invoice_series, day)
        invoice = monthly_invoice(
            (),
            series=issuer.invoice_series.prefix,
            number=number.number,
            issue_date=day,
            seller=issuer.identity,
            buyer=buyer,
            terms=issuer.terms,
            treatment=treatment,
            supply_period=SupplyPeriod(first, last),
            fees=[*main_lines, *(ln for _, ln in main_fees)],
        )
        row = _row(
            issuer_row,
            INVOICE,
            number,
            invoice,
            account_id=account.id,
            billing_period=period,
            source_key=source_key(account.id, period),
        )
        await _insert(db_session, row, INVOICE, [ids[uid] for uid in ids if uid in on_main])
        for charge, _ in main_fees:
            charge.document_id = row.id
        issued.append(row)
    if o_lines or o_fees:
        number = take(counter, issuer.invoice_series, day)
        issued.append(
            await _outside_vat_invoice(
                db_session,
                issuer_row,
                account,
                period,
                number,
                [*o_lines, *(ln for _, ln in o_fees)],
                [ids[uid] for uid in ids if uid not in on_main],
                [c for c, _ in o_fees],
                SupplyPeriod(first, last),
                day,
            )
        )
    await db_session.flush()
    for row in issued:
        if on_issue is not None:
            await on_issue(db_session, row)
    return issued[0] if issued else None


def _held_outside_vat(cdrs: list[PricedCdr]) -> set[str]:
    """The CDRs (ids) held for an issuer without a registration id: each with a line outside the scope of VAT
    (:func:`billing.core.lines.outside_vat`), whole (its taxed lines too: a CDR is linked to one invoice, and
    its lines are never split over two months), with a credit CDR and its original together (a correction
    is the line next to its original, or the original's credit note once it is invoiced)."""
    held = {c.cdr_id for c in cdrs if outside_vat(c)}
    pairs = [(c.cdr_id, c.credit_of) for c in cdrs if c.is_credit and c.credit_of is not None]
    changed = True
    while changed:
        changed = False
        for credit, original in pairs:
            if (credit in held) != (original in held):
                held |= {credit, original}
                changed = True
    return held


async def _outside_vat_invoice(
    db_session: AsyncSession,
    issuer_row: BillingIssuer,
    account: BillingAccount,
    period: str,
    number: Allocated,
    lines: list[InvoiceLine],
    cdr_ids: list[int],
    charges: list[BillingCharge],
    supply: SupplyPeriod,
    day: date,
) -> BillingDocument:
    """The month's lines outside the scope of VAT (category O: a CDR's tariff dimension without VAT, a fee) on an
    invoice of their own: EN 16931 allows no other category next to O (BR-O-11, BR-O-12) and no seller or buyer
    VAT id on it (BR-O-02), so the seller is named by its registration id (BR-CO-26). ``source_key``
    ``monthly:<account>:<period>:O``; it links the CDRs that have no line on the month's main invoice."""
    issuer = from_row(issuer_row)
    buyer = buyer_of(account)
    invoice = monthly_invoice(
        (),
        series=issuer.invoice_series.prefix,
        number=number.number,
        issue_date=day,
        seller=replace(issuer.identity, vat_id=None),
        buyer=replace(buyer, vat_id=None),
        terms=issuer.terms,
        treatment=NORMAL,
        supply_period=supply,
        fees=lines,
    )
    row = _row(
        issuer_row,
        INVOICE,
        number,
        invoice,
        account_id=account.id,
        billing_period=period,
        source_key=source_key(account.id, period) + OUTSIDE_VAT,
    )
    await _insert(db_session, row, INVOICE, cdr_ids)
    for charge in charges:
        charge.document_id = row.id
    return row


async def _charges(
    db_session: AsyncSession, account: BillingAccount, end: datetime, *, lock_rows: bool
) -> list[BillingCharge]:
    """The account's fees not on an invoice yet, charged before the month's end (its last local day); locked
    (``lock_rows``) only once the counter is (the same lock order in every transaction: no deadlock)."""
    last_day = (end.astimezone(ZoneInfo(account.timezone)) - timedelta(days=1)).date()
    query = (
        select(BillingCharge)
        .where(
            BillingCharge.account_id == account.id,
            BillingCharge.document_id.is_(None),
            BillingCharge.currency == account.currency,
            BillingCharge.charged_on <= last_day,
        )
        .order_by(BillingCharge.charged_on, BillingCharge.id)
    )
    if lock_rows:
        query = query.with_for_update()
    return list((await db_session.scalars(query)).all())


def subtotals(document: BillingDocument) -> tuple[LineGroup, ...]:
    """The invoice's lines per group (driver, vehicle; fees last) with their net subtotals."""
    return group_lines(load_invoice(document.document).lines)


async def fleet_named(db_session: AsyncSession, name: str) -> Fleet:
    """The fleet called ``name``; BillingError if there is none."""
    row = await db_session.scalar(select(Fleet).where(Fleet.name == name))
    if row is None:
        raise BillingError(f"no fleet {name!r}")
    return row


async def add_fleet_account(
    db_session: AsyncSession,
    fleet: str,
    issuer_key: str,
    buyer: Identity,
    *,
    currency: str | None = None,
    language: str = "en",
    timezone: str = "UTC",
) -> BillingAccount:
    """A new account of fleet ``fleet`` with issuer ``issuer_key``, billed to ``buyer`` in ``currency`` (the
    fleet's by default) for the months of ``timezone``; BillingError if it has one with that issuer and
    currency already, or for an unknown fleet, issuer, currency or time zone."""
    month_bounds("2026-01", timezone)  # an IANA zone, or one clear error
    fleet_row = await fleet_named(db_session, fleet)
    issuer_row = await get_issuer(db_session, issuer_key)
    code = invoice_currency((currency or fleet_row.currency or issuer_row.currency).upper())
    found = await db_session.scalar(
        select(BillingAccount).where(
            BillingAccount.issuer_id == issuer_row.id,
            BillingAccount.fleet_id == fleet_row.id,
            BillingAccount.currency == code,
        )
    )
    if found is not None:
        raise BillingError(
            f"fleet {fleet!r} has an account with {issuer_key} in {code} already (id {found.id})"
        )
    return await fleet_account(
        db_session, issuer_row, fleet_row.id, buyer, currency=code, language=language, timezone=timezone
    )


async def account_items(db_session: AsyncSession, party_id: int | None = None) -> list[dict[str, Any]]:
    """Every billing account as the CLI and the API list them (only those of ``party_id``'s issuers if given),
    with its issuer's key and its owner (the fleet's name, the token's contract id, the party's key)."""
    query = (
        select(
            BillingAccount,
            BillingIssuer.key,
            Fleet.name,
            Token.contract_id,
            Party.country_code,
            Party.party_id,
        )
        .join(BillingIssuer, BillingIssuer.id == BillingAccount.issuer_id)
        .outerjoin(Fleet, Fleet.id == BillingAccount.fleet_id)
        .outerjoin(Token, Token.id == BillingAccount.token_id)
        .outerjoin(Party, Party.id == BillingAccount.party_id)
        .order_by(BillingAccount.id)
    )
    if party_id is not None:
        query = query.where(BillingIssuer.party_id == party_id)
    items = []
    for account, issuer, fleet, contract, cc, pid in (await db_session.execute(query)).all():
        owner = fleet or contract or (f"{cc}*{pid}" if cc else None)
        items.append({**summary(account), "issuer": issuer, "owner": owner})
    return items
