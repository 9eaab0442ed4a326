"""``/api/billing`` documents: issuers (add, list, set the registration id of one stored without it), invoices and
credit notes (list, show, PDF), monthly invoices on demand, operator credits, and the billing accounts.

Typed responses; writes need the hub operator's key. A CPO's key sees only what its own issuers (issuers whose
party is that CPO) issued and bill: another issuer's document is answered as unknown (404), never shown. Bad
input is a 4xx with one sentence (:mod:`kernel.apierrors`).
"""

from __future__ import annotations

import logging
from datetime import date
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from billing.api_paths import filename
from billing.core.documents import Address, Identity, PaymentTerms
from billing.core.issuers import Issuer
from billing.core.numbering import Series
from billing.core.vat import require_registration_id
from billing.crediting import credit_invoice
from billing.desk import credited_numbers
from billing.einvoice.pdf import EInvoiceError
from billing.monthly_job import issue_monthly_invoice
from billing.store.issuers import IssuerError, add_issuer, find_issuer, set_registration_id
from billing.store.issuing import CREDIT_NOTE, INVOICE
from billing.store.monthly import account_items, monthly_invoice_of
from billing.store.printing import document_pdf
from kernel.apiauth import Principal, api_key, principal, require_hub
from kernel.apierrors import errors, refuse_nul
from kernel.apipaging import Paging, paged, paging
from kernel.components import Hub
from kernel.models import BillingAccount, BillingDocument, BillingIssuer, Party
from kernel.money import round_amount

log = logging.getLogger(__name__)
router = APIRouter(
    tags=["billing"], dependencies=[Depends(api_key), Depends(refuse_nul)], responses=errors(401, 422)
)


class IssuerIn(BaseModel):
    """A new issuer: the hosted party (``CC*PID``) it sells for, its legal identity, currency, series, terms."""

    key: str = Field(min_length=1, max_length=64, description="The hub's name for the issuer")
    party: str | None = Field(None, description="The hosted party it sells for, as CC*PID (e.g. NL*AMP)")
    legal_name: str = Field(min_length=1, max_length=255)
    street: str = Field(max_length=255)
    postal_code: str = Field(max_length=32)
    city: str = Field(max_length=128)
    country: str = Field(description="ISO 3166-1 alpha-2")
    vat_id: str | None = None
    registration_id: str | None = Field(
        None,
        max_length=64,
        description="Legal registration id (the trade register's; EN 16931 BT-30): required, a document outside "
        "the scope of VAT names the seller by it",
    )
    email: str | None = Field(None, max_length=255)
    currency: str = "EUR"
    payment_terms_days: int = Field(14, ge=0, le=365)
    invoice_prefix: str = Field("INV", min_length=1, max_length=20)
    credit_prefix: str = Field("CN", min_length=1, max_length=20)
    yearly: bool = True
    reverse_charge_allowed: bool = False
    exemption: str | None = None
    logo: str | None = Field(None, description="A data: URI (printing fetches nothing else)")


class IssuerPatch(BaseModel):
    """A change to an issuer: its legal registration id, e.g. for one stored before it was required."""

    registration_id: str = Field(
        min_length=1,
        max_length=64,
        description="Legal registration id (the trade register's; EN 16931 BT-30): what was held outside the "
        "scope of VAT for want of it is invoiced, on invoices of its own, by the next run",
    )


class IssuerOut(BaseModel):
    key: str
    party: str | None
    legal_name: str
    street: str
    postal_code: str
    city: str
    country: str
    vat_id: str | None
    registration_id: str | None = Field(
        description="Legal registration id (BT-30); null only for an issuer stored before it was required, "
        "whose lines outside the scope of VAT are held until it is set (PATCH)"
    )
    currency: str
    payment_terms_days: int
    invoice_prefix: str
    credit_prefix: str
    yearly: bool
    reverse_charge_allowed: bool
    exemption: str | None


class DocumentOut(BaseModel):
    """An issued invoice or credit note (its figures; ``GET .../{number}`` adds the whole document)."""

    number: str
    kind: str = Field(description="invoice or credit_note")
    issuer: str
    issue_date: date
    due_date: date | None
    buyer: str
    account_id: int | None
    billing_period: str | None = Field(description="YYYY-MM on a monthly invoice")
    currency: str
    total_excl_vat: Decimal
    total_vat: Decimal
    total_incl_vat: Decimal
    payable: Decimal
    credits: str | None = Field(description="On a credit note: the number of the invoice it credits (BT-25)")
    credits_all: list[str] = Field(
        default_factory=list,
        description="On a credit note: every invoice it credits, BT-25's first (a B2B period's credit note may "
        "correct several, BG-3)",
    )


