"""Refunds and bank transfers (issue 14): a credit note after a card payment is refunded through localstripe once
(a crash after the refund call, then a retry: one refund at localstripe), bank transfers recorded by reference
(the same reference twice is one payment; partial transfers add up), and bad input refused with one message. A
credit note after a card payment queues its refund in the issuing transaction; the outbox makes it."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

import billing
from billing.cdr_hook import billing_cdr_hook
from billing.payments.bank_transfers import record_bank_transfer
from billing.payments.channel import make_payment_sender
from billing.payments.collection import CHANNEL, collect
from billing.payments.ledger import PaymentError
from billing.payments.refunds import refund_document, request_refund
from billing.store.balances import balance
from kernel.db.engine import Database
from kernel.models import BillingDocument, BillingDocumentCdr, Cdr, OutboxMessage
from kernel.outbox import OutboxDispatcher, register_channel, unregister_channel
from simulators.localstripe import SECRET_KEY, LocalStripe
from tests.billing.payments_kit import (
    Crash,
    CrashAfterRefund,
    fleet_with_account,
    invoices,
    payments,
    provider_for,
    refunds,
    with_card,
)
from tests.billing.store_kit import add_credit

D = Decimal


async def _paid_then_credited(db: Database, ls: LocalStripe) -> BillingDocument:
    _, account_id = await fleet_with_account(db)
    await with_card(db, ls, account_id)
    [invoice] = await invoices(db, account_id)
    paid = await collect(db, invoice.id, 1, provider=provider_for(ls))
    assert paid is not None and paid.status == "succeeded"
    credit_cdr = await add_credit(db, await _cdr_of(db, invoice))  # the session's CDR corrected
    async with db.session() as s:
        note = await billing.issue_cdr_credit_note(s, credit_cdr_id=credit_cdr, issue_date=invoice.issue_date)
        assert note.credits_document_id == invoice.id and note.payable == D("9.41")
    return invoice


async def _cdr_of(db: Database, invoice: BillingDocument) -> int:
    async with db.session() as s:
        cdr_id = await s.scalar(
            select(BillingDocumentCdr.cdr_id).where(BillingDocumentCdr.document_id == invoice.id)
        )
        assert cdr_id is not None
        return int(cdr_id)


async def _outstanding(db: Database, invoice: BillingDocument) -> Decimal:
    async with db.session() as s:
        doc = await s.get(BillingDocument, invoice.id)
        assert doc is not None
        return (await balance(s, doc)).outstanding


async def test_a_credit_note_after_payment_is_refunded_once(db: Database, localstripe: LocalStripe) -> None:
    invoice = await _paid_then_credited(db, localstripe)
    assert await _outstanding(db, invoice) == D("-9.41")  # owed back
    [refund] = await refund_document(db, invoice.id, provider=provider_for(localstripe))
    assert (refund.kind, refund.amount, refund.status) == ("refund", D("9.41"), "succeeded")
    assert refund.provider_ref and refund.provider_ref.startswith("re_")
    [payment] = [p for p in await payments(db, invoice.id) if p.kind == "payment"]
    assert refund.reference == payment.provider_ref
    [at_stripe] = refunds(localstripe)
    assert (at_stripe["id"], at_stripe["amount"]) == (refund.provider_ref, 941)
    assert await _outstanding(db, invoice) == 0
    assert await refund_document(db, invoice.id, provider=provider_for(localstripe)) == []  # nothing owed
    async with db.session() as s:
        doc = await s.get(BillingDocument, invoice.id)
        assert (
            doc is not None and (await balance(s, doc)).status(date(2026, 6, 4)) == "refunded"
        )  # paid, credited in full, all given back


async def test_a_crash_after_the_refund_call_never_refunds_twice(
    db: Database, localstripe: LocalStripe
) -> None:
    invoice = await _paid_then_credited(db, localstripe)
    dying = CrashAfterRefund(SECRET_KEY, api_base=localstripe.url)
    with pytest.raises(Crash):
        await refund_document(db, invoice.id, provider=dying)
    await dying.aclose()
    [pending] = [p for p in await payments(db, invoice.id) if p.kind == "refund"]
    assert pending.status == "pending" and pending.provider_ref is None
    assert len(refunds(localstripe)) == 1  # made at localstripe, unknown to the hub
    [done] = await refund_document(db, invoice.id, provider=provider_for(localstripe))  # the retry
    assert done.id == pending.id and done.status == "succeeded"
    assert len(refunds(localstripe)) == 1  # found by its key, not made again
    assert await _outstanding(db, invoice) == 0


async def test_concurrent_refunds_refund_once(db: Database, localstripe: LocalStripe) -> None:
    invoice = await _paid_then_credited(db, localstripe)
    done = await asyncio.gather(
        *(refund_document(db, invoice.id, provider=provider_for(localstripe)) for _ in range(3))
    )
    assert len(refunds(localstripe)) == 1
    assert {(r.id, r.status) for items in done for r in items} == {(done[0][0].id, "succeeded")}
    assert await _outstanding(db, invoice) == 0


async def test_refund_refusals(db: Database, localstripe: LocalStripe) -> None:
    _, account_id = await fleet_with_account(db)
    [invoice] = await invoices(db, account_id)
    assert await refund_document(db, invoice.id, provider=provider_for(localstripe)) == []  # nothing paid
    async with db.session() as s:
        await record_bank_transfer(s, invoice.number, "10.00", "OVERPAID-1", date(2026, 6, 5))
    with pytest.raises(PaymentError, match="not paid through the payment provider"):
        await refund_document(db, invoice.id, provider=provider_for(localstripe))
    with pytest.raises(PaymentError, match="no invoice"):
        await refund_document(db, invoice.id + 99)


async def test_bank_transfers_add_up_and_a_reference_counts_once(db: Database) -> None:
    _, account_id = await fleet_with_account(db)
    [invoice] = await invoices(db, account_id)
    async with db.session() as s:
        first = await record_bank_transfer(s, invoice.number, "5.00", "NL-TRF-0001", date(2026, 6, 5))
    async with db.session() as s:
        again = await record_bank_transfer(s, invoice.number, D("5.00"), " NL-TRF-0001 ", date(2026, 6, 5))
    assert again.id == first.id
    assert (first.method, first.provider, first.status, first.reference) == (
        "bank_transfer",
        "manual",
        "succeeded",
        "NL-TRF-0001",
    )
    assert await _outstanding(db, invoice) == D("4.41")
    async with db.session() as s:
        await record_bank_transfer(s, invoice.number, "4.41", "NL-TRF-0002", date(2026, 6, 6))
    assert await _outstanding(db, invoice) == 0
    assert [p.amount for p in await payments(db, invoice.id)] == [D("5.00"), D("4.41")]
    for args, message in [
        (("INV-2099-000001", "1.00", "X"), "no invoice INV-2099-000001"),
        ((invoice.number, "1.001", "Y"), "more decimals"),
        ((invoice.number, "-1", "Y"), "negative"),
        ((invoice.number, "0", "Y"), "more than zero"),
        ((invoice.number, "abc", "Y"), "not a decimal"),
        ((invoice.number, "1.00", "  "), "needs its reference"),
        ((invoice.number, "3.00", "NL-TRF-0001"), "already recorded"),
    ]:
        with pytest.raises(PaymentError, match=message):
            async with db.session() as s:
                await record_bank_transfer(s, *args, date(2026, 6, 7))
    with pytest.raises(PaymentError, match="in the future"):  # the clock is pinned to 2026-06-16
        async with db.session() as s:
            await record_bank_transfer(s, invoice.number, "1.00", "LATER", date(2026, 6, 17))
    assert len(await payments(db, invoice.id)) == 2


async def _payment_messages(db: Database) -> list[OutboxMessage]:
    async with db.session() as s:
        rows = await s.scalars(
            select(OutboxMessage).where(OutboxMessage.channel == CHANNEL).order_by(OutboxMessage.id)
        )
        return list(rows)


async def test_a_credit_note_after_a_card_payment_queues_its_refund_made_after_commit(
    db: Database, localstripe: LocalStripe
) -> None:
    _, account_id = await fleet_with_account(db)
    await with_card(db, localstripe, account_id)
    [invoice] = await invoices(db, account_id)
    paid = await collect(db, invoice.id, 1, provider=provider_for(localstripe))
    assert paid is not None and paid.status == "succeeded"
    async with db.session() as s:  # an operator's partial credit, as `evhub invoices credit` issues it
        note = await billing.credit_invoice(s, invoice.number, amount=D("2.00"), reason="charger fault")
        assert refunds(localstripe) == []  # nothing is refunded inside the issuing transaction
    [message] = await _payment_messages(db)
    assert message.payload == {"refund_document_id": invoice.id, "credit_note_id": note.id}
    assert message.ordering_key == f"invoice:{invoice.id}"  # after the invoice's own collections
    async with db.session() as s:  # the same note queued again (a retried hook): still one message
        again = await s.get(BillingDocument, note.id)
        assert again is not None and not await request_refund(s, again)
    register_channel(CHANNEL, make_payment_sender(db, lambda: provider_for(localstripe)))
    try:
        await OutboxDispatcher(db, channels=[CHANNEL]).tick()
    finally:
        unregister_channel(CHANNEL)
    [refund] = [p for p in await payments(db, invoice.id) if p.kind == "refund"]
    assert (refund.status, refund.amount) == ("succeeded", note.payable)
    [at_stripe] = refunds(localstripe)
    assert at_stripe["amount"] == int(note.payable * 100)
    assert await _outstanding(db, invoice) == 0


async def test_no_refund_is_queued_for_an_unpaid_or_bank_transfer_paid_invoice(db: Database) -> None:
    _, account_id = await fleet_with_account(db)
    unpaid, transferred = await invoices(db, account_id, n=2)
    async with db.session() as s:
        await billing.credit_invoice(
            s, unpaid.number, amount=D("1.00"), reason="goodwill"
        )  # lowers what is due
        await record_bank_transfer(s, transferred.number, transferred.payable, "NL-TRF-9", date(2026, 6, 5))
    async with db.session() as s:
        await billing.credit_invoice(s, transferred.number, reason="duplicate session")  # owed back by hand
    assert await _payment_messages(db) == []
    assert await _outstanding(db, transferred) == -transferred.payable


async def test_a_correction_cdr_of_a_paid_session_queues_its_refund_in_the_hook(
    db: Database, localstripe: LocalStripe
) -> None:
    _, account_id = await fleet_with_account(db)
    await with_card(db, localstripe, account_id)
    [invoice] = await invoices(db, account_id)
    paid = await collect(db, invoice.id, 1, provider=provider_for(localstripe))
    assert paid is not None and paid.status == "succeeded"
    credit_cdr = await add_credit(db, await _cdr_of(db, invoice))
    async with db.session() as s:  # billing's CDR hook, in the credit CDR's transaction
        row = await s.get(Cdr, credit_cdr)
        assert row is not None
        await billing_cdr_hook(s, row)
    [message] = await _payment_messages(db)
    assert message.payload["refund_document_id"] == invoice.id
