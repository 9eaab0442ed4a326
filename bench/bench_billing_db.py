"""Benchmark: the product's monthly job (:func:`billing.monthly_job.run_monthly_job`) on a database of N CDRs.

Run: ``flock /tmp/bench8.lock .venv/bin/python -m bench.bench_billing_db N POSTGRES_URL`` (``python -m bench``:
``EVHUB_BENCH_CDRS``, default 1,000,000, and ``EVHUB_BENCH_BILLING_DB_URL``, skipped without it; e.g. 1000000
``postgresql+asyncpg://postgres@127.0.0.1:5432/bench_billing_db``; the database is dropped and created, then
migrated; ``EVHUB_BENCH_REUSE=1`` keeps the CDRs of an earlier run and drops its documents instead,
``EVHUB_BENCH_LOAD_ONLY=1`` loads and stops;
``EVHUB_BENCH_PROFILE=1`` profiles the job, ``EVHUB_BENCH_PROFILE_SORT`` its pstats order, default cumulative). The CDRs are :mod:`bench.bench_billing`'s (the settlement
benchmark's generator with fleets, tokens, 100 issuers, EUR and JPY, credit CDRs, price caps, reverse charge to
German fleets, an exempt issuer), written into ``sessions`` and ``cdrs`` as the rating stage would have stored
them (explanation lines of the engine's shape, the token's holder recorded; a credit CDR credits its fleet's
latest CDR) by :func:`bench.billing_db_copy.copy_table`, COPY text streams built from columns. Timed: the job, from nothing issued to every fleet's invoice of October 2026 issued. Checked,
never timed: one invoice per fleet account with CDRs, every CDR on exactly one invoice, each invoice's total
excl. VAT equal to its CDRs' to the cent, and every issuer's numbers 1..n without a gap. The baseline of the same
run: before the job, ``EVHUB_BENCH_BASELINE_ACCOUNTS`` accounts (default 20, spread over all) are issued one by
one through the per-account path, and both are reported per CDR.

The loader (:func:`seed_world`, :func:`load_cdrs`) is also what ``tests/billing/test_billing_monthly_bulk.py``
seeds its databases with (SQLite: batched inserts instead of COPY).
"""

from __future__ import annotations

import asyncio
import cProfile
import logging
import os
import pstats
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import numpy as np
from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import make_url

import billing
from bench.bench_billing import TOKENS_PER_FLEET, billing_table, buyer, fleet_currency, fleet_issuer, issuers
from bench.bench_settlement import make_cdrs
from bench.billing_db_copy import copy_table
from billing.core import bulk
from billing.core.documents import Identity
from billing.core.issuers import Issuer
from billing.core.lines import Dimension
from billing.monthly_job import issue_monthly_invoice, run_monthly_job
from billing.store.codec import to_json
from kernel import jsonutil
from kernel.clock import pinned
from kernel.components import Hub
from kernel.db.engine import Database
from kernel.db.migrate import upgrade
from kernel.models import (
    BillingAccount,
    BillingDocument,
    BillingDocumentCdr,
    ChargePoint,
    Fleet,
    Location,
    Party,
    Token,
)
from kernel.models.cdrs import Cdr
from kernel.models.chargers import OcppVersion
from kernel.models.parties import PartyRole
from kernel.models.sessions import ChargingSession
from kernel.money import minor_units
from kernel.settings import load_settings

T_SEEDED = datetime(2026, 10, 1, tzinfo=UTC)


@dataclass(frozen=True)
class FleetSpec:
    """A fleet, its account (issuer key, currency, buyer) and its tokens' (driver, visual number, vehicle)."""

    name: str
    currency: str
    issuer: str
    buyer: Identity
    tokens: Sequence[tuple[str | None, str | None, str | None]]


@dataclass(frozen=True)
class World:
    cpo_id: int
    charge_point_id: int
    locations: list[int]
    tokens: dict[str, list[int]]  # fleet name -> token ids
    accounts: dict[str, int]  # fleet name -> account id