class DocumentDetail(DocumentOut):
    document: dict[str, Any] = Field(description="The document as issued (EN 16931 terms)")


class AccountOut(BaseModel):
    id: int
    kind: str = Field(description="fleet, driver or party")
    owner: str | None = Field(description="The fleet's name, the token's contract id or the party (CC*PID)")
    issuer: str
    buyer: str | None
    currency: str
    language: str
    timezone: str
    payment_method: str | None
    auto_collect: bool


class MonthlyIn(BaseModel):
    account_id: int = Field(ge=1, le=2**63 - 1)
    period: str = Field(description="The month, YYYY-MM, in the account's time zone", examples=["2026-11"])


class MonthlyOut(BaseModel):
    created: bool = Field(
        description="Whether this request issued it (false: issued before, or nothing to bill)"
    )
    invoice: DocumentOut | None = Field(
        description="The month's invoice; null when there was nothing to bill"
    )


class CreditIn(BaseModel):
    """An operator's credit: a net ``amount`` spread over what is left, or ``full`` (all that is left)."""

    amount: Decimal | None = Field(None, gt=0, description="Net amount excl. VAT, e.g. 12.30")
    full: bool = False
    reason: str = Field(min_length=1, max_length=500)
    key: str | None = Field(
        None, max_length=100, description="Idempotency key: a retry returns the first note"
    )


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def _party_key(party: Party | None) -> str | None:
    return f"{party.country_code}*{party.party_id}" if party is not None else None


def _issuer_out(row: BillingIssuer, party: Party | None) -> IssuerOut:
    return IssuerOut(
        key=row.key,
        party=_party_key(party),
        legal_name=row.legal_name,
        street=row.street,
        postal_code=row.postal_code,
        city=row.city,
        country=row.country,
        vat_id=row.vat_id,
        registration_id=row.registration_id,
        currency=row.currency,
        payment_terms_days=row.payment_terms_days,
        invoice_prefix=row.invoice_prefix,
        credit_prefix=row.credit_prefix,
        yearly=row.yearly,
        reverse_charge_allowed=row.reverse_charge_allowed,
        exemption=row.exemption,
    )


def _document_out(row: BillingDocument, issuer: str, credits: str | None, cls: type = DocumentOut) -> Any:
    fields: dict[str, Any] = {
        "number": row.number,
        "kind": row.kind,
        "issuer": issuer,
        "issue_date": row.issue_date,
        "due_date": row.due_date,
        "buyer": row.buyer.get("legal_name", ""),
        "account_id": row.account_id,
        "billing_period": row.billing_period,
        "currency": row.currency,
        "total_excl_vat": round_amount(
            row.total_excl_vat, row.currency
        ),  # already rounded: its minor-unit digits
        "total_vat": round_amount(row.total_vat, row.currency),  # already rounded: its minor-unit digits
        "total_incl_vat": round_amount(
            row.total_incl_vat, row.currency
        ),  # already rounded: its minor-unit digits
        "payable": round_amount(row.payable, row.currency),  # already rounded: its minor-unit digits
        "credits": credits,
        "credits_all": list(
            credited_numbers(row, {row.credits_document_id or -1: credits} if credits else {})
        )
        if row.kind == CREDIT_NOTE
        else [],
    }
    if cls is DocumentDetail:
        fields["document"] = row.document
    return cls(**fields)


CREDITED = aliased(BillingDocument)


def _documents(who: Principal) -> Select[BillingDocument, str, str]:
    """Documents with their issuer's key and the credited invoice's number, as ``who`` may see them."""
    query = (
        select(BillingDocument, BillingIssuer.key, CREDITED.number)
        .join(BillingIssuer, BillingIssuer.id == BillingDocument.issuer_id)
        .outerjoin(CREDITED, CREDITED.id == BillingDocument.credits_document_id)
    )
    if not who.is_hub:
        query = query.where(BillingIssuer.party_id == who.cpo_id)
    return query


