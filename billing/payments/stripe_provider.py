"""Stripe as the payment provider, through the official ``stripe`` SDK (its ``StripeClient`` with the async HTTPX
client: no call blocks the event loop), against Stripe itself or localstripe (``EVHUB_STRIPE_API_BASE``).

A charge is a PaymentIntent created unconfirmed (nothing is taken) with the caller's idempotency key, then
confirmed: the caller records the PaymentIntent's id between the two, so a retry after a crash confirms or
reads that one instead of creating another (Stripe also honours the idempotency key; localstripe does not).
localstripe's confirm takes no ``off_session`` parameter, so it is sent only to Stripe itself.

:func:`provider_from_settings` is the one place the settings become a provider: None while
``EVHUB_STRIPE_API_KEY`` is unset (collection off, said once in the log). The key is never logged.
"""

from __future__ import annotations

import logging
from typing import Any

import stripe

from billing.payments.provider import (
    CANCELED,
    FAILED,
    PENDING,
    SUCCEEDED,
    Charge,
    PaymentMethod,
    ProviderError,
    ProviderUnavailable,
    Refund,
    SetupStart,
)
from kernel.settings import Settings, load_settings

log = logging.getLogger(__name__)

STRIPE_JS = "https://js.stripe.com/v3/"
_STATUS = {
    "succeeded": SUCCEEDED,
    "canceled": CANCELED,
    "processing": PENDING,
    "requires_confirmation": PENDING,
    "requires_capture": PENDING,
    "requires_action": FAILED,  # off-session: nobody is there to authenticate
    "requires_payment_method": FAILED,  # the last attempt was declined
}
_REFUND_STATUS = {"succeeded": SUCCEEDED, "pending": PENDING, "failed": FAILED, "canceled": CANCELED}
_said_off = False


def label_of(method: dict[str, Any]) -> str:
    """The label people see for a payment method: "card •••• 4242", "SEPA debit •••• 3000"."""
    kind = method.get("type")
    if kind == "card":
        return f"card •••• {(method.get('card') or {}).get('last4', '????')}"
    if kind == "sepa_debit":
        return f"SEPA debit •••• {(method.get('sepa_debit') or {}).get('last4', '????')}"
    return str(kind)


_TRANSIENT = (stripe.APIConnectionError, stripe.RateLimitError, stripe.APIError)


def _error(exc: stripe.StripeError) -> Exception:
    """A refusal as :class:`ProviderError`; the provider out of reach as :class:`ProviderUnavailable`."""
    if isinstance(exc, _TRANSIENT):
        return ProviderUnavailable(" ".join(f"{type(exc).__name__}: {exc.user_message or exc}".split()))
    return ProviderError(" ".join((exc.user_message or str(exc) or type(exc).__name__).split()), exc.code)


