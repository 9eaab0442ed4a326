"""The hourly catch-up's widening (issue 14): besides the CDRs of the last three days, :func:`billing.cdr_hook.
catch_up` looks at every uninvoiced CDR an issuer sells, however old, for three days after its registration id
was set or changed (``billing_issuers.registration_id_set_at``, the hub's clock: what was held for it), and after
no other edit of the issuer (its payment terms, its dunning schedule: the row's ``updated_at``). Real pricing,
SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest

import billing
from billing.cdr_hook import catch_up
from billing.store.schedules import set_schedule
from kernel.clock import pinned
from kernel.db.engine import Database
from kernel.timeutil import utcnow
from tariffs.rating import rate_pending
from tests.billing.documents_kit import cdr_of, charge, documents, seed_world, utc

SCHEDULE = {"rules": [{"name": "reminder", "days_after_due": 7, "action": "reminder"}]}


@pytest.mark.clock("2026-06-10T12:00:00Z")
async def test_only_setting_the_registration_id_widens_the_catch_up_to_old_cdrs(db: Database) -> None:
    await seed_world(db)
    await charge(db, "TOKEN-1", utc(2026, 6, 10, 9, 0), "old")  # the app driver's: a per-session invoice
    assert await rate_pending(db, ()) == 1  # priced without billing's hook (as if it had failed)
    old = await cdr_of(db, "old")
    async with db.session() as s:
        assert (await billing.get_issuer(s, "roam")).registration_id_set_at is None  # added with it
    ten_days_on = utc(2026, 6, 20, 12, 0)
    with pinned(ten_days_on):  # the CDR is past the catch-up's three days
        assert await catch_up(db, utcnow()) == 0
        async with db.session() as s:  # unrelated edits of the issuer: its row's updated_at moves
            row = await billing.get_issuer(s, "roam")
            row.payment_terms_days = 30
        async with db.session() as s:
            await set_schedule(s, "roam", SCHEDULE)
        async with db.session() as s:
            row = await billing.get_issuer(s, "roam")
            assert row.updated_at >= ten_days_on and row.registration_id_set_at is None
        assert await catch_up(db, utcnow()) == 0  # (before: the whole issuer, however old, for three days)
        assert await documents(db) == []
        async with db.session() as s:  # the same id again is no change
            await billing.set_issuer_registration_id(s, "roam", "KvK 12345678")
            assert (await billing.get_issuer(s, "roam")).registration_id_set_at is None
        assert await catch_up(db, utcnow()) == 0
        async with db.session() as s:  # a new id: what was held for the old one may be billed now
            await billing.set_issuer_registration_id(s, "roam", "KvK 87654321")
        async with db.session() as s:
            set_at = (await billing.get_issuer(s, "roam")).registration_id_set_at
        assert set_at is not None and set_at.tzinfo is not None and set_at.utcoffset() == timedelta(0)
        assert ten_days_on <= set_at.astimezone(UTC) < ten_days_on + timedelta(minutes=1)  # the hub's clock
        assert await catch_up(db, utcnow()) == 1
        assert await catch_up(db, utcnow()) == 0  # once
    [invoice] = await documents(db)
    assert invoice.total_excl_vat == old.total_cost_excl_vat
    with pinned(ten_days_on + timedelta(days=1)):
        await charge(db, "TOKEN-1", utc(2026, 6, 21, 9, 0), "later")
        assert await rate_pending(db, ()) == 1
    with pinned(ten_days_on + timedelta(days=5)):  # the id was set five days ago, the CDR made four: too old
        assert await catch_up(db, utcnow()) == 0
