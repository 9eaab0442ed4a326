"""Benchmark: sessions priced per second in batch (all cores) and the latency of one quote.

Run: ``.venv/bin/python bench/bench_tariffs.py [n_sessions] [n_vectorised]``. Prints figures; asserts nothing.

* scalar (baseline): ``price_session`` per session with precompiled tariffs and pre-cut periods
  (``precut=True``), i.e. the path the CDR pipeline takes after
  :func:`tariffs.periods.periods_from_meter_values`, split across processes.
* vectorised: :func:`tariffs.batch.price_batch` on the same kind of sessions given as columns (uncut: the
  cutting at tariff boundaries is inside the timing), one call per process; a sample is checked against
  ``price_session`` first.
* quote latency: one :func:`tariffs.quote.quote`.
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np

from tariffs.batch import COST_FIELDS, columns_from_sessions, price_batch
from tariffs.compiled import compile_tariff
from tariffs.engine import price_session
from tariffs.json import load_tariff
from tariffs.periods import charging, cut_for_tariffs, parking
from tariffs.quote import quote

TZ = "Europe/Amsterdam"
TARIFF_JSON = """{"country_code":"NL","party_id":"EVH","id":"BENCH","currency":"EUR",
 "last_updated":"2026-01-01T00:00:00Z","max_price":{"excl_vat":50,"incl_vat":60.5},
 "elements":[
  {"price_components":[{"type":"FLAT","price":0.35,"vat":21,"step_size":1}]},
  {"price_components":[{"type":"ENERGY","price":0.29,"vat":21,"step_size":1},
                       {"type":"TIME","price":0.60,"vat":21,"step_size":60}],
   "restrictions":{"start_time":"23:00","end_time":"07:00"}},
  {"price_components":[{"type":"ENERGY","price":0.39,"vat":21,"step_size":1},
                       {"type":"TIME","price":1.20,"vat":21,"step_size":60}]},
  {"price_components":[{"type":"PARKING_TIME","price":6.00,"vat":21,"step_size":300}]}]}"""


def _raw_sessions(n: int) -> list[tuple[list, datetime, datetime]]:
    base = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
    out = []
    for i in range(n):
        s = base + timedelta(minutes=37 * i % 4000)
        ce = s + timedelta(minutes=20 + i % 180)
        e = ce + timedelta(minutes=i % 45)
        out.append(
            (
                [charging(s, ce, Decimal(3000 + (i * 997) % 50000))] + ([parking(ce, e)] if e > ce else []),
                s,
                e,
            )
        )
    return out


def _sessions(n: int) -> list[tuple[list, datetime, datetime]]:
    compiled = compile_tariff(load_tariff(TARIFF_JSON))
    return [(cut_for_tariffs(ps, [compiled], s, e, TZ), s, e) for ps, s, e in _raw_sessions(n)]


def _price_chunk(args: tuple[int, int]) -> tuple[int, Decimal, Decimal]:
    n, _seed = args
    compiled = compile_tariff(load_tariff(TARIFF_JSON))
    sessions = _sessions(n)
    t0 = time.perf_counter()
    total = Decimal(0)
    for ps, s, e in sessions:
        total += price_session(compiled, ps, s, e, TZ, precut=True).total_cost.excl_vat
    return n, Decimal(str(time.perf_counter() - t0)), total


BASE = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)


def _columns(n: int, offset: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The sessions of :func:`_sessions` (uncut) as price_batch columns: a charging period, then parking."""
    i = np.arange(offset, offset + n, dtype=np.int64)
    s = int(BASE.timestamp()) + (37 * i % 4000) * 60
    ce = s + (20 + i % 180) * 60
    e = ce + (i % 45) * 60
    park = e > ce
    sess = np.concatenate([np.arange(n), np.flatnonzero(park)])
    order = np.argsort(sess, kind="stable")
    zeros = np.zeros(n, dtype=np.int64)
    cols = {
        "session": sess,
        "start": np.concatenate([s, ce[park]]),
        "end": np.concatenate([ce, e[park]]),
        "energy_wh": np.concatenate([3000 + (i * 997) % 50000, zeros[park]]),
        "time_s": np.concatenate([ce - s, zeros[park]]),
        "parking_s": np.concatenate([zeros, (e - ce)[park]]),
    }
    return {k: v[order] for k, v in cols.items()}, {"start": s, "end": e}


