"""The billing desk (the portal's view) shows an account's dunning state, overdue amount and held invoices as the
dunning store decides them (issue 14): one place computes the state, so the portal and ``evhub dunning status``
never disagree (before, the desk counted "overdue" on the UTC day, the store on the account's own day)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from billing.desk import Desk
from billing.store.dunning import account_statuses, run_dunning
from kernel.clock import pinned
from kernel.db.engine import Database
from tests.billing.dunning_kit import day, pay, seed

BLOCK_ON_DAY_3 = {"rules": [{"name": "block", "days_after_due": 3, "action": "block_tokens"}]}


async def _both(db: Database, fleet_id: int) -> tuple[tuple[str, object, tuple[str, ...]], ...]:
    [view] = await Desk(db).fleet_accounts(fleet_id)
    async with db.session() as s:
        [status] = await account_statuses(s, account_ids=[view.account_id])
    return (
        (view.dunning_state, view.overdue, view.held_for),
        (status.state, status.overdue, status.held_for),
    )


async def test_the_desk_shows_the_dunning_stores_state(db: Database) -> None:
    d = await seed(db, schedule=BLOCK_ON_DAY_3, timezone="Europe/Berlin")
    fleet = d.world.fleets["Acme Logistics"]
    due = datetime(d.due.year, d.due.month, d.due.day, tzinfo=UTC)
    # 23:30 UTC on the due date is already the next day in Berlin: overdue for the account, on its day.
    with pinned(due + timedelta(hours=23, minutes=30)):
        desk, store = await _both(db, fleet)
        assert store[0] == "overdue" and desk == store
    with pinned(due + timedelta(days=3, hours=12)):
        assert await run_dunning(db, today=day(d, 3)) == 1
        desk, store = await _both(db, fleet)
        assert store == ("blocked", d.payable, (d.number,)) and desk == store
        await pay(db, d.document_id)
        desk, store = await _both(db, fleet)
        assert store[0] == "ok" and desk == store