class StripeProvider:
    """:class:`billing.payments.provider.PaymentProvider` on the Stripe API (or localstripe at ``api_base``)."""

    name = "stripe"

    def __init__(self, api_key: str, *, api_base: str | None = None) -> None:
        bases: dict[str, str] = {"api": api_base} if api_base else {}
        self.api_base = api_base
        self.off_session = api_base is None  # Stripe itself; localstripe refuses the parameter on confirm
        self._http = stripe.HTTPXClient()
        self.client = stripe.StripeClient(
            api_key,
            base_addresses=bases,  # type: ignore[arg-type]
            http_client=self._http,
            max_network_retries=2,
        )

    async def aclose(self) -> None:
        """Close the HTTP connections (a provider is made per job or request, on its event loop)."""
        await self._http.close_async()

    def __repr__(self) -> str:  # never the key
        return f"StripeProvider(api_base={self.api_base!r})"

    @property
    def js_url(self) -> str:
        """Stripe.js for the hosted flow (localstripe serves its stand-in under its own URL)."""
        return f"{self.api_base}/js.stripe.com/v3/" if self.api_base else STRIPE_JS

    @property
    def v1(self) -> Any:
        return self.client.v1

    async def ensure_customer(
        self, customer_id: str | None, *, name: str, email: str | None, account_id: int
    ) -> str:
        if customer_id:
            try:
                found = await self.v1.customers.retrieve_async(customer_id)
                if not found.to_dict().get("deleted"):
                    return str(found.id)
            except stripe.InvalidRequestError:
                log.warning(
                    "Stripe customer %s of account %s is gone: creating another", customer_id, account_id
                )
            except stripe.StripeError as exc:
                raise _error(exc) from exc
        params: dict[str, Any] = {"name": name, "metadata": {"evhub_account_id": str(account_id)}}
        if email:
            params["email"] = email
        try:
            created = await self.v1.customers.create_async(
                params=params, options={"idempotency_key": f"evhub-customer-{account_id}"}
            )
        except stripe.StripeError as exc:
            raise _error(exc) from exc
        return str(created.id)

    async def create_card_payment_method(self, number: str, exp_month: int, exp_year: int) -> str:
        try:
            method = await self.v1.payment_methods.create_async(
                params={
                    "type": "card",
                    "card": {"number": number, "exp_month": exp_month, "exp_year": exp_year, "cvc": "123"},
                }
            )
        except stripe.StripeError as exc:
            raise _error(exc) from exc
        return str(method.id)

    async def attach_payment_method(self, customer_id: str, payment_method_id: str) -> PaymentMethod:
        try:
            method = await self.v1.payment_methods.retrieve_async(payment_method_id)
            if method.to_dict().get("customer") != customer_id:
                method = await self.v1.payment_methods.attach_async(
                    payment_method_id, params={"customer": customer_id}
                )
            await self.v1.customers.update_async(
                customer_id, params={"invoice_settings": {"default_payment_method": payment_method_id}}
            )
        except stripe.StripeError as exc:
            raise _error(exc) from exc
        data = method.to_dict()
        return PaymentMethod(str(method.id), str(data.get("type")), label_of(data))

    def _charge(self, intent: Any, method: str | None = None) -> Charge:
        data = intent.to_dict()
        status = _STATUS.get(str(data.get("status")), PENDING)
        error = data.get("last_payment_error") or {}
        reason = None
        if status == FAILED:
            reason = error.get("message") or error.get("code") or f"payment {data.get('status')}"
        types = data.get("payment_method_types") or []
        return Charge(
            id=str(data["id"]),
            status=status,
            amount_minor=int(data["amount"]),
            currency=str(data["currency"]).upper(),
            method=method or (str(types[0]) if types else None),  # localstripe keeps no types
            failure_reason=reason,
            needs_confirmation=data.get("status") == "requires_confirmation",
        )

    async def create_charge(
        self,
        *,
        customer_id: str,
        payment_method_id: str,
        amount_minor: int,
        currency: str,
        idempotency_key: str,
        metadata: dict[str, str],
    ) -> Charge:
        try:
            method = await self.v1.payment_methods.retrieve_async(payment_method_id)
            kind = str(method.to_dict().get("type") or "card")
            intent = await self.v1.payment_intents.create_async(
                params={
                    "amount": amount_minor,
                    "currency": currency.lower(),
                    "customer": customer_id,
                    "payment_method": payment_method_id,
                    "payment_method_types": [kind],
                    "metadata": metadata,
                },
                options={"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as exc:
            raise _error(exc) from exc
        return self._charge(intent, kind)

    async def confirm_charge(self, charge_id: str, *, idempotency_key: str) -> Charge:
        params: dict[str, Any] = {"off_session": True} if self.off_session else {}
        try:
            intent = await self.v1.payment_intents.confirm_async(
                charge_id, params=params, options={"idempotency_key": idempotency_key}
            )
        except stripe.CardError as exc:  # declined: the PaymentIntent says why
            log.info("payment %s declined: %s", charge_id, exc.code)
            return await self.retrieve_charge(charge_id)
        except stripe.StripeError as exc:
            raise _error(exc) from exc
        return self._charge(intent)

    async def retrieve_charge(self, charge_id: str) -> Charge:
        try:
            return self._charge(await self.v1.payment_intents.retrieve_async(charge_id))
        except stripe.StripeError as exc:
            raise _error(exc) from exc

    def _refund(self, refund: Any) -> Refund:
        data = refund.to_dict()
        return Refund(
            id=str(data["id"]),
            status=_REFUND_STATUS.get(str(data.get("status")), PENDING),
            amount_minor=int(data["amount"]),
            currency=str(data.get("currency") or "").upper(),
            failure_reason=data.get("failure_reason"),
        )

    async def refund(
        self, charge_id: str, *, amount_minor: int, idempotency_key: str, metadata: dict[str, str]
    ) -> Refund:
        try:
            refund = await self.v1.refunds.create_async(
                params={"payment_intent": charge_id, "amount": amount_minor, "metadata": metadata},
                options={"idempotency_key": idempotency_key},
            )
        except stripe.StripeError as exc:
            raise _error(exc) from exc
        return self._refund(refund)

    async def find_refund(self, charge_id: str, idempotency_key: str) -> Refund | None:
        try:
            page = await self.v1.refunds.list_async(params={"payment_intent": charge_id, "limit": 100})
        except stripe.StripeError as exc:
            raise _error(exc) from exc
        for refund in page.data:
            if (refund.to_dict().get("metadata") or {}).get("evhub_idempotency_key") == idempotency_key:
                return self._refund(refund)
        return None

    async def retrieve_refund(self, refund_id: str) -> Refund:
        try:
            return self._refund(await self.v1.refunds.retrieve_async(refund_id))
        except stripe.StripeError as exc:
            raise _error(exc) from exc

    async def create_setup(self, customer_id: str, *, method_types: list[str]) -> SetupStart:
        try:
            intent = await self.v1.setup_intents.create_async(
                params={"customer": customer_id, "payment_method_types": method_types, "usage": "off_session"}
            )
        except stripe.StripeError as exc:
            raise _error(exc) from exc
        return SetupStart(str(intent.id), str(intent.client_secret))

    async def finish_setup(self, setup_id: str) -> tuple[str, str | None, str | None]:
        try:
            intent = await self.v1.setup_intents.retrieve_async(setup_id)
        except stripe.StripeError as exc:
            raise _error(exc) from exc
        data = intent.to_dict()
        method = data.get("payment_method")
        if isinstance(method, dict):
            method = method.get("id")
        customer = data.get("customer")
        if isinstance(customer, dict):
            customer = customer.get("id")
        return str(data.get("status")), str(method) if method else None, str(customer) if customer else None


def provider_from_settings(settings: Settings, *, quiet: bool = False) -> StripeProvider | None:
    """The provider the settings configure; None (and one log line per process) without an API key.
    ``quiet``: only say whether collection is off, make no provider."""
    global _said_off
    if not settings.stripe_api_key:
        if not _said_off:
            log.info("EVHUB_STRIPE_API_KEY is not set: payment collection is off (invoices are still issued)")
            _said_off = True
        return None
    if quiet:
        return None
    return StripeProvider(settings.stripe_api_key, api_base=settings.stripe_api_base)


_settings: Settings | None = None


def use_settings(settings: Settings) -> None:
    """The settings this process collects with (the billing component's, at install)."""
    global _settings
    _settings = settings
    provider_from_settings(settings, quiet=True)


def current_provider() -> StripeProvider | None:
    """A provider from the installed settings (or the environment's); None when collection is off."""
    return provider_from_settings(_settings if _settings is not None else load_settings())
