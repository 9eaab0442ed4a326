"""The hourly job that issues the B2B documents of closed settlement runs (:mod:`billing.store.b2b`).

Idempotent: every document has its source key, so a second run (or two nodes at once) issues nothing new. The
job takes the closed runs without any document yet; a run whose documents were only partly issued (a party
without an identity, added later) is completed by ``evhub invoices issue-settlement --period PERIOD``, which
issues whatever is still missing. What is not issued is logged with the reason, never dropped.
"""

from __future__ import annotations

import logging

from billing.store.b2b import SettlementDocumentsError, closed_runs, has_documents, issue_run_documents
from kernel.components import Hub

log = logging.getLogger(__name__)


async def run_settlement_documents_job(hub: Hub) -> int:
    """Issue the documents of every closed settlement run that has none yet; the number issued."""
    async with hub.db.session() as db_session:
        pending = [
            run.id for run in await closed_runs(db_session) if not await has_documents(db_session, run)
        ]
    issued = 0
    for run_id in pending:
        try:
            outcomes = await issue_run_documents(hub.db, run_id)
        except SettlementDocumentsError as exc:
            log.warning("settlement documents of run %s: %s", run_id, exc)
            continue
        issued += sum(1 for o in outcomes if o.issued)
    return issued
