"""Payment reminders: the e-mail a dunning ``reminder`` step sends, in the account's language, via the outbox.

The message is queued in the step's transaction as an outbox message of channel ``email`` with the payload shape
the portal's e-mail sender takes (``to``, ``subject``, ``text``, ``html``, ``attachments``, ``message_id``; see
``portal.receipts``), dedupe key = the step key, so a reminder is queued once whatever happens. It is rendered
from ``billing/templates/email/reminder.txt`` / ``reminder.html``; amounts and dates are formatted by Babel for
the account's language (English and German texts; another language gets the English text with its own number
and date formats). The recipient is the buyer's e-mail, else the fleet's first manager, else the driver's
token e-mail; without one the step is recorded as not sent.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from billing.store.balances import Balance
from kernel.models import BillingAccount, BillingDocument, BillingIssuer, FleetManager, Token
from kernel.outbox import enqueue

CHANNEL = "email"
TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "email"
_env = Environment(
    loader=FileSystemLoader(str(TEMPLATES)),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
    keep_trailing_newline=True,
)

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "subject": "Payment reminder: invoice {number} ({amount})",
        "greeting": "Dear {name},",
        "body": "our invoice {number} of {issued} was due on {due}. {amount} is still outstanding.",
        "ask": "Please pay the outstanding amount as soon as possible, quoting the invoice number {number}.",
        "ignore": "If you have paid in the meantime, please disregard this reminder.",
        "invoice": "Invoice",
        "issued": "Issue date",
        "due": "Due date",
        "outstanding": "Outstanding",
        "regards": "Kind regards",
    },
    "de": {
        "subject": "Zahlungserinnerung: Rechnung {number} ({amount})",
        "greeting": "Guten Tag {name},",
        "body": "unsere Rechnung {number} vom {issued} war am {due} fällig. Offen sind noch {amount}.",
        "ask": "Bitte überweisen Sie den offenen Betrag umgehend unter Angabe der Rechnungsnummer {number}.",
        "ignore": "Sollten Sie inzwischen bezahlt haben, betrachten Sie diese Erinnerung bitte als gegenstandslos.",
        "invoice": "Rechnung",
        "issued": "Rechnungsdatum",
        "due": "Fällig am",
        "outstanding": "Offener Betrag",
        "regards": "Mit freundlichen Grüßen",
    },
    "nl": {
        "subject": "Betalingsherinnering: factuur {number} ({amount})",
        "greeting": "Beste {name},",
        "body": "onze factuur {number} van {issued} had op {due} betaald moeten zijn. Er staat nog {amount} open.",
        "ask": "Wij verzoeken u het openstaande bedrag zo spoedig mogelijk te betalen onder vermelding van "
        "factuurnummer {number}.",
        "ignore": "Heeft u inmiddels betaald, dan kunt u deze herinnering als niet verzonden beschouwen.",
        "invoice": "Factuur",
        "issued": "Factuurdatum",
        "due": "Vervaldatum",
        "outstanding": "Openstaand",
        "regards": "Met vriendelijke groet",
    },
}


def locale_of(language: str | None) -> Locale:
    """The Babel locale of an account's language tag (``de``, ``de-DE``, ``en_GB``); English when unknown."""
    try:
        return Locale.parse((language or "en").replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return Locale.parse("en")


def render_reminder(
    *,
    language: str | None,
    buyer: str,
    seller: str,
    number: str,
    issued: date,
    due: date,
    outstanding: Decimal,
    currency: str,
) -> dict[str, str]:
    """Subject, text and HTML of a reminder."""
    locale = locale_of(language)
    texts = TEXTS.get(locale.language, TEXTS["en"])
    values = {
        "name": buyer,
        "number": number,
        "issued": format_date(issued, format="long", locale=locale),
        "due": format_date(due, format="long", locale=locale),
        "amount": format_currency(outstanding, currency, locale=locale),
    }
    view = {key: text.format(**values) for key, text in texts.items()}
    context = {"t": view, "v": values, "seller": seller, "lang": locale.language}
    return {
        "subject": view["subject"],
        "text": _env.get_template("reminder.txt").render(**context),
        "html": _env.get_template("reminder.html").render(**context),
    }


async def recipient(db_session: AsyncSession, account: BillingAccount) -> str | None:
    """Where the account's reminders go: the buyer's e-mail, a fleet manager's, or the driver token's."""
    email = (account.buyer or {}).get("email")
    if email:
        return str(email)
    if account.fleet_id is not None:
        found = await db_session.scalar(
            select(FleetManager.email)
            .where(FleetManager.fleet_id == account.fleet_id)
            .order_by(FleetManager.id)
        )
        if found:
            return str(found)
    if account.token_id is not None:
        token = await db_session.get(Token, account.token_id)
        if token is not None and token.driver_email:
            return token.driver_email.strip()
    return None


async def enqueue_reminder(
    db_session: AsyncSession,
    key: str,
    document: BillingDocument,
    account: BillingAccount,
    issuer: BillingIssuer,
    balance: Balance,
    today: date,
) -> dict[str, Any]:
    """Queue the reminder of the step stored as ``key`` in the caller's transaction (``key`` is its dedupe
    key); what the step records."""
    to = await recipient(db_session, account)
    if to is None:
        return {"sent": False, "reason": "no e-mail address for the account"}
    assert document.due_date is not None
    mail = render_reminder(
        language=account.language,
        buyer=str((account.buyer or {}).get("legal_name") or document.buyer.get("legal_name", "")),
        seller=issuer.legal_name,
        number=document.number,
        issued=document.issue_date,
        due=document.due_date,
        outstanding=balance.outstanding,
        currency=document.currency,
    )
    message_id = f"<reminder.{key.replace(':', '.').replace('/', '.')}@evhub>"
    payload = {"kind": "reminder", "to": to, "message_id": message_id, **mail, "attachments": []}
    await enqueue(
        db_session, CHANNEL, destination=to, ordering_key=f"reminder:{document.number}", payload=payload,
        dedupe_key=key,
    )  # fmt: skip
    return {"sent": True, "to": to, "language": locale_of(account.language).language}