@dataclass(frozen=True)
class CdrRow:
    """A priced CDR as rating stores it: ``lines`` the explanation's (None for a credit CDR, whose lines are its
    original's), ``credit_of`` the index of the CDR it credits."""

    uid: str
    token_id: int
    location_id: int | None
    currency: str
    start: datetime
    end: datetime
    total_excl: Decimal
    lines: list[dict[str, Any]] | None
    credit_of: int | None = None
    session_ref: str | None = None
    signed: bool = False
    holder_recorded: bool = True
    """The CDR records its token's fleet, driver and vehicle, as pricing does (False: an older row without them,
    billed by its token's current ones)."""


async def seed_world(
    db: Database, issuers: Sequence[Issuer], fleets: Sequence[FleetSpec], location_names: Sequence[str | None]
) -> World:
    """A CPO with a charge point and locations, the issuers, the fleets with their tokens and accounts."""
    async with db.session() as s:
        cpo = Party(country_code="NL", party_id="BCP", role=PartyRole.CPO, name="Bench CPO")
        s.add(cpo)
        await s.flush()
        locations = []
        for k, name in enumerate(location_names):
            loc = Location(
                cpo_id=cpo.id,
                ocpi_id=f"LOC-{k}",
                name=name,
                address="Stationsplein 1",
                city="Amsterdam",
                country="NLD",
                latitude="52.37",
                longitude="4.89",
                time_zone="Europe/Amsterdam",
                last_updated=T_SEEDED,
            )
            s.add(loc)
            locations.append(loc)
        cp = ChargePoint(identity="BENCH-CP-1", ocpp_version=OcppVersion.V16, cpo_id=cpo.id)
        s.add(cp)
        for issuer in issuers:
            await billing.add_issuer(s, issuer)
        fleet_rows = [Fleet(name=f.name, currency=f.currency) for f in fleets]
        s.add_all(fleet_rows)
        await s.flush()
        tokens: dict[str, list[int]] = {}
        for spec, row in zip(fleets, fleet_rows, strict=True):
            made = [
                Token(
                    country_code="NL",
                    party_id="EMS",
                    uid=f"{spec.name}-T{k}",
                    contract_id=f"NL-EMS-{spec.name}-{k}",
                    visual_number=visual,
                    issuer="Bench eMSP",
                    fleet_id=row.id,
                    driver_name=driver,
                    vehicle=vehicle,
                    last_updated=T_SEEDED,
                )
                for k, (driver, visual, vehicle) in enumerate(spec.tokens)
            ]
            s.add_all(made)
            await s.flush()
            tokens[spec.name] = [t.id for t in made]
        accounts = {}
        for spec in fleets:
            account = await billing.add_fleet_account(
                s, spec.name, spec.issuer, spec.buyer, currency=spec.currency
            )
            accounts[spec.name] = account.id
        return World(cpo.id, cp.id, [loc.id for loc in locations], tokens, accounts)


