"""The payment provider seam: what collection, refunds and payment method setup need from a provider (Stripe
first, :mod:`billing.payments.stripe_provider`), as a small Protocol over plain values.

Amounts cross it in minor units of the currency (:func:`to_minor` / :func:`from_minor`, by the currency's ISO
4217 exponent from :mod:`kernel.money`), never as floats. A provider's refusal (a declined card, a bad
request) is a :class:`ProviderError` with the provider's reason; anything else (the network) propagates, and
the caller retries the same attempt with the same idempotency key.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from kernel.money import minor_units, normalize_currency, parse_amount

SUCCEEDED = "succeeded"
FAILED = "failed"
PENDING = "pending"
CANCELED = "canceled"


class ProviderError(Exception):
    """The provider refused a request; ``reason`` is its message (shown to operators), ``code`` its code."""

    def __init__(self, reason: str, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class ProviderUnavailable(Exception):
    """The provider could not be reached or failed on its side (network, rate limit, 5xx): nothing was
    decided, so the same request is retried later with the same idempotency key."""


def to_minor(amount: Decimal, currency: str) -> int:
    """``amount`` in minor units (EUR 12.34 -> 1234, JPY 500 -> 500); refuses an amount finer than the unit."""
    exact = parse_amount(amount, currency, allow_negative=True)
    return int(exact.scaleb(minor_units(currency)))


def from_minor(minor: int, currency: str) -> Decimal:
    """Minor units back to an amount of ``currency`` (1234 EUR -> 12.34)."""
    return Decimal(int(minor)).scaleb(-minor_units(normalize_currency(currency)))


@dataclass(frozen=True, slots=True)
class Charge:
    """A charge at the provider (a Stripe PaymentIntent): its id, our status (``pending``, ``succeeded``,
    ``failed``, ``canceled``), amount in minor units, the method type and the reason of a failure."""

    id: str
    status: str
    amount_minor: int
    currency: str
    method: str | None  # card, sepa_debit (None: the provider did not say)
    failure_reason: str | None = None
    needs_confirmation: bool = False


@dataclass(frozen=True, slots=True)
class Refund:
    """A refund at the provider: its id, our status, amount in minor units."""

    id: str
    status: str
    amount_minor: int
    currency: str
    failure_reason: str | None = None


@dataclass(frozen=True, slots=True)
class PaymentMethod:
    """A customer's payment method: its id, type (``card``, ``sepa_debit``) and the label shown to people."""

    id: str
    type: str
    label: str


@dataclass(frozen=True, slots=True)
class SetupStart:
    """A SetupIntent begun for a customer: what the browser's hosted flow needs."""

    id: str
    client_secret: str


class PaymentProvider(Protocol):
    """A payment provider (Stripe through its SDK). Every call is async and never blocks the event loop."""

    name: str

    async def aclose(self) -> None:
        """Close the provider's connections."""
        ...

    async def ensure_customer(
        self, customer_id: str | None, *, name: str, email: str | None, account_id: int
    ) -> str:
        """The customer ``customer_id`` if given and known, else a new one; its id."""
        ...

    async def attach_payment_method(self, customer_id: str, payment_method_id: str) -> PaymentMethod:
        """Attach a payment method to the customer and make it the default; the method as stored."""
        ...

    async def create_card_payment_method(self, number: str, exp_month: int, exp_year: int) -> str:
        """A card payment method from a (test) card number; its id (operators and the demo)."""
        ...

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
        """Create a charge (unconfirmed) with the idempotency key: nothing is taken yet."""
        ...

    async def confirm_charge(self, charge_id: str, *, idempotency_key: str) -> Charge:
        """Confirm a created charge off-session: the money is taken (or the payment is declined)."""
        ...

    async def retrieve_charge(self, charge_id: str) -> Charge:
        """A charge as the provider has it now."""
        ...

    async def refund(
        self, charge_id: str, *, amount_minor: int, idempotency_key: str, metadata: dict[str, str]
    ) -> Refund:
        """Refund (part of) a succeeded charge."""
        ...

    async def find_refund(self, charge_id: str, idempotency_key: str) -> Refund | None:
        """The refund of the charge made with ``idempotency_key`` (its metadata), if one was made."""
        ...

    async def retrieve_refund(self, refund_id: str) -> Refund:
        """A refund as the provider has it now."""
        ...

    async def create_setup(self, customer_id: str, *, method_types: list[str]) -> SetupStart:
        """A SetupIntent for the customer (the browser confirms it with the publishable key)."""
        ...

    async def finish_setup(self, setup_id: str) -> tuple[str, str | None, str | None]:
        """(status, payment method id, customer id) of a SetupIntent."""
        ...
