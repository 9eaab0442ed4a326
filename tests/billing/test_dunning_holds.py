"""Holds for unpaid invoices as the gateway's authorizer enforces them (issue 14): a driver account's hold is on
its token only, a fleet's on every token of the fleet and no other; a lowered limit is the lower of the hold's
and the token's own; a held token with real-time authorization is refused without asking; one query reads the
holds whatever their number; a credit note settles an invoice and releases its holds; a reminder without an
address is recorded as not sent; a party's (B2B) account has no tokens to hold and its step says so."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import event, select

import billing
from billing.store.accounts import party_account
from billing.store.dunning import invoice_steps, run_dunning
from billing.store.holds import release_if_settled
from billing.store.issuers import get_issuer
from cpo_gateway.authorization import ACCEPTED, BLOCKED, NO_CREDIT, Authorizer, AuthResult
from kernel.db.engine import Database
from kernel.models import BillingDocument, BillingHold, OutboxMessage, Token
from kernel.seams import Services
from kernel.timeutil import utcnow
from tests.billing.dunning_kit import FLEET_BUYER, TOKEN, Dunned, day, seed, seed_driver
from tests.billing.store_kit import add_credit
from tests.world.fleets import add_fleet_with_manager, add_session, add_token

BLOCK_ONLY = {"rules": [{"name": "block", "days_after_due": 1, "action": "block_tokens"}]}
LIMIT_ONLY = {"rules": [{"name": "limit", "days_after_due": 1, "action": "lower_limit", "limit": "50"}]}
QUIET = {"rules": [{"name": "remind", "days_after_due": 1, "action": "reminder"}]}


async def _authorize(db: Database, d: Dunned, uid: str, services: Services | None = None) -> AuthResult:
    return await Authorizer(db, services).authorize(uid, charge_point_id=d.world.charge_point_id)


async def test_a_drivers_hold_is_on_its_token_a_fleets_on_its_tokens_only(db: Database) -> None:
    fleet = await seed(db, schedule=BLOCK_ONLY)
    await add_token(db, fleet.world, "Acme Logistics", "ACME0002")  # a second token of the fleet
    await add_fleet_with_manager(db, fleet.world, "Other Fleet", "other@fleet.example")
    await add_token(db, fleet.world, "Other Fleet", "OTHER001")
    driver = await seed_driver(db, fleet)
    assert await run_dunning(db, today=day(driver, 1)) == 2  # the fleet's and the driver's invoice
    async with db.session() as s:
        holds = {(h.fleet_id, h.token_id) for h in await s.scalars(select(BillingHold))}
    assert holds == {(fleet.world.fleets["Acme Logistics"], None), (None, driver.token_id)}
    for uid, number in ((TOKEN, fleet.number), ("ACME0002", fleet.number), ("DRIVER01", driver.number)):
        result = await _authorize(db, fleet, uid)
        assert (result.status, result.reason) == (BLOCKED, f"unpaid invoice {number}"), uid
    assert (await _authorize(db, fleet, "OTHER001")).status == ACCEPTED

    credit_id = await add_credit(db, driver.cdr_id)  # its credit note settles the driver's invoice
    async with db.session() as s:
        note = await billing.issue_cdr_credit_note(s, credit_cdr_id=credit_id)
        assert note.credits_document_id == driver.document_id
        assert await release_if_settled(s, driver.document_id) == 1
        assert await release_if_settled(s, fleet.document_id) == 0  # the fleet's is still unpaid
    assert (await _authorize(db, fleet, "DRIVER01")).status == ACCEPTED
    assert (await _authorize(db, fleet, TOKEN)).status == BLOCKED
    async with db.session() as s:
        doc = await s.get(BillingDocument, driver.document_id)
        assert doc is not None
        assert [st.rule for st in await invoice_steps(s, doc)] == ["block", "release"]


async def _set_limit(db: Database, token_id: int, limit: str | None) -> None:
    async with db.session() as s:
        token = await s.get(Token, token_id)
        assert token is not None
        token.monthly_limit = Decimal(limit) if limit is not None else None
        token.limit_currency = "EUR"


async def test_the_lowered_limit_is_the_lower_of_the_holds_and_the_tokens(db: Database) -> None:
    d = await seed(db, schedule=LIMIT_ONLY)  # one session of this month: 10.71 EUR spent
    await run_dunning(db, today=day(d, 1))
    assert (await _authorize(db, d, TOKEN)).status == ACCEPTED  # under the lowered limit of 50
    await _set_limit(db, d.token_id, "8")  # the token's own limit is lower: that one applies
    result = await _authorize(db, d, TOKEN)
    assert (
        result.status == NO_CREDIT and "monthly limit 8.00 EUR (lowered for unpaid invoice" in result.reason
    )
    await _set_limit(db, d.token_id, "100")
    assert (await _authorize(db, d, TOKEN)).status == ACCEPTED
    async with db.session() as s:  # a lower hold's limit: refused
        hold = (await s.scalars(select(BillingHold))).one()
        hold.limit = Decimal("5")
    result = await _authorize(db, d, TOKEN)
    assert (
        result.status == NO_CREDIT and "monthly limit 5.00 EUR" in result.reason and d.number in result.reason
    )


class _Allowing:
    """The real-time seam answering Accepted to everything, counting the questions."""

    def __init__(self) -> None:
        self.asked = 0

    async def authorize(self, uid: str, token_type: str, **where: Any) -> AuthResult:
        self.asked += 1
        return AuthResult(ACCEPTED, None, "allowed by the eMSP")


async def test_a_held_token_with_real_time_authorization_is_refused_without_asking(db: Database) -> None:
    d = await seed(db, schedule=BLOCK_ONLY)
    async with db.session() as s:
        token = await s.get(Token, d.token_id)
        assert token is not None
        token.whitelist = "NEVER"
    allowing = _Allowing()
    services = Services(realtime_authorizer=allowing)  # type: ignore[arg-type]
    assert (await _authorize(db, d, TOKEN, services)).reason == "allowed by the eMSP"
    await run_dunning(db, today=day(d, 1))
    result = await _authorize(db, d, TOKEN, services)
    assert (result.status, result.reason, allowing.asked) == (BLOCKED, f"unpaid invoice {d.number}", 1)


async def test_one_query_reads_the_holds_whatever_their_number(db: Database) -> None:
    """Five lowered limits (100..104 EUR, over this month's 10.71): one query for the holds, one for the
    month's CDRs."""
    d = await seed(db, schedule=BLOCK_ONLY)
    async with db.session() as s:
        for n in range(5):  # released holds of earlier invoices, and lowered limits
            s.add(BillingHold(account_id=d.account_id, document_id=d.document_id, fleet_id=None,
                              token_id=d.token_id, action="lower_limit", limit=Decimal(100 + n),
                              currency="EUR", rule="limit"))  # fmt: skip
    statements: list[str] = []
    spending: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "billing_holds" in statement:
            statements.append(statement)
        if "FROM cdrs" in statement:
            spending.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        assert (await _authorize(db, d, TOKEN)).status == ACCEPTED
        assert len(statements) == 1
        assert len(spending) == 1  # the month's spending summed once for the five lowered limits
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)