async def _one(db_session: AsyncSession, who: Principal, number: str, issuer: str | None) -> Any:
    query = _documents(who).where(BillingDocument.number == number)
    if issuer is not None:
        query = query.where(BillingIssuer.key == issuer)
    rows = (await db_session.execute(query)).all()
    if not rows:
        raise HTTPException(404, f"no document {number}")
    if len(rows) > 1:
        raise HTTPException(422, f"{number} is used by several issuers: give ?issuer=")
    return rows[0]


def _refused(exc: Exception, status: int = 422) -> HTTPException:
    log.info("billing request refused: %s", exc)
    return HTTPException(status, str(exc))


@router.get(
    "/billing/issuers",
    summary="Issuers (a CPO's key: its own)",
    responses=paged(),
    response_model=list[IssuerOut],
)
async def issuers(request: Request, page: Paging = Depends(paging)) -> list[IssuerOut]:
    who = principal(request)
    query = select(BillingIssuer, Party).outerjoin(Party, Party.id == BillingIssuer.party_id)
    if not who.is_hub:
        query = query.where(BillingIssuer.party_id == who.cpo_id)
    async with _hub(request).db.session() as db_session:
        rows = (await db_session.execute(query.order_by(BillingIssuer.key))).all()
    return page.slice([_issuer_out(row, party) for row, party in rows])


@router.post(
    "/billing/issuers",
    summary="Add an issuer",
    status_code=201,
    dependencies=[Depends(require_hub)],
    responses=errors(403, 409),
)
async def add(request: Request, body: IssuerIn) -> IssuerOut:
    try:
        issuer = Issuer(
            key=body.key.strip(),
            identity=Identity(
                body.legal_name,
                Address(body.street, body.postal_code, body.city, body.country),
                vat_id=body.vat_id,
                registration_id=body.registration_id,
                email=body.email,
                business=True,
            ),
            currency=body.currency,
            invoice_series=Series(body.invoice_prefix, yearly=body.yearly),
            credit_series=Series(body.credit_prefix, yearly=body.yearly),
            terms=PaymentTerms(body.payment_terms_days),
            reverse_charge_allowed=body.reverse_charge_allowed,
            exemption=body.exemption,
            logo=body.logo,
        )
        require_registration_id(issuer.identity)  # its lines outside VAT need it (BR-O-02, BR-CO-26)
    except ValueError as exc:
        raise _refused(exc) from None
    if body.logo is not None and not body.logo.startswith("data:image/"):
        raise _refused(ValueError("a logo is a data:image/... URI"))
    async with _hub(request).db.session() as db_session:
        party = None
        if body.party is not None:
            cc, _, pid = body.party.partition("*")
            party = await db_session.scalar(
                select(Party)
                .where(Party.country_code == cc.upper(), Party.party_id == pid.upper())
                .order_by(Party.id)
                .limit(1)
            )
            if party is None:
                raise _refused(ValueError(f"no party {body.party} (give it as CC*PID)"))
        if await find_issuer(db_session, issuer.key) is not None:
            raise _refused(ValueError(f"issuer {issuer.key!r} exists"), 409)
        try:
            row = await add_issuer(db_session, issuer, party.id if party else None)
        except IssuerError as exc:
            raise _refused(exc, 409) from None
        return _issuer_out(row, party)


@router.patch(
    "/billing/issuers/{key}",
    summary="Set an issuer's legal registration id (what was held outside VAT for want of it is then invoiced)",
    dependencies=[Depends(require_hub)],
    responses=errors(403, 404),
)
async def patch_issuer(request: Request, key: str, body: IssuerPatch) -> IssuerOut:
    async with _hub(request).db.session() as db_session:
        if await find_issuer(db_session, key) is None:
            raise _refused(ValueError(f"no issuer {key!r}"), 404)
        try:
            row = await set_registration_id(db_session, key, body.registration_id)
        except IssuerError as exc:
            raise _refused(exc) from None
        party = await db_session.get(Party, row.party_id) if row.party_id is not None else None
        return _issuer_out(row, party)


