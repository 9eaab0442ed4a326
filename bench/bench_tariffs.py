"""Benchmark: sessions priced per second by the one pricing engine (one core, all cores) and one quote's latency.

Run: ``.venv/bin/python bench/bench_tariffs.py [n_sessions]``. Prints figures; asserts nothing.

* throughput: :func:`tariffs.core.engine.price_session` per session with precompiled tariffs and pre-cut periods
  (``precut=True``), i.e. the path the CDR pipeline takes after
  :func:`tariffs.core.meter_periods.periods_from_meter_values`, in one process and split across processes.
* quote latency: one :func:`tariffs.core.quote.quote`.
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from tariffs.core.charging_periods import charging, cut_for_tariffs, parking
from tariffs.core.compiled_tariff import compile_tariff
from tariffs.core.engine import price_session
from tariffs.core.quote import quote
from tariffs.core.tariff_json import load_tariff

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


def main(argv: list[str] | None = None) -> None:
    args = [a for a in (sys.argv[1:] if argv is None else argv) if a.isdigit()]  # `python -m bench tariffs`
    n = int(args[0]) if args else 20000
    workers = os.cpu_count() or 1
    # single core
    _, secs, _ = _price_chunk((n // workers, 0))
    single = (n // workers) / float(secs)
    # all cores (timed wall clock around pricing only: each worker reports its own pricing time)
    with ProcessPoolExecutor(workers) as pool:
        results = list(pool.map(_price_chunk, [(n // workers, w) for w in range(workers)]))
    slowest = max(float(r[1]) for r in results)
    rate = sum(r[0] for r in results) / slowest
    print(
        f"price_session: {rate:,.0f} sessions/s on {workers} cores "
        f"({single:,.0f}/s per core), {n} sessions, "
        f"avg {sum(len(p) for p, _, _ in _sessions(200)) / 200:.1f} periods/session after cutting"
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
