"""``/api/billing`` payments: the payments and refunds recorded against invoices (paged), and a bank transfer
recorded against an invoice.

Typed responses. A CPO's key sees only the payments of documents its own issuers issued (or it is billed on);
recording a transfer needs the hub operator's key. Bad input is a 4xx with one sentence.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from decimal import Decimal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from billing import api_paths  # noqa: F401 (registers the {number:docnumber} path parameter)
from billing.payments.bank_transfers import record_bank_transfer
from billing.payments.ledger import (
    PaymentError,
    PaymentItem,
    invoice_by_number,
    list_payments,
    payments_query,
)
from kernel.apiauth import api_key, principal, require_hub
from kernel.apierrors import errors, refuse_nul
from kernel.apipaging import Paging, paged, paging
from kernel.components import Hub
from kernel.timeutil import utcnow

log = logging.getLogger(__name__)
router = APIRouter(
    tags=["billing"], dependencies=[Depends(api_key), Depends(refuse_nul)], responses=errors(401, 422)
)


class PaymentOut(BaseModel):
    """A payment or refund against an invoice."""

    id: int
    invoice: str | None = Field(description="The invoice's number")
    kind: str = Field(description="payment or refund")
    method: str = Field(description="card, sepa_debit or bank_transfer")
    provider: str = Field(description="stripe or manual")
    provider_ref: str | None = Field(description="The provider's id (pi_..., re_...)")
    amount: Decimal
    currency: str
    status: str = Field(description="pending, succeeded, failed or canceled")
    failure_reason: str | None
    reference: str | None = Field(description="A bank transfer's reference; a refund's PaymentIntent")
    attempt: int
    created_at: datetime
    settled_at: datetime | None


class BankTransferIn(BaseModel):
    """A payment received by bank transfer."""

    amount: Decimal = Field(description="In the invoice's currency, at most its minor units", gt=0)
    reference: str = Field(min_length=1, max_length=140, description="The bank's reference")
    received_on: date | None = Field(None, description="Day received (default: today)")


def _out(item: PaymentItem) -> PaymentOut:
    return PaymentOut(**item.as_dict())


@router.get("/billing/payments", summary="Payments and refunds, oldest first", responses=paged())
async def payments(
    request: Request,
    page: Paging = Depends(paging),
    invoice: str | None = Query(None, description="Only this invoice's (its number)"),
) -> list[PaymentOut]:
    hub: Hub = request.app.state.hub
    who = principal(request)
    async with hub.db.session() as db_session:
        document_id = None
        if invoice is not None:
            try:
                document = await invoice_by_number(db_session, invoice)
            except PaymentError as exc:
                raise HTTPException(404, str(exc)) from None
            document_id = document.id
        query = payments_query(document_id=document_id, cpo_id=who.cpo_id).order_by(None).subquery()
        page.publish(int(await db_session.scalar(select(func.count()).select_from(query)) or 0))
        items = await list_payments(
            db_session, document_id=document_id, cpo_id=who.cpo_id, limit=page.limit, offset=page.offset
        )
    if invoice is not None and not items and not who.is_hub:
        raise HTTPException(404, f"no invoice {invoice}")  # another issuer's invoice is unknown to this key
    return [_out(item) for item in items]


@router.post(
    "/billing/invoices/{number:docnumber}/payments",
    summary="Record a bank transfer against an invoice (the same reference twice is one payment)",
    dependencies=[Depends(require_hub)],
    status_code=201,
    responses=errors(403, 404, 409),
)
async def bank_transfer(request: Request, number: str, body: BankTransferIn) -> PaymentOut:
    hub: Hub = request.app.state.hub
    try:
        async with hub.db.session() as db_session:
            item = await record_bank_transfer(
                db_session, number, body.amount, body.reference, body.received_on or utcnow().date()
            )
    except PaymentError as exc:
        message = str(exc)
        log.info("bank transfer on %s refused: %s", number, message)
        code = 404 if message.startswith("no invoice") else 409 if "already recorded" in message else 422
        raise HTTPException(code, message) from None
    return _out(item)
