"""Issuing the B2B documents of a closed settlement run: its lines as invoices between the parties.

The run's lines are read from its export (``lines.csv``, with ``rejected.csv``) in the run's ``output_dir``;
their sha256 must be the run's ``content_hash`` (so what is billed is exactly what the closing run settled,
byte for byte), and per party and currency they must add up to the stored statements. Billing reads the
kernel's tables only (``settlement_runs``, ``settlement_statements``, ``agreements``, ``cdrs``), never
settlement's code.

Per document (:func:`billing.core.b2b.plan_documents`), in its own transaction: the issuer (the seller's
``billing_issuers`` row, for self-billing the CPO's), the buyer (its ``party_account`` with that issuer, or the
identity of its own issuer row, from which the account is made), the lines with their VAT rates (roaming: the
CDR's own lines; hub fee: the rate of the agreement's country; site host: the agreement's rate or the CDR's
energy rate), then the number (gap-free, :mod:`.numbers`) and the row, with the source key
``settlement:PERIOD:SEQ:STATEMENT:COUNTERPARTY`` checked again under the counter's lock (a second run, or a
concurrent one, issues nothing). A document that cannot be issued is reported with the reason, never dropped.
A plan whose lines mix category O with another category is two documents (:func:`billing.core.b2b.vat_parts`,
EN 16931 BR-O-11/12): the taxed lines' under the source key, the O lines' under the key plus ``:O``, issued in
the same transaction, one outcome each; a CDR is linked to the first of them that holds its lines.

A document whose lines add up to less than zero (:func:`billing.core.b2b.is_credit`: the period's credits of
corrected CDRs exceed its CDRs) is the same issuer's credit note (``credit_note``, BT-3 ``381``; for
self-billing the CPO's self-billed credit note, ``261``, in its ``SBC`` series), naming every earlier B2B
invoice of the same kind and issuer on which the credited CDRs were billed (BG-3, latest first; the latest is
``credits_document_id``, BT-25); with no such invoice it is not issued, with the reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.core.b2b import (
    OUTSIDE_VAT_KEY,
    B2BKind,
    DocumentPlan,
    SettlementLine,
    b2b_treatment,
    check_net,
    is_credit,
    ledger_totals,
    parse_lines_csv,
    plan_documents,
    settlement_credit_note,
    settlement_invoice,
    share_lines,
    source_key,
    vat_parts,
)
from billing.core.documents import CreditNote, DocumentError, Identity, Invoice, InvoiceLine, SupplyPeriod
from billing.core.lines import Dimension, PricedCdr, cdr_lines
from billing.core.numbering import NumberingError, Series
from billing.core.vat import VatTreatment
from billing.store.accounts import buyer_of, party_account
from billing.store.cdrs import priced_cdr
from billing.store.issuers import from_row
from billing.store.issuing import _row
from billing.store.numbers import lock, take
from kernel.db.engine import Database
from kernel.models import (
    Agreement,
    BillingAccount,
    BillingDocument,
    BillingDocumentCdr,
    BillingIssuer,
    Cdr,
    Location,
    Party,
    SettlementRun,
    SettlementStatement,
)
from kernel.timeutil import utcnow

log = logging.getLogger(__name__)

INVOICE = "invoice"
CREDIT_NOTE = "credit_note"
"""``billing_documents.kind`` of a period's credit note (a balance below zero), self-billed or not."""
SELF_BILLED = "self_billed"
"""``billing_documents.kind`` of a self-billed invoice: the issuer's payable, not a receivable."""
SELF_BILLED_PREFIX = "SB"
"""The series of the self-billed invoices an issuer issues on its site hosts' behalf."""
SELF_BILLED_CREDIT_PREFIX = "SBC"
"""The series of the self-billed credit notes (a site host's period below zero)."""
LINK_KINDS = {
    B2BKind.ROAMING: "b2b_roaming",
    B2BKind.HUB_FEE: "b2b_hub_fee",
    B2BKind.SITE_HOST: "b2b_site_host",
}
"""``billing_document_cdrs.kind`` per document kind: a CDR is on one B2B document of each kind, once."""
ROLES = {
    B2BKind.ROAMING: ("CPO", "EMSP"),
    B2BKind.HUB_FEE: ("HUB", "CPO"),
    B2BKind.SITE_HOST: ("SITE_HOST", "CPO"),
}


