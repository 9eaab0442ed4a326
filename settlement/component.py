"""Settlement inside ``evhub serve``: a monthly job that settles and closes the previous month, and the
read-only API ``/api/settlement/runs`` (a CPO key sees only its own statements and rejected CDRs) and
``/api/agreements``."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, Request
from pydantic import BaseModel
from sqlalchemy import select

from kernel.apiauth import api_key, principal, require_hub
from kernel.apierrors import errors, refuse_nul
from kernel.apipaging import Paging, paged, paging
from kernel.components import Hub
from kernel.models import Cdr, SettlementRejection, SettlementRun, SettlementStatement
from kernel.timeutil import utcnow
from settlement.agreement_store import AgreementChangeError, add_agreements, load_agreements
from settlement.core.accounting_periods import period_of
from settlement.core.agreements import Agreement, dump_agreements
from settlement.job import run_period

log = logging.getLogger(__name__)
router = APIRouter(
    tags=["settlement"], dependencies=[Depends(api_key), Depends(refuse_nul)], responses=errors(401, 422)
)


class StatementOut(BaseModel):
    party: str
    currency: str
    net: Decimal
    vat: Decimal
    gross: Decimal
    hash: str


class RejectionOut(BaseModel):
    """A CDR the run could not settle, why, and the period that first rejected it."""

    cdr_id: str
    reason: str
    service_period: str
    first_rejected_in: str


class RunOut(BaseModel):
    """A settlement run of a period, with the statements and rejected CDRs the key may see."""

    period: str
    sequence: int
    status: str
    content_hash: str | None
    cdrs: int
    closed_at: datetime | None
    statements: list[StatementOut]
    rejected: list[RejectionOut]


@router.get(
    "/settlement/runs", summary="Settlement runs with their statements and content hashes", responses=paged()
)
async def runs(request: Request, page: Paging = Depends(paging)) -> list[RunOut]:
    hub: Hub = request.app.state.hub
    who = principal(request)
    async with hub.db.session() as db_session:
        rows = await page.rows(db_session, select(SettlementRun).order_by(SettlementRun.id))
        query = select(SettlementStatement).where(SettlementStatement.run_id.in_([r.id for r in rows]))
        if not who.is_hub:
            query = query.where(SettlementStatement.party_id == who.cpo_id)
        statements = (await db_session.scalars(query.order_by(SettlementStatement.id))).all()
        rejections = select(SettlementRejection, Cdr.cdr_uid).join(Cdr, Cdr.id == SettlementRejection.cdr_id)
        rejections = rejections.where(SettlementRejection.run_id.in_([r.id for r in rows]))
        if not who.is_hub:
            rejections = rejections.where(Cdr.cpo_id == who.cpo_id)
        rejected = (await db_session.execute(rejections.order_by(SettlementRejection.id))).all()
    rejected_by_run: dict[int, list[RejectionOut]] = {}
    for rejection, cdr_uid in rejected:
        rejected_by_run.setdefault(rejection.run_id, []).append(
            RejectionOut(
                cdr_id=cdr_uid,
                reason=rejection.reason,
                service_period=rejection.service_period,
                first_rejected_in=rejection.first_rejected_in,
            )
        )
    by_run: dict[int, list[StatementOut]] = {}
    for st in statements:
        by_run.setdefault(st.run_id, []).append(
            StatementOut(
                party=st.party,
                currency=st.currency,
                net=st.net,
                vat=st.vat,
                gross=st.gross,
                hash=st.content_hash,
            )
        )
    return [
        RunOut(
            period=r.period,
            sequence=r.sequence,
            status=r.status,
            content_hash=r.content_hash,
            cdrs=r.cdr_count,
            closed_at=r.closed_at,
            statements=by_run.get(r.id, []),
            rejected=rejected_by_run.get(r.id, []),
        )
        for r in rows
    ]


@router.get(
    "/agreements",
    summary="Every split agreement version",
    dependencies=[Depends(require_hub)],
    responses={**errors(403), **paged()},
)
async def agreements(request: Request, page: Paging = Depends(paging)) -> list[Agreement]:

    hub: Hub = request.app.state.hub
    async with hub.db.session() as db_session:
        return page.slice(dump_agreements(await load_agreements(db_session)))  # type: ignore[arg-type]


@router.post(
    "/agreements",
    summary="Add agreements or new versions (never edits a stored version or a closed period)",
    dependencies=[Depends(require_hub)],
    status_code=201,
    responses=errors(403),
)
async def add(request: Request, items: list[dict[str, Any]] = Body(...)) -> list[Agreement]:

    hub: Hub = request.app.state.hub
    try:
        async with hub.db.session() as db_session:
            added = await add_agreements(db_session, items)
    except AgreementChangeError as exc:
        raise HTTPException(422, str(exc)) from None
    return dump_agreements(added)  # type: ignore[return-value]


class SettlementComponent:
    """Settles and closes the previous month on the 1st at 03:00 UTC (``EVHUB_SETTLEMENT_DIR`` for exports)."""

    name = "settlement"

    def __init__(self) -> None:
        self._hub: Hub | None = None

    def install(self, hub: Hub) -> None:
        self._hub = hub
        if hub.app is not None:  # None in an OCPP worker process (evhub.workers)
            hub.app.include_router(router, prefix="/api")
        if hub.scheduler is not None:
            hub.scheduler.add_job(
                self.settle_previous_month,
                "cron",
                day=1,
                hour=3,
                minute=0,
                id="settlement.monthly",
                max_instances=1,
                coalesce=True,
            )

    async def settle_previous_month(self) -> None:

        assert self._hub is not None
        period = period_of(utcnow().replace(day=1) - timedelta(days=1)).key
        out = Path(self._hub.settings.settlement_dir)
        try:
            job = await run_period(self._hub.db, period, out_dir=out, close=True)
        except Exception:
            log.exception("monthly settlement failed", extra={"fields": {"period": period}})
            return
        log.info(
            "period settled", extra={"fields": {"period": period, "hash": job.result.summary.content_hash}}
        )

    async def start(self, hub: Hub) -> None:
        return None

    async def stop(self) -> None:
        return None
