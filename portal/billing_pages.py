"""The fleet's billing pages: its invoices and credit notes (with their PDF), balance, overdue amount and dunning
state per account, the payment method (added through the provider's hosted flow), and its statement (documents,
payments, aging) with a CSV export.

The portal never imports billing: everything comes from ``hub.services.billing`` (:class:`kernel.seams.BillingDesk`),
and without it these pages are a 404. Amounts are in each account's currency, dates and numbers in the manager's
locale (the browser's ``Accept-Language``, formatted by Babel). Only the payment-method page loads a script from
elsewhere, the provider's (Stripe.js; localstripe's stand-in in tests and the demo): its Content-Security-Policy
allows exactly that script's origin, for scripts and for the calls the script makes.
"""

from __future__ import annotations

import logging
from datetime import date
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlsplit

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from kernel.seams import BillingAccountView, BillingDesk
from portal.login import Principal
from portal.page_kit import SECURITY_HEADERS, PageKit, back

log = logging.getLogger(__name__)

STATUS_TEXT = {
    "open": "open",
    "partially_paid": "partially paid",
    "paid": "paid",
    "overdue": "overdue",
    "credited": "credited",
    "refunded": "refunded",
    "issued": "issued",
}


def locale_of(request: Request) -> str:
    """The manager's locale: the first language of ``Accept-Language`` that Babel knows, else ``en``."""
    for part in request.headers.get("accept-language", "").split(","):
        tag = part.split(";")[0].strip()
        if not tag or tag == "*":
            continue
        try:
            return str(Locale.parse(tag, sep="-"))
        except (UnknownLocaleError, ValueError):
            continue
    return "en"


def dunning_meaning(account: BillingAccountView, money: str) -> str:
    """What the account's dunning state means for the fleet, in one sentence."""
    invoices = ", ".join(account.held_for) or "the overdue invoices"
    if account.dunning_state == "blocked":
        return f"Your tokens are blocked: charging is refused until invoice {invoices} is paid."
    if account.dunning_state == "limited":
        return f"Your tokens' spending limit is lowered until invoice {invoices} is paid."
    if account.dunning_state == "overdue":
        return f"{money} is overdue: please pay it to avoid reminders, a lower limit or blocked tokens."
    return "Nothing is overdue."


def provider_csp(script_url: str) -> str:
    """The portal's Content-Security-Policy with the provider's script origin allowed (scripts, the calls
    they make, their frames) and nothing else added."""
    parts = urlsplit(script_url)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ValueError(f"not a script URL: {script_url!r}")
    origin = f"{parts.scheme}://{parts.netloc}"
    policy = SECURITY_HEADERS["Content-Security-Policy"].replace(
        "script-src 'self';", f"script-src 'self' {origin}; connect-src 'self' {origin}; frame-src {origin};"
    )
    assert origin in policy  # the base policy has the script-src this replaces
    return policy


def routes(kit: PageKit) -> APIRouter:
    router = APIRouter()
    state = kit.state

    def desk() -> BillingDesk:
        found = state.billing
        if found is None:
            raise HTTPException(404, "billing is not available")
        return found

    def formatters(request: Request) -> dict[str, Any]:
        locale = locale_of(request)

        def money(amount: Decimal, currency: str) -> str:
            return str(format_currency(amount, currency, locale=locale))

        def day(value: date | None) -> str:
            return str(format_date(value, format="medium", locale=locale)) if value else ""

        return {"money": money, "day": day, "status_text": STATUS_TEXT, "quote": quote}

    async def own_account(manager: Principal, account_id: int) -> BillingAccountView:
        for account in await desk().fleet_accounts(manager.fleet_id):
            if account.account_id == account_id:
                return account
        raise HTTPException(404, "no such billing account")

    @router.get("/billing", response_class=HTMLResponse)
    async def billing_page(request: Request, msg: str | None = None) -> Response:
        manager = await kit.require_manager(request)
        accounts = await desk().fleet_accounts(manager.fleet_id)
        fmt = formatters(request)
        meanings = {a.account_id: dunning_meaning(a, fmt["money"](a.overdue, a.currency)) for a in accounts}
        return kit.page(
            request, manager, "billing.html", {"accounts": accounts, "meanings": meanings, "msg": msg, **fmt}
        )

    @router.get("/billing/accounts/{account_id}/documents/{document_id}")
    async def document_pdf(request: Request, account_id: int, document_id: int) -> Response:
        # by the manager's own fleet, the account and the document's id: two issuers may both number a
        # document INV-2026-000001, and a number alone could fetch the wrong one
        manager = await kit.require_manager(request)
        found = await desk().fleet_document_pdf(manager.fleet_id, account_id, document_id)
        if found is None:
            raise HTTPException(404, "no such invoice or credit note")
        filename, pdf = found
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in filename)
        return Response(
            pdf,
            media_type="application/pdf",
            headers={
                "Content-Disposition": f'attachment; filename="{safe}"',
                "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff",
            },
        )

    @router.get("/billing/accounts/{account_id}/payment-method", response_class=HTMLResponse)
    async def payment_method_page(request: Request, account_id: int) -> Response:
        manager = await kit.require_manager(request)
        account = await own_account(manager, account_id)
        try:
            setup = await desk().start_payment_setup(manager.fleet_id, account_id)
            csp = provider_csp(setup.js_url)
        except ValueError as err:  # not the fleet's account, no provider configured, a bad script URL
            log.warning("payment method setup refused for account %s: %s", account_id, err)
            raise HTTPException(404, str(err)) from None
        except Exception:
            log.exception("the payment provider could not start a payment method setup")
            raise HTTPException(502, "the payment provider is not reachable; try again later") from None
        response = kit.page(request, manager, "billing_payment.html", {"account": account, "setup": setup})
        response.headers["Content-Security-Policy"] = csp
        return response

    @router.post("/billing/accounts/{account_id}/payment-method")
    async def payment_method_done(request: Request, account_id: int) -> Response:
        manager = await kit.require_manager(request)
        form = await kit.posted_form(request, manager)
        await own_account(manager, account_id)
        intent = form.get("setup_intent_id", "").strip()
        if not intent.startswith("seti_") or len(intent) > 255:
            return back("/billing", "The payment method was not confirmed; please try again.")
        try:
            label = await desk().finish_payment_setup(manager.fleet_id, account_id, intent)
        except ValueError as err:
            log.warning("payment method of account %s not recorded: %s", account_id, err)
            return back("/billing", f"The payment method was not added: {err}")
        except Exception:
            log.exception("the payment provider could not confirm setup intent %s", intent)
            return back("/billing", "The payment provider is not reachable; please try again later.")
        return back("/billing", f"Payment method added: {label}")

    @router.get("/billing/statement", response_class=HTMLResponse)
    async def statement_page(request: Request) -> Response:
        manager = await kit.require_manager(request)
        statement = await desk().fleet_statement(manager.fleet_id)
        return kit.page(request, manager, "billing_statement.html", {"st": statement, **formatters(request)})

    @router.get("/billing/statement.csv")
    async def statement_csv(request: Request) -> Response:
        manager = await kit.require_manager(request)
        statement = await desk().fleet_statement(manager.fleet_id)
        name = f"statement-{statement.as_of.isoformat()}.csv"
        return Response(
            statement.csv,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
        )

    return router
