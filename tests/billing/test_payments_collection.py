"""Collecting invoices through the official stripe SDK against a real localstripe (issue 14): the outbox message
queued in the issuing transaction, the charge made after commit, declines with the provider's reason, partial
payments adding up, and a crash at each step never charging twice (localstripe's PaymentIntents counted)."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from sqlalchemy import select

from billing.payments.channel import make_payment_sender
from billing.payments.collection import (
    CHANNEL,
    collect,
    collect_document,
    queue_attempt,
    request_collection,
)
from billing.payments.ledger import PaymentError
from billing.payments.stripe_provider import StripeProvider, provider_from_settings
from billing.store.balances import balance
from kernel.db.engine import Database
from kernel.models import BillingAccount, BillingDocument, BillingPayment
from kernel.models.outbox import OutboxMessage, OutboxStatus
from kernel.outbox import OutboxDispatcher, register_channel, unregister_channel
from kernel.ports import free_port
from kernel.settings import Settings
from simulators.localstripe import CARD_DECLINED_ON_CHARGE, LocalStripe
from tests.billing.payments_kit import (
    Crash,
    CrashAfterConfirm,
    CrashAfterCreate,
    account,
    fleet_with_account,
    intents,
    invoices,
    payments,
    provider_for,
    settings_for,
    with_card,
)

D = Decimal


@pytest.fixture
def use_localstripe(db: Database, localstripe: LocalStripe, monkeypatch: pytest.MonkeyPatch) -> LocalStripe:
    """The process's collection settings point at this test's localstripe."""
    from billing.payments import stripe_provider

    monkeypatch.setattr(stripe_provider, "_settings", settings_for(db, localstripe))
    return localstripe


async def _outstanding(db: Database, document_id: int) -> Decimal:
    async with db.session() as s:
        doc = await s.get(BillingDocument, document_id)
        assert doc is not None
        return (await balance(s, doc)).outstanding


async def test_issued_invoice_is_queued_then_collected_by_the_outbox(
    db: Database, use_localstripe: LocalStripe
) -> None:
    _, account_id = await fleet_with_account(db)
    assert await with_card(db, use_localstripe, account_id) == "card •••• 4242"
    [invoice] = await invoices(db, account_id)
    async with db.session() as s:  # what the issuing transaction does (twice: idempotent)
        doc = await s.get(BillingDocument, invoice.id)
        assert doc is not None
        await request_collection(s, doc)
        await request_collection(s, doc)
    assert intents(use_localstripe) == []  # nothing is charged inside the issuing transaction
    async with db.session() as s:
        [message] = (await s.scalars(select(OutboxMessage).where(OutboxMessage.channel == CHANNEL))).all()
        assert message.payload == {"document_id": invoice.id, "attempt": 1}
    register_channel(CHANNEL, make_payment_sender(db))
    try:
        await OutboxDispatcher(db, channels=[CHANNEL]).tick()
    finally:
        unregister_channel(CHANNEL)
    async with db.session() as s:
        delivered = await s.get(OutboxMessage, message.id)
        assert delivered is not None and delivered.status == OutboxStatus.DELIVERED
    [row] = await payments(db, invoice.id)
    assert (row.status, row.amount, row.currency, row.method, row.provider) == (
        "succeeded",
        D("9.41"),
        "EUR",
        "card",
        "stripe",
    )
    assert row.idempotency_key == f"evhub-invoice-{invoice.id}-1" and row.settled_at is not None
    [intent] = intents(use_localstripe)
    assert (intent["id"], intent["amount"], intent["currency"], intent["status"]) == (
        row.provider_ref,
        941,
        "eur",
        "succeeded",
    )
    assert intent["metadata"]["evhub_document_id"] == str(invoice.id)
    assert await _outstanding(db, invoice.id) == 0
    # the same attempt again: the payment as it ended, nothing new at the provider
    again = await collect(db, invoice.id, 1)
    assert again is not None and again.id == row.id and len(intents(use_localstripe)) == 1


async def test_the_payment_channel_parks_a_refusal_and_retries_a_network_error(
    db: Database, use_localstripe: LocalStripe
) -> None:
    _, account_id = await fleet_with_account(db)
    [no_method, unreachable] = await invoices(db, account_id, 2)
    async with db.session() as s:
        assert await queue_attempt(s, no_method.id, 1) and not await queue_attempt(s, no_method.id, 1)
    register_channel(CHANNEL, make_payment_sender(db))
    try:
        await OutboxDispatcher(db, channels=[CHANNEL]).tick()
    finally:
        unregister_channel(CHANNEL)
    async with db.session() as s:
        [parked] = (await s.scalars(select(OutboxMessage).where(OutboxMessage.channel == CHANNEL))).all()
        assert parked.status == OutboxStatus.PARKED and "no payment method" in (parked.parked_reason or "")
    await with_card(db, use_localstripe, account_id)
    async with db.session() as s:
        await queue_attempt(s, unreachable.id, 1)
    gone = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    register_channel(CHANNEL, make_payment_sender(db, lambda: StripeProvider("sk_test_x", api_base=gone)))
    try:
        await OutboxDispatcher(db, channels=[CHANNEL]).tick()
    finally:
        unregister_channel(CHANNEL)
    async with db.session() as s:
        message = await s.scalar(
            select(OutboxMessage).where(OutboxMessage.dedupe_key == f"payment:{unreachable.id}:1")
        )
        assert message is not None and message.status == OutboxStatus.PENDING and message.attempts == 1
    [row] = await payments(db, unreachable.id)
    assert row.status == "pending" and row.provider_ref is None  # retried later with the same attempt
    done = await collect(db, unreachable.id, 1)
    assert done is not None and done.status == "succeeded" and done.id == row.id


async def test_no_collection_without_method_or_with_auto_collect_off(
    db: Database, use_localstripe: LocalStripe
) -> None:
    _, account_id = await fleet_with_account(db)
    [first, second] = await invoices(db, account_id, 2)
    async with db.session() as s:
        doc = await s.get(BillingDocument, first.id)
        assert doc is not None
        await request_collection(s, doc)  # no payment method yet
    await with_card(db, use_localstripe, account_id)
    async with db.session() as s:
        row = await s.get(BillingAccount, account_id)
        assert row is not None
        row.auto_collect = False
        doc = await s.get(BillingDocument, second.id)
        assert doc is not None
        await request_collection(s, doc)
        assert (await s.scalars(select(OutboxMessage).where(OutboxMessage.channel == CHANNEL))).all() == []


async def test_declined_card_fails_with_the_reason_and_a_retry_is_a_new_attempt(
    db: Database, use_localstripe: LocalStripe
) -> None:
    _, account_id = await fleet_with_account(db)
    await with_card(db, use_localstripe, account_id, CARD_DECLINED_ON_CHARGE)
    [invoice] = await invoices(db, account_id)
    failed = await collect(db, invoice.id, 1)
    assert failed is not None and failed.status == "failed"
    assert failed.failure_reason and "declined" in failed.failure_reason
    assert await _outstanding(db, invoice.id) == D("9.41")
    assert await collect(db, invoice.id, 1) == failed  # an ended attempt is not made again
    await with_card(db, use_localstripe, account_id)  # the customer adds a card that pays
    retried = await collect_document(db, invoice.id, 1)  # dunning's first retry: attempt 2
    assert retried is not None and retried.status == "succeeded" and retried.attempt == 2
    assert [i["status"] for i in intents(use_localstripe)].count("succeeded") == 1
    assert await _outstanding(db, invoice.id) == 0
    assert await collect_document(db, invoice.id, 2) is None  # nothing owed any more


async def test_partial_payments_add_up(db: Database, use_localstripe: LocalStripe) -> None:
    from billing.payments.bank_transfers import record_bank_transfer

    _, account_id = await fleet_with_account(db)
    await with_card(db, use_localstripe, account_id)
    [invoice] = await invoices(db, account_id)
    async with db.session() as s:
        await record_bank_transfer(s, invoice.number, "4.00", "TRF-1", invoice.issue_date)
    paid = await collect(db, invoice.id, 1)
    assert paid is not None and paid.amount == D("5.41") and paid.status == "succeeded"
    assert [i["amount"] for i in intents(use_localstripe)] == [541]
    rows = await payments(db, invoice.id)
    assert sum(r.amount for r in rows) == D("9.41") and await _outstanding(db, invoice.id) == 0


@pytest.mark.parametrize("crash", [CrashAfterCreate, CrashAfterConfirm])
async def test_a_crash_at_any_step_never_charges_twice(
    db: Database, use_localstripe: LocalStripe, crash: type[StripeProvider]
) -> None:
    _, account_id = await fleet_with_account(db)
    await with_card(db, use_localstripe, account_id)
    [invoice] = await invoices(db, account_id)
    dying = crash("sk_test_evhub_localstripe", api_base=use_localstripe.url)
    with pytest.raises(Crash):
        await collect(db, invoice.id, 1, provider=dying)
    await dying.aclose()
    [row] = await payments(db, invoice.id)
    assert row.status == "pending"  # the row was committed before the provider was called
    done = await collect(db, invoice.id, 1)  # the retry of the same attempt
    assert done is not None and done.status == "succeeded" and done.id == row.id
    statuses = [i["status"] for i in intents(use_localstripe)]
    assert statuses.count("succeeded") == 1, statuses  # exactly one charge; an orphan is never confirmed
    assert await collect(db, invoice.id, 1) == done
    assert len(await payments(db, invoice.id)) == 1 and await _outstanding(db, invoice.id) == 0


async def test_concurrent_collectors_of_one_attempt_charge_once(
    db: Database, use_localstripe: LocalStripe
) -> None:
    _, account_id = await fleet_with_account(db)
    await with_card(db, use_localstripe, account_id)
    [invoice] = await invoices(db, account_id)
    results = await asyncio.gather(*(collect(db, invoice.id, 1) for _ in range(4)))
    assert {(r.id, r.status) for r in results if r is not None} == {(results[0].id, "succeeded")}  # type: ignore[union-attr]
    assert [i["status"] for i in intents(use_localstripe)] == ["succeeded"]  # not even an orphan
    assert len(await payments(db, invoice.id)) == 1


async def test_collection_off_without_a_key_and_refusals(
    db: Database, localstripe: LocalStripe, caplog: pytest.LogCaptureFixture
) -> None:
    assert provider_from_settings(Settings(_env_file=None, database_url=db.url)) is None
    settings = settings_for(db, localstripe)
    assert "sk_test" not in repr(settings) and "whsec" not in repr(settings)
    assert "sk_test" not in repr(provider_for(localstripe))
    _, account_id = await fleet_with_account(db)
    [invoice] = await invoices(db, account_id)
    with pytest.raises(PaymentError, match="no payment method"):
        await collect(db, invoice.id, 1)
    with pytest.raises(PaymentError, match="no invoice"):
        await collect(db, invoice.id + 1000, 1)
    assert (await account(db, account_id)).payment_method_label is None
    async with db.session() as s:
        assert (await s.scalars(select(BillingPayment))).all() == []
