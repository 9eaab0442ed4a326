"""Adding a payment method (issue 14): start_setup makes the customer and a SetupIntent at localstripe,
the browser's part is done through the SDK with the publishable key exactly as localstripe-v3.js does it (the
SetupIntent confirmed with the client secret and the card or IBAN), and finish_setup stores the method as the
account's default with its label; another fleet's account and an unconfirmed setup are refused."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import stripe

from billing.payments.collection import collect
from billing.payments.ledger import PaymentError
from billing.payments.setup import finish_setup, start_setup
from kernel.db.engine import Database
from kernel.seams import PaymentSetup
from simulators.localstripe import CARD_OK, PUBLISHABLE_KEY, SECRET_KEY, LocalStripe
from tests.billing.payments_kit import (
    account,
    fleet_with_account,
    intents,
    invoices,
    provider_for,
    settings_for,
)

CARD = {"type": "card", "card": {"number": CARD_OK, "exp_month": 12, "exp_year": 2030, "cvc": "123"}}
SEPA = {
    "type": "sepa_debit",
    "sepa_debit": {"iban": "DE89370400440532013000"},
    "billing_details": {"name": "Ada Driver", "email": "ada@example.com"},
}


async def _browser_confirms(ls: LocalStripe, setup: PaymentSetup, method: dict[str, Any]) -> None:
    """What localstripe-v3.js's confirmCardSetup / confirmSepaDebitSetup send: the publishable key only."""
    browser = stripe.StripeClient(
        PUBLISHABLE_KEY, base_addresses={"api": ls.url}, http_client=stripe.HTTPXClient()
    )
    params: Any = {
        "key": setup.publishable_key,  # as the script sends it (localstripe's auth for this endpoint)
        "client_secret": setup.client_secret,
        "payment_method_data": method,
    }
    intent = await browser.v1.setup_intents.confirm_async(setup.setup_intent_id, params=params)
    assert intent.status == "succeeded"


@pytest.mark.parametrize(("method", "label"), [(CARD, "card •••• 4242"), (SEPA, "SEPA debit •••• 3000")])
async def test_setup_through_the_hosted_flow(
    db: Database, localstripe: LocalStripe, method: dict[str, Any], label: str
) -> None:
    settings = settings_for(db, localstripe)
    fleet_id, account_id = await fleet_with_account(db)
    setup = await start_setup(db, settings, fleet_id, account_id)
    assert setup.publishable_key == PUBLISHABLE_KEY
    assert setup.js_url == f"{localstripe.url}/js.stripe.com/v3/" == localstripe.js_url
    assert setup.setup_intent_id.startswith("seti_") and setup.client_secret.startswith(setup.setup_intent_id)
    customer = (await account(db, account_id)).provider_customer_id
    assert customer and customer.startswith("cus_")
    with pytest.raises(PaymentError, match="not confirmed"):
        await finish_setup(db, settings, fleet_id, account_id, setup.setup_intent_id)
    await _browser_confirms(localstripe, setup, method)
    assert await finish_setup(db, settings, fleet_id, account_id, setup.setup_intent_id) == label
    row = await account(db, account_id)
    assert (row.payment_method_label, row.provider, row.provider_customer_id) == (label, "stripe", customer)
    hub_side = stripe.StripeClient(
        SECRET_KEY, base_addresses={"api": localstripe.url}, http_client=stripe.HTTPXClient()
    )
    stored = await hub_side.v1.customers.retrieve_async(customer)
    assert stored.to_dict()["invoice_settings"]["default_payment_method"] == row.payment_method_id
    again = await start_setup(db, settings, fleet_id, account_id)  # a second method: the same customer
    assert again.setup_intent_id != setup.setup_intent_id
    assert (await account(db, account_id)).provider_customer_id == customer


async def test_setup_refusals(db: Database, localstripe: LocalStripe) -> None:
    settings = settings_for(db, localstripe)
    fleet_id, account_id = await fleet_with_account(db)
    other_fleet, _ = await fleet_with_account(db, "Other Fleet")
    with pytest.raises(PaymentError, match=f"is not fleet {other_fleet}'s"):
        await start_setup(db, settings, other_fleet, account_id)
    with pytest.raises(PaymentError, match="no billing account 999"):
        await start_setup(db, settings, fleet_id, 999)
    with pytest.raises(PaymentError, match="the payment provider refused"):
        await finish_setup(db, settings, fleet_id, account_id, "seti_unknown")
    setup = await start_setup(db, settings, fleet_id, account_id)
    await _browser_confirms(localstripe, setup, CARD)
    other_account = (await fleet_with_account(db, "Third Fleet"))[1]
    third_fleet = (await account(db, other_account)).fleet_id
    assert third_fleet is not None
    with pytest.raises(PaymentError, match="is not billing account"):  # someone else's confirmed setup
        await finish_setup(db, settings, third_fleet, other_account, setup.setup_intent_id)
    assert (await account(db, other_account)).payment_method_id is None
    with pytest.raises(PaymentError, match="collection is off"):
        await start_setup(db, settings_for(db, localstripe, stripe_api_key=""), fleet_id, account_id)
    assert (await account(db, account_id)).payment_method_id is None


async def test_an_invoice_is_collected_by_sepa_debit(db: Database, localstripe: LocalStripe) -> None:
    settings = settings_for(db, localstripe)
    fleet_id, account_id = await fleet_with_account(db)
    setup = await start_setup(db, settings, fleet_id, account_id)
    await _browser_confirms(localstripe, setup, SEPA)
    assert (
        await finish_setup(db, settings, fleet_id, account_id, setup.setup_intent_id)
        == "SEPA debit •••• 3000"
    )
    [invoice] = await invoices(db, account_id)
    paid = await collect(db, invoice.id, 1, provider=provider_for(localstripe))
    assert paid is not None and (paid.method, paid.status, paid.amount) == (
        "sepa_debit",
        "succeeded",
        Decimal("9.41"),
    )
    [intent] = intents(localstripe)
    assert (
        intent["payment_method"] == (await account(db, account_id)).payment_method_id
        and intent["amount"] == 941
    )
