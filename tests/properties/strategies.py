"""Hypothesis generators for the money-path invariants (issue 12, item 6; docs/plans/money-is-right.md section 6).

* :func:`tariffs_any`: valid OCPI 2.2.1 tariffs over every dimension (ENERGY, FLAT, TIME, PARKING_TIME,
  reservation FLAT/TIME with RESERVATION and RESERVATION_EXPIRES) and every restriction (time of day with
  wrap and 00:00, dates, kWh, power, current, duration, weekdays), step sizes {1, 60, 300, 500, 900}, VAT
  None/0/21, min/max price; the tariff model (T4) is the judge of validity, and the 18 official examples
  (``tests/fixtures/ocpi-examples``) are drawn next to generated ones.
* :func:`versions`: 1-3 versions of one tariff id with increasing ``start_date_time``, sometimes replaced by a
  tariff of another id (the last version ends when the new one starts).
* :func:`start_instants`: UTC instants biased to the DST days in Europe/Amsterdam (2026-03-29, 2026-10-25),
  month ends and the year end.
* :func:`meter_profiles`: a session's metering as constant-power segments (pauses included) on a sample
  interval, with an optional current; :func:`MeterProfile.samples` is the cumulative series since the start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import assume, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from kernel.jsonutil import dumps, loads, to_jsonable
from tariffs.core.meter_periods import MeterSample
from tariffs.core.tariff_document import Tariff
from tariffs.core.tariff_json import load_tariff

D = Decimal
PROFILE = "properties-nightly" if os.environ.get("EVHUB_PROPERTIES") == "nightly" else "properties-ci"
"""The hypothesis profile (tests/properties/conftest.py): ``ci`` by default, ``nightly`` (10x the examples)
with EVHUB_PROPERTIES=nightly."""


def budget(examples: int, **kw: Any) -> settings:
    """Settings for one property: the active profile (derandomized, no deadline) with ``examples`` examples in
    CI, ten times as many nightly; ``kw`` for a test's own justified settings."""
    scale = 10 if PROFILE == "properties-nightly" else 1
    return settings(settings.get_profile(PROFILE), max_examples=examples * scale, **kw)


TZ = "Europe/Amsterdam"
EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "ocpi-examples"

SPECIAL_DAYS = (
    "2026-03-29",  # DST starts in Europe/Amsterdam (02:00 -> 03:00)
    "2026-10-25",  # DST ends (03:00 -> 02:00, one hour twice)
    "2026-01-31",
    "2026-02-28",
    "2026-04-30",
    "2026-06-30",
    "2026-11-30",
    "2026-12-31",  # year end
)


def example_tariffs() -> list[Tariff]:
    """The 18 OCPI 2.2.1 tariff examples, verbatim; validity windows lifted (tariff_6 ended in 2019), so
    they price sessions of any year."""
    out = []
    for path in sorted(EXAMPLES.glob("tariff_*.json")):
        t = load_tariff(path.read_text())
        out.append(t.model_copy(update={"start_date_time": None, "end_date_time": None}))
    return out


@st.composite
def start_instants(draw: st.DrawFn) -> datetime:
    """A session start: mostly on a special local day (DST switches, month ends, year end), else any 2026 day."""
    if draw(st.integers(0, 3)):
        day = datetime.fromisoformat(draw(st.sampled_from(SPECIAL_DAYS)))
    else:
        day = datetime(2026, 1, 1) + timedelta(days=draw(st.integers(0, 364)))
    midnight = day.replace(tzinfo=ZoneInfo(TZ)).astimezone(UTC)
    # Minutes from local midnight, biased to the night hours where the DST switch happens.
    minute = draw(st.one_of(st.integers(0, 1439), st.integers(60, 240)))
    # Chargers stamp milliseconds: some starts are not on a whole second.
    ms = draw(st.sampled_from([0, 0, 0, 1, 250, 999]))
    return midnight + timedelta(minutes=minute, seconds=draw(st.sampled_from([0, 0, 17])), milliseconds=ms)


prices = st.decimals(min_value=D("0"), max_value=D("3"), places=3)
vats = st.sampled_from([None, D(0), D(21)])
steps = st.sampled_from([1, 60, 300, 500, 900])
clock_times = st.sampled_from(
    [
        "00:00",
        "02:00",
        "02:30",
        "03:00",
        "06:00",
        "07:30",
        "09:00",
        "12:00",
        "17:00",
        "18:15",
        "22:00",
        "23:45",
    ]
)
days = ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY"]


def _component(kind: str, price: Decimal, vat: Decimal | None, step: int) -> dict[str, Any]:
    out: dict[str, Any] = {"type": kind, "price": price, "step_size": step}
    if vat is not None:
        out["vat"] = vat
    return out


