"""Adding a payment method to a billing account: the provider's customer, then a SetupIntent the browser confirms
with Stripe.js (localstripe's stand-in in tests and the demo), then the confirmed method attached as the
account's default, with the label people see ("card •••• 4242", "SEPA debit •••• 3000").

:func:`start_setup` / :func:`finish_setup` are what the portal's payment method page calls (through the
billing desk); the account must be one of the fleet's. :func:`set_card` is the operators' and the demo's
shortcut (``evhub accounts payment-method ID --card N``): a test card attached without a browser.
"""

from __future__ import annotations

from datetime import date

from billing.payments.ledger import PaymentError
from billing.payments.provider import PaymentProvider, ProviderError, ProviderUnavailable
from billing.payments.stripe_provider import StripeProvider, provider_from_settings
from kernel.db.engine import Database
from kernel.models import BillingAccount
from kernel.seams import PaymentSetup
from kernel.settings import Settings

METHOD_TYPES = ["card", "sepa_debit"]


def _provider(settings: Settings) -> StripeProvider:
    provider = provider_from_settings(settings)
    if provider is None:
        raise PaymentError("payment collection is off: EVHUB_STRIPE_API_KEY is not set")
    return provider


async def _customer(db: Database, provider: PaymentProvider, account_id: int, fleet_id: int | None) -> str:
    """The account's provider customer, created (and stored) when it has none yet."""
    async with db.session() as db_session:
        account = await db_session.get(BillingAccount, account_id)
        if account is None:
            raise PaymentError(f"no billing account {account_id}")
        if fleet_id is not None and account.fleet_id != fleet_id:
            raise PaymentError(f"billing account {account_id} is not fleet {fleet_id}'s")
        known, name, email = (
            account.provider_customer_id,
            account.buyer.get("legal_name"),
            account.buyer.get("email"),
        )
    customer = await provider.ensure_customer(
        known, name=str(name or account_id), email=email, account_id=account_id
    )
    if customer != known:
        async with db.session() as db_session:
            account = await db_session.get(BillingAccount, account_id)
            assert account is not None
            account.provider, account.provider_customer_id = provider.name, customer
    return customer


async def _store_method(
    db: Database, provider: PaymentProvider, account_id: int, customer: str, method_id: str
) -> str:
    method = await provider.attach_payment_method(customer, method_id)
    async with db.session() as db_session:
        account = await db_session.get(BillingAccount, account_id)
        assert account is not None
        account.payment_method_id, account.payment_method_label = method.id, method.label
    return method.label


async def start_setup(db: Database, settings: Settings, fleet_id: int, account_id: int) -> PaymentSetup:
    """Begin adding a payment method to the fleet's account: what the browser's hosted flow needs."""
    provider = _provider(settings)
    try:
        customer = await _customer(db, provider, account_id, fleet_id)
        intent = await provider.create_setup(customer, method_types=METHOD_TYPES)
    except ProviderError as exc:
        raise PaymentError(f"the payment provider refused: {exc.reason}") from exc
    except ProviderUnavailable as exc:
        raise PaymentError(f"the payment provider is unreachable, try again later ({exc})") from exc
    finally:
        await provider.aclose()
    return PaymentSetup(
        publishable_key=settings.stripe_publishable_key,
        client_secret=intent.client_secret,
        setup_intent_id=intent.id,
        js_url=provider.js_url,
    )


async def finish_setup(
    db: Database, settings: Settings, fleet_id: int, account_id: int, setup_intent_id: str
) -> str:
    """The payment method of a confirmed SetupIntent attached as the account's default; its label."""
    provider = _provider(settings)
    try:
        customer = await _customer(db, provider, account_id, fleet_id)
        status, method_id, owner = await provider.finish_setup(setup_intent_id)
        if owner != customer:
            raise PaymentError(f"setup {setup_intent_id} is not billing account {account_id}'s")
        if status != "succeeded" or method_id is None:
            raise PaymentError(f"the payment method was not confirmed (setup {status})")
        return await _store_method(db, provider, account_id, customer, method_id)
    except ProviderError as exc:
        raise PaymentError(f"the payment provider refused: {exc.reason}") from exc
    except ProviderUnavailable as exc:
        raise PaymentError(f"the payment provider is unreachable, try again later ({exc})") from exc
    finally:
        await provider.aclose()


async def set_card(db: Database, settings: Settings, account_id: int, number: str, *, today: date) -> str:
    """Attach a (test) card to an account as its default payment method, without a browser; its label."""
    provider = _provider(settings)
    try:
        customer = await _customer(db, provider, account_id, None)
        method_id = await provider.create_card_payment_method(number, 12, today.year + 3)
        return await _store_method(db, provider, account_id, customer, method_id)
    except ProviderError as exc:
        raise PaymentError(f"the payment provider refused the card: {exc.reason}") from exc
    except ProviderUnavailable as exc:
        raise PaymentError(f"the payment provider is unreachable, try again later ({exc})") from exc
    finally:
        await provider.aclose()
