"""The monthly job's bulk path (billing.store.monthly_bulk) issues the per-account path's invoices to the byte.

Generated months (seeded): several issuers (one allowing reverse charge to a German fleet), EUR and JPY fleets,
tokens with and without a driver's name or vehicle (and a non-ASCII name), locations with and without a name,
price caps (adjustments) over one or two VAT rates, credit CDRs of the month's CDRs, CDRs outside the month or in
another currency. The same world is issued in bulk, then (emptied and seeded again) account by account; the stored
documents, numbers and CDR links are the same. Also: a second run issues nothing, two concurrent runs issue each
invoice once with gap-free numbers, a batch's CDRs read ahead bill each CDR once when one of its accounts was
invoiced meanwhile and are read again when they were read for other accounts, invoices built ahead are
only numbered and stamped under the locks, or built again when their issuer changed meanwhile, an account with a fee goes through the per-account path, and each new
invoice's collection is requested.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, text

import billing
from bench.bench_billing_db import CdrRow, FleetSpec, World, check, load_cdrs, seed_world
from billing.core.documents import Address, Identity, PaymentTerms
from billing.core.issuers import Issuer
from billing.core.numbering import Series
from billing.store.bulk_read import copy_query
from billing.store.monthly_bulk import (
    _READ_SETTINGS,
    _accounts,
    _issue_batch,
    _NextRead,
    _owners,
    _read,
    _read_sql,
    _ReadAhead,
    issue_period,
)
from kernel.db.engine import Database
from kernel.models import BillingCharge, BillingDocument, BillingDocumentCdr
from kernel.models.billing import BillingIssuer
from kernel.models.cdrs import Cdr
from tests.conftest import clear_tables

PERIOD = "2026-10"


def _issuer(key: str, currency: str, *, reverse_charge: bool = False) -> Issuer:
    return Issuer(
        key=key,
        identity=Identity(
            f"Issuer {key} B.V.",
            Address("Stationsplein 1", "1012 AB", "Amsterdam", "NL"),
            vat_id=f"NL{sum(map(ord, key)):09d}B01",
            registration_id=f"KvK {sum(map(ord, key)):08d}",
            business=True,
        ),
        currency=currency,
        invoice_series=Series("INV"),
        credit_series=Series("CN"),
        terms=PaymentTerms(14),
        reverse_charge_allowed=reverse_charge,
    )


ISSUERS = [_issuer("nl", "EUR"), _issuer("rc", "EUR", reverse_charge=True), _issuer("jp", "JPY")]
NL = Address("Damrak 5", "1012 LG", "Amsterdam", "NL")
DE = Address("Hafenstr. 3", "20457", "Hamburg", "DE")
FLEETS = [
    FleetSpec(
        "F-A",
        "EUR",
        "nl",
        Identity("Fleet A B.V.", NL, vat_id="NL111111111B01", business=True),
        [
            ("Zoë Ünal", "V-1", "EV-1 Tesla"),
            ("Bob", None, None),
            (None, "VIS-3", None),
            (None, None, "Van 4"),
        ],
    ),
    FleetSpec(
        "F-B",
        "EUR",
        "rc",
        Identity("Fleet B GmbH", DE, vat_id="DE222222222", business=True),
        [("Gerd", None, "B-1"), ("Hans", None, "B-2")],
    ),
    FleetSpec(
        "F-C",
        "EUR",
        "nl",
        Identity("Fleet C B.V.", NL, vat_id="NL333333333B01", business=True),
        [("Cy", None, None)],
    ),
    FleetSpec(
        "F-D",
        "JPY",
        "jp",
        Identity("Fleet D K.K.", NL, vat_id="NL444444444B01", business=True),
        [("Daiki", None, "D-1"), ("Emi", None, "D-2")],
    ),
    FleetSpec(
        "F-E",
        "EUR",
        "rc",
        Identity("Fleet E B.V.", NL, vat_id="NL555555555B01", business=True),
        [("Eva", None, None)],
    ),
]
LOCATIONS = ["Amsterdam Centraal", None, "Zuidas P1"]
DIMS = ["ENERGY", "TIME", "PARKING_TIME", "FLAT"]
RATES = [Decimal(21), Decimal(9), Decimal("21.0"), Decimal(19), Decimal(0)]


def _month(rng: random.Random, world: World) -> list[CdrRow]:
    rows: list[CdrRow] = []
    for spec in FLEETS:
        places = 0 if spec.currency == "JPY" else 2
        for n in range(rng.randint(2, 9)):
            start = datetime(2026, 10, 1, tzinfo=UTC) + timedelta(minutes=rng.randint(0, 30 * 24 * 60 - 400))
            start += timedelta(microseconds=rng.choice([0, 0, 123456]))
            end = start + timedelta(minutes=rng.randint(5, 300))
            if n == 0 and rng.random() < 0.5:
                end = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(minutes=5)  # not this month's
            lines: list[dict[str, Any]] = []
            minor = 0
            for _ in range(rng.randint(1, 3)):
                net = rng.randint(0, 5000)
                minor += net
                lines.append(
                    {
                        "kind": "component",
                        "dimension": rng.choice(DIMS),
                        "quantity": Decimal(rng.randint(0, 90000)).scaleb(-3),
                        "unit_price": Decimal(rng.randint(1, 900)).scaleb(-2),
                        "vat": rng.choice(RATES),
                        "amount_excl_vat": Decimal(net).scaleb(-places),
                    }
                )
            if rng.random() < 0.3:
                adjustment = -rng.randint(0, minor // 2) if rng.random() < 0.7 else rng.randint(1, 300)
                minor += adjustment
                lines.append(
                    {
                        "kind": "MAX_PRICE" if adjustment <= 0 else "MIN_PRICE",
                        "dimension": None,
                        "quantity": 1,
                        "unit_price": None,
                        "vat": None,
                        "amount_excl_vat": Decimal(adjustment).scaleb(-places),
                    }
                )
            uid = f"{spec.name}-{n:03d}"
            rows.append(
                CdrRow(
                    uid=uid,
                    token_id=rng.choice(world.tokens[spec.name]),
                    location_id=rng.choice(world.locations),
                    currency=spec.currency
                    if rng.random() < 0.95
                    else ("JPY" if spec.currency == "EUR" else "EUR"),
                    start=start,
                    end=end,
                    total_excl=Decimal(minor).scaleb(-places),
                    lines=lines,
                    session_ref=f"S-{uid}",
                    signed=rng.random() < 0.3,
                    holder_recorded=rng.random() < 0.7,  # else an older row, billed by its token's holder
                )
            )
            if rng.random() < 0.15 and n > 0:
                original = rows[-1]
                rows.append(
                    CdrRow(
                        uid=uid + "-credit",
                        token_id=original.token_id,
                        location_id=original.location_id,
                        currency=original.currency,
                        start=original.start,
                        end=original.end + timedelta(minutes=1),
                        total_excl=-original.total_excl,
                        lines=None,
                        credit_of=len(rows) - 1,
                        session_ref=original.session_ref,
                        holder_recorded=original.holder_recorded,
                    )
                )
    return rows


async def _seed(db: Database, seed: int) -> World:
    world = await seed_world(db, ISSUERS, FLEETS, LOCATIONS)
    await load_cdrs(db, world, _month(random.Random(seed), world))
    return world


async def _stored(db: Database) -> list[tuple[Any, ...]]:
    async with db.session() as s:
        keys = {i.id: i.key for i in (await s.scalars(select(BillingIssuer))).all()}
        docs = (
            await s.scalars(
                select(BillingDocument).order_by(BillingDocument.issuer_id, BillingDocument.sequence)
            )
        ).all()
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
            keys[d.issuer_id],
            d.number,
            d.source_key,
            json.dumps(d.document),
            json.dumps(d.buyer),
            (d.total_excl_vat, d.total_vat, d.total_incl_vat, d.payable),
            (d.supply_start, d.supply_end, d.issue_date, d.due_date),
            sorted(on.get(d.id, [])),
        )
        for d in docs
    ]


async def _never(account_id: int, period: str) -> bool:
    raise AssertionError(f"account {account_id} went through the per-account path")


@pytest.mark.clock("2026-11-01T06:00:00Z")
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
async def test_bulk_issues_the_per_account_documents_to_the_byte(db: Database, seed: int) -> None:
    world = await _seed(db, seed)
    requested: list[int] = []

    async def on_issue(_s: Any, row: BillingDocument) -> None:
        requested.append(row.id)

    ids = list(world.accounts.values())
    issued = await issue_period(db, ids, PERIOD, on_issue=on_issue, per_account=_never, batch=2)
    bulk_docs = await _stored(db)
    assert issued == len(bulk_docs) >= 4
    assert sorted(requested) == sorted(d.id for d in await _documents(db))
    assert await issue_period(db, ids, PERIOD, per_account=_never) == 0  # idempotent
    figures = await check(db)
    async with db.session() as s:
        billable = (await s.scalars(select(Cdr.cdr_uid))).all()
    assert figures["links"] < len(billable)  # November's and the other currency's stay out

    await clear_tables(db)
    world = await _seed(db, seed)
    for account_id in sorted(world.accounts.values()):
        async with db.session() as s:
            await billing.issue_monthly_invoice(s, account_id, PERIOD)
    per_account_docs = await _stored(db)
    for a, b in zip(per_account_docs, bulk_docs, strict=False):
        if a != b:
            for x, y in zip(a, b, strict=True):
                if x != y:
                    k = next(i for i in range(min(len(str(x)), len(str(y)))) if str(x)[i] != str(y)[i])
                    print("DIFF", str(x)[k - 200 : k + 200], "\n!=\n", str(y)[k - 200 : k + 200])
    assert per_account_docs == bulk_docs


async def _documents(db: Database) -> list[BillingDocument]:
    async with db.session() as s:
        return list((await s.scalars(select(BillingDocument))).all())


@pytest.mark.clock("2026-11-01T06:00:00Z")
async def test_two_concurrent_runs_issue_each_invoice_once_without_a_gap(db: Database) -> None:
    world = await _seed(db, 7)
    ids = list(world.accounts.values())
    counts = await asyncio.gather(
        *(issue_period(db, ids, PERIOD, per_account=_never, batch=2) for _ in range(3))
    )
    docs = await _documents(db)
    assert sum(counts) == len(docs) and len({d.source_key for d in docs}) == len(docs)
    await check(db)


@pytest.mark.clock("2026-11-01T06:00:00Z")
async def test_an_account_with_a_fee_goes_through_the_per_account_path(db: Database) -> None:
    world = await _seed(db, 5)
    fee_account = world.accounts["F-A"]
    async with db.session() as s:
        s.add(
            BillingCharge(
                account_id=fee_account,
                description="Card fee",
                amount=Decimal("2.50"),
                currency="EUR",
                vat_rate=Decimal(21),
                charged_on=date(2026, 10, 15),
                source_key="test:card-fee",
            )
        )
    left: list[int] = []

    async def per_account(account_id: int, period: str) -> bool:
        left.append(account_id)
        async with db.session() as s:
            return await billing.issue_monthly_invoice(s, account_id, period) is not None

    await issue_period(db, list(world.accounts.values()), PERIOD, per_account=per_account)
    assert left == [fee_account]
    async with db.session() as s:
        [fee] = (await s.scalars(select(BillingCharge))).all()
        doc = await s.get(BillingDocument, fee.document_id)
    assert doc is not None and doc.account_id == fee_account
    assert doc.document["lines"][-1]["description"] == "Card fee"


@pytest.mark.clock("2026-11-01T06:00:00Z")
async def test_a_batch_the_core_refuses_goes_account_by_account(db: Database) -> None:
    world = await _seed(db, 6)
    bad = CdrRow(
        "F-C-BAD",
        world.tokens["F-C"][0],
        None,
        "EUR",
        datetime(2026, 10, 5, tzinfo=UTC),
        datetime(2026, 10, 5, 1, tzinfo=UTC),
        Decimal("1.00"),
        None,  # a CDR without priced lines: the core refuses its invoice
    )
    await load_cdrs(db, world, [bad])
    tried: list[int] = []

    async def per_account(account_id: int, period: str) -> bool:
        tried.append(account_id)
        async with db.session() as s:
            return await billing.issue_monthly_invoice(s, account_id, period) is not None

    issued = await issue_period(db, list(world.accounts.values()), PERIOD, per_account=per_account)
    assert sorted(tried) == sorted(world.accounts.values())  # the batch went one by one
    docs = await _documents(db)
    assert issued == len(docs) == len(FLEETS) - 1
    assert world.accounts["F-C"] not in {d.account_id for d in docs}


async def _read_ahead(db: Database, ids: list[int]) -> _NextRead:
    """The CDRs of ``ids`` read ahead, the read finished (SQLite has one writer: the job reads ahead on
    PostgreSQL only)."""
    ahead = _NextRead(db, ids, PERIOD)
    ahead.start()
    assert ahead.task is not None
    await ahead.task
    return ahead


async def _batch(
    db: Database, ids: list[int], ahead: _NextRead, caplog: pytest.LogCaptureFixture
) -> tuple[int, list[int]]:
    """The batch of ``ids`` given ``ahead``, its log captured."""
    with caplog.at_level(logging.INFO, logger="billing.store.monthly_bulk"):
        async with db.session() as s:
            return await _issue_batch(s, db.dialect, ids, PERIOD, None, None, ahead)


async def _seeded_ahead(db: Database) -> tuple[list[int], _NextRead, _ReadAhead]:
    """Seed 6's world, and its accounts' CDRs read (and built) ahead."""
    world = await _seed(db, 6)
    ids = sorted(world.accounts.values())
    ahead = await _read_ahead(db, ids)
    assert ahead.task is not None
    early = await ahead.task
    assert early is not None
    return ids, ahead, early


async def _cdrs_on_documents(db: Database) -> list[int]:
    async with db.session() as s:
        return sorted((await s.scalars(select(BillingDocumentCdr.cdr_id))).all())


@pytest.mark.clock("2026-11-01T06:00:00Z")
async def test_a_read_ahead_leaves_out_an_account_invoiced_meanwhile(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    ids, ahead, early = await _seeded_ahead(db)
    assert {aid for aid, _ in early.owners.values()} == set(ids)
    async with db.session() as s:  # one of them is invoiced after the read, before the batch
        first = await billing.issue_monthly_invoice(s, ids[0], PERIOD)
    assert first is not None
    count, left = await _batch(db, ids, ahead, caplog)
    assert " (ahead)," in caplog.text  # the CDRs read ahead were taken, without the invoiced account's
    docs = await _documents(db)
    assert count == len(docs) - 1 and left == []
    assert [d.account_id for d in docs].count(ids[0]) == 1
    linked = await _cdrs_on_documents(db)
    assert len(linked) == len(set(linked)) == (await check(db))["links"]


@pytest.mark.clock("2026-11-01T06:00:00Z")
async def test_a_read_ahead_for_other_accounts_is_read_again(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    world = await _seed(db, 6)
    ids = sorted(world.accounts.values())
    count, left = await _batch(db, ids, await _read_ahead(db, ids[:1]), caplog)
    assert "in bulk: read " in caplog.text and " (ahead)," not in caplog.text
    assert left == [] and count == len(await _documents(db)) == len(ids)
    assert len(await _cdrs_on_documents(db)) == (await check(db))["links"]


@pytest.mark.clock("2026-11-01T06:00:00Z")
async def test_invoices_built_ahead_are_numbered_and_stamped_under_the_locks(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    ids, ahead, early = await _seeded_ahead(db)
    assert early.built is not None
    assert {h.number for h in early.built.plan.drafts} == {""}  # built before any number was taken
    count, left = await _batch(db, ids, ahead, caplog)
    assert " s (ahead), write " in caplog.text  # the bodies built ahead were taken
    docs = await _documents(db)
    assert left == [] and count == len(docs) == len(ids)
    assert all(d.document["number"] == d.number != "" for d in docs)
    await check(db)  # every CDR once, totals to the cent, numbers gap-free


@pytest.mark.clock("2026-11-01T06:00:00Z")
async def test_invoices_built_ahead_are_built_again_when_the_issuer_changed_meanwhile(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    ids, ahead, _ = await _seeded_ahead(db)
    async with db.session() as s:  # the issuer is renamed after the build ahead, before the batch
        nl = (await s.scalars(select(BillingIssuer).where(BillingIssuer.key == "nl"))).one()
        nl.legal_name = "Issuer nl Renamed B.V."
        nl_id = nl.id
    count, left = await _batch(db, ids, ahead, caplog)
    assert " (ahead), build " in caplog.text and " s (ahead), write " not in caplog.text
    docs = await _documents(db)
    assert left == [] and count == len(docs) == len(ids)
    sellers = {d.document["seller"]["legal_name"] for d in docs if d.issuer_id == nl_id}
    assert sellers == {"Issuer nl Renamed B.V."}
    await check(db)


@pytest.mark.clock("2026-11-01T06:00:00Z")
async def test_the_read_joins_each_cdr_by_an_index_whatever_the_statistics_say(db: Database) -> None:
    """The batch's read never scans a whole table nor hashes one (docs/benchmarks.md, session 16): planned on
    statistics that count no links, a scan of them per CDR took 708 s once another batch's links were being
    written; hashed, the anti-join read every link of the month."""
    if db.dialect != "postgresql":
        pytest.skip("the read's plan is PostgreSQL's")
    world = await _seed(db, 6)
    ids = sorted(world.accounts.values())
    async with db.session() as s:
        by_owner, _ = await _owners(s, await _accounts(s, ids, PERIOD), PERIOD)
    async with db.engine.connect() as conn:
        # statistics that count no links, as before a month's first batch; rolled back with the transaction,
        # so that no other test on this database plans with them
        await conn.execute(text("ANALYZE cdrs, tokens, locations, billing_document_cdrs"))
        for name, value in _READ_SETTINGS:
            await conn.execute(text(f"SET LOCAL {name} = {value}"))
        plan = "\n".join((await conn.scalars(text(f"EXPLAIN {copy_query(_read_sql(by_owner))}"))).all())
        await conn.rollback()
    assert "Index Only Scan using pk_billing_document_cdrs" in plan, plan
    for shape in ("Seq Scan", "Hash Join", "Hash Anti Join", "Merge", "Parallel"):
        assert shape not in plan, plan


@pytest.mark.clock("2026-11-01T06:00:00Z")
async def test_the_read_plan_ends_with_the_read(db: Database) -> None:
    """The batch's writes, in the transaction it read in under its locks, plan with the server's settings."""
    if db.dialect != "postgresql":
        pytest.skip("the read's plan is PostgreSQL's")
    world = await _seed(db, 6)
    ids = sorted(world.accounts.values())
    async with db.session() as s:
        default = (await s.execute(text("SHOW enable_seqscan"))).scalar_one()
        by_owner, _ = await _owners(s, await _accounts(s, ids, PERIOD), PERIOD)
        columns, _ = await _read(s, db.dialect, by_owner)
        assert len(columns.db_id) > 0
        assert (await s.execute(text("SHOW enable_seqscan"))).scalar_one() == default == "on"
        assert (await s.execute(text("SHOW jit"))).scalar_one() == "on"
