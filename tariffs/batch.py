"""Batch pricing: many sessions at once, vectorised with numpy, with exactly the totals of ``price_session``.

``price_batch(tariffs, periods, sessions, time_zone=...)`` prices a whole table of sessions and returns the
OCPI CDR cost fields (``total_cost``, ``total_fixed_cost``, ``total_energy_cost``, ``total_time_cost``,
``total_parking_cost``, ``total_reservation_cost``; excl. and incl. VAT) as integer arrays in the currency's
place units (cents for EUR), equal, session by session, to what :func:`tariffs.engine.price_session` gives for
the same periods (the rules are in that module's docstring and docs/tariffs.md).

Input is columnar (dicts of numpy arrays, pandas DataFrames, anything indexable by column name):

* ``periods``: one row per charging period, grouped by session and chronological within a session:
  ``session`` (row number in ``sessions``), ``start``/``end`` (UTC epoch seconds, integers), ``energy_wh``,
  ``time_s`` (charging seconds), ``parking_s`` (integers). They need not be cut at tariff boundaries: the batch
  cuts them exactly where :func:`tariffs.periods.cut_for_tariffs` would (local restriction times on both folds,
  local midnights, DST transitions, tariff version edges, duration thresholds) and prorates like
  :func:`tariffs.periods.split`. :func:`columns_from_sessions` builds both tables from ``Period`` lists.
* ``sessions``: ``start``/``end`` (UTC epoch seconds) and optionally ``time_zone`` (IANA name per session);
  else the ``time_zone`` argument applies to all.

How it stays exact: quantities are integers (Wh, seconds) and prices exact fractions, so a line is
``quantity * a / b`` place units with per-component integers ``a/b`` (price, unit, VAT and the currency's
decimals folded in), rounded with :func:`evhub.money.round_units` (half-up, exactly as
:func:`evhub.money.round_amount`). A period split at a boundary gets ``Q * k / T`` of a quantity that is not its
duration; such lines (and their step rounding) are estimated in float and rounded with
:func:`evhub.money.round_units_approx`, which only decides when the estimate is far (1e-6 place units) from a
rounding boundary; near ties, and a few exact ties where ``price_session``'s 28-digit Decimal arithmetic
is itself inexact, the session is priced by ``price_session`` instead (``BatchResult.fallback``).

Supported in the vectorised path: any number of tariff versions (one currency), FLAT/ENERGY/TIME/PARKING_TIME,
step_size, min/max price, VAT, restrictions start_time/end_time/day_of_week/start_date/end_date (local time of
each session's zone) and min/max_duration. Power/current restrictions never match (the columnar input has no
power or current; ``price_session`` treats unknown power the same way); reservation elements never match
(there is no reservation time in the input). Falls back to ``price_session`` per session for: tariffs with
min/max_kwh restrictions, version edges that are not whole seconds, versions sharing (id, version label), a
rounding rule other than ROUND_HALF_UP (all sessions); negative quantities and the undecided roundings above
(those sessions).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from math import gcd
from typing import Any

import numpy as np

from evhub.money import (
    MoneyError,
    is_rounding_tie,
    place_exponent,
    round_amount,
    round_units,
    round_units_approx,
)
from evhub.timeutil import ensure_utc, zone
from tariffs.compiled import ENERGY, FLAT, PARKING_TIME, TIME, UNIT_DIVISOR, CompiledTariff, Component
from tariffs.engine import (
    PricingError,
    PricingResult,
    TariffInput,
    compile_versions,
    price_session,
    version_at,
)
from tariffs.model import Price
from tariffs.periods import Period, _offset_transitions
from tariffs.restrictions import CompiledRestrictions

COST_FIELDS = (
    "total_cost",
    "total_fixed_cost",
    "total_energy_cost",
    "total_time_cost",
    "total_parking_cost",
    "total_reservation_cost",
)
_DIMS = (ENERGY, TIME, PARKING_TIME, FLAT)
_ORDINAL_1970 = 719163  # date(1970, 1, 1).toordinal()
ZERO = Decimal(0)
_TOL = 1e-6  # place units: float estimates closer than this to a rounding boundary are decided exactly
_SAFE = 2**61


@dataclass(slots=True)
class BatchResult:
    """Cost fields of every session as int64 arrays of place units (``10 ** exponent`` of the currency).

    ``amounts[f"{field}_excl"]`` / ``amounts[f"{field}_incl"]`` for each field of :data:`COST_FIELDS`;
    ``fallback[i]`` is True where session ``i`` was priced by ``price_session`` (same figures either way).
    """

    currency: str
    exponent: int
    amounts: dict[str, np.ndarray]
    fallback: np.ndarray

    def __len__(self) -> int:
        return len(self.fallback)

    def amount(self, field: str, i: int, *, incl_vat: bool = False) -> Decimal:
        """One amount as a Decimal with the currency's decimals (``amount("total_cost", 3)``)."""
        units = int(self.amounts[f"{field}_{'incl' if incl_vat else 'excl'}"][i])
        return Decimal(units).scaleb(self.exponent)

    def price(self, field: str, i: int) -> Price:
        """One cost field as an OCPI :class:`~tariffs.model.Price`."""
        return Price.model_construct(
            excl_vat=self.amount(field, i), incl_vat=self.amount(field, i, incl_vat=True)
        )

    def to_frame(self) -> Any:
        """A pandas DataFrame: the integer amount columns plus ``fallback``."""
        import pandas as pd

        return pd.DataFrame({**self.amounts, "fallback": self.fallback})


