"""Receipt emails end to end: CDR -> outbox -> SMTP (a real aiosmtpd server) with the right content; an SMTP
outage without loss or duplicates; a refused address recorded and not retried; the scanner's safety net."""

from __future__ import annotations

import email
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from kernel.clock import pin_clock
from kernel.db.engine import Database
from kernel.models import (
    Cdr,
    ChargingSession,
    Connector,
    OutboxMessage,
    OutboxStatus,
    PricingState,
    TariffVersion,
)
from kernel.models.portal import Receipt, ReceiptStatus
from kernel.outbox import BackoffPolicy, OutboxDispatcher, register_channel
from kernel.ports import free_port
from kernel.timeutil import utcnow
from portal.component import receipt_hook
from portal.receipts import CHANNEL, enqueue_receipt, make_email_sender, scan_missing_receipts
from portal.smtp import SmtpConfig, SmtpSink, start_smtp_sink
from tariffs.rating import rate_session
from tests.portal.helpers import TARIFF, start_hub, wait_until
from tests.world.fleets import add_fleet_with_manager, add_session, add_token, base_world, cost_incl

FAST = BackoffPolicy(base=0.2, cap=0.5, jitter=0)


async def _world(db: Database):
    world = await base_world(db)
    await add_fleet_with_manager(db, world, "Acme", "boss@acme.test")
    await add_token(db, world, "Acme", "ACME01", driver="Alice", email="alice@acme.test", vehicle="Van 1")
    await add_token(db, world, "Acme", "ACME02", driver="Bob", email="bounce-bob@acme.test")
    await add_token(db, world, "Acme", "ACME03", driver="Noemail")
    return world


async def _enqueue(db: Database, cdr_id: int) -> Receipt | None:
    async with db.session() as db_session:
        cdr = await db_session.get(Cdr, cdr_id)
        assert cdr is not None
        return await enqueue_receipt(db_session, cdr)


def _read(path: Path) -> EmailMessage:
    return email.message_from_bytes(path.read_bytes(), policy=default_policy)  # type: ignore[return-value]


async def _statuses(db: Database) -> dict[int, str]:
    async with db.session() as db_session:
        return {r.cdr_id: str(r.status) for r in (await db_session.execute(select(Receipt))).scalars()}


async def test_receipt_received_with_right_amounts(db: Database, sink, tmp_path: Path) -> None:
    world = await _world(db)
    start = datetime(2025, 3, 30, 0, 30, tzinfo=UTC)  # 01:30 CET, stop 03:00 CEST (DST day in Berlin)
    _, cdr_id = await add_session(db, world, "ACME01", start, "23.456")
    assert cdr_id is not None
    r1 = await _enqueue(db, cdr_id)
    r2 = await _enqueue(db, cdr_id)  # idempotent
    assert r1 is not None and r2 is not None and r1.id == r2.id
    hub = await start_hub(db, smtp_url=sink.url, dispatch_backoff=FAST)
    try:
        await wait_until(_has_files(sink, 1))
    finally:
        await hub.stop()
    [path] = sink.messages()
    msg = _read(path)
    assert msg["To"] == "alice@acme.test" and msg["From"] == "receipts@evhub.test"
    total = cost_incl("23.456")
    assert str(total) in msg["Subject"]
    text = msg.get_body(preferencelist=("plain",)).get_content()
    html = msg.get_body(preferencelist=("html",)).get_content()
    for body in (text, html):
        assert "Alexanderplatz" in body and "DE*CPO*E1" in body
        assert "2025-03-30 01:30:00 CET" in body and "2025-03-30 04:00:00 CEST" in body
        assert "23.456 kWh" in body and f"{total} EUR" in body
        assert "9.38" in body  # energy line excl. VAT: 23.456 x 0.40
        assert "AC-STD" in body and "1000.000" in body and "1023.456" in body  # tariff, meter start/stop
    assert "VAT:             1.97 EUR" in text
    attachments = list(msg.iter_attachments())
    assert attachments and attachments[0].get_filename().startswith("signed-meter-data-")
    assert attachments[0].get_content().startswith("OCMF|")
    assert (await _statuses(db))[cdr_id] == ReceiptStatus.SENT


