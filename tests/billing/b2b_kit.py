"""B2B settlement documents test kit (issue 14): the demo network's sessions of November 2026 priced by the
engine, settled and closed by settlement's own job (roaming, hub fee and site host agreements), and the parties'
billing issuers; shared by the tests/billing/test_b2b_*.py modules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

import billing
from billing.core.documents import Address, Identity, PaymentTerms
from billing.core.numbering import Series
from billing.store.accounts import party_account
from kernel.components import Hub
from kernel.db.engine import Database
from kernel.models import BillingDocument, BillingIssuer, Party
from kernel.settings import load_settings
from settlement.agreement_store import add_agreements
from settlement.job import JobResult, run_period
from tariffs.rating import rate_pending
from tests.world.agreements import PRICING_NETWORK_AGREEMENTS as AGREEMENTS
from tests.world.demo_network import seed_pricing_network
from tests.world.sessions import seed_ended_session

PERIOD = "2026-11"
CLOCK = "2026-12-01T04:00:00Z"
"""The tests run just after November closed."""


def identity(name: str, street: str, vat_id: str, registration_id: str | None = None) -> Identity:
    return Identity(
        name,
        Address(street, "1012 AB", "Amsterdam", "NL"),
        vat_id=vat_id,
        registration_id=registration_id,
        business=True,
    )


ISSUERS = {  # each with its legal registration id (an issuer is added with one: BT-30)
    "NL*AMP": (
        "amsterpower",
        identity("AmsterPower B.V.", "Stationsplein 1", "NL001234567B01", "KVK 10000001"),
        "AMP",
    ),
    "NL*HUB": ("evhub", identity("evhub B.V.", "Keizersgracht 100", "NL009876543B01", "KVK 10000002"), "HUB"),
    "NL*EMS": ("roam", identity("Roam B.V.", "Damrak 70", "NL005555555B01", "KVK 10000003"), "EMS"),
}
SITE_HOST = identity("Station Parking B.V.", "Stationsplein 9", "NL007777777B01")


async def party_pk(db: Database, label: str) -> int:
    cc, pid = label.split("*")
    async with db.session() as s:
        pk = await s.scalar(select(Party.id).where(Party.country_code == cc, Party.party_id == pid))
    assert pk is not None
    return pk


async def add_issuers(db: Database, labels: tuple[str, ...] = tuple(ISSUERS)) -> None:
    """Billing issuers of the parties ``labels`` (their legal identities)."""
    for label in labels:
        key, who, prefix = ISSUERS[label]
        pk = await party_pk(db, label)
        async with db.session() as s:
            await billing.add_issuer(
                s,
                billing.Issuer(
                    key=key,
                    identity=who,
                    currency="EUR",
                    invoice_series=Series(prefix),
                    credit_series=Series(f"{prefix}C"),
                    terms=PaymentTerms(30),
                ),
                party_id=pk,
            )


async def settled_period(db: Database, out: Path, *, sessions: int = 5) -> JobResult:
    """The demo network, ``sessions`` November sessions at AMS-CENTRAAL (a site host's location) priced by
    the engine, and November settled and closed by settlement's job, its exports in ``out``."""
    await seed_pricing_network(db)
    async with db.session() as s:
        await add_agreements(s, AGREEMENTS)
    base = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
    for i in range(sessions):
        evse = "AMS-01-1" if i % 2 == 0 else "AMS-01-2"
        minutes = 40 + 7 * i
        kwh = str(Decimal("6.5") + Decimal(i) * Decimal("3.217"))
        await seed_ended_session(db, evse, base + timedelta(days=3 * i), minutes, kwh, uid=f"nov-{i}")
    await rate_pending(db, ())
    job = await run_period(db, PERIOD, out_dir=out, close=True)
    assert job.result.summary.cdrs_settled == sessions and job.result.summary.cdrs_rejected == 0
    return job


def b2b_hub(db: Database) -> Hub:
    return Hub(settings=load_settings(database_url=db.url, _env_file=None), db=db, node_name="test")


async def site_host_account(db: Database) -> None:
    """The site host's legal identity, as a billing account with the CPO's issuer (who self-bills it)."""
    sit = await party_pk(db, "NL*SIT")
    async with db.session() as s:
        amp = await s.scalar(select(BillingIssuer).where(BillingIssuer.key == "amsterpower"))
        assert amp is not None
        await party_account(s, amp, sit, SITE_HOST)


async def documents_by_number(db: Database) -> dict[str, BillingDocument]:
    async with db.session() as s:
        rows = (await s.scalars(select(BillingDocument).order_by(BillingDocument.id))).all()
    return {row.number: row for row in rows}
