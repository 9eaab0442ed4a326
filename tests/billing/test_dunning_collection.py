"""Dunning's payment retries through the payments part against a real localstripe (issue 14): a declined card's
retry is recorded as failed and the block follows; once the fleet has a working card the next retry takes the
money, and the payment itself releases the block at once (the gateway accepts the token again) before the job
runs again, which then has nothing left to do."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select

from billing.dunning_job import run_dunning_job
from billing.store.balances import balance
from billing.store.dunning import invoice_steps
from cpo_gateway.authorization import Authorizer
from kernel.components import Hub
from kernel.db.engine import Database
from kernel.models import BillingDocument, BillingHold, BillingPayment
from simulators.localstripe import CARD_DECLINED_ON_CHARGE, CARD_OK, LocalStripe
from tests.billing.dunning_kit import TOKEN, Dunned, day, seed
from tests.billing.payments_kit import intents, settings_for, with_card

SCHEDULE = {
    "rules": [
        {"name": "retry", "days_after_due": 1, "action": "retry_payment", "times": 3, "every_days": 3},
        {"name": "block", "days_after_due": 2, "action": "block_tokens"},
    ]
}


async def _status(db: Database, d: Dunned) -> str:
    return (await Authorizer(db).authorize(TOKEN, charge_point_id=d.world.charge_point_id)).status


async def test_retries_collect_through_localstripe_and_the_payment_releases_the_block(
    db: Database, localstripe: LocalStripe, monkeypatch: pytest.MonkeyPatch
) -> None:
    from billing.payments import stripe_provider

    settings = settings_for(db, localstripe)
    monkeypatch.setattr(stripe_provider, "_settings", settings)
    d = await seed(db, schedule=SCHEDULE)
    await with_card(db, localstripe, d.account_id, CARD_DECLINED_ON_CHARGE)
    hub = Hub(settings=settings, db=db, node_name="t")

    assert await run_dunning_job(hub, day(d, 1)) == 1
    assert await run_dunning_job(hub, day(d, 2)) == 1
    assert await _status(db, d) == "Blocked"
    async with db.session() as s:
        [declined] = (await s.scalars(select(BillingPayment))).all()
    assert (declined.status, declined.attempt) == ("failed", 2)  # retry 1 is the invoice's 2nd attempt

    await with_card(db, localstripe, d.account_id, CARD_OK)
    assert await run_dunning_job(hub, day(d, 4)) == 1  # retry 2 takes the money ...
    assert await _status(db, d) == "Accepted"  # ... and the payment released the block
    async with db.session() as s:
        paid = (await s.scalars(select(BillingPayment).where(BillingPayment.status == "succeeded"))).one()
        assert paid.amount == d.payable and paid.attempt == 3
        doc = await s.get(BillingDocument, d.document_id)
        assert doc is not None
        assert (await balance(s, doc)).outstanding == Decimal("0")
        steps = [(st.rule, st.detail.get("outcome")) for st in await invoice_steps(s, doc)]
        [hold] = (await s.scalars(select(BillingHold))).all()
    assert steps == [("retry", "failed"), ("block", None), ("retry", "succeeded"), ("release", None)]
    assert hold.released_at is not None
    assert [i["status"] for i in intents(localstripe)].count("succeeded") == 1
    assert await run_dunning_job(hub, day(d, 7)) == 0  # paid: no third retry, nothing to release