def _explanation(lines: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {"lines": lines} if lines is not None else {}


async def load_cdrs(db: Database, world: World, rows: Iterable[CdrRow], chunk: int = 200_000) -> int:
    """Write ``rows`` as sessions and CDRs (COPY on PostgreSQL); the number written."""
    async with db.session() as s:
        first = int(await s.scalar(select(func.coalesce(func.max(Cdr.id), 0))) or 0) + 1
        first_session = int(await s.scalar(select(func.coalesce(func.max(ChargingSession.id), 0))) or 0) + 1
        holders = {
            t: (f, d, v)
            for t, f, d, v in (
                await s.execute(select(Token.id, Token.fleet_id, Token.driver_name, Token.vehicle))
            ).all()
        }
    pg = db.dialect == "postgresql"
    n = 0
    batch_sessions: list[tuple[Any, ...]] = []
    batch_cdrs: list[tuple[Any, ...]] = []
    session_of: dict[int, int] = {}

    async def flush() -> None:
        async with db.session() as s:
            if pg:
                raw = (await (await s.connection()).get_raw_connection()).driver_connection
                assert raw is not None
                await raw.copy_records_to_table("sessions", records=batch_sessions, columns=_SESSION_COLUMNS)
                await raw.copy_records_to_table("cdrs", records=batch_cdrs, columns=_CDR_COLUMNS)
            else:
                await s.execute(
                    insert(ChargingSession),
                    [dict(zip(_SESSION_COLUMNS, r, strict=True)) for r in batch_sessions],
                )
                rows_ = [dict(zip(_CDR_COLUMNS, r, strict=True)) for r in batch_cdrs]
                for r in rows_:
                    r["explanation"] = jsonutil.loads(r["explanation"])
                    r["data"] = jsonutil.loads(r["data"])
                    r["tariff_versions"] = []
                await s.execute(insert(Cdr), rows_)
        batch_sessions.clear()
        batch_cdrs.clear()

    now = T_SEEDED
    for k, row in enumerate(rows):
        cdr_id = first + k
        if row.credit_of is None:
            sid = first_session + len(session_of)
            session_of[k] = sid
            batch_sessions.append(
                (
                    *(sid, f"S-{row.uid}", world.charge_point_id, str(sid), world.cpo_id, "WHITELIST"),
                    *("COMPLETED", row.start, row.end, Decimal(0), "{}", "priced", "{}", now, now, now),
                )
            )
        else:
            sid = session_of[row.credit_of]
        data = {"session_id": row.session_ref} | ({"signed_data": {"x": 1}} if row.signed else {})
        credited = None if row.credit_of is None else first + row.credit_of
        batch_cdrs.append(
            (
                *(
                    cdr_id,
                    row.uid,
                    sid,
                    0,
                    row.credit_of is not None,
                    credited,
                    world.cpo_id,
                    row.location_id,
                ),
                *(row.token_id, row.currency, row.start, row.end, Decimal(0), Decimal(0), row.total_excl),
                *("[]", jsonutil.dumps(_explanation(row.lines)), jsonutil.dumps(data), now, now),
                *(holders[row.token_id] if row.holder_recorded else (None, None, None)),
                row.holder_recorded,
            )
        )
        n += 1
        if len(batch_cdrs) >= chunk:
            await flush()
    if batch_cdrs:
        await flush()
    if pg:
        async with db.session() as s:
            for table in ("sessions", "cdrs"):
                await s.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
                    )
                )
    return n


_SESSION_COLUMNS = [
    *("id", "session_uid", "charge_point_id", "transaction_id", "cpo_id", "auth_method", "status"),
    *("start_time", "end_time", "energy_wh", "flags", "pricing_state", "data", "last_updated"),
    *("created_at", "updated_at"),
]
_CDR_COLUMNS = [
    *("id", "cdr_uid", "session_id", "revision", "is_credit", "credit_of", "cpo_id", "location_id"),
    *("token_id", "currency", "start_date_time", "end_date_time", "total_energy_kwh", "total_time_hours"),
    *("total_cost_excl_vat", "tariff_versions", "explanation", "data", "created_at", "last_updated"),
    *("fleet_id", "driver_name", "vehicle", "holder_recorded"),
]


async def _fresh(url: str) -> None:
    """Drop and create the database of ``url`` (on its server's ``postgres`` database), migrated to head."""
    parsed = make_url(url)
    admin = await asyncpg.connect(
        host=parsed.host or "127.0.0.1", port=parsed.port or 5432, user=parsed.username, database="postgres"
    )
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{parsed.database}"')
    finally:
        await admin.close()
    db = Database(url)
    await upgrade(db)
    await db.dispose()


def _currency(fleet: int) -> str:
    return ("EUR", "JPY")[int(fleet_currency(np.array([fleet]))[0])]


