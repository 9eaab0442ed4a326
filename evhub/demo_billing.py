"""The demo's billing act (issue 14): November's fleet invoice, collected through localstripe, a declined card,
dunning to a block, and the block lifted by the payment; then November is closed in settlement and its statements become the
documents between the parties (CPO to eMSP for roaming, hub to CPO for its fee, the site host's self-billed
invoice).

The hub's clock looks ahead to the morning of 1 December while the month's invoice is issued and collected
(``kernel.clock.pinned``), then is back on the demo's evening; the dunning job is run "as on" the days the issuer's
schedule acts on (``today``, as ``evhub dunning run --today`` does), so its reminders go out now. Everything else is the product as it runs: the issuer and the fleet's account (as ``evhub issuers add`` /
``evhub accounts add`` store them), the monthly invoice the job issues, the payment outbox collecting it with the
official Stripe SDK against localstripe, the dunning job, the gateway refusing a held token at a real OCPP
Authorize, the payment webhook localstripe signs and posts to the hub.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from websockets.asyncio.client import connect

import billing
from evhub import provisioning as prov
from evhub.app import RunningHub
from kernel.clock import pinned
from kernel.models import (
    BillingDocument,
    BillingDocumentCdr,
    BillingHold,
    BillingPayment,
    Cdr,
    Party,
    PartyRole,
    SettlementRun,
)
from kernel.money import format_amount
from kernel.settings import Settings
from kernel.timeutil import zone
from settlement.job import run_period
from simulators.chargepoints import ChargerFleet, ChargerSpec
from simulators.cpo import CpoSimulator
from simulators.localstripe import CARD_DECLINED_ON_CHARGE, CARD_OK, LocalStripe

AMSTERDAM = zone("Europe/Amsterdam")
ISSUE_MORNING = datetime(2026, 12, 1, 9, 0, tzinfo=AMSTERDAM)
"""When November's invoices are issued (the monthly job runs for the month that just ended)."""
PERIOD = "2026-11"
"""The month invoiced: the demo's sessions are in November."""
ISSUER_KEY = "NL*EVH"
FLEET = "Acme Logistics"
WEBHOOK_SECRET = "whsec_evhub_demo_webhook"


@dataclass
class BillingAct:
    """What the act needs of the running demo."""

    hub: RunningHub
    settings: Settings
    stripe: LocalStripe
    workdir: Path
    console: Console
    sink: Any  # the SMTP sink the reminders reach
    charger: str  # the charger the held token is presented at
    charger_password: str
    driver_uid: str  # a fleet token
    cpo: CpoSimulator | None = None  # an external CPO the hub is the eMSP of (its fleet cards pushed there)


async def add_issuer_and_account(hub: RunningHub) -> int:
    """The fleet eMSP NL*EVH as an issuer, and Acme Logistics' account with it; the account id."""
    async with hub.db.session() as s:
        party = await s.scalar(select(Party).where(Party.party_id == "EVH", Party.role == PartyRole.EMSP))
        await billing.add_issuer(
            s,
            billing.Issuer(
                key=ISSUER_KEY,
                identity=billing.Identity(
                    "evhub Fleet Services B.V.",
                    billing.Address("Stationsplein 1", "1012 AB", "Amsterdam", "NL"),
                    vat_id="NL001234567B01",
                    registration_id="KVK 12345678",
                    email="billing@evhub.example",
                    business=True,
                ),
                currency="EUR",
                invoice_series=billing.Series("INV"),
                credit_series=billing.Series("CN"),
                terms=billing.PaymentTerms(14),
            ),
            party_id=party.id if party else None,
        )
        account = await billing.add_fleet_account(
            s,
            FLEET,
            ISSUER_KEY,
            billing.Identity(
                "Acme Logistics B.V.",
                billing.Address("Havenweg 5", "1043 AA", "Amsterdam", "NL"),
                vat_id="NL009876543B01",
                email="accounts@acme-logistics.example",
                business=True,
            ),
            language="nl",
            timezone="Europe/Amsterdam",
        )
        return account.id