def _batch_chunk(args: tuple[int, int]) -> tuple[int, float, int]:
    n, worker = args
    compiled = compile_tariff(load_tariff(TARIFF_JSON))
    pcols, scols = _columns(n, worker * n)
    price_batch(compiled, *_columns(1000), TZ)  # warm up
    t0 = time.perf_counter()
    res = price_batch(compiled, pcols, scols, TZ)
    return n, time.perf_counter() - t0, int(res.fallback.sum())


def _check_sample(n: int = 2000) -> None:
    """price_batch == price_session on a sample (the benchmark's own sanity check)."""
    compiled = compile_tariff(load_tariff(TARIFF_JSON))
    sessions = _raw_sessions(n)
    res = price_batch(compiled, *columns_from_sessions(sessions), TZ)
    res2 = price_batch(compiled, *_columns(n), TZ)  # the numpy-built columns describe the same sessions
    for i, (ps, s, e) in enumerate(sessions):
        r = price_session(compiled, ps, s, e, TZ)
        for f in COST_FIELDS:
            want = (getattr(r, f).excl_vat, getattr(r, f).incl_vat)
            for got in (res.price(f, i), res2.price(f, i)):
                if (got.excl_vat, got.incl_vat) != want:
                    raise SystemExit(f"price_batch differs from price_session: session {i} {f} {got} {want}")


def main(argv: list[str] | None = None) -> None:
    args = [a for a in (sys.argv[1:] if argv is None else argv) if a.isdigit()]  # `python -m bench tariffs`
    n = int(args[0]) if args else 20000
    n_vec = int(args[1]) if len(args) > 1 else 400000
    workers = os.cpu_count() or 1
    # single core
    _, secs, _ = _price_chunk((n // workers, 0))
    single = (n // workers) / float(secs)
    # all cores (timed wall clock around pricing only: each worker reports its own pricing time)
    with ProcessPoolExecutor(workers) as pool:
        results = list(pool.map(_price_chunk, [(n // workers, w) for w in range(workers)]))
    slowest = max(float(r[1]) for r in results)
    batch = sum(r[0] for r in results) / slowest
    print(
        f"batch (scalar price_session, baseline): {batch:,.0f} sessions/s on {workers} cores "
        f"({single:,.0f}/s per core), {n} sessions, "
        f"avg {sum(len(p) for p, _, _ in _sessions(200)) / 200:.1f} periods/session after cutting"
    )

    _check_sample()
    _, secs1, _ = _batch_chunk((n_vec // workers, 0))
    with ProcessPoolExecutor(workers) as pool:
        vres = list(pool.map(_batch_chunk, [(n_vec // workers, w) for w in range(workers)]))
    vslow = max(r[1] for r in vres)
    vrate = sum(r[0] for r in vres) / vslow
    print(
        f"batch (vectorised price_batch): {vrate:,.0f} sessions/s on {workers} cores "
        f"({(n_vec // workers) / secs1:,.0f}/s in one process), {n_vec} sessions "
        f"({(n_vec // workers):,} per call, uncut input, cutting included), "
        f"fell back to price_session: {sum(r[2] for r in vres)}; sample of 2000 checked equal"
    )

    compiled = compile_tariff(load_tariff(TARIFF_JSON))
    start = datetime(2026, 1, 5, 21, 30, tzinfo=UTC)
    for _ in range(200):  # warm up
        quote(compiled, start, "30", timedelta(hours=2), TZ, parking_duration=timedelta(minutes=20))
    reps = 2000
    t0 = time.perf_counter()
    for _ in range(reps):
        quote(compiled, start, "30", timedelta(hours=2), TZ, parking_duration=timedelta(minutes=20))
    lat = (time.perf_counter() - t0) / reps
    print(f"quote latency: {lat * 1e6:,.0f} µs (mean of {reps}, includes cutting at tariff boundaries)")


if __name__ == "__main__":
    main()
