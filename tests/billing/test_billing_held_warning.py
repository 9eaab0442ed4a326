"""The warning for what an issuer without a registration id holds (issue 14, category O): logged when the
issuer's held set grows (a CDR or a fee held that was not before, ``billing.store.held``), not at every hourly
run that meets the same items again; the reconciliation report still lists every held item. Per session (the
CDR hook, the hourly catch-up) and monthly (the hourly job, a month with only held CDRs, so every run tries
again). Real pricing, SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select

import billing
from billing.cdr_hook import catch_up
from billing.monthly_job import run_monthly_job
from billing.store import reports
from kernel.components import Hub
from kernel.db.engine import Database
from kernel.models import BillingCharge, BillingHeldOutsideVat
from kernel.settings import load_settings
from kernel.timeutil import utcnow
from tests.billing.documents_kit import (
    cdr_of,
    charge,
    documents,
    price_with_parking_outside_vat,
    rate,
    seed_world,
    utc,
)
from tests.billing.store_kit import without_registration_id

D = Decimal


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The held warnings logged so far (and forgets them)."""
    out = [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "registration id" in r.getMessage()
    ]
    caplog.clear()
    return out


async def _held(db: Database, period: str, today: date) -> list[tuple[str, str]]:
    async with db.session() as s:
        rec = await reports.reconciliation_report(s, period, today)
    return [(e.kind, e.ref) for e in rec.exceptions if e.kind in ("cdr_held", "fee_held")]


async def _remembered(db: Database) -> int:
    async with db.session() as s:
        return await s.scalar(select(func.count()).select_from(BillingHeldOutsideVat)) or 0


@pytest.mark.clock("2026-06-10T12:00:00Z")
async def test_a_held_session_is_warned_once_and_a_new_one_again(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    await seed_world(db)
    await without_registration_id(db, "roam")
    await price_with_parking_outside_vat(db, "AMS-01-1")
    caplog.set_level(logging.WARNING)
    await charge(db, "TOKEN-1", utc(2026, 6, 10, 8, 0), "first", kwh="8", minutes=100, charge_minutes=40)
    assert await rate(db) == 1  # held by billing's CDR hook
    first = await cdr_of(db, "first")
    [warning] = _warnings(caplog)
    assert first.cdr_uid in warning
    for _ in range(3):  # the hourly catch-up meets it again within its three days: no new warning
        assert await catch_up(db, utcnow()) == 0
    assert _warnings(caplog) == []
    await charge(db, "TOKEN-1", utc(2026, 6, 10, 10, 0), "second", kwh="6", minutes=90, charge_minutes=30)
    assert await rate(db) == 1
    second = await cdr_of(db, "second")
    [warning] = _warnings(caplog)  # the held set grew: the new CDR is warned about, the first not again
    assert second.cdr_uid in warning and first.cdr_uid not in warning
    assert await catch_up(db, utcnow()) == 0
    assert _warnings(caplog) == []
    # still listed, both, where unbilled items are
    assert await _held(db, "2026-06", date(2026, 6, 10)) == [
        ("cdr_held", first.cdr_uid),
        ("cdr_held", second.cdr_uid),
    ]
    assert await _remembered(db) == 2
    async with db.session() as s:  # the id set: nothing is held any more, both billed by the catch-up
        await billing.set_issuer_registration_id(s, "roam", "KvK 12345678")
    assert await _remembered(db) == 0
    assert await catch_up(db, utcnow()) == 2
    assert len(await documents(db)) == 4  # each split in two
    assert _warnings(caplog) == []


@pytest.mark.clock("2026-12-01T10:00:00Z")
async def test_the_monthly_job_warns_when_the_held_set_grows_not_every_hour(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    world = await seed_world(db)
    await without_registration_id(db, "roam")
    await price_with_parking_outside_vat(db, "AMS-01-1")
    await charge(db, "ACME-1", utc(2026, 11, 3, 8, 0), "parked", kwh="8", minutes=100, charge_minutes=40)
    assert await rate(db) == 1
    parked = await cdr_of(db, "parked")
    hub = Hub(settings=load_settings(database_url=db.url, _env_file=None), db=db, node_name="t")
    caplog.set_level(logging.WARNING)
    assert await run_monthly_job(hub) == 0  # November holds its only CDR: nothing issued, tried every hour
    [warning] = _warnings(caplog)
    assert parked.cdr_uid in warning
    assert await run_monthly_job(hub) == 0
    assert await run_monthly_job(hub) == 0
    assert _warnings(caplog) == []  # nothing new: no warning again (before: one per run)
    await charge(db, "ACME-2", utc(2026, 11, 29, 8, 0), "late", kwh="5", minutes=80, charge_minutes=30)
    assert await rate(db) == 1  # a late November CDR, held too
    late = await cdr_of(db, "late")
    async with db.session() as s:
        fee = BillingCharge(
            account_id=world.account_id, description="Late payment fee", amount=D("7.50"), currency="EUR",
            vat_rate=None, charged_on=date(2026, 11, 20), source_key="dunning:1",
        )  # fmt: skip
        s.add(fee)
        await s.flush()
        fee_ref = f"fee:{fee.id}"
    assert await run_monthly_job(hub) == 0
    cdrs, fees = _warnings(caplog)
    assert (
        f"newly held: {late.cdr_uid}" in cdrs and parked.cdr_uid in cdrs
    )  # (both wait; the late one is new)
    assert f"newly held: {fee_ref}" in fees
    assert await run_monthly_job(hub) == 0
    assert _warnings(caplog) == []
    assert sorted(await _held(db, "2026-11", date(2026, 12, 1))) == sorted(
        [("cdr_held", parked.cdr_uid), ("cdr_held", late.cdr_uid), ("fee_held", fee_ref)]
    )
    assert await documents(db) == []
