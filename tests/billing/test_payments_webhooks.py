"""Stripe's webhook at POST /billing/webhooks/stripe (issue 14): localstripe's real signed deliveries to a listening
server record what the hub missed (it 'died' after confirming), hand-signed payloads show that a bad signature
is a 400 with nothing stored, a re-delivery a 200 no-op, and charge.refunded updates the refunds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from billing.component import BillingComponent
from billing.payments import stripe_provider, webhooks
from billing.payments.collection import collect
from evhub.app import create_app
from kernel.components import Hub
from kernel.db.engine import Database
from kernel.httpserver import HttpServer
from kernel.models import BillingPayment, BillingWebhookEvent
from kernel.outbox import registered_channels, unregister_channel
from simulators.localstripe import CARD_DECLINED_ON_CHARGE, SECRET_KEY, LocalStripe
from tests.billing.payments_kit import (
    WEBHOOK_SECRET,
    Crash,
    CrashAfterConfirm,
    fleet_with_account,
    invoices,
    payments,
    settings_for,
    signed,
    with_card,
)

D = Decimal
PATH = "/billing/webhooks/stripe"


def _app(db: Database, ls: LocalStripe, **settings: Any) -> FastAPI:
    app = FastAPI()
    app.state.hub = Hub(settings=settings_for(db, ls, **settings), db=db, node_name="test", app=app)
    app.include_router(webhooks.router)
    return app


@pytest.fixture
async def client(db: Database, localstripe: LocalStripe) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app(db, localstripe))
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as c:
        yield c


async def _events(db: Database) -> int:
    async with db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(BillingWebhookEvent)) or 0)


async def _wait_for(db: Database, document_id: int, status: str, timeout: float = 20.0) -> BillingPayment:
    deadline = time.monotonic() + timeout
    while True:
        rows = await payments(db, document_id)
        if rows and rows[-1].status == status:
            return rows[-1]
        if time.monotonic() > deadline:
            raise AssertionError(
                f"payment never became {status}: {[(r.status, r.provider_ref) for r in rows]}"
            )
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(("card", "status"), [(None, "succeeded"), (CARD_DECLINED_ON_CHARGE, "failed")])
async def test_localstripe_delivers_what_the_hub_missed(
    db: Database, localstripe: LocalStripe, card: str | None, status: str
) -> None:
    server = HttpServer(_app(db, localstripe))
    await server.start()
    try:
        localstripe.register_webhook(f"{server.url}{PATH}", WEBHOOK_SECRET)
        _, account_id = await fleet_with_account(db)
        await with_card(db, localstripe, account_id, *([card] if card else []))
        [invoice] = await invoices(db, account_id)
        dying = CrashAfterConfirm(SECRET_KEY, api_base=localstripe.url)
        with pytest.raises(Crash):  # confirmed at localstripe; the hub never stored the outcome
            await collect(db, invoice.id, 1, provider=dying)
        await dying.aclose()
        assert [r.status for r in await payments(db, invoice.id)] == ["pending"]
        row = await _wait_for(db, invoice.id, status)  # localstripe's signed event did it
        if status == "failed":
            assert row.failure_reason and "declined" in row.failure_reason
        async with db.session() as s:
            recorded = (await s.scalars(select(BillingWebhookEvent))).all()
            # localstripe also sends customer.created..., and an earlier test's late events may land here
            [event] = [e for e in recorded if e.data.get("id") == row.provider_ref]
            assert (
                event.type == f"payment_intent.{'succeeded' if status == 'succeeded' else 'payment_failed'}"
            )
            assert event.data["id"] == row.provider_ref
        again = await collect(db, invoice.id, 1)  # the retry finds it ended
        assert again is not None and again.status == status
    finally:
        localstripe.register_webhook("http://127.0.0.1:9/nowhere", WEBHOOK_SECRET)  # forget this server
        await server.stop()


def _intent_event(event_id: str, intent_id: str, kind: str = "payment_intent.succeeded") -> dict[str, Any]:
    return {
        "id": event_id,
        "object": "event",
        "type": kind,
        "data": {"object": {"id": intent_id, "object": "payment_intent", "amount": 941, "currency": "eur"}},
    }


async def _pending_row(db: Database, ls: LocalStripe) -> BillingPayment:
    _, account_id = await fleet_with_account(db)
    [invoice] = await invoices(db, account_id)
    async with db.session() as s:
        row = BillingPayment(
            document_id=invoice.id,
            account_id=account_id,
            kind="payment",
            method="card",
            provider="stripe",
            provider_ref="pi_handsigned",
            idempotency_key=f"evhub-invoice-{invoice.id}-1",
            amount=D("9.41"),
            currency="EUR",
            status="pending",
        )
        s.add(row)
    return row


async def test_bad_signatures_are_refused_and_store_nothing(
    db: Database, localstripe: LocalStripe, client: httpx.AsyncClient
) -> None:
    row = await _pending_row(db, localstripe)
    payload, header = signed(_intent_event("evt_1", "pi_handsigned"), "whsec_someone_else")
    for headers in ({"Stripe-Signature": header}, {}, {"Stripe-Signature": "t=1,v1=00"}):
        r = await client.post(PATH, content=payload, headers=headers)
        assert r.status_code == 400 and "webhook refused" in r.json()["detail"], r.text
    stale, stale_header = signed(_intent_event("evt_1", "pi_handsigned"), at=int(time.time()) - 3600)
    r = await client.post(PATH, content=stale, headers={"Stripe-Signature": stale_header})
    assert r.status_code == 400  # outside the SDK's tolerance: a replay
    good, good_header = signed(_intent_event("evt_1", "pi_handsigned"))
    tampered = good.replace(b"941", b"942")
    r = await client.post(PATH, content=tampered, headers={"Stripe-Signature": good_header})
    assert r.status_code == 400
    assert await _events(db) == 0
    assert [r.status for r in await payments(db, row.document_id)] == ["pending"]


async def test_a_redelivery_is_a_no_op(
    db: Database, localstripe: LocalStripe, client: httpx.AsyncClient
) -> None:
    row = await _pending_row(db, localstripe)
    payload, header = signed(_intent_event("evt_2", "pi_handsigned"))
    first = await client.post(PATH, content=payload, headers={"Stripe-Signature": header})
    assert first.status_code == 200 and first.json() == {"status": "applied"}
    [paid] = await payments(db, row.document_id)
    assert paid.status == "succeeded" and paid.settled_at is not None
    again = await client.post(PATH, content=payload, headers={"Stripe-Signature": header})
    assert again.status_code == 200 and again.json() == {"status": "duplicate"}
    late_failure, h = signed(_intent_event("evt_3", "pi_handsigned", "payment_intent.payment_failed"))
    r = await client.post(PATH, content=late_failure, headers={"Stripe-Signature": h})
    assert r.json() == {"status": "unchanged"}  # a succeeded payment stays succeeded
    [still] = await payments(db, row.document_id)
    assert (still.status, still.settled_at) == ("succeeded", paid.settled_at)
    unknown, h = signed(_intent_event("evt_4", "pi_not_ours"))
    assert (await client.post(PATH, content=unknown, headers={"Stripe-Signature": h})).json() == {
        "status": "unknown payment"
    }
    assert await _events(db) == 3


async def test_charge_refunded_updates_and_records_refunds(
    db: Database, localstripe: LocalStripe, client: httpx.AsyncClient
) -> None:
    row = await _pending_row(db, localstripe)
    async with db.session() as s:
        paid = await s.get(BillingPayment, row.id)
        assert paid is not None
        paid.status = "succeeded"
        s.add(
            BillingPayment(
                document_id=row.document_id,
                account_id=row.account_id,
                kind="refund",
                method="card",
                provider="stripe",
                idempotency_key=f"evhub-refund-{row.document_id}-1",
                amount=D("2.00"),
                currency="EUR",
                status="pending",
                reference="pi_handsigned",
            )
        )
    charge = {
        "id": "ch_1",
        "object": "charge",
        "payment_intent": "pi_handsigned",
        "currency": "eur",
        "refunds": {
            "data": [
                {
                    "id": "re_ours",
                    "amount": 200,
                    "currency": "eur",
                    "status": "succeeded",
                    "metadata": {"evhub_idempotency_key": f"evhub-refund-{row.document_id}-1"},
                },
                {
                    "id": "re_dashboard",
                    "amount": 100,
                    "currency": "eur",
                    "status": "succeeded",
                    "metadata": {},
                },
            ]
        },
    }
    event = {"id": "evt_r", "object": "event", "type": "charge.refunded", "data": {"object": charge}}
    payload, header = signed(event)
    r = await client.post(PATH, content=payload, headers={"Stripe-Signature": header})
    assert r.status_code == 200 and r.json() == {"status": "2 refunds applied"}
    refunds = [p for p in await payments(db, row.document_id) if p.kind == "refund"]
    assert [(p.provider_ref, p.amount, p.status) for p in refunds] == [
        ("re_ours", D("2.00"), "succeeded"),
        ("re_dashboard", D("1.00"), "succeeded"),
    ]
    r = await client.post(PATH, content=payload, headers={"Stripe-Signature": header})
    assert r.json() == {"status": "duplicate"}
    assert len([p for p in await payments(db, row.document_id) if p.kind == "refund"]) == 2


async def test_webhooks_are_refused_without_a_secret(db: Database, localstripe: LocalStripe) -> None:
    app = _app(db, localstripe, stripe_webhook_secret="")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://hub.test") as c:
        payload, header = signed(_intent_event("evt_5", "pi_x"))
        r = await c.post(PATH, content=payload, headers={"Stripe-Signature": header})
    assert r.status_code == 503 and "EVHUB_STRIPE_WEBHOOK_SECRET" in r.json()["detail"]
    assert await _events(db) == 0


async def test_the_billing_component_serves_the_webhook_without_an_api_key(
    db: Database, localstripe: LocalStripe, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stripe_provider, "_settings", None)  # install() sets it: undone after the test
    hub = Hub(settings=settings_for(db, localstripe, api_auth=True), db=db, node_name="test")
    hub.app = create_app(hub)
    BillingComponent().install(hub)
    try:
        assert "payment" in registered_channels()
        row = await _pending_row(db, localstripe)
        payload, header = signed(_intent_event("evt_c", "pi_handsigned"))
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=hub.app), base_url="http://hub.test"
        ) as c:
            r = await c.post(PATH, content=payload, headers={"Stripe-Signature": header})
            assert r.status_code == 200 and r.json() == {"status": "applied"}, r.text
            assert (await c.get("/api/billing/payments")).status_code == 401  # the API itself wants a key
        assert [p.status for p in await payments(db, row.document_id)] == ["succeeded"]
    finally:
        unregister_channel("payment")