async def authorize(act: BillingAct, uid: str) -> str:
    """A real OCPP 1.6 Authorize of ``uid`` at the act's charger: its idTagInfo status."""
    port = act.settings.ocpp_port
    basic = base64.b64encode(f"{act.charger}:{act.charger_password}".encode()).decode()
    async with connect(
        f"ws://127.0.0.1:{port}/ocpp/{act.charger}",
        subprotocols=["ocpp1.6"],  # type: ignore[list-item]
        additional_headers={"Authorization": f"Basic {basic}"},
    ) as ws:
        calls = [
            ("BootNotification", {"chargePointVendor": "evhub-sim", "chargePointModel": "demo"}),
            ("Authorize", {"idTag": uid}),
        ]
        answer: Any = None
        for n, (action, payload) in enumerate(calls):
            await ws.send(json.dumps([2, f"billing-{n}", action, payload]))
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
                if frame[0] in (3, 4) and frame[1] == f"billing-{n}":
                    answer = frame
                    break
        return str(answer[2]["idTagInfo"]["status"]) if answer[0] == 3 else f"error {answer[2]}"


async def _wait(what: str, check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the demo waited {timeout:g} s for {what}")
        await asyncio.sleep(0.1)


async def _payments(act: BillingAct, document_id: int) -> list[BillingPayment]:
    async with act.hub.db.session() as s:
        rows = await s.scalars(
            select(BillingPayment)
            .where(BillingPayment.document_id == document_id)
            .order_by(BillingPayment.id)
        )
        return list(rows)


async def _active_holds(act: BillingAct, document_id: int) -> int:
    async with act.hub.db.session() as s:
        rows = await s.scalars(
            select(BillingHold).where(
                BillingHold.document_id == document_id, BillingHold.released_at.is_(None)
            )
        )
        return len(list(rows))


def _money(amount: Decimal, currency: str) -> str:
    return format_amount(amount, currency)


async def issue_the_month(act: BillingAct, account_id: int, cdrs: list[Cdr]) -> tuple[BillingDocument, bool]:
    """November's invoice of the fleet (lines equal to its CDRs to the cent), and its PDF in the work folder."""
    async with act.hub.db.session() as s:
        row = await billing.issue_monthly_invoice(s, account_id, PERIOD)
    assert row is not None, "the fleet charged in November"
    invoice = billing.load_invoice(row.document)
    ours = {line.cdr_id for line in invoice.lines if line.cdr_id}
    cdr_net = sum(
        (Decimal(str(c.data["total_cost"]["excl_vat"])) for c in cdrs if c.cdr_uid in ours), Decimal(0)
    )
    to_the_cent = invoice.totals.line_net == cdr_net and len(ours) > 0
    groups = sorted({line.group for line in invoice.lines if line.group})
    cdr_incl = sum(
        (Decimal(str(c.data["total_cost"]["incl_vat"])) for c in cdrs if c.cdr_uid in ours), Decimal(0)
    )
    fleet_uids = {c.data.get("cdr_token", {}).get("uid") for c in cdrs if c.cdr_uid in ours}
    elsewhere = sorted(
        {
            c.currency
            for c in cdrs
            if c.currency != row.currency and c.data.get("cdr_token", {}).get("uid") in fleet_uids
        }
    )
    act.console.print(
        f"{row.number}: NL*EVH's November invoice to Acme Logistics B.V. — {len(ours)} session(s) of "
        f"{len(groups)} driver/vehicle group(s), {_money(invoice.totals.tax_exclusive, row.currency)} + VAT "
        f"{_money(invoice.totals.tax, row.currency)} = {_money(row.payable, row.currency)}, due "
        f"{row.due_date}; lines equal to the CDRs to the cent: {'yes' if to_the_cent else 'NO'}",
        soft_wrap=True,
    )
    act.console.print(
        f"the CDRs' own incl.-VAT totals add up to {_money(cdr_incl, row.currency)}; the invoice's VAT is EN 16931's "
        f"per rate over the month (BR-CO-17), a difference of {_money(cdr_incl - row.payable, row.currency)} that "
        f"the reconciliation report shows"
        + (
            f"; the fleet's {', '.join(elsewhere)} sessions wait for an account in that currency"
            if elsewhere
            else ""
        ),
        soft_wrap=True,
    )
    try:
        async with act.hub.db.session() as s:
            pdf = await billing.document_pdf(s, row)
        path = act.workdir / f"{row.number}.pdf"
        path.write_bytes(pdf)
        act.console.print(f"PDF with its EN 16931 (Factur-X) e-invoice embedded: {path}", soft_wrap=True)
    except Exception as exc:  # no Pango on this machine: the invoice stands, without its PDF
        act.console.print(f"invoice PDF skipped: {exc}")
    return row, to_the_cent


async def dun_to_a_block(act: BillingAct, row: BillingDocument) -> list[tuple[str, str, str]]:
    """The issuer's dunning schedule on the days it acts: (day, rule, action) of each step done."""
    assert row.due_date is not None
    done: list[tuple[str, str, str]] = []
    for days in (1, 3, 10, 14, 21):
        await billing.run_dunning(act.hub.db, today=row.due_date + timedelta(days=days))
    async with act.hub.db.session() as s:
        for step in await billing.invoice_dunning_steps(s, row):
            outcome = step.detail.get("outcome") or step.detail.get("status") or ""
            done.append((step.due_on.isoformat(), step.rule, f"{step.action} {outcome}".strip()))
    table = Table("day", "rule", "step", box=None)
    for day_s, rule, action in done:
        table.add_row(day_s, rule, action)
    act.console.print(table)
    return done


async def at_the_cpo(act: BillingAct, *, valid: bool) -> dict[str, Any]:
    """What the external CPO knows of the fleet card once the hold's push arrived (``valid`` as the hold left
    it): the pushed ``valid``, and the hub's answer to its real-time authorization."""
    cpo = act.cpo
    if cpo is None:
        return {}

    async def pushed() -> bool:
        return cpo.tokens.get(act.driver_uid, {}).get("valid") is valid

    started = time.monotonic()
    await _wait(f"the token push (valid {str(valid).lower()}) to CPO BE*ION", pushed)
    took = time.monotonic() - started
    answer = await cpo.authorize(act.driver_uid, ISSUER_KEY)
    act.console.print(
        f"CPO BE*ION (the hub is its eMSP for {ISSUER_KEY}): {act.driver_uid} pushed valid "
        f"{str(valid).lower()} {'at once' if took < 1 else f'in {took:.1f} s'}; its real-time authorization "
        f"answered {answer}",
        soft_wrap=True,
    )
    return {"pushed_valid": valid, "authorize": answer}


async def run_billing_act(act: BillingAct, account_id: int, cdrs: list[Cdr]) -> dict[str, Any]:
    """The act; the figures for the summary."""
    act.stripe.register_webhook(f"{act.settings.public_url}/billing/webhooks/stripe", WEBHOOK_SECRET)
    card = await billing.set_payment_card(
        act.hub.db, act.settings, account_id, CARD_DECLINED_ON_CHARGE, today=date(2026, 11, 17)
    )
    act.console.print(f"Acme Logistics' payment method at the provider (localstripe): {card}")
    with pinned(ISSUE_MORNING):
        row, to_the_cent = await issue_the_month(act, account_id, cdrs)

        async def tried() -> bool:
            return any(p.status != "pending" for p in await _payments(act, row.id))

        await _wait("the automatic collection of the invoice", tried)
    first = (await _payments(act, row.id))[0]
    act.console.print(
        f"collected automatically when issued (payment outbox, idempotency key {first.idempotency_key}): "
        f"{first.status} — {first.failure_reason or ''}",
        soft_wrap=True,
    )
    before = await authorize(act, act.driver_uid)
    mails = len(act.sink.messages())
    steps = await dun_to_a_block(act, row)
    reminders = sum(1 for _day, _rule, action in steps if action.startswith("reminder"))

    async def reminded() -> bool:
        return len(act.sink.messages()) >= mails + reminders

    await _wait("the reminders to reach the mail sink", reminded)
    blocked = await authorize(act, act.driver_uid)
    act.console.print(
        f"{reminders} reminder e-mail(s) in Dutch to accounts@acme-logistics.example (the mail sink); "
        f"Authorize of {act.driver_uid} at {act.charger}: {before} before dunning, {blocked} after the block",
        soft_wrap=True,
    )
    roaming_blocked = await at_the_cpo(act, valid=False)
    card = await billing.set_payment_card(
        act.hub.db, act.settings, account_id, CARD_OK, today=date(2026, 11, 17)
    )
    paid = await billing.collect_invoice(act.hub.db, row.number)

    async def released() -> bool:
        return await _active_holds(act, row.id) == 0

    started = time.monotonic()
    await _wait("the block to be lifted", released)
    lifted_in = time.monotonic() - started
    after = await authorize(act, act.driver_uid)
    roaming_after = await at_the_cpo(act, valid=True)
    payments = await _payments(act, row.id)
    succeeded = [p for p in payments if p.status == "succeeded"]
    act.console.print(
        f"the fleet manager added {card}; the invoice is collected again: "
        f"{paid.status if paid else 'nothing due'} {_money(succeeded[0].amount, row.currency) if succeeded else ''}"
        f" (attempts: {', '.join(p.status for p in payments)}); the block lifted "
        f"{'at once' if lifted_in < 1 else f'in {lifted_in:.1f} s'}; Authorize of {act.driver_uid}: {after}",
        soft_wrap=True,
    )
    return {
        "invoice": row.number,
        "period": row.billing_period,
        "to_the_cent": to_the_cent,
        "payable": str(row.payable),
        "first_collection": first.status,
        "dunning": [action for _day, _rule, action in steps],
        "reminders": reminders,
        "authorize": {"before": before, "blocked": blocked, "after_payment": after},
        "external_cpo": {"blocked": roaming_blocked, "after_payment": roaming_after},
        "payments": [p.status for p in payments],
    }


AMP_ADDRESS = ("Keizersgracht 100", "1015 AA", "Amsterdam", "NL")
HUB_ADDRESS = ("Stationsplein 1", "1012 AB", "Amsterdam", "NL")
PARTY_IDENTITIES = {  # the parties' legal identities (what a B2B VAT invoice needs; `parties` has none)
    "NL*AMP": ("AmsterPower B.V.", AMP_ADDRESS, "NL111111111B01", "EUR"),
    "GB*LDN": ("London Charge Co Ltd", ("1 Pancras Square", "N1C 4AG", "London", "GB"), "GB123456789", "GBP"),
    "NL*HUB": ("evhub Platform B.V.", HUB_ADDRESS, "NL222222222B01", "EUR"),
    "NL*HUB/GBP": ("evhub Platform B.V.", HUB_ADDRESS, "NL222222222B01", "GBP"),  # a second issuer: GBP fees
    "NL*SIT": (
        "Station Parking B.V.",
        ("Stationsplein 9", "1012 AB", "Amsterdam", "NL"),
        "NL333333333B01",
        "EUR",
    ),
}
REGISTRATION_IDS = {
    "NL*AMP": "KVK 11111111",
    "GB*LDN": "Companies House 01234567",
    "NL*HUB": "KVK 22222222",
    "NL*SIT": "KVK 33333333",
}
"""The parties' legal registration ids (BT-30: every issuer is set up with one). The hub's names it on its fee
invoice to GB*LDN, which is outside the scope of EU VAT and so carries no VAT id (EN 16931 BR-O-02, BR-CO-26)."""
ROAMING_BUYERS = {  # the eMSP partners, billed by the CPOs for their drivers' sessions
    "DE*EMS": ("DE eMobility GmbH", ("Friedrichstr. 1", "10117", "Berlin", "DE"), "DE123456789"),
    "FR*MOB": ("Mobilité FR SAS", ("1 rue de Rivoli", "75001", "Paris", "FR"), "FR12345678901"),
}


def _identity(name: str, address: tuple[str, str, str, str], vat_id: str) -> billing.Identity:
    return billing.Identity(name, billing.Address(*address), vat_id=vat_id, business=True)


async def _party_pk(s: Any, key: str) -> int:
    cc, pid = key.split("*")
    party = await s.scalar(select(Party).where(Party.country_code == cc, Party.party_id == pid))
    assert party is not None, key
    return int(party.id)


async def add_b2b_parties(hub: RunningHub) -> None:
    """The CPOs, the hub (in EUR and in GBP: one issuer per currency) and the site host as issuers, and the
    eMSPs' accounts with each CPO."""
    async with hub.db.session() as s:
        for key, (name, address, vat_id, currency) in PARTY_IDENTITIES.items():
            party, _slash, in_currency = key.partition("/")  # NL*HUB/GBP: the hub's issuer in GBP
            prefix = party.split("*")[1] + (in_currency[:1] if in_currency else "")
            await billing.add_issuer(
                s,
                billing.Issuer(
                    key=key,
                    identity=replace(
                        _identity(name, address, vat_id), registration_id=REGISTRATION_IDS[party]
                    ),
                    currency=currency,
                    invoice_series=billing.Series(prefix),
                    credit_series=billing.Series(f"{prefix}C"),
                    terms=billing.PaymentTerms(30),
                ),
                party_id=await _party_pk(s, party),
            )
        for cpo in ("NL*AMP", "GB*LDN"):
            issuer = await billing.get_issuer(s, cpo)
            for emsp, (name, address, vat_id) in ROAMING_BUYERS.items():
                await billing.party_account(
                    s,
                    issuer,
                    await _party_pk(s, emsp),
                    _identity(name, address, vat_id),
                    currency=issuer.currency,
                )


async def documents_between_parties(act: BillingAct) -> dict[str, Any]:
    """Close November in settlement and issue its B2B documents; what was issued and what was not."""
    job = await run_period(act.hub.db, PERIOD, out_dir=act.workdir / "settlement", close=True)
    await add_b2b_parties(act.hub)
    async with act.hub.db.session() as s:
        [run] = await billing.closed_settlement_runs(s, PERIOD)
    outcomes = await billing.issue_settlement_documents(act.hub.db, run.id, issue_date=date(2026, 12, 1))
    async with act.hub.db.session() as s:
        hashes = set(
            await s.scalars(select(SettlementRun.content_hash).where(SettlementRun.period == PERIOD))
        )
    act.console.print(
        f"settlement {PERIOD} closed (content hash {job.result.summary.content_hash[:16]}..., "
        f"{'the same as the run above' if len(hashes) == 1 else 'NOT the run above'}); its statements as "
        "documents between the parties:",
        soft_wrap=True,
    )
    for outcome in outcomes:
        act.console.print(f"  {outcome.describe()}", highlight=False, soft_wrap=True)
    issued = [o for o in outcomes if o.number]
    return {
        "same_run": len(hashes) == 1,
        "issued": sorted(f"{o.kind}:{o.seller}->{o.buyer}:{o.currency}:{o.net}" for o in issued),
        "not_issued": sorted(
            f"{o.kind}:{o.seller}->{o.buyer}:{o.currency}" for o in outcomes if not o.number
        ),
    }


APP_DRIVER = ("NL0EVH0APP00001", "Dana Visser", "dana@example.com")
"""A driver of the hub's app without a contract (no fleet): each session is invoiced on its own."""


async def app_driver_session(act: BillingAct) -> dict[str, Any]:
    """One session of :data:`APP_DRIVER` at the act's charger on the morning of 1 December (the hub's clock
    pinned there, after November's invoices: numbers follow issue dates): the CDR hook issues its per-session
    invoice, and the receipt e-mail is that invoice with its PDF."""
    start = ISSUE_MORNING + timedelta(hours=1)
    with pinned(start):
        return await _app_driver_session(act, start)


async def _app_driver_session(act: BillingAct, start: datetime) -> dict[str, Any]:

    uid, name, email = APP_DRIVER
    async with act.hub.db.session() as s:
        token = await prov.add_token(
            s,
            prov.TokenSpec(
                uid=uid, issuer_party=ISSUER_KEY, type="APP_USER", driver_name=name, driver_email=email
            ),
        )
        token_id = token.id
    invoice_of_the_driver = (
        select(BillingDocument)
        .join(BillingDocumentCdr, BillingDocumentCdr.document_id == BillingDocument.id)
        .join(Cdr, Cdr.id == BillingDocumentCdr.cdr_id)
        .where(Cdr.token_id == token_id, BillingDocument.kind == "invoice")
    )
    spec = ChargerSpec(
        identity=act.charger,
        password=act.charger_password,
        tokens=[uid],
        idle_s=(60.0, 120.0),
        energy_wh=(8000.0, 8000.0),
    )
    fleet = ChargerFleet(
        [spec],
        f"ws://127.0.0.1:{act.settings.ocpp_port}/ocpp",
        acceleration=1500.0,
        sessions_per_charger=1,
        start_time=start,
    )
    await fleet.start()
    try:
        await fleet.wait_sessions(1, timeout=120)
    finally:
        await fleet.stop()

    async def invoiced() -> bool:
        async with act.hub.db.session() as s:
            return (await s.scalar(invoice_of_the_driver)) is not None

    await _wait("the app driver's session to be priced and invoiced", invoiced, timeout=60)
    async with act.hub.db.session() as s:
        row = await s.scalar(invoice_of_the_driver)
    assert row is not None

    def mailed() -> list[Path]:
        return [m for m in act.sink.messages() if row.number in m.read_text(errors="replace")]

    async def arrived() -> bool:
        return bool(mailed())

    await _wait("the app driver's receipt, which is the invoice", arrived)
    mail = mailed()[0].read_text(errors="replace")
    with_pdf = f'filename="{row.number}.pdf"' in mail or f"filename={row.number}.pdf" in mail
    async with act.hub.db.session() as s:
        cdr = await s.scalar(select(Cdr).where(Cdr.token_id == token_id))
    assert cdr is not None
    same_price = Decimal(str(cdr.data["total_cost"]["incl_vat"])) == row.payable
    act.console.print(
        f"{name}, an app driver without a contract, charged at {act.charger}: per-session invoice {row.number} "
        f"({_money(row.payable, row.currency)}, {'the' if same_price else 'NOT the'} CDR's price to the cent), "
        f"issued in the CDR's transaction; her receipt e-mail is the "
        f"invoice{' with its PDF attached' if with_pdf else ''} ({mailed()[0].name})",
        soft_wrap=True,
    )
    return {"invoice": row.number, "cdr_price": same_price, "pdf_attached": with_pdf}