def _has_files(sink: SmtpSink, n: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(sink.messages()) >= n

    return check


async def _count(db: Database, *where: Any) -> int:
    async with db.session() as db_session:
        return int(
            await db_session.scalar(select(func.count()).select_from(OutboxMessage).where(*where)) or 0
        )


async def _dispatch_an_hour_later(db: Database, smtp_url: str) -> int:
    """With the hub stopped: move the clock an hour on (past every retry delay and lease) and let a fresh
    dispatcher of the ``email`` channel send whatever is still due. Returns how many it delivered."""
    pin_clock(utcnow() + timedelta(hours=1))
    register_channel(
        CHANNEL, make_email_sender(db, lambda: SmtpConfig.from_url(smtp_url), "receipts@evhub.test")
    )
    return await OutboxDispatcher(db, channels=[CHANNEL]).drain()


async def test_smtp_outage_and_recovery_without_loss_or_duplicates(db: Database, tmp_path: Path) -> None:
    world = await _world(db)
    port = free_port()
    url = f"smtp://127.0.0.1:{port}"
    base = datetime(2025, 4, 2, 9, 0, tzinfo=UTC)
    for i in range(6):
        _, cid = await add_session(db, world, "ACME01", base + timedelta(hours=i * 2), str(5 + i))
        assert cid is not None
        await _enqueue(db, cid)
    hub = await start_hub(db, smtp_url=url, dispatch_backoff=FAST)
    sink: SmtpSink | None = None
    try:
        try:
            # SMTP is down: attempts fail, nothing is lost, rows stay pending.
            async def failed_attempts() -> bool:
                return await _count(db, OutboxMessage.attempts >= 2) == 6

            await wait_until(failed_attempts)
            async with db.session() as db_session:
                errors = (await db_session.execute(select(OutboxMessage.last_error))).scalars().all()
            assert await _count(db, OutboxMessage.status == OutboxStatus.PENDING) == 6 and all(errors)
            # The scanner runs meanwhile: it must not add anything (the receipts exist).
            assert await scan_missing_receipts(db) == 0
            # SMTP comes back on the same port.
            sink = await start_smtp_sink(tmp_path / "mail", port=port)

            async def all_delivered() -> bool:
                return await _count(db, OutboxMessage.status == OutboxStatus.DELIVERED) == 6

            await wait_until(all_delivered)
            await wait_until(_has_files(sink, 6))
        finally:
            await hub.stop()  # a dispatcher tick still running finishes first
        # Nothing is sent twice: every row is delivered, so a dispatcher run later finds nothing to send.
        assert await _dispatch_an_hour_later(db, url) == 0
        files = sink.messages()
    finally:
        if sink is not None:
            await sink.stop()
    assert len(files) == 6
    ids = [_read(p)["Message-ID"] for p in files]
    assert len(set(ids)) == 6
    assert set((await _statuses(db)).values()) == {ReceiptStatus.SENT}


async def test_refused_address_is_recorded_not_retried(db: Database, sink: SmtpSink) -> None:
    world = await _world(db)
    start = datetime(2025, 4, 3, 9, 0, tzinfo=UTC)
    _, bob_cdr = await add_session(db, world, "ACME02", start, "10")
    _, none_cdr = await add_session(db, world, "ACME03", start, "11")
    assert bob_cdr and none_cdr
    await _enqueue(db, bob_cdr)
    skipped = await _enqueue(db, none_cdr)
    assert skipped is not None and skipped.status == ReceiptStatus.SKIPPED
    hub = await start_hub(db, smtp_url=sink.url, dispatch_backoff=FAST)
    try:

        async def dead() -> bool:
            return await _count(db, OutboxMessage.status == OutboxStatus.DEAD) == 1

        await wait_until(dead)
    finally:
        await hub.stop()  # a dispatcher tick still running finishes first
    # Not retried: a dispatcher run later (past any retry delay) does not try the refused address again.
    assert await _dispatch_an_hour_later(db, sink.url) == 0
    async with db.session() as db_session:
        row = (await db_session.execute(select(OutboxMessage))).scalar_one()
        receipt = (await db_session.execute(select(Receipt).where(Receipt.cdr_id == bob_cdr))).scalar_one()
    assert row.attempts == 1 and "550" in (row.last_error or "")
    assert receipt.status == ReceiptStatus.BOUNCED and "550" in (receipt.error or "")
    assert sink.messages() == []


async def test_scanner_enqueues_missing_receipts_once(db: Database) -> None:
    world = await _world(db)
    start = utcnow() - timedelta(hours=3)
    _, c1 = await add_session(db, world, "ACME01", start, "7")
    _, c2 = await add_session(db, world, "ACME03", start, "8")
    assert await scan_missing_receipts(db) == 2
    assert await scan_missing_receipts(db) == 0
    async with db.session() as db_session:
        n = await db_session.scalar(select(func.count()).select_from(OutboxMessage))
    assert n == 1  # ACME03 has no email: recorded as skipped, nothing queued
    statuses = await _statuses(db)
    assert statuses[c1] == ReceiptStatus.QUEUED and statuses[c2] == ReceiptStatus.SKIPPED


def test_smtp_url_parsing() -> None:
    assert SmtpConfig.from_url("") is None
    c = SmtpConfig.from_url("smtp://u%40x:p%3Aw@mail.example:2525?starttls=1")
    assert c is not None and (c.host, c.port, c.username, c.password, c.tls) == (
        "mail.example",
        2525,
        "u@x",
        "p:w",
        "starttls",
    )
    smtps = SmtpConfig.from_url("smtps://mail.example")
    assert smtps is not None and (smtps.port, smtps.tls) == (465, "tls")


async def test_real_pricing_hook_queues_the_receipt_in_the_cdr_transaction(
    db: Database, sink: SmtpSink
) -> None:
    """Pricing (tariffs.rating) calls the portal's CDR hook: the receipt is queued with the CDR, then sent."""
    world = await _world(db)
    start = datetime(2025, 6, 2, 8, 0, tzinfo=UTC)
    sid, _ = await add_session(db, world, "ACME01", start, "20", priced=False)
    async with db.session() as db_session:
        db_session.add(
            Connector(
                evse_pk=world.evse_pk,
                connector_id="1",
                standard="IEC_62196_T2",
                format="SOCKET",
                power_type="AC_3_PHASE",
                max_voltage=400,
                max_amperage=32,
                tariff_ids=["AC-STD"],
                last_updated=start,
            )
        )
        db_session.add(
            TariffVersion(
                cpo_id=world.cpo_id,
                tariff_id="AC-STD",
                version=1,
                currency="EUR",
                data=TARIFF,
                last_updated=datetime(2025, 1, 1, tzinfo=UTC),
            )
        )
        sess = await db_session.get(ChargingSession, sid)
        assert sess is not None
        sess.pricing_state = PricingState.PENDING
    cdr, created = await rate_session(db, sid, hooks=[receipt_hook])
    assert cdr is not None and created
    statuses = await _statuses(db)
    assert statuses[cdr.id] == ReceiptStatus.QUEUED
    register_channel(CHANNEL, make_email_sender(db, lambda: SmtpConfig.from_url(sink.url), "r@evhub.test"))
    assert await OutboxDispatcher(db, channels=[CHANNEL]).drain() == 1
    [path] = sink.messages()
    text = _read(path).get_body(preferencelist=("plain",)).get_content()
    assert "Total:           10.71 EUR" in text  # 20 kWh x 0.40 + 1.00 session fee, 19 % VAT
    assert "Energy: 20 kWh x 0.4 EUR/kWh" in text
