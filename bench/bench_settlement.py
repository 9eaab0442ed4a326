"""Benchmark: settle 10 million synthetic CDRs with the vectorised pandas split, and the same split as DuckDB SQL.

Run: ``.venv/bin/python bench/bench_settlement.py [n_cdrs]`` (default 10,000,000; ``EVHUB_BENCH_CDRS``
overrides it for ``python -m bench``). Prints figures; asserts nothing except that pandas and DuckDB agree
to the cent on every CDR (the run fails loudly if they do not).

What is timed:

* ``pandas split``: :func:`settlement.split.split` — agreement lookup (~20k roaming agreements, hub fees with
  a mid-month version change and CPO-specific overrides, ~2,500 site host agreements), the split in int64
  minor units, period assignment with a closed September, and the long table of ~35 million lines;
* ``positions``: per-party, per-currency totals of those lines (the input of netting);
* ``duckdb split``: the same per-CDR split written as SQL (range joins on the effective intervals,
  HUGEINT arithmetic at a fixed 10^10 scale, half-up rounding), over the same CDR table.

Synthetic data: generated with numpy (seeded), party ids as categoricals, ``cdr_id`` as strings; its
generation time is reported separately and not part of the settlement time.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from kernel.money import minor_units
from settlement.core.accounting_periods import with_credit_terms
from settlement.core.agreements import AgreementBook, HubFeeAgreement, RoamingAgreement, SiteHostAgreement
from settlement.core.minor import rounding_step
from settlement.core.split import compute_parts, split
from settlement.parquet_engine import positions_from_parquet, split_parquet_on_dask, write_cdr_parts

N_CPO, N_EMSP, LOC_PER_CPO = 200, 100, 25
COUNTRIES = ("NL", "DE", "BE")
CURRENCIES = ("EUR", "JPY")
OCT = int(datetime(2026, 10, 1, tzinfo=UTC).timestamp())
CLOSES = {"2026-09": datetime(2026, 10, 3, tzinfo=UTC)}


def cpo_name(i: int) -> str:
    return f"NL*C{i:03d}"


def emsp_name(i: int) -> str:
    return f"DE*E{i:03d}"


def make_cdrs(n: int, seed: int = 42, first_id: int = 0) -> pd.DataFrame:
    """A minor-unit CDR table of ``n`` rows (mostly October 2026, some late September), ids from ``first_id``."""
    rng = np.random.default_rng(seed)
    cpo = rng.integers(0, N_CPO, n)
    emsp = rng.integers(0, N_EMSP, n)
    loc = cpo * LOC_PER_CPO + rng.integers(0, LOC_PER_CPO, n)
    country = cpo % len(COUNTRIES)
    currency = (rng.random(n) < 0.1).astype(np.int64)  # 10 % JPY
    wh = rng.integers(0, 80_000, n)
    jpy = currency == 1
    energy_excl = np.where(jpy, wh * 55 // 1000, wh * 37 // 1000)
    time_excl = np.where(rng.random(n) < 0.3, rng.integers(0, 2_000, n), 0)
    parking_excl = np.where(rng.random(n) < 0.1, rng.integers(0, 1_500, n), 0)
    fixed_excl = np.where(rng.random(n) < 0.5, 35, 0)
    vat_pct = np.array([21, 19, 21])[country]

    def vat(x):
        return (x * vat_pct + 50) // 100

    comps = {"energy": energy_excl, "time": time_excl, "parking": parking_excl, "fixed": fixed_excl}
    total_excl = sum(comps.values())
    total_incl = sum(v + vat(v) for v in comps.values())
    credit = rng.random(n) < 0.01
    sign = np.where(credit, -1, 1)
    seconds = OCT + rng.integers(-2 * 86_400, 31 * 86_400, n)
    created = seconds + rng.integers(0, 5 * 86_400, n)
    cats = pd.CategoricalDtype
    frame = pd.DataFrame(
        {
            "cdr_id": pd.array(
                np.char.add("CDR", np.arange(first_id, first_id + n).astype("U10")), dtype="str"
            ),
            "cpo": pd.Categorical.from_codes(cpo, [cpo_name(i) for i in range(N_CPO)]),
            "emsp": pd.Categorical.from_codes(emsp, [emsp_name(i) for i in range(N_EMSP)]),
            "location_id": pd.Categorical.from_codes(loc, [f"L{i:05d}" for i in range(N_CPO * LOC_PER_CPO)]),
            "country": pd.Categorical.from_codes(country, list(COUNTRIES)),
            "currency": pd.Categorical.from_codes(currency, list(CURRENCIES)),
            "end_date_time": pd.to_datetime(seconds, unit="s", utc=True),
            "created_at": pd.to_datetime(created, unit="s", utc=True),
            "energy_micro_kwh": wh * 1000,
            "total_excl": sign * total_excl,
            "total_incl": sign * total_incl,
            "is_credit": credit,
            "credit_of": pd.array(np.where(credit, "CDR-ORIG", None), dtype="str"),
        }
    )
    for name, excl in comps.items():
        frame[f"{name}_excl"] = sign * excl
        frame[f"{name}_incl"] = sign * (excl + vat(excl))
    assert all(isinstance(frame[c].dtype, cats) for c in ("cpo", "emsp"))
    return frame


def make_book() -> AgreementBook:
    vat = {"NL": "0.21", "DE": "0.19", "BE": "0.21"}
    items: list = []
    for c in range(N_CPO):
        for e in range(N_EMSP):
            if (c * 7 + e) % 997 == 0:
                continue  # a few pairs without a roaming agreement: their CDRs are rejected
            items.append(
                RoamingAgreement(
                    agreement_id=f"R{c}-{e}",
                    version=1,
                    valid_from="2026-01-01",
                    emsp=emsp_name(e),
                    cpo=cpo_name(c),
                )
            )
    items += [
        HubFeeAgreement(
            agreement_id="HUB-EUR",
            version=1,
            valid_from="2026-01-01",
            currency="EUR",
            percentage="0.015",
            fixed_per_session="0.05",
            per_kwh="0.0075",
            minimum_per_session="0.10",
            maximum_per_session="2.50",
            vat_rates=vat,
        ),
        HubFeeAgreement(
            agreement_id="HUB-EUR",
            version=2,
            valid_from="2026-10-16",
            currency="EUR",
            percentage="0.0175",
            per_kwh="0.0033",
            minimum_per_session="0.07",
            vat_rates=vat,
        ),
        HubFeeAgreement(
            agreement_id="HUB-JPY",
            version=1,
            valid_from="2026-01-01",
            currency="JPY",
            percentage="0.02",
            fixed_per_session="7",
            vat_rates=vat,
        ),
    ]
    for c in range(0, N_CPO, 10):
        items.append(
            HubFeeAgreement(
                agreement_id=f"HUB-C{c}",
                version=1,
                valid_from="2026-10-01",
                cpo=cpo_name(c),
                currency="EUR",
                percentage="0.0125",
                vat_rates=vat,
            )
        )
    for loc in range(0, N_CPO * LOC_PER_CPO, 2):
        c = loc // LOC_PER_CPO
        common = {
            "agreement_id": f"SH{loc}",
            "version": 1,
            "valid_from": "2026-01-01",
            "site_host": f"NL*H{loc % 300:03d}",
            "cpo": cpo_name(c),
            "location_id": f"L{loc:05d}",
        }
        if loc % 4 == 0:
            items.append(SiteHostAgreement(**common, share_percentage="0.125"))
        else:
            items.append(SiteHostAgreement(**common, per_kwh="0.0215", currency="EUR", vat_rate="0.21"))
    return AgreementBook(items)


# --- the DuckDB baseline -----------------------------------------------------------------------------------

SCALE = 10**10  # fixed scale of rates in the SQL version (independent of the pandas scale choice)


def _num(value: Decimal | None, shift: int = 0) -> int | None:
    if value is None:
        return None
    out = value.scaleb(shift) * SCALE
    assert out == out.to_integral_value()
    return int(out)


def _seconds(instant: datetime | None) -> int:
    return int(instant.timestamp()) if instant is not None else 2**34 - 1


def agreement_tables(book: AgreementBook) -> dict[str, pd.DataFrame]:
    roaming = [
        {"emsp": a.emsp, "cpo": a.cpo, "s": _seconds(s), "e": _seconds(e)}
        for a, s, e in book.intervals("roaming")
    ]
    hub, hub_vat = [], []
    for i, (a, s, e) in enumerate(book.intervals("hub_fee")):
        mu = minor_units(a.currency)
        hub.append(
            {
                "ix": i,
                "cpo": a.cpo,
                "currency": a.currency,
                "s": _seconds(s),
                "e": _seconds(e),
                "p": _num(a.percentage),
                "f": _num(a.fixed_per_session, mu),
                "r": _num(a.per_kwh, mu - 6),
                "lo": _num(a.minimum_per_session, mu),
                "hi": _num(a.maximum_per_session, mu),
            }
        )
        hub_vat += [{"ix": i, "country": k, "rate": _num(v)} for k, v in a.vat_rates.items()]
    host = []
    for a, s, e in book.intervals("site_host"):
        mu = minor_units(a.currency) if a.currency else 0
        host.append(
            {
                "cpo": a.cpo,
                "location_id": a.location_id,
                "s": _seconds(s),
                "e": _seconds(e),
                "p": _num(a.share_percentage) or 0,
                "r": _num(a.per_kwh, mu - 6) or 0,
                "cur": a.currency,
                "vr": _num(a.vat_rate),
            }
        )

    def frame(rows: list[dict]) -> pd.DataFrame:
        out = pd.DataFrame(rows)
        # nullable integers, so DuckDB sees BIGINT (a float column would turn the arithmetic inexact)
        for col in out.columns:
            if col not in ("emsp", "cpo", "currency", "country", "location_id", "cur"):
                out[col] = out[col].astype("Int64")
        return out

    return {
        "roaming": frame(roaming),
        "hub": frame(hub),
        "hub_vat": frame(hub_vat),
        "host": frame(host),
        "steps": pd.DataFrame(
            {
                "currency": list(CURRENCIES),
                "step": pd.array([rounding_step(c) for c in CURRENCIES], dtype="Int64"),
            }
        ),
    }


SPLIT_SQL = f"""
WITH c AS (
  SELECT row_number() OVER () - 1 AS rn, *,
         CAST(epoch(end_date_time) AS BIGINT) AS at_s,
         CASE WHEN is_credit THEN -1 ELSE 1 END AS sgn,
         (SELECT step FROM steps WHERE steps.currency = cdrs.currency) AS step,
         abs(total_excl) AS net, abs(total_incl) - abs(total_excl) AS vat,
         abs(energy_excl) AS e_net, abs(energy_incl) - abs(energy_excl) AS e_vat, abs(energy_micro_kwh) AS wh
  FROM cdrs
), picked AS (
  SELECT c.*, r.s IS NOT NULL AS has_roaming,
         coalesce(hs.ix, hd.ix) AS hub_ix,
         h.s AS host_s, h.p AS hp, h.r AS hr, h.cur AS hcur, h.vr AS hvr
  FROM c
  LEFT JOIN roaming r ON r.emsp = c.emsp AND r.cpo = c.cpo AND c.at_s >= r.s AND c.at_s < r.e
  LEFT JOIN hub hs ON hs.cpo = c.cpo AND hs.currency = c.currency AND c.at_s >= hs.s AND c.at_s < hs.e
  LEFT JOIN hub hd ON hd.cpo = '*' AND hd.currency = c.currency AND c.at_s >= hd.s AND c.at_s < hd.e
  LEFT JOIN host h ON h.cpo = c.cpo AND h.location_id = c.location_id AND c.at_s >= h.s AND c.at_s < h.e
), fee AS (
  SELECT p.*, hv.rate,
    CAST(p.net AS HUGEINT) * hb.p + hb.f + CAST(p.wh AS HUGEINT) * hb.r AS raw_fee, hb.lo, hb.hi
  FROM picked p
  LEFT JOIN hub hb ON hb.ix = p.hub_ix
  LEFT JOIN hub_vat hv ON hv.ix = p.hub_ix AND hv.country = p.country
), fee1 AS (
  SELECT *, CASE WHEN lo IS NOT NULL AND raw_fee < lo THEN lo ELSE raw_fee END AS floored FROM fee
), fee2 AS (
  SELECT *,
    ((2 * CASE WHEN hi IS NOT NULL AND floored > hi THEN hi ELSE floored END + {SCALE} * step)
      // (2 * {SCALE} * step)) * step AS hub_net,
    ((2 * (CAST(e_net AS HUGEINT) * coalesce(hp, 0) + CAST(wh AS HUGEINT) * coalesce(hr, 0)) + {SCALE} * step)
      // (2 * {SCALE} * step)) * step AS host_net
  FROM fee1
), fee3 AS (
  SELECT *,
    ((2 * hub_net * rate + {SCALE} * step) // (2 * {SCALE} * step)) * step AS hub_vat,
    CASE WHEN host_s IS NULL THEN 0
         WHEN hvr IS NOT NULL THEN ((2 * host_net * hvr + {SCALE} * step) // (2 * {SCALE} * step)) * step
         WHEN e_net = 0 THEN 0
         ELSE ((2 * CAST(e_vat AS HUGEINT) * host_net + CAST(e_net AS HUGEINT) * step)
               // (2 * CAST(e_net AS HUGEINT) * step)) * step END AS host_vat
  FROM fee2
)
SELECT rn,
  has_roaming AND hub_ix IS NOT NULL AND rate IS NOT NULL
    AND (host_s IS NULL OR hcur IS NULL OR hcur = currency) AS accepted,
  CAST(sgn * hub_net AS BIGINT) AS hub_net, CAST(sgn * hub_vat AS BIGINT) AS hub_vat,
  CAST(sgn * CASE WHEN host_s IS NULL THEN 0 ELSE host_net END AS BIGINT) AS host_net,
  CAST(sgn * host_vat AS BIGINT) AS host_vat,
  CAST(sgn * (net - hub_net - CASE WHEN host_s IS NULL THEN 0 ELSE host_net END) AS BIGINT) AS cpo_net,
  CAST(sgn * (vat - hub_vat - host_vat) AS BIGINT) AS cpo_vat
FROM fee3
ORDER BY rn
"""


def duckdb_split(cdrs: pd.DataFrame | Path, book: AgreementBook, threads: int) -> pd.DataFrame:
    """The SQL split of an in-memory table, or of a directory of parquet files (read by DuckDB itself)."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads TO {threads}")
    if isinstance(cdrs, Path):
        source = f"read_parquet('{cdrs}/*.parquet')"
        con.execute(f"CREATE VIEW cdrs AS SELECT * EXCLUDE (cdr_id, credit_of, created_at) FROM {source}")
    else:
        con.register("cdrs", cdrs.drop(columns=["cdr_id", "credit_of", "created_at"]))
    for name, table in agreement_tables(book).items():
        con.register(name, table)
    return con.execute(SPLIT_SQL).fetchdf()


def peak_rss_gb() -> float:
    """Peak resident set size of this process so far (Linux: ru_maxrss is in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)


def main(n: int | None = None) -> dict:
    """The in-memory run: one table, ``split`` over all of it, positions, and the DuckDB split of the table."""
    n = n or int(os.environ.get("EVHUB_BENCH_CDRS", "10000000"))
    threads = os.cpu_count() or 1
    figures: dict = {"cdrs": n, "cores": threads}
    t0 = time.perf_counter()
    cdrs = make_cdrs(n)
    book = make_book()
    figures["generate_s"] = round(time.perf_counter() - t0, 2)
    print(f"generated {n:,} CDRs and {len(book):,} agreements in {figures['generate_s']} s", flush=True)

    t0 = time.perf_counter()
    result = split(cdrs, book, closes=CLOSES)
    figures["pandas_split_s"] = round(time.perf_counter() - t0, 2)
    lines = result.lines
    print(
        f"pandas split: {len(lines):,} lines, {len(result.rejected):,} rejected CDRs "
        f"in {figures['pandas_split_s']} s ({n / figures['pandas_split_s']:,.0f} CDRs/s)",
        flush=True,
    )

    t0 = time.perf_counter()
    positions = lines.groupby(["currency", "party"], observed=True)[
        ["net_minor", "vat_minor", "gross_minor"]
    ].sum()
    figures["positions_s"] = round(time.perf_counter() - t0, 2)
    per_currency = positions.groupby(level="currency", observed=True)["gross_minor"].sum()
    assert (per_currency == 0).all(), "money appeared or disappeared"
    print(
        f"positions of {len(positions):,} (currency, party) pairs in {figures['positions_s']} s", flush=True
    )
    figures["settle_total_s"] = round(figures["pandas_split_s"] + figures["positions_s"], 2)
    figures["peak_rss_gb_after_pandas"] = peak_rss_gb()

    t0 = time.perf_counter()
    sql = duckdb_split(cdrs, book, threads)
    figures["duckdb_split_s"] = round(time.perf_counter() - t0, 2)
    print(f"duckdb split: {figures['duckdb_split_s']} s", flush=True)

    parts = result.parts if len(result.parts) == n else compute_parts(cdrs, book)
    accepted = parts["reason_code"].to_numpy() == 0
    assert (sql["accepted"].to_numpy() == accepted).all(), "pandas and DuckDB accept different CDRs"
    for col in ("hub_net", "hub_vat", "host_net", "host_vat", "cpo_net", "cpo_vat"):
        mismatch = np.flatnonzero(parts[col].to_numpy()[accepted] != sql[col].to_numpy()[accepted])
        assert mismatch.size == 0, f"{col} differs on {mismatch.size} CDRs, e.g. row {mismatch[:5]}"
    figures["agree_to_the_cent"] = True
    print(f"pandas and DuckDB agree to the cent on all {int(accepted.sum()):,} accepted CDRs", flush=True)
    print(figures, flush=True)
    return figures


CHUNK_ROWS = 1_000_000  # CDRs per generated parquet file (one Dask partition each)


def write_parquet(n: int, directory: Path) -> float:
    """Generate ``n`` CDRs chunk by chunk into ``directory`` (credit terms on the rows, as a run puts them),
    never holding more than one chunk; seconds taken."""
    t0 = time.perf_counter()
    shutil.rmtree(directory, ignore_errors=True)

    def chunks():
        for i, start in enumerate(range(0, n, CHUNK_ROWS)):
            chunk = make_cdrs(min(CHUNK_ROWS, n - start), seed=42 + i, first_id=start)
            yield with_credit_terms(chunk, CLOSES)

    write_cdr_parts(chunks(), directory)
    return round(time.perf_counter() - t0, 2)


def main_parquet(n: int, directory: Path, reuse: bool = False) -> dict:
    """Bounded memory: generate to parquet (``reuse``: the files already there), settle it row group by row
    group in this process (positions) without and with the reader thread, then DuckDB's split of the same
    files; peak RSS after each step."""
    threads = os.cpu_count() or 1
    figures: dict = {"mode": "parquet", "cdrs": n, "cores": threads}
    figures["generate_s"] = 0.0 if reuse and any(directory.glob("*.parquet")) else write_parquet(n, directory)
    figures["peak_rss_gb_after_generate"] = peak_rss_gb()
    book = make_book()
    t0 = time.perf_counter()
    serial = positions_from_parquet(directory, book, closes=CLOSES, prefetch=False).table()
    figures["chunked_no_prefetch_s"] = round(time.perf_counter() - t0, 2)
    figures["peak_rss_gb_after_no_prefetch"] = peak_rss_gb()
    t0 = time.perf_counter()
    positions = positions_from_parquet(directory, book, closes=CLOSES)
    table = positions.table()
    figures["chunked_settle_s"] = round(time.perf_counter() - t0, 2)
    figures["lines"], figures["rejected"] = positions.lines, positions.cdrs_rejected
    assert (table.groupby(["settlement_period", "currency"])["gross_minor"].sum() == 0).all()
    figures["peak_rss_gb_after_chunked"] = peak_rss_gb()
    assert serial.equals(table), "the reader thread changed the positions"
    print(f"chunked split + positions from parquet: {figures}", flush=True)
    t0 = time.perf_counter()
    sql = duckdb_split(directory, book, threads)
    figures["duckdb_split_s"] = round(time.perf_counter() - t0, 2)
    figures["duckdb_accepted"] = int(sql["accepted"].sum())
    figures["ratio_chunked_to_duckdb"] = round(figures["chunked_settle_s"] / figures["duckdb_split_s"], 2)
    figures["ratio_no_prefetch_to_duckdb"] = round(
        figures["chunked_no_prefetch_s"] / figures["duckdb_split_s"], 2
    )
    figures["peak_rss_gb_after_duckdb"] = peak_rss_gb()
    table.to_parquet(directory.parent / "positions-one-process.parquet", index=False)
    print(figures, flush=True)
    return figures


def main_dask(directory: Path, out: Path, workers: int, memory_limit: str) -> dict:
    """The parquet files on a LocalCluster of ``workers`` processes with ``memory_limit`` each: every file a
    task, lines written by the workers; positions checked against the one-process run when it is there."""
    import distributed

    figures: dict = {"mode": "dask", "workers": workers, "memory_limit": memory_limit}
    shutil.rmtree(out, ignore_errors=True)
    book = make_book()
    cluster = distributed.LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        memory_limit=memory_limit,
        dashboard_address=None,
    )
    try:
        with distributed.Client(cluster) as client:
            t0 = time.perf_counter()
            run = split_parquet_on_dask(directory, out, book, closes=CLOSES)
            figures["dask_settle_s"] = round(time.perf_counter() - t0, 2)
            peaks = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
            figures["worker_peak_rss_gb"] = sorted(round(v, 2) for v in peaks.values())
    finally:
        cluster.close()
    figures["lines"], figures["rejected"] = run.lines, run.cdrs_rejected
    figures["partitions"] = len(list(run.lines_dir.glob("*.parquet")))
    figures["lines_on_disk_gb"] = round(sum(p.stat().st_size for p in run.lines_dir.glob("*")) / 2**30, 2)
    reference = directory.parent / "positions-one-process.parquet"
    if reference.exists():
        one = pd.read_parquet(reference)
        got = run.positions.reset_index(drop=True)
        figures["positions_equal_one_process"] = bool(
            (
                one[["net_minor", "vat_minor", "gross_minor"]].to_numpy()
                == got[["net_minor", "vat_minor", "gross_minor"]].to_numpy()
            ).all()
            and list(one["party"]) == list(got["party"])
        )
    print(figures, flush=True)
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("n", nargs="?", type=int, default=None, help="CDRs (default 10,000,000)")
    parser.add_argument("--mode", choices=("memory", "parquet", "dask", "duckdb"), default="memory")
    parser.add_argument(
        "--dir", type=Path, default=Path("/tmp/evhub-bench-settlement"), help="parquet work dir"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="1.5GiB", help="per Dask worker")
    parser.add_argument("--reuse", action="store_true", help="parquet: settle the files already in --dir")
    args = parser.parse_args()
    if args.mode == "memory":
        main(args.n)
    elif args.mode == "parquet":
        main_parquet(args.n or 10_000_000, args.dir / "cdrs", reuse=args.reuse)
    elif args.mode == "duckdb":  # the baseline of `evhub settle`'s job: the CDRs bench.settle_db_load stored
        t0 = time.perf_counter()
        sql = duckdb_split(args.dir, make_book(), os.cpu_count() or 1)
        print({"duckdb_split_s": round(time.perf_counter() - t0, 2), "cdrs": len(sql)}, flush=True)
    else:
        main_dask(args.dir / "cdrs", args.dir / "out", args.workers, args.memory_limit)
