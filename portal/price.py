"""Live price at a location: the location's current tariffs quoted for a typical session, by the same pricing
code the CDRs use (:func:`tariffs.core.quote.quote`), on the versions rating uses for each connector
(:func:`tariffs.versions_for_connector`: all its tariff ids, so a replaced tariff shows its successor)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.models import EVSE, Connector, Location
from kernel.money import round_amount
from kernel.timeutil import to_local, utcnow
from tariffs import PricingError, quote_tariff, versions_for_connector

log = logging.getLogger(__name__)

TYPICAL_KWH = Decimal(20)
TYPICAL_DURATION = timedelta(hours=1)


@dataclass
class TariffQuote:
    tariff_id: str
    connectors: list[str]
    currency: str
    total_excl: str = ""
    total_incl: str = ""
    lines: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


@dataclass
class LivePrice:
    location: Location
    local_time: str
    kwh: Decimal
    minutes: int
    quotes: list[TariffQuote]


async def live_price(db_session: AsyncSession, location_id: int, fleet_currency: str) -> LivePrice | None:

    loc = await db_session.get(Location, location_id)
    if loc is None or not loc.publish:
        return None
    connectors = (
        await db_session.execute(
            select(EVSE.evse_id, EVSE.uid, Connector.connector_id, Connector.standard, Connector.tariff_ids)
            .join(Connector, Connector.evse_pk == EVSE.id)
            .where(EVSE.location_id == loc.id)
            .order_by(EVSE.id, Connector.id)
        )
    ).all()
    # One quote per distinct tariff_ids list, with the versions rating uses for such a connector.
    by_tariffs: dict[tuple[str, ...], list[str]] = {}
    for evse_id, uid, conn_id, standard, tariff_ids in connectors:
        key = tuple(str(t) for t in tariff_ids or [])
        by_tariffs.setdefault(key, []).append(f"{evse_id or uid} #{conn_id} ({standard})")
    now = utcnow()
    quotes: list[TariffQuote] = []
    for ids, names in by_tariffs.items():
        label = ", ".join(ids)
        currency = ""
        try:
            stored = await versions_for_connector(db_session, loc.cpo_id, ids)
            if not stored:
                if ids:
                    quotes.append(TariffQuote(label, names, "", error="tariff not known"))
                continue
            currency = stored[-1].tariff.currency
            result = quote_tariff(
                [v.tariff for v in stored], now, TYPICAL_KWH, TYPICAL_DURATION, loc.time_zone
            )
        except (PricingError, ValueError) as exc:
            quotes.append(TariffQuote(label, names, currency, error=str(exc)))
            continue
        cur = result.currency
        quotes.append(
            TariffQuote(
                tariff_id=", ".join(dict.fromkeys(tid for tid, _version in result.tariffs_used)) or label,
                connectors=names,
                currency=cur,
                total_excl=str(round_amount(result.total_cost.excl_vat, cur)),
                total_incl=str(round_amount(result.total_cost.incl_vat or result.total_cost.excl_vat, cur)),
                lines=[
                    {
                        "dimension": ln.dimension if ln.kind == "component" else ln.kind,
                        "quantity": ln.quantity,
                        "unit_price": ln.unit_price,
                        "vat": ln.vat,
                        "amount_excl": round_amount(ln.amount_excl, cur),
                        "amount_incl": round_amount(ln.amount_incl, cur),
                    }
                    for ln in result.lines
                ],
            )
        )
    return LivePrice(
        location=loc,
        local_time=to_local(now, loc.time_zone).strftime("%Y-%m-%d %H:%M %Z"),
        kwh=TYPICAL_KWH,
        minutes=int(TYPICAL_DURATION.total_seconds() // 60),
        quotes=quotes,
    )
