"""Reminder e-mails (issue 14): queued by the dunning job in the outbox and delivered by the portal's ``email``
channel sender to a real SMTP server (aiosmtpd), in the account's language: German texts with German amounts and
dates, English otherwise; the buyer's name is escaped in the HTML."""

from __future__ import annotations

import email
import email.policy
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import select

from billing.store.dunning import run_dunning
from billing.store.reminders import render_reminder
from kernel.db.engine import Database
from kernel.models import OutboxMessage
from portal.receipts import make_email_sender
from portal.smtp import SmtpConfig, start_smtp_sink
from tests.billing.dunning_kit import MANAGER, day, seed

ONE = {"rules": [{"name": "remind", "days_after_due": 2, "action": "reminder"}]}


def _parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())


async def test_a_german_reminder_is_delivered_over_smtp(db: Database, tmp_path: Path) -> None:
    d = await seed(db, schedule=ONE, language="de")
    assert await run_dunning(db, today=day(d, 2)) == 1
    async with db.session() as s:
        [queued] = (await s.scalars(select(OutboxMessage))).all()
    sink = await start_smtp_sink(tmp_path / "mail")
    try:
        sender = make_email_sender(db, lambda: SmtpConfig(sink.host, sink.port), "billing@evhub.example")
        result = await sender(queued)
        assert result.ok, result.error
        [path] = sink.messages()
    finally:
        await sink.stop()
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    amount = f"{d.payable:.2f}".replace(".", ",")
    assert (
        message["To"] == MANAGER
        and message["Subject"] == f"Zahlungserinnerung: Rechnung {d.number} ({amount}\xa0€)"
    )
    text, html = _parts(message)
    due = f"{d.due.day}. Juni {d.due.year}"  # issued on 16 June (the pinned clock), due 14 days later
    assert f"Fällig am: {due}" in text and f"Offener Betrag: {amount}" in text
    assert "Voltstreet Charging B.V." in text and "Mit freundlichen Grüßen" in text
    assert 'lang="de"' in html and f"<td>{d.number}</td>" in html


def test_english_by_default_and_the_html_is_escaped() -> None:
    from datetime import date

    mail = render_reminder(language="xx-unknown", buyer="<b>Evil & Co</b>", seller="Volt", number="INV-1",
                           issued=date(2026, 6, 1), due=date(2026, 6, 15), outstanding=Decimal("1234.5"),
                           currency="EUR")  # fmt: skip
    assert mail["subject"] == "Payment reminder: invoice INV-1 (€1,234.50)"
    assert "was due on June 15, 2026" in mail["text"] and "Dear <b>Evil & Co</b>," in mail["text"]
    assert "&lt;b&gt;Evil &amp; Co&lt;/b&gt;" in mail["html"] and "<b>Evil" not in mail["html"]
    british = render_reminder(language="en-GB", buyer="B", seller="S", number="INV-2", issued=date(2026, 6, 1),
                              due=date(2026, 6, 15), outstanding=Decimal("5"), currency="GBP")  # fmt: skip
    assert "(£5.00)" in british["subject"] and "15 June 2026" in british["text"]