# ------------------------------------------------------------------------------------------------- inputs


def _epoch(dt: datetime) -> int:
    dt = ensure_utc(dt)
    if dt.microsecond:
        raise ValueError(f"{dt.isoformat()} is not a whole second")
    return int(dt.timestamp())


def _whole(x: Decimal, what: str) -> int:
    if x != x.to_integral_value():
        raise ValueError(f"{what} {x} is not an integer")
    return int(x)


def columns_from_sessions(
    sessions: Iterable[tuple[Sequence[Period], datetime, datetime]],
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(periods, start, end)`` per session -> ``(periods_table, sessions_table)`` for :func:`price_batch`.

    Timestamps must be whole seconds and quantities integers (Wh, s); reservation periods are not supported.
    """
    cols: dict[str, list[int]] = {
        k: [] for k in ("session", "start", "end", "energy_wh", "time_s", "parking_s")
    }
    starts: list[int] = []
    ends: list[int] = []
    for i, (plist, s, e) in enumerate(sessions):
        starts.append(_epoch(s))
        ends.append(_epoch(e))
        for p in plist:
            if p.reservation_s:
                raise ValueError("reservation periods are not supported by price_batch")
            cols["session"].append(i)
            cols["start"].append(_epoch(p.start))
            cols["end"].append(_epoch(p.end))
            cols["energy_wh"].append(_whole(p.energy_wh, "energy_wh"))
            cols["time_s"].append(_whole(p.time_s, "time_s"))
            cols["parking_s"].append(_whole(p.parking_s, "parking_s"))
    periods = {k: np.asarray(v, dtype=np.int64) for k, v in cols.items()}
    return periods, {"start": np.asarray(starts, dtype=np.int64), "end": np.asarray(ends, dtype=np.int64)}


def _ints(table: Any, name: str) -> np.ndarray:
    arr = np.asarray(table[name])
    if arr.dtype.kind == "f":
        if not np.all(arr == np.floor(arr)):
            raise ValueError(f"column {name!r} must hold integers")
    elif arr.dtype.kind not in "iu" and len(arr):
        raise ValueError(f"column {name!r} must hold integers (epoch seconds, Wh, s), got {arr.dtype}")
    return arr.astype(np.int64, copy=False)


# ------------------------------------------------------------------------------------------ compiled form


@dataclass(slots=True)
class _Comp:
    gid: int
    version: int
    dim: str
    comp: Component
    a: int  # excl. VAT amount per base unit = a / b place units
    b: int
    a_incl: int | None  # None: no VAT, incl == excl
    b_incl: int
    nonterminating: bool  # a / b is not a finite decimal: price_session's Decimal excl may be inexact


def _ratio(x: Decimal) -> tuple[int, int]:
    n, d = x.as_integer_ratio()
    return n, d


def _reduce(n: int, d: int) -> tuple[int, int]:
    g = gcd(n, d) or 1
    return n // g, d // g


def _only_2_and_5(d: int) -> bool:
    for p in (2, 5):
        while d % p == 0:
            d //= p
    return d == 1


class _Plan:
    """Tariff versions reduced to arrays for the vectorised path (or the reason it cannot be used)."""

    def __init__(self, versions: list[CompiledTariff]):
        self.versions = versions
        self.currency = versions[0].currency
        self.unsupported = self._check()
        self.exponent = place_exponent(self.currency)
        if self.unsupported:
            return
        scale = 10 ** (-self.exponent)
        self.comps: list[_Comp] = []
        self.by_version_dim: dict[tuple[int, str], list[_Comp]] = {}
        for vi, v in enumerate(versions):
            for dim in _DIMS:
                lst = []
                for c in v.candidates.get(dim, ()):
                    pn, pd = _ratio(c.price)
                    a, b = _reduce(pn * scale, pd * int(UNIT_DIVISOR[dim]))
                    if c.vat is None:
                        ai, bi = None, 1
                    else:
                        vn, vd = _ratio(c.vat)
                        ai, bi = _reduce(a * (100 * vd + vn), b * 100 * vd)
                    comp = _Comp(len(self.comps), vi, dim, c, a, b, ai, bi, not _only_2_and_5(b))
                    self.comps.append(comp)
                    lst.append(comp)
                self.by_version_dim[(vi, dim)] = lst
        self.n = len(self.comps)
        self.dim_of = np.array([_DIMS.index(c.dim) for c in self.comps], dtype=np.int8)
        self.step = np.array([c.comp.step_size for c in self.comps], dtype=np.int64)
        self.minutes: set[int] = {0}
        self.durations: set[int] = set()
        edges: set[int] = set()
        for v in versions:
            for r in v.all_restrictions():
                self.minutes |= r.clock_minutes()
                self.durations |= r.duration_thresholds_s()
            for edge in (v.valid_from, v.valid_to):
                if edge is not None:
                    edges.add(_epoch(edge))
        self.edges = np.array(sorted(edges), dtype=np.int64)
        # version valid on [edges[j-1], edges[j]) -> index (or -1), j = searchsorted(edges, t, "right")
        reps = [(self.edges[0] - 1) if len(self.edges) else 0, *self.edges.tolist()]
        idx = {id(v): i for i, v in enumerate(versions)}
        ver = [version_at(versions, datetime.fromtimestamp(int(t), UTC)) for t in reps]
        self.version_map = np.array([idx[id(v)] if v is not None else -1 for v in ver], dtype=np.int64)
        self.bounds = []  # (version index, kind, excl units | None, incl units | None)
        for vi, v in enumerate(versions):
            for kind, bex, bin_ in (("MIN", v.min_excl, v.min_incl), ("MAX", v.max_excl, v.max_incl)):
                if bex is None and bin_ is None:
                    continue
                self.bounds.append((vi, kind, self._units(bex), self._units(bin_)))

    def _units(self, amount: Decimal | None) -> int | None:
        if amount is None:
            return None
        return int(round_amount(amount, self.currency).scaleb(-self.exponent))

    def _check(self) -> str | None:
        try:
            round_units(0, 1, self.currency)
        except MoneyError as exc:
            return str(exc)
        labels = [(v.tariff_id, v.version) for v in self.versions]
        if len(set(labels)) != len(labels):
            return "tariff versions share an (id, version) label"
        for v in self.versions:
            for edge in (v.valid_from, v.valid_to):
                if edge is not None and edge.microsecond:
                    return "version edge not on a whole second"
            for r in v.all_restrictions():
                if r.min_wh is not None or r.max_wh is not None:
                    return "min_kwh/max_kwh restrictions (energy cuts)"
        return None

    def version_of(self, t: np.ndarray) -> np.ndarray:
        return self.version_map[np.searchsorted(self.edges, t, side="right")]


def _window(r: CompiledRestrictions, mod: np.ndarray) -> np.ndarray | bool:
    start, end = r.start_min, r.end_min
    if start is None:
        return True if end == 0 else mod < end
    if end is None or (end == 0 and start > 0):
        return mod >= start
    if start == end:
        return True
    if start < end:
        return (mod >= start) & (mod < end)
    return (mod >= start) | (mod < end)


def _matches(r: CompiledRestrictions, local: dict[str, np.ndarray]) -> np.ndarray:
    n = len(local["mod"])
    if r.reservation is not None or any(
        x is not None for x in (r.min_power, r.max_power, r.min_current, r.max_current)
    ):
        return np.zeros(n, dtype=bool)
    m = np.ones(n, dtype=bool)
    if r.start_min is not None or r.end_min is not None:
        m &= _window(r, local["mod"])
    if r.days is not None:
        m &= np.isin(local["wd"], np.array(sorted(r.days)))
    if r.start_date is not None:
        m &= local["ord"] >= r.start_date
    if r.end_date is not None:
        m &= local["ord"] < r.end_date
    if r.min_duration is not None:
        m &= local["elapsed"] >= r.min_duration
    if r.max_duration is not None:
        m &= local["elapsed"] < r.max_duration
    return m


class _Zone:
    """A zone's UTC offsets and the cut instants of a tariff plan over a time range (whole seconds)."""

    def __init__(self, name: str, plan: _Plan, lo: int, hi: int):
        tz = zone(name)
        a = datetime.fromtimestamp(lo, UTC) - timedelta(days=2)
        b = datetime.fromtimestamp(hi, UTC) + timedelta(days=2)
        trans = _offset_transitions(name, a, b)
        self.trans = np.array([-(2**62)] + [_epoch(t) for t in trans], dtype=np.int64)
        self.offs = np.array(
            [int(x.astimezone(tz).utcoffset().total_seconds()) for x in [a, *trans]], dtype=np.int64
        )
        cuts: set[int] = set(self.trans[1:].tolist()) | set(plan.edges.tolist())
        day = (a.astimezone(tz) - timedelta(days=1)).date()
        last = (b.astimezone(tz) + timedelta(days=1)).date()
        while day <= last:
            for m in plan.minutes:
                for fold in (0, 1):
                    wall = datetime(day.year, day.month, day.day, m // 60, m % 60, tzinfo=tz, fold=fold)
                    cuts.add(_epoch(wall.astimezone(UTC)))
            day += timedelta(days=1)
        self.cuts = np.array(sorted(cuts), dtype=np.int64)

    def local(self, t: np.ndarray, session_start: np.ndarray) -> dict[str, np.ndarray]:
        loc = t + self.offs[np.searchsorted(self.trans, t, side="right") - 1]
        days = loc // 86400
        return {
            "mod": (loc % 86400) // 60,
            "wd": (days + 3) % 7,
            "ord": days + _ORDINAL_1970,
            "elapsed": t - session_start,
        }


# ------------------------------------------------------------------------------------------------ pricing


def price_batch(
    tariffs: TariffInput,
    periods: Any,
    sessions: Any,
    time_zone: str | None = None,
) -> BatchResult:
    """Price every session of ``sessions`` (see the module docstring for the columns and what is supported).

    ``tariffs``: a Tariff, CompiledTariff or list of versions, as for :func:`tariffs.engine.price_session`.
    Returns a :class:`BatchResult` whose amounts equal ``price_session``'s cost fields for each session.
    """
    versions = compile_versions(tariffs)
    plan = _Plan(versions)
    s_start, s_end = _ints(sessions, "start"), _ints(sessions, "end")
    n = len(s_start)
    if np.any(s_end < s_start):
        bad = int(np.flatnonzero(s_end < s_start)[0])
        raise PricingError(f"session {bad} ends before it starts")
    cols = {k: _ints(periods, k) for k in ("session", "start", "end", "energy_wh", "time_s", "parking_s")}
    sess = cols["session"]
    if len(sess) and (sess.min() < 0 or sess.max() >= n):
        raise ValueError("period 'session' values must index rows of sessions")
    order_ok = (np.diff(sess) > 0) | ((np.diff(sess) == 0) & (np.diff(cols["start"]) >= 0))
    if not np.all(order_ok):
        raise ValueError("periods must be grouped by session and chronological within a session")
    if np.any(cols["end"] < cols["start"]):
        raise ValueError("a period ends before it starts")
    if time_zone is None:
        try:
            zones = np.asarray(sessions["time_zone"], dtype=object)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError("give time_zone or a sessions 'time_zone' column") from exc
    else:
        zones = None

    amounts = {f"{f}_{k}": np.zeros(n, dtype=np.int64) for f in COST_FIELDS for k in ("excl", "incl")}
    fallback = np.zeros(n, dtype=bool)
    if plan.unsupported:
        fallback[:] = True
    elif zones is None:
        _price_zone(plan, time_zone, cols, s_start, amounts, fallback)  # type: ignore[arg-type]
    else:
        for name in sorted(set(zones.tolist())):
            idx = np.flatnonzero(zones == name)
            pmask = np.isin(sess, idx)
            remap = np.full(n, -1, dtype=np.int64)
            remap[idx] = np.arange(len(idx))
            sub = {k: v[pmask] for k, v in cols.items()}
            sub["session"] = remap[sub["session"]]
            sub_amounts = {k: np.zeros(len(idx), dtype=np.int64) for k in amounts}
            sub_fb = np.zeros(len(idx), dtype=bool)
            _price_zone(plan, name, sub, s_start[idx], sub_amounts, sub_fb)
            for k, v in sub_amounts.items():
                amounts[k][idx] = v
            fallback[idx] = sub_fb
    # negative quantities: leave them to price_session
    neg = (cols["energy_wh"] < 0) | (cols["time_s"] < 0) | (cols["parking_s"] < 0)
    if np.any(neg):
        fallback[np.unique(sess[neg])] = True
    if np.any(fallback):
        _fallback(versions, plan, cols, s_start, s_end, zones, time_zone, amounts, fallback)
    return BatchResult(plan.currency, plan.exponent, amounts, fallback)


def _fallback(
    versions: list[CompiledTariff],
    plan: _Plan,
    cols: dict[str, np.ndarray],
    s_start: np.ndarray,
    s_end: np.ndarray,
    zones: np.ndarray | None,
    time_zone: str | None,
    amounts: dict[str, np.ndarray],
    fallback: np.ndarray,
) -> None:
    sess = cols["session"]
    bounds = np.searchsorted(sess, np.arange(len(s_start) + 1))
    for i in np.flatnonzero(fallback).tolist():
        plist = []
        for j in range(bounds[i], bounds[i + 1]):
            plist.append(
                Period(
                    datetime.fromtimestamp(int(cols["start"][j]), UTC),
                    datetime.fromtimestamp(int(cols["end"][j]), UTC),
                    Decimal(int(cols["energy_wh"][j])),
                    time_s=Decimal(int(cols["time_s"][j])),
                    parking_s=Decimal(int(cols["parking_s"][j])),
                )
            )
        tz = time_zone if zones is None else zones[i]
        r = price_session(
            versions,
            plist,
            datetime.fromtimestamp(int(s_start[i]), UTC),
            datetime.fromtimestamp(int(s_end[i]), UTC),
            tz,
        )
        _store(r, i, plan.exponent, amounts)


def _store(r: PricingResult, i: int, exponent: int, amounts: dict[str, np.ndarray]) -> None:
    for f in COST_FIELDS:
        p = getattr(r, f)
        amounts[f"{f}_excl"][i] = int(p.excl_vat.scaleb(-exponent))
        amounts[f"{f}_incl"][i] = int(p.incl_vat.scaleb(-exponent))


def _last_per_session(mask: np.ndarray, psess: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sessions, index of the last piece with ``mask``) for every session having one."""
    idx = np.flatnonzero(mask)
    s = psess[idx]
    last = np.ones(len(idx), dtype=bool)
    last[:-1] = s[1:] != s[:-1]
    return s[last], idx[last]


def _times(q: np.ndarray, a: int) -> np.ndarray:
    """``q * a`` exactly: int64 when it cannot overflow, else Python ints (object array)."""
    if len(q) == 0 or int(np.abs(q).max()) * abs(a) < _SAFE:
        return q * a
    return q.astype(object) * a


def _price_zone(
    plan: _Plan,
    tz_name: str,
    cols: dict[str, np.ndarray],
    s_start: np.ndarray,
    amounts: dict[str, np.ndarray],
    fallback: np.ndarray,
) -> None:
    n = len(s_start)
    if n == 0:
        return
    ps, pe, psess = cols["start"], cols["end"], cols["session"]
    times = np.concatenate([s_start, ps, pe])
    z = _Zone(tz_name, plan, int(times.min()), int(times.max()))

    # ---- 1. cut periods at every boundary strictly inside them (as tariffs.periods.cut_for_tariffs)
    P = len(ps)
    first = np.searchsorted(z.cuts, ps, side="right")
    cnt = np.maximum(np.searchsorted(z.cuts, pe, side="left") - first, 0)
    total = int(cnt.sum())
    cut_pid = np.repeat(np.arange(P), cnt)
    cut_t = z.cuts[np.repeat(first - (np.cumsum(cnt) - cnt), cnt) + np.arange(total)] if total else ps[:0]
    extra_pid, extra_t = [cut_pid], [cut_t]
    if plan.durations and P:
        bounds = np.searchsorted(psess, np.arange(n))
        has = np.bincount(psess, minlength=n) > 0
        sess_lo = s_start.copy()
        sess_lo[has] = np.minimum(s_start[has], ps[bounds[has]])
        for origin in (s_start, sess_lo):  # cut_for_tariffs also cuts at lo + d when lo != session start
            for d in plan.durations:
                at = (origin + d)[psess]
                inside = (ps < at) & (at < pe)
                extra_pid.append(np.flatnonzero(inside))
                extra_t.append(at[inside])
    pid = np.concatenate([np.arange(P), *extra_pid])
    a = np.concatenate([ps, *extra_t])
    if len(extra_pid) > 1:
        order = np.lexsort((a, pid))
        pid, a = pid[order], a[order]
        keep = np.ones(len(pid), dtype=bool)
        keep[1:] = (pid[1:] != pid[:-1]) | (a[1:] != a[:-1])
        pid, a = pid[keep], a[keep]
    elif total:
        order = np.argsort(pid, kind="stable")  # period start first, then its cuts (already ascending)
        pid, a = pid[order], a[order]
    b = np.empty_like(a)
    if len(a):
        b[:-1] = a[1:]
        same = np.zeros(len(a), dtype=bool)
        same[:-1] = pid[1:] == pid[:-1]
        b[~same] = pe[pid[~same]]
    k = b - a
    T = (pe - ps)[pid]
    split = (np.bincount(pid, minlength=P) > 1)[pid]
    isess = psess[pid]

    # ---- 2. component per piece and dimension (first matching element of the version valid at its start)
    local = z.local(a, s_start[isess])
    ver = plan.version_of(a)
    cache: dict[int, np.ndarray] = {}

    def choose(dim: str, loc: dict[str, np.ndarray], vers: np.ndarray, rcache: dict[int, np.ndarray]):
        sel = np.full(len(vers), -1, dtype=np.int64)
        for vi in range(len(plan.versions)):
            vm = vers == vi
            if not vm.any():
                continue
            for c in plan.by_version_dim[(vi, dim)]:
                r = c.comp.restrictions
                if id(r) not in rcache:
                    rcache[id(r)] = _matches(r, loc)
                m = vm & (sel < 0) & rcache[id(r)]
                sel[m] = c.gid
        return sel

    NC = plan.n
    Qi = np.zeros(n * NC, dtype=np.float64)  # exact integer quantities (sums < 2**53 are exact in float64)
    Qf = np.zeros(n * NC, dtype=np.float64)  # prorated (Q * k / T) quantities, estimated
    A = np.zeros(n * NC, dtype=np.int64)  # prorated pieces per cell
    charged: dict[str, np.ndarray] = {}
    sel_of: dict[str, np.ndarray] = {}
    exact_of: dict[str, np.ndarray] = {}
    approx_of: dict[str, np.ndarray] = {}
    col_of: dict[str, str] = {}
    for dim, col in ((ENERGY, "energy_wh"), (TIME, "time_s"), (PARKING_TIME, "parking_s")):
        Q = cols[col][pid]
        sel = choose(dim, local, ver, cache)
        exact_q = np.where(split & (Q == T), k, Q)
        approx = split & (Q != T) & (Q != 0)
        ch = (Q != 0) & (sel >= 0)
        cell = isess[ch] * NC + sel[ch]
        ex, ap = ~approx[ch], approx[ch]
        Qi += np.bincount(cell[ex], weights=exact_q[ch][ex], minlength=n * NC)
        Qf += np.bincount(cell[ap], weights=(Q[ch][ap] * k[ch][ap]) / T[ch][ap], minlength=n * NC)
        A += np.bincount(cell[ap], minlength=n * NC)
        charged[dim], sel_of[dim] = ch, sel
        exact_of[dim], approx_of[dim], col_of[dim] = exact_q, approx, col

    # FLAT once per session, at its start
    s_local = z.local(s_start, s_start)
    fsel = choose(FLAT, s_local, plan.version_of(s_start), {})
    has_flat = fsel >= 0
    Qi[np.flatnonzero(has_flat) * NC + fsel[has_flat]] += 1

    Qi = Qi.reshape(n, NC)
    Qf = Qf.reshape(n, NC)
    A = A.reshape(n, NC)

    # ---- 3. step_size once per group, on the chronologically last billed period of the group
    dims_cols = {d: np.flatnonzero(plan.dim_of == _DIMS.index(d)) for d in _DIMS}

    sess_bounds = np.searchsorted(isess, np.arange(n + 1))
    period_bounds = np.searchsorted(pid, np.arange(P + 1))
    split_cache: dict[tuple[int, str], list[Decimal]] = {}

    def decimal_parts(p: int, col: str) -> list[Decimal]:
        """The Decimal quantities tariffs.periods.split gives the pieces of period ``p``."""
        key = (p, col)
        if key not in split_cache:
            rem, cur, end = Decimal(int(cols[col][p])), int(ps[p]), int(pe[p])
            out = []
            for j in range(period_bounds[p], period_bounds[p + 1] - 1):
                at = int(b[j])
                total_s, first_s = Decimal(end - cur), Decimal(at - cur)
                frac = first_s / total_s
                part = ZERO if rem == 0 else (first_s if rem == total_s else rem * frac)
                out.append(part)
                rem, cur = rem - part, at
            out.append(rem)
            split_cache[key] = out
        return split_cache[key]

    def _decimal_steps(bounds: np.ndarray, s: int, dim: str, step: int) -> int:
        """price_session's billed steps of ``dim`` in session ``s``: Decimal sum, then ceiling."""
        tot = ZERO
        ch, ap, eq, col = charged[dim], approx_of[dim], exact_of[dim], col_of[dim]
        for j in range(bounds[s], bounds[s + 1]):
            if ch[j]:
                if ap[j]:
                    tot += decimal_parts(int(pid[j]), col)[j - period_bounds[pid[j]]]
                else:
                    tot += Decimal(int(eq[j]))
        return int((tot / Decimal(step)).to_integral_value(rounding=ROUND_CEILING))

    def apply_step(last_sess: np.ndarray, last_cell: np.ndarray, last_dim: np.ndarray) -> None:
        for di, dim in enumerate(_DIMS[:3]):
            pick = last_dim == di
            if not pick.any():
                continue
            s, c = last_sess[pick], last_cell[pick]
            dc = dims_cols[dim]
            tot_i = Qi[s][:, dc].sum(axis=1).astype(np.int64)
            tot_f = Qf[s][:, dc].sum(axis=1)
            approx = A[s][:, dc].sum(axis=1) > 0
            step = plan.step[c]
            # exact group total
            ex = ~approx
            billed = -(-tot_i[ex] // step[ex]) * step[ex]
            Qi[s[ex], c[ex]] += billed - tot_i[ex]
            # estimated: undecided when the total is (nearly) a whole number of steps
            if approx.any():
                t = (tot_i[approx] + tot_f[approx]) / step[approx]
                billed = np.ceil(t)
                # (nearly) a whole number of steps: the ceiling depends on price_session's Decimal noise
                near = np.flatnonzero(np.abs(t - np.rint(t)) < 1e-7)
                if len(near):
                    sa, sta = s[approx].tolist(), step[approx].tolist()
                    billed[near] = [_decimal_steps(sess_bounds, sa[j], dim, sta[j]) for j in near.tolist()]
                extra = billed * step[approx] - (tot_i[approx] + tot_f[approx])
                Qf[s[approx], c[approx]] += extra
                A[s[approx], c[approx]] += 1

    es, ei = _last_per_session(charged[ENERGY], isess)
    apply_step(es, sel_of[ENERGY][ei], np.zeros(len(es), dtype=np.int64))
    key = np.where(charged[PARKING_TIME], 1, np.where(charged[TIME], 0, -1))
    ts, ti = _last_per_session(key >= 0, isess)
    is_park = key[ti] == 1
    apply_step(ts, np.where(is_park, sel_of[PARKING_TIME][ti], sel_of[TIME][ti]), np.where(is_park, 2, 1))

    # ---- 4. lines: one per (session, component), rounded once
    cur = plan.currency
    excl = np.zeros((n, NC), dtype=np.int64)
    incl = np.zeros((n, NC), dtype=np.int64)
    for c in plan.comps:
        col_i = Qi[:, c.gid]
        approx = A[:, c.gid] > 0
        used = (col_i != 0) | approx
        if not used.any():
            continue
        ex = used & ~approx
        q = col_i[ex].astype(np.int64)
        num = _times(q, c.a)
        excl[ex, c.gid] = np.asarray(round_units(num, c.b, cur), dtype=np.int64)
        if c.a_incl is None:
            incl[ex, c.gid] = excl[ex, c.gid]
        else:
            num2 = _times(q, c.a_incl)
            incl[ex, c.gid] = np.asarray(round_units(num2, c.b_incl, cur), dtype=np.int64)
            if c.nonterminating:  # where Decimal's excl is inexact, a tie in incl may round either way
                tie = np.flatnonzero(np.asarray(is_rounding_tie(num2, c.b_incl, cur), dtype=bool))
                if len(tie):
                    d = c.b // np.gcd(np.asarray(num[tie] % c.b, dtype=np.int64), c.b)
                    for _ in range(3):
                        d = d // np.gcd(d, 10**18)
                    fallback[np.flatnonzero(ex)[tie[d != 1]]] = True
        if approx.any():
            qf = col_i[approx] + Qf[approx, c.gid]
            u, undecided = round_units_approx(qf * (c.a / c.b), cur, _TOL)
            excl[approx, c.gid] = u
            bad = undecided
            if c.a_incl is None:
                incl[approx, c.gid] = u
            else:
                u2, und2 = round_units_approx(qf * (c.a_incl / c.b_incl), cur, _TOL)
                incl[approx, c.gid] = u2
                bad = bad | und2
            fallback[np.flatnonzero(approx)[bad]] = True

    # ---- 5. totals, min/max price of the version valid at the session start
    out = {
        "total_fixed_cost": dims_cols[FLAT],
        "total_energy_cost": dims_cols[ENERGY],
        "total_time_cost": dims_cols[TIME],
        "total_parking_cost": dims_cols[PARKING_TIME],
    }
    for f, dc in out.items():
        amounts[f"{f}_excl"][:] = excl[:, dc].sum(axis=1)
        amounts[f"{f}_incl"][:] = incl[:, dc].sum(axis=1)
    sum_excl = excl.sum(axis=1)
    sum_incl = incl.sum(axis=1)
    if plan.bounds:
        base = plan.version_of(s_start)
        base[base < 0] = 0
        for vi, kind, bex, bin_ in plan.bounds:  # MIN before MAX per version, as price_session
            sel = np.flatnonzero(base == vi)
            if not len(sel):
                continue
            se, si = sum_excl[sel], sum_incl[sel]
            te, ti_ = se.copy(), si.copy()
            lower = kind == "MIN"
            if bex is not None:
                hit = se < bex if lower else se > bex
                te[hit] = bex
            if bin_ is not None:
                hit = si < bin_ if lower else si > bin_
                ti_[hit] = bin_
            else:
                ch = te != se
                if ch.any():
                    # keep the session's VAT ratio: round(target_excl * sum_incl / sum_excl); 1 when free
                    e_, i_, t_ = se[ch], si[ch], te[ch]
                    zero = e_ == 0
                    den = np.where(zero, 1, np.abs(e_))
                    num = np.where(zero, t_, t_ * i_ * np.sign(np.where(zero, 1, e_)))
                    new = np.asarray(round_units(num, den, cur), dtype=np.int64)
                    tie = np.asarray(is_rounding_tie(num, den, cur), dtype=bool) & ~zero
                    fallback[sel[ch][tie]] = True
                    keep = (new < i_) if lower else (new > i_)
                    ti_[ch] = np.where(keep, i_, new)
            sum_excl[sel], sum_incl[sel] = te, ti_
    amounts["total_cost_excl"][:] = sum_excl
    amounts["total_cost_incl"][:] = sum_incl