class SettlementDocumentsError(ValueError):
    """A run whose documents cannot be issued at all (its export missing or not the run's, no such run)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """One document of a run: issued now, issued before (``existing``), or not, with the reason."""

    period: str
    sequence: int
    kind: B2BKind
    seller: str
    buyer: str
    currency: str
    net: Decimal
    settlement_vat: Decimal
    number: str | None = None
    vat: Decimal | None = None
    existing: bool = False
    reason: str | None = None
    credit_note: bool = False

    @property
    def issued(self) -> bool:
        return self.number is not None and not self.existing

    def describe(self) -> str:
        what = {
            "roaming": "roaming",
            "hub_fee": "hub fee",
            "site_host": "self-billed",
        }[self.kind.value] + (" credit note" if self.credit_note else " invoice")
        head = f"{what} {self.seller} -> {self.buyer} {self.net} {self.currency} excl. VAT"
        if self.reason is not None:
            return f"not issued: {head}: {self.reason}"
        state = "already issued" if self.existing else "issued"
        difference = self.settlement_vat - (self.vat or Decimal(0))
        rounding = f" (settlement VAT {self.settlement_vat}, difference {difference})" if difference else ""
        return f"{state} {self.number}: {head}, VAT {self.vat}{rounding}"


class _Refused(Exception):
    """A document that is not issued, and why (reported, not raised to the caller)."""


def read_run_lines(run: SettlementRun) -> tuple[SettlementLine, ...]:
    """The lines of ``run`` from its export, checked against its content hash (blocking file I/O)."""
    if not run.output_dir:
        raise SettlementDocumentsError(f"run {run.period} r{run.sequence} has no export folder")
    folder = Path(run.output_dir)
    try:
        lines = (folder / "lines.csv").read_bytes()
        rejected = (folder / "rejected.csv").read_bytes()
    except OSError as exc:
        raise SettlementDocumentsError(
            f"run {run.period} r{run.sequence}: its export cannot be read ({exc.strerror}: {exc.filename})"
        ) from None
    data = lines + rejected if rejected.count(b"\n") > 1 else lines
    if hashlib.sha256(data).hexdigest() != run.content_hash:
        raise SettlementDocumentsError(
            f"run {run.period} r{run.sequence}: {folder / 'lines.csv'} is not the run's export (content hash differs)"
        )
    return parse_lines_csv(lines.decode("utf-8"))


async def closed_runs(db_session: AsyncSession, period: str | None = None) -> list[SettlementRun]:
    """The closed settlement runs (of ``period``), oldest first."""
    query = select(SettlementRun).where(SettlementRun.status == "closed").order_by(SettlementRun.id)
    if period is not None:
        query = query.where(SettlementRun.period == period)
    return list((await db_session.scalars(query)).all())


def run_prefix(run: SettlementRun) -> str:
    return f"settlement:{run.period}:{run.sequence}:"


async def has_documents(db_session: AsyncSession, run: SettlementRun) -> bool:
    found = await db_session.scalar(
        select(BillingDocument.id).where(BillingDocument.source_key.startswith(run_prefix(run))).limit(1)
    )
    return found is not None


async def _party(db_session: AsyncSession, label: str, role: str) -> Party:
    country, _, pid = label.partition("*")
    rows = (
        await db_session.scalars(
            select(Party).where(Party.country_code == country, Party.party_id == pid).order_by(Party.id)
        )
    ).all()
    if not rows:
        raise _Refused(f"no party {label}")
    return next((p for p in rows if str(p.role) == role or getattr(p.role, "value", None) == role), rows[0])


async def _issuer_of(db_session: AsyncSession, party: Party, currency: str) -> BillingIssuer | None:
    """The party's issuer in ``currency`` (a party may issue in several currencies, one issuer each), else its
    first one (whose identity serves as a buyer's, or refuses the currency with the reason)."""
    rows = (
        await db_session.scalars(
            select(BillingIssuer).where(BillingIssuer.party_id == party.id).order_by(BillingIssuer.id)
        )
    ).all()
    return next((r for r in rows if r.currency == currency), rows[0] if rows else None)


async def _account_identity(
    db_session: AsyncSession, issuer: BillingIssuer, party: Party, currency: str
) -> tuple[BillingAccount | None, Identity | None]:
    found = (
        await db_session.scalars(
            select(BillingAccount).where(
                BillingAccount.issuer_id == issuer.id,
                BillingAccount.party_id == party.id,
                BillingAccount.currency == currency,
            )
        )
    ).first()
    return (found, buyer_of(found)) if found is not None else (None, None)


def _no_identity(label: str) -> str:
    return (
        f"{label} has no legal identity (no billing issuer of that party and no billing account): "
        "add one to issue this document"
    )


@dataclass(frozen=True, slots=True)
class _Parties:
    issuer: BillingIssuer
    seller: Identity
    buyer: Identity
    treatment: VatTreatment
    account_id: int | None


async def _parties(db_session: AsyncSession, plan: DocumentPlan) -> _Parties:
    seller_role, buyer_role = ROLES[plan.kind]
    seller_party = await _party(db_session, plan.seller, seller_role)
    buyer_party = await _party(db_session, plan.buyer, buyer_role)
    if plan.self_billed:
        issuer = await _issuer_of(db_session, buyer_party, plan.currency)
        if issuer is None:
            raise _Refused(f"{plan.buyer} (who self-bills) has no billing issuer")
        host_issuer = await _issuer_of(db_session, seller_party, plan.currency)
        if host_issuer is not None:
            host = from_row(host_issuer)
            seller = host.identity
            treatment = b2b_treatment(
                plan.kind,
                seller,
                from_row(issuer).identity,
                seller_allows_reverse_charge=host.reverse_charge_allowed,
                exemption=host.exemption,
            )
        else:
            _account, found = await _account_identity(db_session, issuer, seller_party, plan.currency)
            if found is None:
                raise _Refused(_no_identity(plan.seller))
            seller = found
            treatment = b2b_treatment(plan.kind, seller, from_row(issuer).identity)
        return _Parties(issuer, seller, from_row(issuer).identity, treatment, None)
    issuer = await _issuer_of(db_session, seller_party, plan.currency)
    if issuer is None:
        raise _Refused(f"{plan.seller} (the seller) has no billing issuer")
    account, buyer = await _account_identity(db_session, issuer, buyer_party, plan.currency)
    if account is None:
        own = await _issuer_of(db_session, buyer_party, plan.currency)
        if own is None:
            raise _Refused(_no_identity(plan.buyer))
        buyer = from_row(own).identity
        account = await party_account(db_session, issuer, buyer_party.id, buyer, currency=plan.currency)
    assert buyer is not None
    core = from_row(issuer)
    treatment = b2b_treatment(
        plan.kind,
        core.identity,
        buyer,
        seller_allows_reverse_charge=core.reverse_charge_allowed,
        exemption=core.exemption,
    )
    return _Parties(issuer, core.identity, buyer, treatment, account.id)


async def _cdr_rows(db_session: AsyncSession, uids: set[str]) -> dict[str, Cdr]:
    rows: dict[str, Cdr] = {}
    ordered = sorted(uids)
    for i in range(0, len(ordered), 500):
        chunk = ordered[i : i + 500]
        rows.update(
            (c.cdr_uid, c) for c in (await db_session.scalars(select(Cdr).where(Cdr.cdr_uid.in_(chunk))))
        )
    missing = uids - set(rows)
    if missing:
        raise _Refused(f"CDR {sorted(missing)[0]} of the settlement is not in the database")
    originals = {c.credit_of for c in rows.values() if c.credit_of is not None}
    for c in (await db_session.scalars(select(Cdr).where(Cdr.id.in_(originals)))) if originals else []:
        rows.setdefault(c.cdr_uid, c)
    return rows


def _priced(rows: dict[str, Cdr], uid: str) -> PricedCdr:
    row = rows[uid]
    original = next((c for c in rows.values() if c.id == row.credit_of), None) if row.is_credit else None
    return priced_cdr(row, original)


async def _lines(
    db_session: AsyncSession, plan: DocumentPlan, treatment: VatTreatment, rows: dict[str, Cdr]
) -> tuple[InvoiceLine, ...]:
    if plan.kind is B2BKind.ROAMING:
        out: list[InvoiceLine] = []
        for uid in sorted({ln.cdr_id for ln in plan.lines}):
            out.extend(cdr_lines(_priced(rows, uid), treatment))
        return tuple(out)
    agreements: dict[tuple[str, int | None], Agreement | None] = {}
    rates: dict[str, Decimal | None] = {}
    supplies: dict[str, SupplyPeriod] = {}
    for ln in plan.lines:
        key = (ln.agreement_id, ln.agreement_version)
        if key not in agreements:
            agreements[key] = (
                await db_session.scalars(
                    select(Agreement).where(
                        Agreement.agreement_id == ln.agreement_id, Agreement.version == ln.agreement_version
                    )
                )
            ).first()
        agreement = agreements[key]
        if agreement is None:
            raise _Refused(f"agreement {ln.agreement_id} v{ln.agreement_version} is not stored")
        row = rows[ln.cdr_id]
        supplies[ln.cdr_id] = SupplyPeriod(row.start_date_time, row.end_date_time)
        rates[ln.cdr_id] = await _rate(db_session, plan.kind, agreement, row, rows)
    return share_lines(plan, rates, supplies, treatment)


async def _rate(
    db_session: AsyncSession, kind: B2BKind, agreement: Agreement, row: Cdr, rows: dict[str, Cdr]
) -> Decimal | None:
    """The VAT rate (percent) of a hub fee or site host share line, as the split applied it."""
    data = agreement.data or {}
    if kind is B2BKind.HUB_FEE:
        location = await db_session.get(Location, row.location_id) if row.location_id else None
        country = (location.country if location else "").upper()
        rate = (data.get("vat_rates") or {}).get(country)
        if rate is None:
            raise _Refused(
                f"agreement {agreement.agreement_id} has no VAT rate for {country or 'no country'}"
            )
        return Decimal(str(rate)) * 100
    if data.get("vat_rate") is not None:
        return Decimal(str(data["vat_rate"])) * 100
    energy = [c for c in _priced(rows, row.cdr_uid).components if c.dimension is Dimension.ENERGY]
    if not energy:
        raise _Refused(f"CDR {row.cdr_uid} has no energy component whose VAT the site host share carries")
    return energy[0].vat_rate


@dataclass(frozen=True, slots=True)
class _Issued:
    """One document of a plan: its row, whether it was issued before, the settlement VAT of its CDRs."""

    row: BillingDocument
    existing: bool
    settlement_vat: Decimal


def _settlement_vat(plan: DocumentPlan, cdr_ids: set[str]) -> Decimal:
    """The settlement's VAT (as billed) of the plan's lines of ``cdr_ids``."""
    return sum((plan.billed(ln)[1] for ln in plan.lines if ln.cdr_id in cdr_ids), Decimal(0))


async def _existing(db_session: AsyncSession, plan: DocumentPlan, keys: list[str]) -> list[_Issued]:
    """The plan's documents issued before (source key ``key``, and ``key:O`` when it was split), each with the
    settlement VAT of the CDRs linked to it."""
    invoice_kind = SELF_BILLED if plan.self_billed else INVOICE
    rows = list(
        (
            await db_session.scalars(
                select(BillingDocument)
                .where(
                    BillingDocument.kind.in_((invoice_kind, CREDIT_NOTE)),
                    BillingDocument.source_key.in_(keys),
                )
                .order_by(BillingDocument.id)
            )
        ).all()
    )
    out = []
    for row in rows:
        linked = set(
            (
                await db_session.scalars(
                    select(Cdr.cdr_uid)
                    .join(BillingDocumentCdr, BillingDocumentCdr.cdr_id == Cdr.id)
                    .where(BillingDocumentCdr.document_id == row.id)
                )
            ).all()
        )
        out.append(_Issued(row, True, _settlement_vat(plan, linked)))
    return out


async def _issue(
    db_session: AsyncSession,
    run: SettlementRun,
    plan: DocumentPlan,
    statement: SettlementStatement,
    day: date,
) -> list[_Issued]:
    """The plan's documents: one, or two when its lines mix category O with another (:func:`vat_parts`, EN
    16931 BR-O-11/12): the taxed lines' under the source key, the O lines' under the key plus ``:O``."""
    invoice_kind = SELF_BILLED if plan.self_billed else INVOICE
    key = source_key(run.period, run.sequence, statement.id, plan.counterparty)
    keys = [key, key + OUTSIDE_VAT_KEY]
    issued = await _existing(db_session, plan, keys)
    if issued:  # issued before: nothing to look up (checked again under the lock below)
        return issued
    parties = await _parties(db_session, plan)
    issuer_row = parties.issuer
    issuer = from_row(issuer_row)
    if issuer.currency != plan.currency:
        raise _Refused(
            f"issuer {issuer.key} invoices in {issuer.currency}, the statement is in {plan.currency}"
        )
    rows = await _cdr_rows(db_session, {ln.cdr_id for ln in plan.lines})
    lines = await _lines(db_session, plan, parties.treatment, rows)
    check_net(plan, lines)  # over the whole: the parts' nets add up to the statement's
    parts = vat_parts(lines)
    out: list[_Issued] = []
    linked: set[str] = set()
    for n, part in enumerate(parts):
        part_key = keys[n]
        credit = is_credit(part, parties.treatment)
        kind = CREDIT_NOTE if credit else invoice_kind
        series = issuer.credit_series if credit else issuer.invoice_series
        if plan.self_billed:
            prefix = SELF_BILLED_CREDIT_PREFIX if credit else SELF_BILLED_PREFIX
            if prefix in (issuer.invoice_series.prefix, issuer.credit_series.prefix):
                raise _Refused(f"issuer {issuer.key} uses the self-billing series {prefix} for another")
            series = Series(prefix, yearly=issuer.invoice_series.yearly)
        preceding = (
            await _credited_invoices(db_session, plan, issuer_row.id, invoice_kind, rows) if credit else []
        )
        credited = preceding[0] if preceding else None
        counter = await lock(db_session, issuer_row.id, series, day)
        if n == 0:
            again = await _existing(db_session, plan, keys)
            if again:  # a concurrent call issued them while this one looked up
                return again
        number = take(counter, series, day)
        reference = f"Settlement {run.period} run {run.sequence}: statement of {plan.statement_party}"
        doc: Invoice | CreditNote
        whole = lines if len(parts) > 1 else None
        if credited is not None:
            doc = settlement_credit_note(
                plan,
                part,
                series=series.prefix,
                number=number.number,
                issue_date=day,
                seller=parties.seller,
                buyer=parties.buyer,
                treatment=parties.treatment,
                credits=(credited.number, credited.issue_date),
                reference=reference,
                also_credits=[(other.number, other.issue_date) for other in preceding[1:]],
                whole=whole,
            )
        else:
            start, end = _month(run.period)
            doc = settlement_invoice(
                plan,
                part,
                series=series.prefix,
                number=number.number,
                issue_date=day,
                seller=parties.seller,
                buyer=parties.buyer,
                terms=issuer.terms,
                treatment=parties.treatment,
                period=SupplyPeriod(start, end),
                reference=reference,
                whole=whole,
            )
        row = _row(
            issuer_row,
            kind,
            number,
            doc,
            credited,
            account_id=parties.account_id,
            billing_period=run.period,
            source_key=part_key,
        )
        db_session.add(row)
        await db_session.flush()
        # a CDR is on one document of each kind: the first part that holds its lines
        mine = sorted({ln.cdr_id for ln in part if ln.cdr_id} - linked)
        linked.update(mine)
        db_session.add_all(
            BillingDocumentCdr(document_id=row.id, cdr_id=rows[uid].id, kind=LINK_KINDS[plan.kind])
            for uid in mine
        )
        await db_session.flush()
        out.append(_Issued(row, False, _settlement_vat(plan, set(mine))))
    return out


async def _credited_invoices(
    db_session: AsyncSession, plan: DocumentPlan, issuer_id: int, invoice_kind: str, rows: dict[str, Cdr]
) -> list[BillingDocument]:
    """The B2B invoices a period's credit note corrects (BG-3), latest first: those of ``issuer_id`` and the
    plan's kind on which a CDR credited in the period was billed; _Refused when there is none. The first is
    BT-25 and carries the credit in the balances (``credits_document_id``); the note names them all."""
    originals = {
        rows[ln.cdr_id].credit_of
        for ln in plan.lines
        if rows[ln.cdr_id].is_credit and rows[ln.cdr_id].credit_of is not None
    }
    found = (
        list(
            (
                await db_session.scalars(
                    select(BillingDocument)
                    .where(
                        BillingDocument.id.in_(
                            select(BillingDocumentCdr.document_id).where(
                                BillingDocumentCdr.cdr_id.in_(originals),
                                BillingDocumentCdr.kind == LINK_KINDS[plan.kind],
                            )
                        ),
                        BillingDocument.issuer_id == issuer_id,
                        BillingDocument.kind == invoice_kind,
                        BillingDocument.currency == plan.currency,
                    )
                    .order_by(BillingDocument.issue_date.desc(), BillingDocument.id.desc())
                )
            ).all()
        )
        if originals
        else []
    )
    if not found:
        raise _Refused(
            "the period's credits exceed its charges, and no earlier invoice of these parties bills the "
            "credited CDRs: a credit note needs the invoice it corrects (BT-25)"
        )
    return found


def _month(period: str) -> tuple[datetime, datetime]:
    year, month = (int(x) for x in period.split("-"))
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return start, end


async def issue_run_documents(db: Database, run_id: int, *, issue_date: date | None = None) -> list[Outcome]:
    """Issue every document of closed run ``run_id`` not issued yet; one outcome per document (issued now,
    before, or not, with the reason). SettlementDocumentsError when the run's lines cannot be read or do not
    match its statements (then nothing is issued)."""
    async with db.session() as db_session:
        run = await db_session.get(SettlementRun, run_id)
        if run is None or run.status != "closed":
            raise SettlementDocumentsError(f"settlement run {run_id} is not a closed run")
        statements = (
            await db_session.scalars(select(SettlementStatement).where(SettlementStatement.run_id == run_id))
        ).all()
        db_session.expunge(run)
    lines = await asyncio.to_thread(read_run_lines, run)
    by_key = {(s.party, s.currency): s for s in statements}
    for (party, currency), (net, vat, gross) in ledger_totals(lines).items():
        st = by_key.get((party, currency))
        if st is None or (st.net, st.vat, st.gross) != (net, vat, gross):
            raise SettlementDocumentsError(
                f"run {run.period} r{run.sequence}: the lines of {party} in {currency} do not add up to its statement"
            )
    day = issue_date or utcnow().date()
    outcomes = []
    for plan in plan_documents(lines):
        base = Outcome(
            period=run.period,
            sequence=run.sequence,
            kind=plan.kind,
            seller=plan.seller,
            buyer=plan.buyer,
            currency=plan.currency,
            net=plan.billed_net,
            settlement_vat=plan.billed_vat,
        )
        try:
            async with db.session() as db_session:
                issued = await _issue(db_session, run, plan, by_key[(plan.seller, plan.currency)], day)
        except (_Refused, DocumentError, NumberingError, ValueError) as exc:
            outcome = replace(base, reason=str(exc))
            log.warning("settlement document not issued: %s", outcome.describe())
            outcomes.append(outcome)
            continue
        for one in issued:  # two when the plan's lines were split by VAT category (BR-O-11/12)
            row = one.row
            sign = -1 if row.kind == CREDIT_NOTE else 1  # signed as billed, as the plan
            outcome = replace(
                base,
                net=sign * row.total_excl_vat if len(issued) > 1 else base.net,
                settlement_vat=one.settlement_vat if len(issued) > 1 else base.settlement_vat,
                number=row.number,
                vat=sign * row.total_vat,
                existing=one.existing,
                credit_note=row.kind == CREDIT_NOTE,
            )
            if outcome.issued:
                log.info("settlement document %s", outcome.describe())
            outcomes.append(outcome)
    return outcomes


__all__ = [
    "CREDIT_NOTE",
    "INVOICE",
    "LINK_KINDS",
    "SELF_BILLED",
    "SELF_BILLED_CREDIT_PREFIX",
    "SELF_BILLED_PREFIX",
    "Outcome",
    "SettlementDocumentsError",
    "closed_runs",
    "has_documents",
    "issue_run_documents",
    "read_run_lines",
]