async def seed_bench_world(
    db: Database, table: bulk.CdrTable, present: np.ndarray
) -> tuple[World, dict[str, int]]:
    """bench_billing's issuers, the fleets with CDRs (10 tokens each, in order: the ``k``-th token of the
    ``i``-th fleet is ``world.tokens[""][i * 10 + k]``), their accounts and the locations (named as the table's),
    with Core inserts; the world and each location's id by name."""
    now = T_SEEDED
    async with db.session() as s:
        cpo = Party(country_code="NL", party_id="BCP", role=PartyRole.CPO, name="Bench CPO")
        s.add(cpo)
        await s.flush()
        cp = ChargePoint(identity="BENCH-CP-1", ocpp_version=OcppVersion.V16, cpo_id=cpo.id)
        s.add(cp)
        issuer_rows = [await billing.add_issuer(s, issuer) for issuer in issuers()]
        names = list(table.location.values)
        location_ids = (
            await s.scalars(
                insert(Location).returning(Location.id, sort_by_parameter_order=True),
                [
                    {
                        **dict(cpo_id=cpo.id, ocpi_id=name, name=name, address="Stationsplein 1"),
                        **dict(city="Amsterdam", country="NLD", latitude="52.37", longitude="4.89"),
                        **dict(time_zone="Europe/Amsterdam", last_updated=now, data={}),
                    }
                    for name in names
                ],
            )
        ).all()
        fleets = present.tolist()
        fleet_ids = (
            await s.scalars(
                insert(Fleet).returning(Fleet.id, sort_by_parameter_order=True),
                [{"name": f"Fleet {f:05d}", "currency": _currency(f)} for f in fleets],
            )
        ).all()
        token_rows = []
        for f, fid in zip(fleets, fleet_ids, strict=True):
            for k in range(TOKENS_PER_FLEET):
                t = f * TOKENS_PER_FLEET + k
                token_rows.append(
                    {
                        **dict(country_code="NL", party_id="EMS", uid=f"T{t:06d}", uid_key=f"T{t:06d}"),
                        **dict(contract_id=f"NL-EMS-{t:06d}", issuer="Bench eMSP", fleet_id=fid),
                        **dict(driver_name=f"Driver {t:06d}", vehicle=f"EV-{t:06d}", data={}),
                        **dict(last_updated=now),
                    }
                )
        token_ids = (
            await s.scalars(insert(Token).returning(Token.id, sort_by_parameter_order=True), token_rows)
        ).all()
        account_ids = (
            await s.scalars(
                insert(BillingAccount).returning(BillingAccount.id, sort_by_parameter_order=True),
                [
                    {
                        **dict(issuer_id=issuer_rows[fleet_issuer(f)].id, kind="fleet", fleet_id=fid),
                        **dict(currency=_currency(f), buyer=to_json(buyer(f)), language="en", timezone="UTC"),
                    }
                    for f, fid in zip(fleets, fleet_ids, strict=True)
                ],
            )
        ).all()
    world = World(
        cpo.id,
        cp.id,
        list(location_ids),
        {"": list(token_ids)},
        {f"Fleet {f:05d}": a for f, a in zip(fleets, account_ids, strict=True)},
    )
    return world, dict(zip(names, location_ids, strict=True))


def bench_rows(table: bulk.CdrTable, world: World, location_ids: dict[str, int]) -> Iterator[CdrRow]:
    """``table``'s CDRs as rows; a credit CDR credits its fleet's latest CDR not credited yet (dropped when
    there is none), with that CDR's times and total negated and no lines of its own, as rating stores one."""
    order = np.argsort(table.comp_cdr, kind="stable")
    sorted_cdr = table.comp_cdr[order]
    starts = np.searchsorted(sorted_cdr, np.arange(table.n_cdrs))
    ends = np.searchsorted(sorted_cdr, np.arange(table.n_cdrs), side="right")
    tokens = world.tokens[""]
    latest: dict[int, tuple[int, CdrRow]] = {}
    out = 0
    for r in range(table.n_cdrs):
        inv = int(table.invoice[r])
        if table.is_credit[r]:
            found = latest.pop(inv, None)
            if found is None:
                continue
            k, original = found
            yield CdrRow(
                original.uid + "-C",
                original.token_id,
                original.location_id,
                original.currency,
                original.start,
                original.end,
                -original.total_excl,
                None,
                credit_of=k,
                session_ref=original.session_ref,
            )
            out += 1
            continue
        currency = table.currency.at(r)
        places = minor_units(currency)
        row = CdrRow(
            table.cdr_id.at(r),
            tokens[inv * TOKENS_PER_FLEET + int(table.group.codes[r]) % TOKENS_PER_FLEET],
            location_ids[table.location.at(r)],
            currency,
            datetime.fromisoformat(table.start.at(r)),
            datetime.fromisoformat(table.end.at(r)),
            Decimal(int(table.total_excl[r])).scaleb(-places),
            _lines(table, order, int(starts[r]), int(ends[r]), places),
            session_ref=table.session_ref.at(r),
            signed=bool(table.signed_data_ref.codes[r] >= 0),
        )
        latest[inv] = (out, row)
        yield row
        out += 1


