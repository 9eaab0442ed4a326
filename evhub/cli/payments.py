"""``evhub payments list|collect|record|refund`` and ``evhub accounts payment-method`` — collecting invoices.

``collect NUMBER`` charges an invoice's account through the payment provider now (the pending attempt, or the
next one), ``record NUMBER --amount --reference`` records a bank transfer (the same reference twice is one
payment), ``refund NUMBER`` pays back what a credit note left owed; ``accounts payment-method ID --card N``
attaches a (test) card to an account without a browser, for operators and the demo. Collection needs
``EVHUB_STRIPE_API_KEY`` (``EVHUB_STRIPE_API_BASE`` for localstripe). Bad input is one ``error:`` line and
exit 1.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import date
from typing import Annotated

import typer

import billing
from evhub.cli._common import console, fail, print_json, run_with_db, settings, table
from evhub.cli.billing import accounts_app
from kernel.db.engine import Database
from kernel.settings import Settings
from kernel.timeutil import utcnow

payments_app = typer.Typer(help="Payments and refunds against invoices.", no_args_is_help=True)


def _provider(cfg: Settings) -> billing.PaymentProvider:
    provider = billing.payment_provider(cfg)
    if provider is None:
        fail(
            "payment collection is off: set EVHUB_STRIPE_API_KEY (and EVHUB_STRIPE_API_BASE for localstripe)"
        )
    return provider


@contextlib.asynccontextmanager
async def _at_provider(cfg: Settings, number: str) -> AsyncIterator[billing.PaymentProvider]:
    """The payment provider for one command on invoice ``number``: its refusal or its absence is one error line
    (exit 1), and it is closed afterwards."""
    provider = _provider(cfg)
    try:
        yield provider
    except billing.PaymentProviderError as exc:
        fail(f"{number}: the payment provider refused: {exc.reason}")
    except billing.PaymentProviderUnavailable as exc:
        fail(f"{number}: the payment provider is unreachable, try again later ({exc})")
    finally:
        await provider.aclose()


def _shown(item: billing.PaymentItem) -> str:
    ref = item.provider_ref or item.reference or ""
    why = f" ({item.failure_reason})" if item.failure_reason else ""
    return f"{item.kind} {item.amount} {item.currency} {item.status}{why} [{item.method}, {ref}]"


@payments_app.command("list")
def payments_list(
    invoice: Annotated[str | None, typer.Option(help="Only this invoice's (its number)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """List payments and refunds, oldest first."""

    async def go(db: Database) -> None:
        async with db.session() as s:
            items = await billing.list_payments(s, number=invoice)
        if as_json:
            print_json([item.as_dict() for item in items])
            return
        columns = ["id", "invoice", "kind", "method", "amount", "currency", "status", "ref", "reason"]
        rows = [
            [i.id, i.invoice, i.kind, i.method, i.amount, i.currency, i.status, i.provider_ref or i.reference,
             i.failure_reason]
            for i in items
        ]  # fmt: skip
        table("Payments", columns, rows)

    run_with_db(go)


@payments_app.command("collect")
def payments_collect(number: Annotated[str, typer.Argument(help="The invoice's number")]) -> None:
    """Charge the invoice's outstanding amount to its account's payment method now."""

    cfg = settings()

    async def go(db: Database) -> None:
        async with _at_provider(cfg, number) as provider:
            item = await billing.collect_invoice(db, number, provider=provider)
        if item is None:
            console.print(f"{number}: nothing to collect", highlight=False)
            return
        if item.status == "failed":
            fail(f"{number}: payment failed: {item.failure_reason}")
        console.print(f"{number}: {_shown(item)}", highlight=False, markup=False)

    run_with_db(go)


@payments_app.command("record")
def payments_record(
    number: Annotated[str, typer.Argument(help="The invoice's number")],
    amount: Annotated[str, typer.Option(help="Amount received, in the invoice's currency")],
    reference: Annotated[str, typer.Option(help="The bank transfer's reference")],
    on: Annotated[
        str | None, typer.Option("--date", help="Day received, YYYY-MM-DD (default: today)")
    ] = None,
) -> None:
    """Record a payment received by bank transfer."""
    try:
        received = date.fromisoformat(on) if on else utcnow().date()
    except ValueError:
        fail(f"--date {on!r}: not a day YYYY-MM-DD")

    async def go(db: Database) -> None:
        async with db.session() as s:
            item = await billing.record_bank_transfer(s, number, amount, reference, received)
        console.print(f"{number}: {_shown(item)}", highlight=False, markup=False)

    run_with_db(go)


@payments_app.command("refund")
def payments_refund(number: Annotated[str, typer.Argument(help="The invoice's number")]) -> None:
    """Pay back through the provider what is owed on the invoice (after a credit note)."""

    cfg = settings()

    async def go(db: Database) -> None:
        async with _at_provider(cfg, number) as provider:
            items = await billing.refund_invoice(db, number, provider=provider)
        if not items:
            console.print(f"{number}: nothing to refund", highlight=False)
        failed = [item for item in items if item.status == "failed"]
        if failed:
            fail(f"{number}: refund failed: {failed[0].failure_reason}")
        for item in items:
            console.print(f"{number}: {_shown(item)}", highlight=False, markup=False)

    run_with_db(go)


@accounts_app.command("payment-method")
def accounts_payment_method(
    account_id: Annotated[int, typer.Argument(help="The billing account's id")],
    card: Annotated[str, typer.Option(help="A card number (a test card on localstripe)")],
) -> None:
    """Attach a card to the account as its default payment method (operators and the demo)."""
    cfg = settings()

    async def go(db: Database) -> None:
        label = await billing.set_payment_card(db, cfg, account_id, card, today=utcnow().date())
        console.print(f"account {account_id}: {label}", highlight=False)

    run_with_db(go)
