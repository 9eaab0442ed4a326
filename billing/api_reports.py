"""``/api/billing/reports/...``: billing's reports for operators and issuers, as typed JSON or as CSV.

* ``GET /api/billing/reports/aging?as_of=2026-11-30``: accounts receivable per issuer and currency, in aging
  buckets, as they stood at the end of that day (today by default);
* ``GET /api/billing/reports/payments?period=2026-11``: the payments and refunds of a month, and their totals;
* ``GET /api/billing/reports/reconciliation?period=2026-11``: each invoice of the month against its CDRs (an
  invoice split from its lines outside the scope of VAT over the pair, ``split_with`` naming the other) and
  payments, and the exceptions.

``issuer=KEY`` narrows to one issuer. The hub operator's keys see every issuer; a party's key (a CPO's) sees
the issuers of its own party only (another issuer is a 404). ``format=csv`` or ``Accept: text/csv`` gives the
whole report as CSV (the same rows as ``evhub billing report ... --csv``); in JSON the report's list (aging
rows, payments, reconciled invoices) is paged with ``limit`` and ``offset`` like every list of the API
(``X-Total-Count``), the totals and exceptions always whole.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.store import reports
from kernel.apiauth import api_key, principal
from kernel.apierrors import errors, refuse_nul
from kernel.apipaging import HEADERS, Paging, paging
from kernel.components import Hub
from kernel.models import BillingIssuer
from kernel.timeutil import utcnow

router = APIRouter(
    tags=["billing"], dependencies=[Depends(api_key), Depends(refuse_nul)], responses=errors(401, 404, 422)
)

CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"text/csv": {}},
        "headers": HEADERS,
        "description": "JSON (its list paged by limit and offset), or the whole report as CSV with format=csv",
    }
}


class AgingRowOut(BaseModel):
    receivables: str  # customer (fleets, drivers) or party (B2B invoices to a CPO or eMSP)
    issuer: str
    currency: str
    buckets: dict[str, Decimal]
    total: Decimal


class AgingOut(BaseModel):
    """Receivables at the end of ``as_of`` per issuer and currency, customer and party (B2B) apart."""

    as_of: date
    rows: list[AgingRowOut]


class PaymentOut(BaseModel):
    date: date
    issuer: str
    document: str | None
    kind: str
    method: str
    provider: str
    provider_ref: str | None
    reference: str | None
    currency: str
    amount: Decimal
    status: str


class PaymentTotalOut(BaseModel):
    issuer: str
    currency: str
    kind: str
    count: int
    amount: Decimal


class PaymentsOut(BaseModel):
    """A month's payments and refunds (every status) and the succeeded totals."""

    period: str
    payments: list[PaymentOut]
    totals: list[PaymentTotalOut]


class InvoiceCheckOut(BaseModel):
    issuer: str
    number: str
    currency: str
    cdrs: int
    cdrs_excl_vat: Decimal
    lines_excl_vat: Decimal
    difference: Decimal
    payable: Decimal
    credited: Decimal
    paid: Decimal
    outstanding: Decimal
    split_with: str = Field(
        "", description="the other invoice of a split pair (lines outside the scope of VAT on their own)"
    )


class ExceptionOut(BaseModel):
    kind: str
    issuer: str
    ref: str
    currency: str
    amount: Decimal
    detail: str


class ReconciliationOut(BaseModel):
    """A month's invoices against their CDRs and payments; ``closed``: uninvoiced CDRs are exceptions."""

    period: str
    closed: bool
    invoices: list[InvoiceCheckOut]
    exceptions: list[ExceptionOut]


async def _scope(request: Request, db_session: AsyncSession, issuer: str | None) -> list[int] | None:
    """The issuers the caller may see (None: all), 404 for an issuer that is not theirs or does not exist."""
    who = principal(request)
    mine = None
    if not who.is_hub:
        mine = list(
            (
                await db_session.scalars(select(BillingIssuer.id).where(BillingIssuer.party_id == who.cpo_id))
            ).all()
        )
    if issuer is not None:
        query = select(BillingIssuer.id).where(BillingIssuer.key == issuer)
        found = await db_session.scalar(query)
        if found is None or (mine is not None and found not in mine):
            raise HTTPException(404, f"no issuer {issuer!r}")
    return mine


def _wants_csv(request: Request, fmt: str | None) -> bool:
    if fmt is not None:
        if fmt not in ("csv", "json"):
            raise HTTPException(422, "format is csv or json")
        return fmt == "csv"
    return "text/csv" in request.headers.get("accept", "")


def _csv(text: str, name: str) -> Response:
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _period(period: str | None) -> str:
    return period or f"{utcnow():%Y-%m}"