async def test_a_reminder_without_an_address_is_recorded_as_not_sent(db: Database) -> None:
    fleet = await seed(db, schedule=QUIET)
    driver = await seed_driver(db, fleet, email=None)
    assert await run_dunning(db, today=day(driver, 1)) == 2
    async with db.session() as s:
        [mail] = (await s.scalars(select(OutboxMessage))).all()  # the fleet's manager only
        doc = await s.get(BillingDocument, driver.document_id)
        assert doc is not None
        [step] = await invoice_steps(s, doc)
    assert mail.destination == "manager@acme.example"
    assert step.detail == {"sent": False, "reason": "no e-mail address for the account"}


async def test_a_partys_invoice_never_holds_tokens_and_no_block_step_is_made(db: Database) -> None:
    """A party's (B2B) invoice is dunned with its issuer's reminders only: a block-only schedule does nothing
    to it (no hold, no step), while the fleet's own overdue invoice is blocked as before."""
    d = await seed(db, schedule=BLOCK_ONLY)
    _, cdr_id = await add_session(db, d.world, TOKEN, utcnow() - timedelta(hours=5), "3")
    assert cdr_id is not None
    async with db.session() as s:
        account = await party_account(s, await get_issuer(s, "voltstreet"), d.world.cpo_id, FLEET_BUYER)
        doc = await billing.issue_session_invoice(
            s, issuer_key="voltstreet", cdr_id=cdr_id, buyer=FLEET_BUYER, account_id=account.id
        )
        document_id = doc.id
    assert await run_dunning(db, today=day(d, 1)) == 1  # the fleet's block only
    assert await run_dunning(db, today=day(d, 1)) == 0
    async with db.session() as s:
        doc = await s.get(BillingDocument, document_id)
        assert doc is not None
        assert await invoice_steps(s, doc) == []
        holds = (await s.scalars(select(BillingHold))).all()
    assert [h.document_id for h in holds] == [d.document_id]