def _lines(table: bulk.CdrTable, order: np.ndarray, lo: int, hi: int, places: int) -> list[dict[str, Any]]:
    out = []
    for k in order[lo:hi].tolist():
        dim = bulk.DIMENSIONS[int(table.comp_dimension[k])]
        adjustment = dim is Dimension.ADJUSTMENT
        out.append(
            {
                "kind": "MAX_PRICE" if adjustment else "component",
                "dimension": None if adjustment else dim.value,
                "quantity": Decimal(1) if adjustment else Decimal(table.comp_quantity.at(k)),
                "unit_price": None if adjustment else Decimal(table.comp_unit_price.at(k)),
                "vat": table.comp_vat.at(k),
                "amount_excl_vat": Decimal(int(table.comp_net[k])).scaleb(-places),
            }
        )
    return out


def main(n: int | None = None, url: str | None = None) -> None:
    """``python -m bench``: N from ``EVHUB_BENCH_CDRS`` (default 1,000,000), the database from
    ``EVHUB_BENCH_BILLING_DB_URL`` (PostgreSQL; skipped without one)."""
    n = n or int(os.environ.get("EVHUB_BENCH_CDRS", "1000000"))
    url = url or os.environ.get("EVHUB_BENCH_BILLING_DB_URL", "")
    if not url.startswith("postgresql"):
        print(
            "bench_billing_db: skipped, it needs EVHUB_BENCH_BILLING_DB_URL=postgresql+asyncpg://... (a scratch database)"
        )
        return
    asyncio.run(_run(n, url))


async def _run(n: int, url: str) -> None:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    print(f"bench_billing_db: {n:,} CDRs into {make_url(url).database} ({stamp})")
    t0 = time.perf_counter()
    reuse = bool(os.environ.get("EVHUB_BENCH_REUSE"))
    if not reuse:
        await _fresh(url)
    db = Database(url)
    try:
        if reuse:  # the CDRs of an earlier run: its documents (and their collection requests) dropped
            async with db.engine.begin() as conn:
                for table_name in (
                    "outbox",
                    "billing_document_cdrs",
                    "billing_documents",
                    "billing_number_series",
                ):
                    await conn.execute(text(f"DELETE FROM {table_name}"))
            async with db.session() as s:
                loaded = int(await s.scalar(select(func.count()).select_from(Cdr)) or 0)
            print(f"  reusing {loaded:,} CDRs loaded before")
        else:
            table, present = billing_table(make_cdrs(n))
            world, location_ids = await seed_bench_world(db, table, present)
            loaded = await copy_table(db, world.tokens[""], table, location_ids, world)
            del table
            print(f"  loaded {loaded:,} CDRs of {len(present):,} fleets in {time.perf_counter() - t0:.0f} s")
        async with db.engine.connect() as conn:  # statistics, as autovacuum keeps them on a live hub
            await conn.execute(text("ANALYZE"))
            await conn.commit()  # uncommitted (before session 16), the ANALYZE was rolled back
        if os.environ.get(
            "EVHUB_BENCH_LOAD_ONLY"
        ):  # load now (untimed, nice), time the job later under the lock
            return
        hub = Hub(settings=load_settings(database_url=url, _env_file=None), db=db, node_name="bench")
        with pinned(datetime(2026, 11, 1, 6, 0, tzinfo=UTC)):
            base_seconds, base_cdrs, base_docs = await _baseline(db, BASELINE_ACCOUNTS)
            if base_docs:
                print(
                    f"  baseline, the per-account path (issue_monthly_invoice) on {base_docs} accounts: "
                    f"{base_cdrs:,} CDRs in {base_seconds:.1f} s ({base_seconds / base_cdrs * 1e6:.1f} µs per CDR)"
                )
            profile = cProfile.Profile() if os.environ.get("EVHUB_BENCH_PROFILE") else None
            t1 = time.perf_counter()
            if profile is not None:
                profile.enable()
            issued = await run_monthly_job(hub)
            seconds = time.perf_counter() - t1
            if profile is not None:
                profile.disable()
                pstats.Stats(profile).sort_stats(
                    os.environ.get("EVHUB_BENCH_PROFILE_SORT", "cumulative")
                ).print_stats(40)
        in_job = loaded - base_cdrs
        print(
            f"  run_monthly_job: {issued:,} invoices of {in_job:,} CDRs in {seconds:.1f} s "
            f"({seconds / in_job * 1e6:.1f} µs per CDR)"
        )
        if base_docs:
            print(f"  per-account / bulk, per CDR: {base_seconds / base_cdrs / (seconds / in_job):.1f}x")
        figures = await check(db)
        assert figures["links"] == loaded, f"{figures['links']:,} CDRs invoiced of {loaded:,}"
        assert figures["documents"] == issued + base_docs
        print(f"  checked: every CDR on one invoice, totals to the cent, numbers gap-free ({figures})")
    finally:
        await db.dispose()