@router.get(
    "/billing/invoices",
    summary="Invoices and credit notes, oldest first (a CPO's key: its own issuers')",
    responses=paged(),
    response_model=list[DocumentOut],
)
async def documents(
    request: Request,
    page: Paging = Depends(paging),
    issuer: str | None = Query(None, max_length=64, description="Only this issuer's"),
    kind: str | None = Query(None, pattern="^(invoice|credit_note)$", description="invoice or credit_note"),
    account: int | None = Query(None, ge=1, le=2**63 - 1, description="Only this billing account's"),
) -> list[DocumentOut]:
    query = _documents(principal(request))
    if issuer is not None:
        query = query.where(BillingIssuer.key == issuer)
    if kind is not None:
        query = query.where(BillingDocument.kind == kind)
    if account is not None:
        query = query.where(BillingDocument.account_id == account)
    async with _hub(request).db.session() as db_session:
        count = await db_session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
        ordered = query.order_by(BillingDocument.id).limit(page.limit).offset(page.offset)
        rows = (await db_session.execute(ordered)).all()
    page.publish(int(count or 0))
    return [_document_out(row, key, credited) for row, key, credited in rows]


@router.get("/billing/invoices/{number:docnumber}", summary="One document as issued", responses=errors(404))
async def document(
    request: Request, number: str, issuer: str | None = Query(None, max_length=64)
) -> DocumentDetail:
    async with _hub(request).db.session() as db_session:
        row, key, credited = await _one(db_session, principal(request), number, issuer)
    return _document_out(row, key, credited, DocumentDetail)


@router.get(
    "/billing/invoices/{number:docnumber}/pdf",
    summary="The document's Factur-X PDF (EN 16931 XML embedded)",
    response_class=Response,
    responses={
        200: {"content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}}},
        **errors(404),
    },
)
async def document_as_pdf(
    request: Request, number: str, issuer: str | None = Query(None, max_length=64)
) -> Response:
    async with _hub(request).db.session() as db_session:
        row, _key, _credited = await _one(db_session, principal(request), number, issuer)
        try:
            pdf = await document_pdf(db_session, row)
        except EInvoiceError:
            log.exception("could not print %s", number)
            raise HTTPException(500, f"could not print {number}") from None
    return Response(
        pdf,
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{filename(number)}"'},
    )


@router.post(
    "/billing/invoices/monthly",
    summary="Issue a fleet account's monthly invoice (idempotent)",
    dependencies=[Depends(require_hub)],
    responses=errors(403, 404),
)
async def monthly(request: Request, body: MonthlyIn) -> MonthlyOut:
    async with _hub(request).db.session() as db_session:
        account = await db_session.get(BillingAccount, body.account_id)
        if account is None:
            raise _refused(ValueError(f"no billing account {body.account_id}"), 404)
        try:
            before = await monthly_invoice_of(db_session, account, body.period)
            row = await issue_monthly_invoice(db_session, body.account_id, body.period)
        except ValueError as exc:
            raise _refused(exc) from None
        if row is None:
            return MonthlyOut(created=False, invoice=None)
        issuer = await db_session.get(BillingIssuer, row.issuer_id)
        assert issuer is not None  # a foreign key
        return MonthlyOut(created=before is None, invoice=_document_out(row, issuer.key, None))


@router.post(
    "/billing/invoices/{number:docnumber}/credit",
    summary="Issue an operator's credit note: a net amount or all that is left, with a reason",
    status_code=201,
    dependencies=[Depends(require_hub)],
    responses=errors(403, 404),
)
async def credit(
    request: Request, number: str, body: CreditIn, issuer: str | None = Query(None, max_length=64)
) -> DocumentOut:
    if (body.amount is None) == (not body.full):
        raise _refused(ValueError("give either an amount or full: true"))
    async with _hub(request).db.session() as db_session:
        invoice, key, _ = await _one(db_session, principal(request), number, issuer)
        if invoice.kind != INVOICE:
            raise _refused(ValueError(f"{number} is a credit note: only an invoice is credited"))
        try:
            note = await credit_invoice(
                db_session, number, key, body.amount, reason=body.reason, key=body.key
            )
        except ValueError as exc:
            raise _refused(exc) from None
        return _document_out(note, key, number)


@router.get(
    "/billing/accounts",
    summary="Billing accounts (a CPO's key: its own issuers')",
    responses=paged(),
    response_model=list[AccountOut],
)
async def accounts(request: Request, page: Paging = Depends(paging)) -> list[AccountOut]:
    who = principal(request)
    async with _hub(request).db.session() as db_session:
        items = await account_items(db_session, None if who.is_hub else who.cpo_id)
    return page.slice([AccountOut(**item) for item in items])
