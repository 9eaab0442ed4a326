"""Accounting periods (not charging periods): settlement months in UTC, closing, and where late and credit CDRs are settled.

* A period is a month key ``"YYYY-MM"`` standing for ``[first day 00:00 UTC, first day of next month)``
  (:func:`parse_period`). A CDR's *service period* is the period of its ``end_date_time``.
* Closing a period freezes it: ``closes`` maps period keys to the instant they were closed. A closed
  period's run is never rewritten; re-running it (replay) reproduces the same lines because the rule below
  only depends on data that existed when it closed.
* Settlement period of a CDR = the first period, starting at its service period, that was still open when
  the CDR was created (``created_at``): a CDR created after its period closed (late) and a credit CDR whose
  original's period is closed move forward to the next open period as *adjustments*, carrying
  ``adjusts_period`` (the period they correct) and, for credit CDRs, ``adjusts_cdr_id`` (``credit_of``).
  Credit CDRs are always flagged as adjustments, even when their period is still open.
* Carry-forward: a CDR the *closing* run of a period rejected is tried again by the next period that was
  still open when that run closed it, and so on until a run settles it (then as an adjustment of its service
  period). Per CDR this needs one number, ``carried_until``: the latest closed period (before the period being
  run) whose closing run rejected it; every closed period of its path up to that one rejected it too (a CDR
  one closing run settled is never tried again). A replay of a closed period uses only the rejections of
  periods before it, so it meets the CDR where its closing run met it.

Vectorised: periods are handled as integer month indexes (``year * 12 + month - 1``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from kernel.timeutil import ensure_utc

_KEY = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class ClosedPeriodError(ValueError):
    """An attempt to rewrite a closed period."""


@dataclass(frozen=True, order=True)
class Period:
    """One settlement month: ``[start, end)`` in UTC."""

    index: int  # year * 12 + month - 1

    @property
    def key(self) -> str:
        return f"{self.index // 12:04d}-{self.index % 12 + 1:02d}"

    @property
    def start(self) -> datetime:
        return datetime(self.index // 12, self.index % 12 + 1, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return Period(self.index + 1).start

    def next(self) -> Period:
        return Period(self.index + 1)

    def contains(self, instant: datetime) -> bool:
        return self.start <= ensure_utc(instant) < self.end

    def __str__(self) -> str:
        return self.key


def parse_period(key: str | Period) -> Period:
    """``"2026-10"`` -> Period covering ``[2026-10-01T00:00Z, 2026-11-01T00:00Z)``."""
    if isinstance(key, Period):
        return key
    match = _KEY.match(key.strip())
    if not match:
        raise ValueError(f"invalid period {key!r}: expected YYYY-MM")
    return Period(int(match.group(1)) * 12 + int(match.group(2)) - 1)


def period_of(instant: datetime) -> Period:
    """The period containing an aware instant."""
    utc = ensure_utc(instant)
    return Period(utc.year * 12 + utc.month - 1)


def closed_until(closes: Mapping[str, datetime]) -> datetime | None:
    """End of the latest closed period (what agreement changes are checked against), or None."""
    if not closes:
        return None
    return max(parse_period(k) for k in closes).end


def ensure_open(period: str | Period, closes: Mapping[str, datetime]) -> None:
    """Raise :class:`ClosedPeriodError` if ``period`` is closed."""
    p = parse_period(period)
    if p.key in {parse_period(k).key for k in closes}:
        raise ClosedPeriodError(f"period {p.key} is closed; late and credit CDRs go to the next open period")


def utc_column(values: pd.Series, name: str) -> pd.Series:
    """A timestamp column as aware UTC; naive values are refused (we never guess a zone)."""
    ts = pd.to_datetime(values)
    if getattr(ts.dt, "tz", None) is None:
        if ts.empty:  # no values, so no zone to refuse: an empty period (a fresh hub's first close)
            return ts.dt.tz_localize("UTC")
        raise ValueError(f"column {name} has naive timestamps; give aware UTC instants")
    return ts.dt.tz_convert("UTC")


def epoch_ns(values: pd.Series) -> np.ndarray:
    """Aware timestamps as int64 nanoseconds since the epoch."""
    return np.asarray(values.dt.as_unit("ns").array.asi8, dtype=np.int64)


def month_index(values: pd.Series) -> np.ndarray:
    """Aware UTC timestamps -> int64 month index (year * 12 + month - 1)."""
    return (values.dt.year.to_numpy(np.int64) * 12 + values.dt.month.to_numpy(np.int64) - 1).astype(np.int64)


def month_keys(index: np.ndarray, mask: np.ndarray | None = None) -> pd.Categorical:
    """Month indexes -> categorical of ``"YYYY-MM"`` keys (fast for millions of rows); missing where
    ``mask`` is False."""
    index = np.asarray(index, dtype=np.int64)
    if index.size == 0:
        return pd.Categorical([], categories=pd.Index([], dtype=object))
    uniques = np.unique(index)
    codes = np.searchsorted(uniques, index)
    if mask is not None:
        codes = np.where(mask, codes, -1)
    return pd.Categorical.from_codes(codes, categories=pd.Index([Period(int(u)).key for u in uniques]))


NOT_CARRIED = -1
"""``carried_until`` of a CDR no closing run rejected."""


def settlement_months(
    service_month: np.ndarray,
    created_ns: np.ndarray,
    closes: Mapping[str, datetime],
    carried_until: np.ndarray | None = None,
) -> np.ndarray:
    """Settlement month index per CDR: the first month >= its service month still open at its creation; a
    CDR the closing run of a month rejected (that month <= its ``carried_until`` month index) goes on to
    the first later month still open when that run closed the month."""
    months = np.asarray(service_month, dtype=np.int64).copy()
    available = np.asarray(created_ns, dtype=np.int64).copy()
    carried = (
        np.asarray(carried_until, dtype=np.int64)
        if carried_until is not None
        else np.full(len(months), NOT_CARRIED, dtype=np.int64)
    )
    for key, closed_at in sorted(((parse_period(k).index, v) for k, v in closes.items())):
        at = pd.Timestamp(ensure_utc(closed_at)).as_unit("ns").value
        here = months == key
        late = here & (available >= at)
        rejected = here & ~late & (carried >= key)
        months[late | rejected] += 1
        available[rejected] = at  # tried again from the close on, like a CDR created then
    return months


def period_start_seconds(months: np.ndarray) -> np.ndarray:
    """Month indexes -> the first instant of each month, in whole seconds since the epoch."""
    months = np.asarray(months, dtype=np.int64)
    if months.size == 0:
        return np.zeros(0, dtype=np.int64)
    uniques = np.unique(months)
    starts = np.array([int(Period(int(m)).start.timestamp()) for m in uniques], dtype=np.int64)
    return starts[np.searchsorted(uniques, months)]


def assign_periods(
    end_date_time: pd.Series,
    created_at: pd.Series | None,
    is_credit: np.ndarray,
    credit_of: pd.Series | None,
    closes: Mapping[str, datetime] | None = None,
    carried_until: np.ndarray | None = None,
) -> pd.DataFrame:
    """Period columns for CDRs: service_period, settlement_period, is_adjustment, adjusts_period,
    adjusts_cdr_id, and the month indexes service_month, settlement_month. ``created_at`` None means every
    CDR arrived on time; ``carried_until`` (month index, :data:`NOT_CARRIED`) see :func:`settlement_months`."""
    closes = closes or {}
    service = month_index(end_date_time)
    created = (
        epoch_ns(created_at) if created_at is not None else np.full(len(service), np.iinfo(np.int64).min)
    )
    settle = settlement_months(service, created, closes, carried_until)
    is_credit = np.asarray(is_credit, dtype=bool)
    adjustment = (settle != service) | is_credit
    if credit_of is not None:
        adjusts_cdr = pd.Series(credit_of.to_numpy(), dtype=credit_of.dtype).where(is_credit)
    else:
        adjusts_cdr = pd.Series([None] * len(service), dtype=object)
    return pd.DataFrame(
        {
            "service_period": month_keys(service),
            "settlement_period": month_keys(settle),
            "is_adjustment": adjustment,
            "adjusts_period": month_keys(service, adjustment),
            "adjusts_cdr_id": adjusts_cdr.to_numpy(),
            "service_month": service,
            "settlement_month": settle,
        }
    )


def with_carried(
    cdrs: pd.DataFrame, carried: pd.DataFrame, period: str, closes: Mapping[str, datetime]
) -> pd.DataFrame:
    """``cdrs`` with the month-index columns ``carried_until`` (the latest closed period before ``period``
    whose closing run rejected the CDR) and ``first_rejected_in`` (the earliest), :data:`NOT_CARRIED` where
    none did. Only rejections of closed periods before ``period`` count."""
    index = parse_period(period).index
    closed = {parse_period(k).index for k in closes}
    months = pd.Series(
        [parse_period(str(p)).index for p in carried["period"]], index=carried.index, dtype="int64"
    )
    keep = (months < index) & months.isin(closed)
    by_cdr = (
        pd.DataFrame({"cdr_id": carried["cdr_id"].astype(str)[keep], "month": months[keep]})
        .groupby("cdr_id")["month"]
        .agg(["max", "min"])
    )
    ids = cdrs["cdr_id"].astype(str)
    return cdrs.assign(
        carried_until=ids.map(by_cdr["max"]).fillna(NOT_CARRIED).astype("int64").to_numpy(),
        first_rejected_in=ids.map(by_cdr["min"]).fillna(NOT_CARRIED).astype("int64").to_numpy(),
    )


def with_credit_terms(cdrs: pd.DataFrame, closes: Mapping[str, datetime]) -> pd.DataFrame:
    """``cdrs`` with ``terms_month``: for a credit CDR whose original is in the table, the month index the
    original settles in (see :func:`settlement_months`, with ``carried_until`` when the table has it), else
    :data:`NOT_CARRIED`. The split gives a credit the terms of the period its original settled in, so that
    it mirrors the original even when it arrives after those terms changed."""
    n = len(cdrs)
    if not n or "credit_of" not in cdrs.columns or "is_credit" not in cdrs.columns:
        return cdrs.assign(terms_month=np.full(n, NOT_CARRIED, dtype=np.int64))
    created = (
        epoch_ns(utc_column(cdrs["created_at"], "created_at"))
        if "created_at" in cdrs.columns
        else np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    )
    carried = (
        pd.to_numeric(cdrs["carried_until"]).fillna(NOT_CARRIED).to_numpy(dtype=np.int64)
        if "carried_until" in cdrs.columns
        else None
    )
    months = settlement_months(
        month_index(utc_column(cdrs["end_date_time"], "end_date_time")), created, closes, carried
    )
    month_of = pd.Series(months, index=cdrs["cdr_id"].astype(str).to_numpy())
    month_of = month_of[~month_of.index.duplicated()]
    credit = cdrs["is_credit"].fillna(False).astype(bool).to_numpy()
    originals = pd.Series(cdrs["credit_of"].to_numpy(), dtype=object).where(credit)
    has = originals.notna().to_numpy()
    terms = np.full(n, NOT_CARRIED, dtype=np.int64)
    if has.any():
        found = pd.to_numeric(originals[has].astype(str).map(month_of), errors="coerce")
        terms[has] = found.fillna(NOT_CARRIED).to_numpy(dtype=np.int64)
    return cdrs.assign(terms_month=terms)
