"""``/api/billing/dunning`` and ``/api/billing/invoices/{number}/dunning``: dunning status, typed.

Each account's outstanding and overdue amounts, state (ok / overdue / limited / blocked), the invoices its holds
wait for and its last step with its rule; and one invoice's steps done, each with its rule, and its holds. A
CPO's key sees the accounts it issues to (its issuers) or is billed as, and their invoices; any other invoice is
answered as unknown (404).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel
from sqlalchemy import select

from billing import api_paths  # noqa: F401 (registers the {number:docnumber} path parameter)
from billing.store.balances import balance
from billing.store.dunning import AccountDunning, StepView, account_statuses, invoice_by_number, invoice_steps
from billing.store.holds import holds_of
from billing.store.issuers import find_issuer
from kernel.apiauth import api_key, principal
from kernel.apierrors import errors, refuse_nul
from kernel.apipaging import Paging, paged, paging
from kernel.components import Hub
from kernel.models import BillingAccount, BillingIssuer

router = APIRouter(
    tags=["billing"], dependencies=[Depends(api_key), Depends(refuse_nul)], responses=errors(401, 422)
)


class StepOut(BaseModel):
    """A dunning step done: its rule, action, the day it was due, when it was done and what it did."""

    invoice: str
    key: str
    rule: str
    action: str
    due_on: date
    done_at: datetime
    detail: dict[str, Any]


class AccountDunningOut(BaseModel):
    """One account's dunning status, in its currency."""

    account_id: int
    issuer: str
    kind: str
    buyer: str
    currency: str
    outstanding: Decimal
    overdue: Decimal
    state: str
    held_for: list[str]
    last_step: StepOut | None


class HoldOut(BaseModel):
    """A block or lowered limit put for the invoice (active while ``released_at`` is null)."""

    action: str
    rule: str
    limit: Decimal | None
    currency: str | None
    since: datetime
    released_at: datetime | None


class InvoiceDunningOut(BaseModel):
    """One invoice's dunning: what is outstanding, the steps done (each with its rule) and its holds."""

    invoice: str
    issuer: str
    currency: str
    due_date: date | None
    outstanding: Decimal
    steps: list[StepOut]
    holds: list[HoldOut]


def _step(step: StepView) -> StepOut:
    return StepOut(
        invoice=step.invoice,
        key=step.key,
        rule=step.rule,
        action=step.action,
        due_on=step.due_on,
        done_at=step.done_at,
        detail=step.detail,
    )


def _account(status: AccountDunning) -> AccountDunningOut:
    return AccountDunningOut(
        account_id=status.account_id,
        issuer=status.issuer,
        kind=status.kind,
        buyer=status.buyer,
        currency=status.currency,
        outstanding=status.outstanding,
        overdue=status.overdue,
        state=status.state,
        held_for=list(status.held_for),
        last_step=_step(status.last_step) if status.last_step else None,
    )


@router.get(
    "/billing/dunning",
    summary="Each billing account's dunning status: outstanding, overdue, state and last step",
    responses={**paged(), **errors(404)},
)
async def dunning_status(
    request: Request,
    issuer: str | None = Query(None, description="Only this issuer's accounts", max_length=64),
    page: Paging = Depends(paging),
) -> list[AccountDunningOut]:
    hub: Hub = request.app.state.hub
    who = principal(request)
    async with hub.db.session() as db_session:
        if issuer is not None and await find_issuer(db_session, issuer) is None:
            raise HTTPException(404, f"no issuer {issuer}")
        statuses = await account_statuses(
            db_session, issuer_key=issuer, party_id=None if who.is_hub else who.cpo_id
        )
    return [_account(s) for s in page.slice(statuses)]


@router.get(
    "/billing/invoices/{number:docnumber}/dunning",
    summary="The dunning steps done for an invoice, each with its rule, and its holds",
    responses=errors(404),
)
async def invoice_dunning(
    request: Request,
    number: str,
    issuer: str | None = Query(None, description="The invoice's issuer (when numbers repeat)", max_length=64),
) -> InvoiceDunningOut:
    hub: Hub = request.app.state.hub
    who = principal(request)
    async with hub.db.session() as db_session:
        try:
            document = await invoice_by_number(db_session, number, issuer)
        except ValueError as exc:
            raise HTTPException(404, str(exc)) from None
        issuer_row = await db_session.get(BillingIssuer, document.issuer_id)
        assert issuer_row is not None
        if not who.is_hub:
            billed = await db_session.scalar(
                select(BillingAccount.party_id).where(BillingAccount.id == document.account_id)
            )
            if who.cpo_id not in (issuer_row.party_id, billed):
                raise HTTPException(404, f"no invoice {number}")
        figures = await balance(db_session, document)
        steps = await invoice_steps(db_session, document)
        holds = (await holds_of(db_session, [document.id])).get(document.id, [])
    return InvoiceDunningOut(
        invoice=document.number,
        issuer=issuer_row.key,
        currency=document.currency,
        due_date=document.due_date,
        outstanding=figures.outstanding,
        steps=[_step(s) for s in steps],
        holds=[
            HoldOut(
                action=h.action,
                rule=h.rule,
                limit=h.limit,
                currency=h.currency,
                since=h.since,
                released_at=h.released_at,
            )
            for h in holds
        ],
    )