@router.get(
    "/billing/reports/aging",
    summary="Accounts receivable in aging buckets per issuer and currency",
    responses=CSV_RESPONSE,
    response_model=AgingOut,
)
async def aging(
    request: Request,
    as_of: date | None = Query(None, description="the day (end of); today by default"),
    issuer: str | None = Query(None, max_length=64),
    format: str | None = Query(None, description="csv or json"),
    page: Paging = Depends(paging),
) -> Response | AgingOut:
    hub: Hub = request.app.state.hub
    day = as_of or utcnow().date()
    async with hub.db.session() as db_session:
        scope = await _scope(request, db_session, issuer)
        rows = await reports.aging_report(db_session, day, issuer=issuer, issuer_ids=scope)
    if _wants_csv(request, format):
        return _csv(reports.to_csv(reports.AGING_HEADER, reports.aging_rows(rows)), f"aging-{day}.csv")
    return AgingOut(
        as_of=day,
        rows=[
            AgingRowOut(
                receivables=r.receivables,
                issuer=r.issuer,
                currency=r.currency,
                buckets=r.buckets,
                total=r.total,
            )
            for r in page.slice(rows)
        ],
    )


@router.get(
    "/billing/reports/payments",
    summary="Payments and refunds of a month, with totals",
    responses=CSV_RESPONSE,
    response_model=PaymentsOut,
)
async def payments(
    request: Request,
    period: str | None = Query(None, description="YYYY-MM; this month by default", max_length=7),
    issuer: str | None = Query(None, max_length=64),
    format: str | None = Query(None, description="csv or json"),
    page: Paging = Depends(paging),
) -> Response | PaymentsOut:
    hub: Hub = request.app.state.hub
    month = _period(period)
    try:
        async with hub.db.session() as db_session:
            scope = await _scope(request, db_session, issuer)
            lines, totals = await reports.payments_report(db_session, month, issuer=issuer, issuer_ids=scope)
    except reports.ReportError as err:
        raise HTTPException(422, str(err)) from None
    if _wants_csv(request, format):
        return _csv(
            reports.to_csv(reports.PAYMENTS_HEADER, reports.payment_rows(lines)), f"payments-{month}.csv"
        )
    return PaymentsOut(
        period=month,
        payments=[
            PaymentOut(
                date=p.day,
                issuer=p.issuer,
                document=p.document,
                kind=p.kind,
                method=p.method,
                provider=p.provider,
                provider_ref=p.provider_ref,
                reference=p.reference,
                currency=p.currency,
                amount=p.amount,
                status=p.status,
            )
            for p in page.slice(lines)
        ],
        totals=[
            PaymentTotalOut(issuer=t.issuer, currency=t.currency, kind=t.kind, count=t.count, amount=t.amount)
            for t in totals
        ],
    )


@router.get(
    "/billing/reports/reconciliation",
    summary="Invoices against their CDRs and payments, and the exceptions",
    responses=CSV_RESPONSE,
    response_model=ReconciliationOut,
)
async def reconciliation(
    request: Request,
    period: str | None = Query(None, description="YYYY-MM; this month by default", max_length=7),
    issuer: str | None = Query(None, max_length=64),
    format: str | None = Query(None, description="csv or json"),
    page: Paging = Depends(paging),
) -> Response | ReconciliationOut:
    hub: Hub = request.app.state.hub
    month = _period(period)
    try:
        async with hub.db.session() as db_session:
            scope = await _scope(request, db_session, issuer)
            rec = await reports.reconciliation_report(
                db_session, month, utcnow().date(), issuer=issuer, issuer_ids=scope
            )
    except reports.ReportError as err:
        raise HTTPException(422, str(err)) from None
    if _wants_csv(request, format):
        text = reports.to_csv(reports.RECONCILIATION_HEADER, reports.reconciliation_rows(rec))
        return _csv(text, f"reconciliation-{month}.csv")
    return ReconciliationOut(
        period=rec.period,
        closed=rec.closed,
        invoices=[
            InvoiceCheckOut(
                issuer=c.issuer,
                number=c.number,
                currency=c.currency,
                cdrs=c.cdrs,
                cdrs_excl_vat=c.cdrs_excl_vat,
                lines_excl_vat=c.lines_excl_vat,
                difference=c.difference,
                payable=c.payable,
                credited=c.credited,
                paid=c.paid,
                outstanding=c.outstanding,
                split_with=c.split_with,
            )
            for c in page.slice(rec.invoices)
        ],
        exceptions=[
            ExceptionOut(
                kind=e.kind, issuer=e.issuer, ref=e.ref, currency=e.currency, amount=e.amount, detail=e.detail
            )
            for e in rec.exceptions
        ],
    )