BASELINE_ACCOUNTS = int(os.environ.get("EVHUB_BENCH_BASELINE_ACCOUNTS", "20"))
"""Accounts issued one by one through the per-account path before the job (the baseline of the same run)."""


async def _baseline(db: Database, accounts: int) -> tuple[float, int, int]:
    """Issue October's invoice of ``accounts`` accounts spread over all of them through the per-account path
    (:func:`billing.monthly_job.issue_monthly_invoice`, a transaction each, as the job does for those the bulk
    path leaves): the seconds, the CDRs on those invoices and their number."""
    if accounts <= 0:
        return 0.0, 0, 0
    async with db.session() as s:
        ids = list((await s.scalars(select(BillingAccount.id).order_by(BillingAccount.id))).all())
    sample = ids[:: max(1, len(ids) // accounts)][:accounts]
    t0 = time.perf_counter()
    docs = 0
    for account_id in sample:
        async with db.session() as s:
            docs += int(await issue_monthly_invoice(s, account_id, "2026-10") is not None)
    seconds = time.perf_counter() - t0
    async with db.session() as s:
        cdrs = int(await s.scalar(select(func.count()).select_from(BillingDocumentCdr)) or 0)
    return seconds, cdrs, docs


async def check(db: Database) -> dict[str, int]:
    """Every CDR on one invoice, totals to the cent, numbers gap-free per issuer."""
    async with db.session() as s:
        n_docs = int(await s.scalar(select(func.count()).select_from(BillingDocument)) or 0)
        n_links = int(await s.scalar(select(func.count()).select_from(BillingDocumentCdr)) or 0)
        docs = dict((await s.execute(select(BillingDocument.id, BillingDocument.total_excl_vat))).all())
        linked = select(BillingDocumentCdr.document_id, Cdr.total_cost_excl_vat).join(
            Cdr, Cdr.id == BillingDocumentCdr.cdr_id
        )
        sums: dict[int, Decimal] = {}
        if db.dialect == "postgresql":  # summed by the server, exactly (NUMERIC)
            query = (
                select(BillingDocumentCdr.document_id, func.sum(Cdr.total_cost_excl_vat))
                .join(Cdr, Cdr.id == BillingDocumentCdr.cdr_id)
                .group_by(BillingDocumentCdr.document_id)
            )
            sums = {d: Decimal(v) for d, v in (await s.execute(query)).all()}
        else:  # SQLite sums text amounts as floats: in Python
            for d, v in (await s.execute(linked)).all():
                sums[d] = sums.get(d, Decimal(0)) + v
        for doc_id, total in docs.items():
            assert total == sums.get(doc_id), f"document {doc_id}: {total} != its CDRs' {sums.get(doc_id)}"
        series = (
            await s.execute(
                select(BillingDocument.issuer_id, BillingDocument.sequence).order_by(
                    BillingDocument.issuer_id, BillingDocument.sequence
                )
            )
        ).all()
        by_issuer: dict[int, list[int]] = {}
        for issuer_id, seq in series:
            by_issuer.setdefault(issuer_id, []).append(seq)
        for issuer_id, seqs in by_issuer.items():
            assert seqs == list(range(1, len(seqs) + 1)), f"issuer {issuer_id}: numbers with a gap"
    return {"documents": n_docs, "links": n_links}


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="  %(message)s")
    logging.getLogger("billing.store.monthly_bulk").setLevel(logging.INFO)  # each batch's read/build/write
    main(int(sys.argv[1]), sys.argv[2])
