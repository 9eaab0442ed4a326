"""Load the settlement benchmark's CDRs into a PostgreSQL database with COPY, for timing ``evhub settle``'s job.

Run (untimed, ``nice``): ``nice -n 10 .venv/bin/python -m bench.settle_db_load N POSTGRES_URL`` — drops and
creates the database, migrates it, stores the parties (200 CPOs ``NL*nnn``, 100 eMSPs ``DE*nnn``: the
generator's ``NL*Cnnn`` and ``DE*Ennn``, as OCPI party ids have 3 characters), 5,000
locations, one charge point and :func:`bench.bench_settlement.make_book`'s 22,508 agreements, then writes N
CDRs (and one session each) in chunks of 1,000,000: the chunks of
:func:`bench.bench_settlement.write_parquet` (same seeds and ids), so DuckDB over those parquet files settles
the same CDRs. Each chunk is generated with numpy and becomes one COPY (text format) of sessions and one of
CDRs; no ORM object per CDR. A credit CDR's original (``CDR-ORIG`` in the generator) is not in the table:
it is stored with ``credit_of`` empty.
"""

from __future__ import annotations

import asyncio
import io
import sys
import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from sqlalchemy import insert, text

from bench.bench_billing_db import _fresh
from bench.bench_settlement import (
    CHUNK_ROWS,
    COUNTRIES,
    CURRENCIES,
    LOC_PER_CPO,
    N_CPO,
    N_EMSP,
    make_book,
    make_cdrs,
)
from kernel.db.engine import Database
from kernel.models import Agreement, ChargePoint, Location, Party
from kernel.models.chargers import OcppVersion
from kernel.models.parties import PartyRole
from settlement.core.agreements import dump_agreements

SESSION_COLUMNS = [
    *("id", "session_uid", "charge_point_id", "transaction_id", "cpo_id", "auth_method", "status"),
    *("start_time", "end_time", "energy_wh", "flags", "pricing_state", "data", "last_updated"),
    *("created_at", "updated_at"),
]
CDR_COLUMNS = [
    *("id", "cdr_uid", "session_id", "revision", "is_credit", "cpo_id", "emsp_id", "location_id"),
    *("currency", "start_date_time", "end_date_time", "total_energy_kwh", "total_time_hours"),
    *("total_cost_excl_vat", "total_cost_incl_vat", "tariff_versions", "explanation", "data"),
    *("created_at", "last_updated", "holder_recorded"),
]
SEEDED = datetime(2026, 9, 1, tzinfo=UTC)