@st.composite
def _pair(draw: st.DrawFn, values: st.SearchStrategy[Any]) -> tuple[Any, Any]:
    """(lower, upper) with lower < upper when both are set; either may be absent."""
    a, b = draw(values), draw(values)
    lo, hi = (a, b) if a < b else (b, a)
    if lo == hi:
        hi = None
    kind = draw(st.integers(0, 2))
    return (lo, None) if kind == 0 else (None, hi) if kind == 1 and hi is not None else (lo, hi)


@st.composite
def restrictions(draw: st.DrawFn) -> dict[str, Any]:
    """A TariffRestrictions with a random subset of fields, every pair satisfiable (lower < upper)."""
    r: dict[str, Any] = {}
    fields = draw(
        st.sets(
            st.sampled_from(["time", "date", "kwh", "power", "current", "duration", "days"]),
            min_size=1,
            max_size=3,
        )
    )
    if "time" in fields:
        if draw(st.booleans()):
            r["start_time"] = draw(clock_times)
        if draw(st.booleans()) or "start_time" not in r:
            r["end_time"] = draw(clock_times)
    if "date" in fields:
        lo, hi = draw(
            _pair(st.sampled_from(["2026-01-01", "2026-03-29", "2026-06-01", "2026-10-26", "2027-01-01"]))
        )
        if lo:
            r["start_date"] = lo
        if hi:
            r["end_date"] = hi
    for name, values in (
        ("kwh", st.decimals(min_value=D(0), max_value=D(60), places=1)),
        ("power", st.sampled_from([D(0), D("3.7"), D(7), D(11), D(22), D(50)])),
        ("current", st.sampled_from([D(0), D(6), D(16), D(20), D(32), D(48)])),
        ("duration", st.sampled_from([0, 600, 1800, 3600, 7200, 14400])),
    ):
        if name in fields:
            lo, hi = draw(_pair(values))
            if lo is not None:
                r[f"min_{name}"] = lo
            if hi is not None:
                r[f"max_{name}"] = hi
    if "days" in fields:
        r["day_of_week"] = sorted(
            draw(st.sets(st.sampled_from(days), min_size=1, max_size=6)), key=days.index
        )
    return r


@st.composite
def _element(draw: st.DrawFn, *, restricted: bool) -> dict[str, Any]:
    kinds = draw(st.sets(st.sampled_from(["ENERGY", "FLAT", "TIME", "PARKING_TIME"]), min_size=1, max_size=4))
    comps = [_component(k, draw(prices), draw(vats), draw(steps)) for k in sorted(kinds)]
    out: dict[str, Any] = {"price_components": comps}
    if restricted:
        out["restrictions"] = draw(restrictions())
    return out


@st.composite
def _reservation_element(draw: st.DrawFn) -> dict[str, Any]:
    kinds = draw(st.sets(st.sampled_from(["FLAT", "TIME"]), min_size=1, max_size=2))
    comps = [_component(k, draw(prices), draw(vats), draw(steps)) for k in sorted(kinds)]
    return {
        "price_components": comps,
        "restrictions": {"reservation": draw(st.sampled_from(["RESERVATION", "RESERVATION_EXPIRES"]))},
    }


def tariff_from(body: dict[str, Any]) -> Tariff | None:
    """The tariff the model accepts for ``body`` (exact numbers through the JSON codec), or None."""
    try:
        return load_tariff(dumps(body))
    except (ValidationError, ValueError):
        return None


@st.composite
def generated_tariffs(
    draw: st.DrawFn, *, tariff_id: str = "PT", currency: str = "EUR", bounds: bool = True
) -> Tariff:
    """A valid generated tariff: restricted elements, reservation elements, usually a fallback element."""
    elements = draw(st.lists(_element(restricted=True), min_size=0, max_size=3))
    if draw(st.booleans()):
        elements.insert(draw(st.integers(0, len(elements))), draw(_reservation_element()))
    if not elements or draw(st.integers(0, 3)):
        elements.append(draw(_element(restricted=False)))
    body: dict[str, Any] = {
        "country_code": "NL",
        "party_id": "EVH",
        "id": tariff_id,
        "currency": currency,
        "elements": elements,
        "last_updated": "2026-01-01T00:00:00Z",
    }
    if bounds and draw(st.integers(0, 3)) == 0:
        lo = draw(st.decimals(min_value=D(0), max_value=D(4), places=2))
        body["min_price"] = {"excl_vat": lo}
        if draw(st.booleans()):
            body["min_price"]["incl_vat"] = (lo * D("1.21")).quantize(D("0.01"))
    if bounds and draw(st.integers(0, 3)) == 0:
        hi = draw(st.decimals(min_value=D(4), max_value=D(30), places=2))
        body["max_price"] = {"excl_vat": hi}
        if draw(st.booleans()):
            body["max_price"]["incl_vat"] = (hi * D("1.21")).quantize(D("0.01"))
    t = tariff_from(body)
    assume(t is not None)
    assert t is not None
    return t


_EXAMPLES: list[Tariff] | None = None


