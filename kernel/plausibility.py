"""Is an ended session plausible enough to bill? (pure: no database, no clock; "now" is passed in).

A CDR cannot be taken back once sent (OCPI 2.2.1 CDRs: "Because a CDR is for billing purposes, it cannot be
changed or replaced once sent to the eMSP."), so a charger clock reset to 1970 or a register jump must be
caught before the CDR exists. :func:`plausibility` lists every reason a session is implausible; rating holds
a session with any reason (``pricing_state = held``, ``review_reason``) instead of pricing it. The checks:

* the span (end - start) is longer than ``Limits.max_span`` (setting ``max_session_span``, 7 days);
* the start or the end lies more than ``Limits.clock_skew`` (setting ``clock_skew``, 5 min) after now;
* the start is before :data:`EARLIEST` (2010-01-01; no OCPP charger charged a car before it);
* the end is before the start;
* the energy is negative, or more than the connector could deliver: its ``max_electric_power`` (OCPI 2.2.1:
  "Maximum electric power that can be delivered by this connector, in Watts (W)") over the session's
  duration, times :data:`POWER_MARGIN`, plus :data:`ENERGY_ALLOWANCE_WH` (an unknown power skips this);
* the gateway flagged the session :data:`CLOCK_SUSPECT` (a charger timestamp far from the receive time).

:func:`pricing_work` bounds what pricing one session may cost (issue 15: one session with an absurd span
froze every charger for 22 s), also for a session an operator released to be billed as it is: a span beyond
:data:`MAX_PRICED_SPAN` or more than :data:`MAX_METER_ROWS` readings is refused (the session is marked
``failed`` with the reason, never priced in part nor silently dropped), judged before anything is loaded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from kernel.settings import Settings

EARLIEST = datetime(2010, 1, 1, tzinfo=UTC)
"""Charger timestamps before this are a clock that was never set."""
POWER_MARGIN = Decimal("1.1")
"""Measured energy may exceed max power x duration by 10 % (meter accuracy, a rated power on the low side)."""
ENERGY_ALLOWANCE_WH = Decimal(500)
"""...and by this much more, so seconds-long sessions and rounding of the stamps are not held."""
CLOCK_SUSPECT = "CLOCK_SUSPECT"
"""Session flag set by the gateway when a charger's timestamp is far from the time the hub received it."""

MAX_PRICED_SPAN = timedelta(days=92)
"""The longest session pricing takes on (a quarter: a tariff cut at every daily price change stays a few
hundred periods); longer ones are refused even when released as they are."""
MAX_METER_ROWS = 200_000
"""The most meter readings (energy, power, current) one session may be priced from: a reading every 5 s for
11 days; more is a charger flooding its own session."""
TOO_MUCH = "too much to price"

_H = Decimal(3600)


def pricing_work(start: datetime, end: datetime, meter_rows: int) -> str | None:
    """Why pricing the session would cost too much (the reason, starting with :data:`TOO_MUCH`), or None."""
    if end - start > MAX_PRICED_SPAN:
        return f"{TOO_MUCH}: span {end - start} longer than {MAX_PRICED_SPAN}"
    if meter_rows > MAX_METER_ROWS:
        return f"{TOO_MUCH}: {meter_rows} meter values, more than {MAX_METER_ROWS}"
    return None


@dataclass(frozen=True, slots=True)
class Limits:
    """The configurable bounds (defaults: the settings' defaults)."""

    max_span: timedelta = timedelta(seconds=Settings.model_fields["max_session_span"].default)
    clock_skew: timedelta = timedelta(seconds=Settings.model_fields["clock_skew"].default)

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(timedelta(seconds=settings.max_session_span), timedelta(seconds=settings.clock_skew))


def plausibility(
    start: datetime,
    end: datetime,
    energy_wh: Decimal,
    max_power_w: int | Decimal | None,
    now: datetime,
    limits: Limits,
    flags: Iterable[str] = (),
) -> list[str]:
    """Every reason the session ``start``..``end`` with ``energy_wh`` is implausible ([] = plausible)."""
    reasons: list[str] = []
    span = end - start
    if span > limits.max_span:
        reasons.append(f"span {span} longer than max_session_span {limits.max_span}")
    latest = now + limits.clock_skew
    for name, instant in (("start", start), ("end", end)):
        if instant > latest:
            reasons.append(
                f"{name} {_iso(instant)} in the future (now {_iso(now)}, clock_skew {limits.clock_skew})"
            )
    if start < EARLIEST:
        reasons.append(f"start {_iso(start)} before {_iso(EARLIEST)}")
    if end < start:
        reasons.append(f"end {_iso(end)} before start {_iso(start)}")
    if energy_wh < 0:
        reasons.append(f"energy {energy_wh} Wh negative")
    elif max_power_w is not None and end >= start:
        hours = Decimal(str(span.total_seconds())) / _H
        most = Decimal(max_power_w) * hours * POWER_MARGIN + ENERGY_ALLOWANCE_WH
        if energy_wh > most:
            reasons.append(
                f"energy {energy_wh} Wh exceeds what max_electric_power {max_power_w} W delivers in {span} "
                f"(at most {most.quantize(Decimal(1))} Wh)"
            )
    if CLOCK_SUSPECT in flags:
        reasons.append(f"flag {CLOCK_SUSPECT}: a charger timestamp far from the receive time")
    return reasons


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")
