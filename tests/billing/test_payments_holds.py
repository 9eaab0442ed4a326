"""A payment that settles an invoice releases its holds (issue 14): the dunning helper's
``billing.store.holds.release_if_settled`` is called by a collected card payment, by localstripe's webhook and
by a bank transfer, in their transaction; a partial payment leaves the block in place."""

from __future__ import annotations

from datetime import date

import pytest

from billing.payments.bank_transfers import record_bank_transfer
from billing.payments.collection import collect
from billing.payments.ledger import list_payments
from billing.payments.webhooks import apply_event
from billing.store.holds import place_hold
from kernel.db.engine import Database
from kernel.models import BillingAccount, BillingDocument, BillingHold
from simulators.localstripe import SECRET_KEY, LocalStripe
from tests.billing.payments_kit import (
    Crash,
    CrashAfterConfirm,
    fleet_with_account,
    invoices,
    provider_for,
    with_card,
)


async def _block(db: Database, document_id: int) -> int:
    async with db.session() as s:
        document = await s.get(BillingDocument, document_id)
        assert document is not None and document.account_id is not None
        account = await s.get(BillingAccount, document.account_id)
        assert account is not None
        return (await place_hold(s, account, document, "block", "block-30")).id


async def _active(db: Database, hold_id: int) -> bool:
    async with db.session() as s:
        hold = await s.get(BillingHold, hold_id)
        assert hold is not None
        return hold.released_at is None


async def test_a_settling_payment_releases_the_block(db: Database, localstripe: LocalStripe) -> None:
    _, account_id = await fleet_with_account(db)
    await with_card(db, localstripe, account_id)
    by_card, by_transfer, by_webhook = await invoices(db, account_id, 3)
    holds = [await _block(db, doc.id) for doc in (by_card, by_transfer, by_webhook)]
    assert [await _active(db, h) for h in holds] == [True, True, True]

    paid = await collect(db, by_card.id, 1, provider=provider_for(localstripe))
    assert paid is not None and paid.status == "succeeded"
    assert not await _active(db, holds[0])

    async with db.session() as s:
        await record_bank_transfer(s, by_transfer.number, "5.00", "PART-1", date(2026, 6, 5))
    assert await _active(db, holds[1])  # 4.41 still outstanding
    async with db.session() as s:
        await record_bank_transfer(s, by_transfer.number, "4.41", "PART-2", date(2026, 6, 6))
    assert not await _active(db, holds[1])

    dying = CrashAfterConfirm(SECRET_KEY, api_base=localstripe.url)
    with pytest.raises(Crash):
        await collect(db, by_webhook.id, 1, provider=dying)
    await dying.aclose()
    assert await _active(db, holds[2])  # paid at the provider; the hub does not know yet
    async with db.session() as s:
        [pending] = await list_payments(s, document_id=by_webhook.id)
    event = {
        "id": "evt_hold",
        "type": "payment_intent.succeeded",
        "data": {"object": {"id": pending.provider_ref, "amount": 941, "currency": "eur"}},
    }
    assert await apply_event(db, event) == "applied"  # what the verified webhook applies
    assert not await _active(db, holds[2])