def _examples() -> list[Tariff]:
    global _EXAMPLES
    if _EXAMPLES is None:
        _EXAMPLES = example_tariffs()
    return _EXAMPLES


@st.composite
def tariffs_any(draw: st.DrawFn, *, tariff_id: str = "PT", bounds: bool = True) -> Tariff:
    """A generated tariff (3 in 4) or one of the 18 OCPI examples, as tariff ``tariff_id``."""
    if draw(st.integers(0, 3)) == 0:
        t = draw(st.sampled_from(_examples()))
        return t.model_copy(update={"id": tariff_id})
    return draw(generated_tariffs(tariff_id=tariff_id, bounds=bounds))


@st.composite
def versions(draw: st.DrawFn, session_start: datetime, *, tariff_id: str = "PT") -> list[Tariff]:
    """1-3 versions of one tariff id: the first open (no start), later ones starting around the session
    (from 2 h before to 10 h after its start), strictly increasing."""
    first = draw(tariffs_any(tariff_id=tariff_id))
    out = [first]
    offsets = sorted(draw(st.sets(st.integers(-120, 600), max_size=2)))
    for i, minutes in enumerate(offsets):
        nxt = draw(generated_tariffs(tariff_id=tariff_id))
        start = session_start + timedelta(minutes=minutes, seconds=i)
        out.append(nxt.model_copy(update={"start_date_time": start, "last_updated": start}))
    if draw(st.integers(0, 4)) == 0:
        # OCPI tariff replacement (mod_tariffs: "By assigning both, the old and the new tariff ID, they will
        # automatically be replaced"): the last version ends, a tariff of another id starts then.
        last = out[-1]
        cut = session_start + timedelta(minutes=draw(st.integers(-30, 600)))
        if last.start_date_time is not None and cut <= last.start_date_time:
            cut = last.start_date_time + timedelta(minutes=1)
        out[-1] = last.model_copy(update={"end_date_time": cut})
        new = draw(generated_tariffs(tariff_id=f"{tariff_id}-NEW"))
        out.append(new.model_copy(update={"start_date_time": cut, "last_updated": cut}))
    return out


def tariff_json(t: Tariff) -> dict[str, Any]:
    """The tariff as it is stored and put into a CDR's ``tariffs`` (exact numbers)."""
    return loads(dumps(to_jsonable(t.model_dump(mode="python", exclude_none=True), decimals_as="keep")))


# ------------------------------------------------------------------------------------------------ metering


@dataclass(frozen=True)
class Segment:
    """A stretch of a session: ``intervals`` sample intervals at a constant ``power_w`` (0: paused/parked)."""

    intervals: int
    power_w: int
    current_a: Decimal | None = None


@dataclass(frozen=True)
class MeterProfile:
    """A session's metering: a sample interval and constant-power segments."""

    start: datetime
    interval_s: int
    segments: tuple[Segment, ...]
    with_power: bool = True

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=self.interval_s * sum(s.intervals for s in self.segments))

    def samples(self) -> list[MeterSample]:
        """The cumulative series since the start (Wh), one sample per interval boundary, exact.

        A sample closing an interval carries that interval's power and current."""
        out = [MeterSample(self.start, D(0), None, None)]
        t, wh = self.start, D(0)
        for seg in self.segments:
            for _ in range(seg.intervals):
                t += timedelta(seconds=self.interval_s)
                wh += D(seg.power_w) * self.interval_s / 3600
                power = D(seg.power_w) if self.with_power else None
                out.append(MeterSample(t, wh, power, seg.current_a))
        return out

    @property
    def energy_wh(self) -> Decimal:
        return self.samples()[-1].energy_wh


@st.composite
def meter_profiles(draw: st.DrawFn, start: datetime | None = None) -> MeterProfile:
    """1-4 segments of 1-40 intervals of 60/300/900 s, power a multiple of 60 W (pauses of 0 W), so the
    energy of every interval is an exact number of Wh; current (A) sometimes."""
    start = start if start is not None else draw(start_instants())
    interval = draw(st.sampled_from([60, 300, 900]))
    segs = []
    for _ in range(draw(st.integers(1, 4))):
        power = draw(st.one_of(st.just(0), st.integers(1, 830).map(lambda k: k * 60)))
        current = draw(st.one_of(st.none(), st.sampled_from([D(6), D(10), D(16), D(24), D(32)])))
        segs.append(
            Segment(draw(st.integers(1, 40)), power, current if power else (D(0) if current else None))
        )
    return MeterProfile(start, interval, tuple(segs), draw(st.booleans()))


def to_json(value: Any) -> Any:
    """``value`` through the exact JSON codec and back (what a partner receives)."""
    return loads(dumps(value))


__all__ = [
    "TZ",
    "MeterProfile",
    "Segment",
    "budget",
    "example_tariffs",
    "generated_tariffs",
    "meter_profiles",
    "start_instants",
    "tariff_from",
    "tariff_json",
    "tariffs_any",
    "to_json",
    "versions",
]
