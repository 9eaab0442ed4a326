"""A CDR is billed to the fleet, driver and vehicle of its token when it was made (issue 14), through the real
pricing (``rate_pending``, ``correct_cdr``) and billing's real paths: a token moved to another fleet mid-month
leaves its earlier CDRs (and their correction) on the old fleet's invoice and bills the later ones to the new
fleet, a driver reassigned in the same fleet keeps their old sessions under their own name, in November and
December, on the per-account path and the bulk path alike (the same documents to the byte); the per-session
invoice follows the same rule (a token fleet-less at the session gets one although it joined a fleet later,
a fleet token that left its fleet gets none); a fleet CDRs are billed to is never removed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

import billing
from billing.cdr_hook import NotBilledNow, catch_up
from billing.store.monthly import subtotals
from billing.store.monthly_bulk import issue_period
from evhub import lifecycle
from evhub.provisioning import ProvisioningError
from kernel.db.engine import Database
from kernel.models import (
    BillingAccount,
    BillingDocument,
    BillingDocumentCdr,
    Cdr,
    ChargingSession,
    Fleet,
    Token,
)
from kernel.models.billing import BillingIssuer
from kernel.timeutil import utcnow
from portal.admin import add_fleet
from tariffs.rating import correct_cdr, rate_pending
from tests.billing.documents_kit import ACME, HOOKS, cdr_of, charge, issue_month, rate, seed_world, utc
from tests.conftest import clear_tables

PERIODS = ("2026-11", "2026-12")


async def _update_token(db: Database, uid: str, **changes: Any) -> None:
    """``evhub tokens update`` (the CLI's lifecycle call; the portal's assignment copies names the same way)."""
    async with db.session() as s:
        token = await s.scalar(select(Token).where(Token.uid == uid))
        assert token is not None
        await lifecycle.update_token(s, token, lifecycle.TokenChanges(**changes))


async def _moving_world(db: Database) -> dict[str, int]:
    """Acme (ACME-1 Ann, ACME-2 Bob) and Beta, each with an account with Roam. In November Ann and Bob charge;
    then ACME-1 moves to Beta as Carl's (EV-9 Zoe), ACME-2 becomes Dana's in Acme, and Ann's CDR is corrected;
    then Carl and Dana charge in November and December. The fleet accounts by fleet name."""
    world = await seed_world(db)
    await add_fleet(db, "Beta", "EUR")
    async with db.session() as s:
        beta = await billing.add_fleet_account(s, "Beta", "roam", ACME, timezone="Europe/Amsterdam")
        accounts = {"Acme": world.account_id, "Beta": beta.id}
    await charge(db, "ACME-1", utc(2026, 11, 3, 8, 0), "ann-nov", kwh="12.5")
    await charge(db, "ACME-2", utc(2026, 11, 5, 9, 0), "bob-nov", kwh="7.25")
    assert await rate(db) == 2
    await _update_token(db, "ACME-1", fleet="Beta", driver_name="Carl", vehicle="EV-9 Zoe")
    await _update_token(db, "ACME-2", driver_name="Dana")
    ann = await cdr_of(db, "ann-nov")
    await correct_cdr(db, ann.cdr_uid, HOOKS)  # after the move: the credit and the new revision stay Acme's
    await charge(db, "ACME-1", utc(2026, 11, 20, 18, 0), "carl-nov", kwh="20")
    await charge(db, "ACME-2", utc(2026, 11, 25, 7, 30), "dana-nov", kwh="9")
    await charge(db, "ACME-1", utc(2026, 12, 2, 8, 0), "carl-dec", kwh="11")
    await charge(db, "ACME-2", utc(2026, 12, 3, 8, 0), "dana-dec", kwh="5.5")
    assert await rate(db) == 4
    return accounts


async def _billed(db: Database) -> dict[tuple[str, str], list[tuple[str, int, bool]]]:
    """(fleet, period) -> the (session, revision, credit) of every CDR on that monthly invoice."""
    async with db.session() as s:
        rows = (
            await s.execute(
                select(
                    Fleet.name,
                    BillingDocument.billing_period,
                    ChargingSession.session_uid,
                    Cdr.revision,
                    Cdr.is_credit,
                )
                .join(BillingDocumentCdr, BillingDocumentCdr.document_id == BillingDocument.id)
                .join(Cdr, Cdr.id == BillingDocumentCdr.cdr_id)
                .join(ChargingSession, ChargingSession.id == Cdr.session_id)
                .join(BillingAccount, BillingAccount.id == BillingDocument.account_id)
                .join(Fleet, Fleet.id == BillingAccount.fleet_id)
                .where(BillingDocument.kind == billing.INVOICE)
            )
        ).all()
    out: dict[tuple[str, str], list[tuple[str, int, bool]]] = {}
    for fleet, period, session, revision, credit in rows:
        out.setdefault((fleet, period), []).append((session, revision, credit))
    return {key: sorted(value) for key, value in out.items()}


EXPECTED = {
    ("Acme", "2026-11"): [
        ("ann-nov", 0, False), ("ann-nov", 0, True), ("ann-nov", 1, False), ("bob-nov", 0, False),
        ("dana-nov", 0, False),
    ],
    ("Beta", "2026-11"): [("carl-nov", 0, False)],
    ("Acme", "2026-12"): [("dana-dec", 0, False)],
    ("Beta", "2026-12"): [("carl-dec", 0, False)],
}  # fmt: skip


async def _stored(db: Database) -> list[tuple[Any, ...]]:
    """Every stored document as the bulk test compares them: number, key, JSON, totals, dates, CDR links."""
    async with db.session() as s:
        keys = {i.id: i.key for i in (await s.scalars(select(BillingIssuer))).all()}
        docs = (await s.scalars(select(BillingDocument).order_by(BillingDocument.id))).all()
        links = (
            await s.execute(
                select(BillingDocumentCdr.document_id, Cdr.cdr_uid).join(
                    Cdr, Cdr.id == BillingDocumentCdr.cdr_id
                )
            )
        ).all()
    on: dict[int, list[str]] = {}
    for doc_id, uid in links:
        on.setdefault(doc_id, []).append(uid)
    return [
        (
            keys[d.issuer_id], d.kind, d.number, d.source_key, json.dumps(d.document), json.dumps(d.buyer),
            (d.total_excl_vat, d.total_vat, d.total_incl_vat, d.payable),
            (d.supply_start, d.supply_end, d.issue_date, d.due_date), sorted(on.get(d.id, [])),
        )
        for d in docs
    ]  # fmt: skip


async def _never(account_id: int, period: str) -> bool:
    raise AssertionError(f"account {account_id} went through the per-account path")


@pytest.mark.clock("2027-01-02T10:00:00Z")
async def test_a_moved_tokens_cdrs_stay_with_the_fleet_and_driver_of_their_session(db: Database) -> None:
    accounts = await _moving_world(db)
    for period in PERIODS:
        for fleet in ("Acme", "Beta"):
            assert await issue_month(db, accounts[fleet], period) is not None, (fleet, period)
    assert await _billed(db) == EXPECTED
    async with db.session() as s:
        rows = (
            await s.scalars(
                select(BillingDocument)
                .where(BillingDocument.billing_period == "2026-11")
                .order_by(BillingDocument.account_id)
            )
        ).all()
    acme, beta = rows
    assert [g.key for g in subtotals(acme)] == [
        ("Ann", "EV-1 Tesla"),
        ("Bob", "EV-2 Kona"),
        ("Dana", "EV-2 Kona"),
    ]
    assert [g.key for g in subtotals(beta)] == [("Carl", "EV-9 Zoe")]
    async with db.session() as s:
        acme_id = await s.scalar(select(Fleet.id).where(Fleet.name == "Acme"))
    for revision, credit in ((0, True), (1, False)):  # the correction made after the move: Ann's, in Acme
        cdr = await cdr_of(db, "ann-nov", revision=revision, credit=credit)
        assert (cdr.fleet_id, cdr.driver_name, cdr.vehicle, cdr.holder_recorded) == (
            acme_id, "Ann", "EV-1 Tesla", True,
        )  # fmt: skip
    # Beta loses its last token: the fleet stays, its CDRs are kept for ever
    await _update_token(db, "ACME-1", no_fleet=True)
    async with db.session() as s:
        beta_fleet = await s.scalar(select(Fleet).where(Fleet.name == "Beta"))
        assert beta_fleet is not None
        with pytest.raises(ProvisioningError, match="2 CDRs billed to it"):
            await lifecycle.remove_fleet(s, beta_fleet)


@pytest.mark.clock("2027-01-02T10:00:00Z")
async def test_the_bulk_path_bills_a_moved_token_as_the_per_account_path_does(db: Database) -> None:
    accounts = await _moving_world(db)
    ids = sorted(accounts.values())
    for period in PERIODS:
        assert await issue_period(db, ids, period, per_account=_never, batch=1) == 2
    assert await _billed(db) == EXPECTED
    bulk = await _stored(db)

    await clear_tables(db)
    accounts = await _moving_world(db)
    for period in PERIODS:
        for account_id in sorted(accounts.values()):
            assert await issue_month(db, account_id, period) is not None
    assert await _billed(db) == EXPECTED
    assert await _stored(db) == bulk


@pytest.mark.clock("2026-12-01T10:00:00Z")
async def test_the_per_session_invoice_follows_the_fleet_of_the_session_not_the_tokens_now(
    db: Database,
) -> None:
    world = await seed_world(db)
    await charge(db, "TOKEN-1", utc(2026, 11, 10, 9, 0), "app")  # no fleet then
    await charge(db, "ACME-2", utc(2026, 11, 11, 9, 0), "fleet")  # Acme's then
    assert await rate_pending(db, ()) == 2  # as if the hook had failed: the hourly job catches up later
    await _update_token(db, "TOKEN-1", fleet="Acme")
    await _update_token(db, "ACME-2", no_fleet=True)
    assert await catch_up(db, utcnow()) == 1
    app, fleet = await cdr_of(db, "app"), await cdr_of(db, "fleet")
    async with db.session() as s:
        invoice = await billing.document_of(s, app.id, billing.INVOICE)
        assert invoice is not None and invoice.billing_period is None  # the app driver's per-session invoice
        assert await billing.document_of(s, fleet.id, billing.INVOICE) is None
        row = await s.get(Cdr, fleet.id)
        assert row is not None
        with pytest.raises(NotBilledNow, match="monthly invoice"):
            await billing.invoice_cdr(s, row)
    november = await issue_month(db, world.account_id, "2026-11")
    assert november is not None
    async with db.session() as s:
        linked = set(
            (
                await s.scalars(
                    select(BillingDocumentCdr.cdr_id).where(BillingDocumentCdr.document_id == november.id)
                )
            ).all()
        )
    assert linked == {fleet.id}
    assert [g.key for g in subtotals(november)] == [("Bob", "EV-2 Kona")]


@pytest.mark.clock("2026-12-01T10:00:00Z")
async def test_a_cdr_from_before_the_holder_was_recorded_is_billed_by_its_tokens_fleet(db: Database) -> None:
    """Old rows (``holder_recorded`` false) fall back to the token's fleet, driver and vehicle now."""
    world = await seed_world(db)
    await charge(db, "ACME-1", utc(2026, 11, 3, 8, 0), "n1")
    assert await rate(db) == 1
    made = await cdr_of(db, "n1")
    async with db.session() as s:  # the same CDR as it was stored before the columns existed
        old = Cdr(
            **{
                c.key: getattr(made, c.key)
                for c in Cdr.__table__.columns
                if c.key not in ("id", "cdr_uid", "fleet_id", "driver_name", "vehicle", "holder_recorded")
            },
            cdr_uid="old-n1",
        )
        old.revision = 7
        s.add(old)
    await _update_token(db, "ACME-1", driver_name="Zed")
    november = await issue_month(db, world.account_id, "2026-11")
    assert november is not None
    assert [g.key for g in subtotals(november)] == [("Ann", "EV-1 Tesla"), ("Zed", "EV-1 Tesla")]