async def seed(db: Database) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Parties, locations, a charge point and the agreements; the ids of CPOs, eMSPs, locations and the CP."""
    async with db.session() as s:
        cpos = (
            await s.scalars(
                insert(Party).returning(Party.id, sort_by_parameter_order=True),
                [
                    {"country_code": "NL", "party_id": f"{i:03d}", "role": PartyRole.CPO, "name": f"CPO {i}"}
                    for i in range(N_CPO)
                ],
            )
        ).all()
        emsps = (
            await s.scalars(
                insert(Party).returning(Party.id, sort_by_parameter_order=True),
                [
                    {
                        "country_code": "DE",
                        "party_id": f"{i:03d}",
                        "role": PartyRole.EMSP,
                        "name": f"eMSP {i}",
                    }
                    for i in range(N_EMSP)
                ],
            )
        ).all()
        locations = (
            await s.scalars(
                insert(Location).returning(Location.id, sort_by_parameter_order=True),
                [
                    {
                        **dict(
                            cpo_id=cpos[loc // LOC_PER_CPO], ocpi_id=f"L{loc:05d}", address="Stationsplein 1"
                        ),
                        **dict(city="Amsterdam", country=COUNTRIES[(loc // LOC_PER_CPO) % len(COUNTRIES)]),
                        **dict(latitude="52.37", longitude="4.89", time_zone="Europe/Amsterdam"),
                        **dict(last_updated=SEEDED, data={}),
                    }
                    for loc in range(N_CPO * LOC_PER_CPO)
                ],
            )
        ).all()
        cp = ChargePoint(identity="SETTLE-BENCH-CP", ocpp_version=OcppVersion.V16, cpo_id=cpos[0])
        s.add(cp)
        rows = [_renamed(r) for r in dump_agreements(make_book().agreements)]
        await s.execute(
            insert(Agreement),
            [
                {
                    "agreement_id": r["agreement_id"],
                    "version": r["version"],
                    "kind": r["kind"],
                    "valid_from": datetime.fromisoformat(str(r["valid_from"])).date(),
                    "valid_until": datetime.fromisoformat(str(r["valid_until"])).date()
                    if r.get("valid_until")
                    else None,
                    "data": r,
                }
                for r in rows
            ],
        )
        await s.flush()
        return np.array(cpos), np.array(emsps), np.array(locations), cp.id


def _renamed(row: dict) -> dict:
    """An agreement with the parties as stored: ``NL*C007`` is ``NL*007`` (OCPI party ids have 3 characters)."""
    out = dict(row)
    for key, prefix in (("cpo", "NL*C"), ("emsp", "DE*E")):
        if isinstance(out.get(key), str) and out[key].startswith(prefix):
            out[key] = out[key][:3] + out[key][4:]
    return out


def _decimal(minor: np.ndarray, places: np.ndarray) -> np.ndarray:
    """Minor units as plain decimal strings with ``places`` digits after the point (0: an integer)."""
    sign = np.where(minor < 0, "-", "")
    mag = np.abs(minor)
    out = pd.Series(sign) + pd.Series(mag // 10**places).astype(str)
    frac = pd.Series(mag % 10**places).astype(str).str.zfill(2)
    out = out.where(places == 0, out + "." + frac)
    return out.to_numpy(dtype=object)


def _stamp(values: pd.Series) -> np.ndarray:
    return values.dt.strftime("%Y-%m-%d %H:%M:%S+00").to_numpy(dtype=object)


async def load_chunk(db: Database, chunk: pd.DataFrame, first: int, ids: tuple) -> int:
    """One chunk of generated CDRs as one COPY of sessions and one of CDRs (row ids from ``first``)."""
    cpos, emsps, locations, cp = ids
    n = len(chunk)
    row = np.arange(first, first + n)
    places = np.where(chunk["currency"].astype(str).to_numpy() == "JPY", 0, 2)
    end = _stamp(chunk["end_date_time"])
    start = _stamp(chunk["end_date_time"] - pd.Timedelta(hours=1))
    created = _stamp(chunk["created_at"])
    components = {
        name: (
            _decimal(chunk[f"{name}_excl"].to_numpy(), places),
            _decimal(chunk[f"{name}_incl"].to_numpy(), places),
        )
        for name in ("energy", "time", "parking", "fixed")
    }
    data = pd.Series("{", index=range(n), dtype=object)
    for k, (name, (excl, incl)) in enumerate(components.items()):
        sep = ", " if k else ""
        data = data + f'{sep}"total_{name}_cost": {{"excl_vat": ' + excl + ', "incl_vat": ' + incl + "}"
    data = (data + "}").to_numpy(dtype=object)
    excl_total = _decimal(chunk["total_excl"].to_numpy(), places)
    incl_total = _decimal(chunk["total_incl"].to_numpy(), places)
    kwh = (
        pd.Series(chunk["energy_micro_kwh"].to_numpy())
        .map(lambda v: f"{v // 10**6}.{v % 10**6:06d}")
        .to_numpy()
    )
    uid = chunk["cdr_id"].astype(str).to_numpy(dtype=object)
    credit = np.where(chunk["is_credit"].to_numpy(), "t", "f")
    cpo = cpos[chunk["cpo"].cat.codes.to_numpy()]
    emsp = emsps[chunk["emsp"].cat.codes.to_numpy()]
    loc = locations[chunk["location_id"].cat.codes.to_numpy()]
    currency = chunk["currency"].astype(str).to_numpy(dtype=object)
    sessions = "".join(
        f"{r}\tS-{u}\t{cp}\t{r}\t{c}\tWHITELIST\tCOMPLETED\t{st}\t{en}\t0\t{{}}\tpriced\t{{}}\t{cr}\t{cr}\t{cr}\n"
        for r, u, c, st, en, cr in zip(
            row.tolist(), uid.tolist(), cpo.tolist(), start, end, created, strict=True
        )
    )
    cdrs = "".join(
        f"{r}\t{u}\t{r}\t0\t{cd}\t{c}\t{e}\t{lo}\t{cu}\t{st}\t{en}\t{kw}\t1\t{ex}\t{ic}\t[]\t{{}}\t{da}\t{cr}\t{cr}\tf\n"
        for r, u, cd, c, e, lo, cu, st, en, kw, ex, ic, da, cr in zip(
            row.tolist(),
            uid.tolist(),
            credit.tolist(),
            cpo.tolist(),
            emsp.tolist(),
            loc.tolist(),
            currency.tolist(),
            start,
            end,
            kwh,
            excl_total,
            incl_total,
            data,
            created,
            strict=True,
        )
    )
    async with db.session() as s:
        raw = (await (await s.connection()).get_raw_connection()).driver_connection
        assert raw is not None
        await raw.copy_to_table("sessions", source=io.BytesIO(sessions.encode()), columns=SESSION_COLUMNS)
        await raw.copy_to_table("cdrs", source=io.BytesIO(cdrs.encode()), columns=CDR_COLUMNS)
    return n


async def load(n: int, url: str) -> None:
    t0 = time.perf_counter()
    await _fresh(url)
    db = Database(url)
    try:
        ids = await seed(db)
        for i, start in enumerate(range(0, n, CHUNK_ROWS)):
            chunk = make_cdrs(min(CHUNK_ROWS, n - start), seed=42 + i, first_id=start)
            await load_chunk(db, chunk, start + 1, ids)
            print(f"  {start + len(chunk):,} CDRs in {time.perf_counter() - t0:.0f} s", flush=True)
        async with db.session() as s:
            for name in ("sessions", "cdrs"):
                await s.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), (SELECT max(id) FROM {name}))"
                    )
                )
        async with db.engine.connect() as conn:
            await conn.execute(text("ANALYZE"))
            await conn.commit()  # uncommitted (before session 16), the ANALYZE was rolled back
    finally:
        await db.dispose()
    print(f"loaded {n:,} CDRs in {time.perf_counter() - t0:.0f} s", flush=True)


assert CURRENCIES == ("EUR", "JPY")  # _decimal's places: 2 for EUR, 0 for JPY

if __name__ == "__main__":
    asyncio.run(load(int(sys.argv[1]), sys.argv[2]))
