"""The dashboard's numbers and the monthly cost report (CSV and printable HTML), per fleet.

Months and days are calendar months/days in the portal's time zone; amounts are summed exactly and rounded
once for display by :func:`kernel.money.round_amount`. Costs in another currency than the fleet's (roaming
abroad) are kept apart, never converted.
"""

from __future__ import annotations

import calendar
import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from kernel.money import round_amount
from kernel.timeutil import to_local
from portal.sessions_view import (
    CSV_HEADER,
    SessionFilter,
    SessionRow,
    csv_values,
    fetch_sessions,
    fmt_kwh,
)


def month_bounds(month: str | None, today: date) -> tuple[date, date]:
    """First and last day of ``YYYY-MM`` (default: the month of ``today``)."""
    year, mon = today.year, today.month
    if month:
        try:
            y, m = month.split("-", 1)
            if 1 <= int(m) <= 12 and 2000 <= int(y) <= 2100:
                year, mon = int(y), int(m)
        except ValueError:
            pass
    last = calendar.monthrange(year, mon)[1]
    return date(year, mon, 1), date(year, mon, last)


@dataclass
class Totals:
    sessions: int = 0
    energy_kwh: Decimal = Decimal(0)
    cost_excl: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))
    cost_incl: dict[str, Decimal] = field(default_factory=lambda: defaultdict(Decimal))

    def add(self, r: SessionRow) -> None:
        self.sessions += 1
        self.energy_kwh += r.energy_kwh
        if r.currency and r.cost_excl_vat is not None:
            self.cost_excl[r.currency] += r.cost_excl_vat
            self.cost_incl[r.currency] += r.cost if r.cost is not None else Decimal(0)

    def vat(self, currency: str) -> Decimal:
        return self.cost_incl.get(currency, Decimal(0)) - self.cost_excl.get(currency, Decimal(0))

    def money(self, currency: str, *, incl: bool = True) -> str:
        source = self.cost_incl if incl else self.cost_excl
        return str(round_amount(source.get(currency, Decimal(0)), currency))

    @property
    def currencies(self) -> list[str]:
        return sorted(self.cost_excl)


@dataclass
class Dashboard:
    first: date
    last: date
    currency: str
    totals: Totals
    days: list[tuple[date, Decimal, Decimal]]  # (day, kWh, cost incl. VAT in the fleet currency)
    top_drivers: list[tuple[str, Totals]]
    top_vehicles: list[tuple[str, Totals]]


def _top(groups: dict[str, Totals], currency: str, n: int = 5) -> list[tuple[str, Totals]]:
    return sorted(
        groups.items(),
        key=lambda kv: (-kv[1].cost_incl.get(currency, Decimal(0)), -kv[1].energy_kwh, kv[0]),
    )[:n]


async def dashboard(
    db_session: AsyncSession, fleet_id: int, currency: str, time_zone: str, first: date, last: date
) -> Dashboard:
    rows = await fetch_sessions(db_session, fleet_id, SessionFilter(date_from=first, date_to=last), time_zone)
    totals = Totals()
    per_day_kwh: dict[date, Decimal] = defaultdict(Decimal)
    per_day_cost: dict[date, Decimal] = defaultdict(Decimal)
    drivers: dict[str, Totals] = defaultdict(Totals)
    vehicles: dict[str, Totals] = defaultdict(Totals)
    for r in rows:
        totals.add(r)
        day = to_local(r.start, time_zone).date()
        per_day_kwh[day] += r.energy_kwh
        if r.currency == currency and r.cost is not None:
            per_day_cost[day] += r.cost
        drivers[r.driver or "(no driver)"].add(r)
        vehicles[r.vehicle or "(no vehicle)"].add(r)
    days = []
    day = first
    while day <= last:
        days.append((day, per_day_kwh.get(day, Decimal(0)), round_amount(per_day_cost.get(day, 0), currency)))
        day += timedelta(days=1)
    return Dashboard(
        first=first,
        last=last,
        currency=currency,
        totals=totals,
        days=days,
        top_drivers=_top(drivers, currency),
        top_vehicles=_top(vehicles, currency),
    )


@dataclass
class MonthlyReport:
    first: date
    last: date
    fleet_name: str
    currency: str
    rows: list[SessionRow]
    totals: Totals
    by_driver: list[tuple[str, Totals]]


async def monthly_report(
    db_session: AsyncSession,
    fleet_id: int,
    fleet_name: str,
    currency: str,
    time_zone: str,
    first: date,
    last: date,
) -> MonthlyReport:
    rows = await fetch_sessions(db_session, fleet_id, SessionFilter(date_from=first, date_to=last), time_zone)
    rows.sort(key=lambda r: (r.start, r.id))
    totals = Totals()
    drivers: dict[str, Totals] = defaultdict(Totals)
    for r in rows:
        totals.add(r)
        drivers[r.driver or "(no driver)"].add(r)
    return MonthlyReport(
        first=first,
        last=last,
        fleet_name=fleet_name,
        currency=currency,
        rows=rows,
        totals=totals,
        by_driver=sorted(drivers.items()),
    )


def monthly_csv(report: MonthlyReport) -> str:
    """One line per session, then one TOTAL line per currency."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(CSV_HEADER)
    for r in report.rows:
        writer.writerow(csv_values(r))
    for cur in report.totals.currencies:
        blank = [""] * len(CSV_HEADER)
        blank[0] = "TOTAL"
        blank[10] = fmt_kwh(report.totals.energy_kwh)
        blank[11] = cur
        blank[12] = report.totals.money(cur, incl=False)
        blank[13] = report.totals.money(cur)
        writer.writerow(blank)
    return buf.getvalue()
