"""``evhub payments list|collect|record|refund`` and ``evhub accounts payment-method`` on the real CLI, database
and localstripe (issue 14): a card attached, an invoice collected once, a bank transfer recorded once, a
refund after a credit note, and bad input as one ``error:`` line with exit 1."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

import billing
from kernel.db.engine import Database
from kernel.models import BillingDocumentCdr
from kernel.ports import free_port
from simulators.localstripe import (
    CARD_DECLINED_ON_ATTACH,
    CARD_DECLINED_ON_CHARGE,
    CARD_OK,
    SECRET_KEY,
    LocalStripe,
)
from tests.billing.payments_kit import fleet_with_account, intents, invoices, refunds
from tests.billing.store_kit import add_credit
from tests.cli_kit import Cli, cli_on, one_error


@pytest.fixture
def cli(db: Database, localstripe: LocalStripe, monkeypatch: pytest.MonkeyPatch) -> Cli:
    return cli_on(db, monkeypatch, EVHUB_STRIPE_API_KEY=SECRET_KEY, EVHUB_STRIPE_API_BASE=localstripe.url)


async def test_collect_list_record_and_refund(cli: Cli, db: Database, localstripe: LocalStripe) -> None:
    _, account_id = await fleet_with_account(db)
    first, second = await invoices(db, account_id, 2)
    out = (await cli("accounts", "payment-method", str(account_id), "--card", CARD_OK)).output
    assert f"account {account_id}: card •••• 4242" in out
    assert "succeeded" in (await cli("payments", "collect", first.number)).output
    assert "nothing to collect" in (await cli("payments", "collect", first.number)).output
    assert len(intents(localstripe)) == 1
    [item] = json.loads((await cli("payments", "list", "--invoice", first.number, "--json")).output)
    assert (item["invoice"], item["amount"], item["status"], item["method"]) == (
        first.number,
        "9.41",
        "succeeded",
        "card",
    )
    record = [
        "payments",
        "record",
        second.number,
        "--amount",
        "4.00",
        "--reference",
        "TRF-9",
        "--date",
        "2026-06-05",
    ]
    assert "bank_transfer" in (await cli(*record)).output
    await cli(*record)  # the same reference again: one payment
    listed = json.loads((await cli("payments", "list", "--json")).output)
    assert [(p["invoice"], p["amount"]) for p in listed] == [(first.number, "9.41"), (second.number, "4.00")]
    assert "Payments" in (await cli("payments", "list")).output
    assert "nothing to refund" in (await cli("payments", "refund", first.number)).output
    async with db.session() as s:
        cdr_id = await s.scalar(
            select(BillingDocumentCdr.cdr_id).where(BillingDocumentCdr.document_id == first.id)
        )
    credit = await add_credit(db, int(cdr_id or 0))
    async with db.session() as s:
        await billing.issue_cdr_credit_note(s, credit_cdr_id=credit, issue_date=first.issue_date)
    assert "refund 9.41 EUR succeeded" in (await cli("payments", "refund", first.number)).output
    assert len(refunds(localstripe)) == 1
    assert "nothing to refund" in (await cli("payments", "refund", first.number)).output


async def test_refusals_are_one_error_line(
    cli: Cli, db: Database, localstripe: LocalStripe, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, account_id = await fleet_with_account(db)
    [invoice] = await invoices(db, account_id)
    one_error(await cli("payments", "collect", invoice.number, ok=False), "no payment method")
    one_error(await cli("payments", "collect", "INV-1999-000001", ok=False), "no invoice INV-1999-000001")
    one_error(await cli("payments", "list", "--invoice", "nope", ok=False), "no invoice nope")
    record = ["payments", "record", invoice.number, "--reference", "R-1"]
    one_error(await cli(*record, "--amount", "1.005", ok=False), "more decimals")
    one_error(await cli(*record, "--amount", "ten", ok=False), "not a decimal")
    one_error(await cli(*record, "--amount", "1", "--date", "June", ok=False), "not a day")
    one_error(
        await cli("accounts", "payment-method", "999", "--card", CARD_OK, ok=False), "no billing account 999"
    )
    refused = await cli(
        "accounts", "payment-method", str(account_id), "--card", CARD_DECLINED_ON_ATTACH, ok=False
    )
    one_error(refused, "refused the card")
    await cli("accounts", "payment-method", str(account_id), "--card", CARD_DECLINED_ON_CHARGE)
    one_error(await cli("payments", "collect", invoice.number, ok=False), "payment failed")
    [failed] = json.loads((await cli("payments", "list", "--json")).output)
    assert failed["status"] == "failed" and "declined" in failed["failure_reason"]
    monkeypatch.setenv("EVHUB_STRIPE_API_BASE", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    one_error(await cli("payments", "collect", invoice.number, ok=False), "unreachable, try again later")
    monkeypatch.setenv("EVHUB_STRIPE_API_KEY", "")
    one_error(await cli("payments", "collect", invoice.number, ok=False), "payment collection is off")
    monkeypatch.setenv("EVHUB_STRIPE_API_KEY", "pk_wrong")
    result = await cli("payments", "list", ok=False)
    assert (
        result.exit_code != 0 and "EVHUB_STRIPE_API_KEY" in result.output and "pk_wrong" not in result.output
    )
