"""Priced CDRs as the settlement reads them: sessions priced by the engine, as settlement's Decimal CDR table.

Shared by the settlement properties (f, g): each CDR is a real engine result (components, min/max price caps,
VAT), with the parties, location and country drawn from the agreement book of ``tests/settlement/testkit``,
optionally late (created after its period closed) and optionally credited (the credit: the CDR negated,
``credit_of`` the original).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pandas as pd
from hypothesis import assume
from hypothesis import strategies as st

from settlement.core.cdrs import prepare_cdrs
from tariffs.core.compiled_tariff import compile_tariff
from tariffs.core.engine import PricingError, price_session
from tariffs.core.meter_periods import periods_from_meter_values
from tariffs.core.pricing_result import PricingResult
from tests.settlement.testkit import COUNTRIES, CPOS, EMSPS, LOCATIONS, OCT

from .strategies import TZ, MeterProfile, generated_tariffs, meter_profiles

COMPONENT_FIELDS = {
    "energy": "total_energy_cost",
    "time": "total_time_cost",
    "parking": "total_parking_cost",
    "fixed": "total_fixed_cost",
}


@dataclass(frozen=True)
class PricedCdr:
    """One priced CDR and where it settles."""

    row: dict[str, Any]  # settlement's Decimal-side columns
    result: PricingResult


def _row(
    cdr_id: str, result: PricingResult, parties: dict[str, str], created_after: timedelta
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "cdr_id": cdr_id,
        **parties,
        "currency": result.currency,
        "end_date_time": result.session_end,
        "created_at": result.session_end + created_after,
        "total_energy": result.total_energy,
        "total_cost_excl_vat": result.total_cost.excl_vat,
        "total_cost_incl_vat": result.total_cost.incl_vat,
        "is_credit": False,
        "credit_of": None,
    }
    for short, name in COMPONENT_FIELDS.items():
        price = getattr(result, name)
        row[f"total_{short}_cost_excl_vat"] = price.excl_vat
        row[f"total_{short}_cost_incl_vat"] = price.incl_vat
    return row


@st.composite
def priced_cdrs(draw: st.DrawFn, n_max: int = 12, credits: bool = True) -> list[PricedCdr]:
    """1..n_max CDRs priced by the engine around October 2026 in EUR, JPY or BHD; some credited."""
    out: list[PricedCdr] = []
    for i in range(draw(st.integers(1, n_max))):
        currency = draw(st.sampled_from(["EUR", "EUR", "JPY", "BHD"]))
        tariff = draw(generated_tariffs(currency=currency))
        start = OCT + timedelta(minutes=draw(st.integers(-3 * 1440, 33 * 1440)))
        profile: MeterProfile = draw(meter_profiles(start))
        compiled = [compile_tariff(tariff)]
        periods = periods_from_meter_values(profile.samples(), profile.start, profile.end, compiled, TZ)
        try:
            result = price_session(compiled, periods, profile.start, profile.end, TZ, precut=True)
        except PricingError:
            continue
        parties = {
            "cpo": draw(st.sampled_from(CPOS)),
            "emsp": draw(st.sampled_from(EMSPS)),
            "location_id": draw(st.sampled_from(LOCATIONS)),
            "country": draw(st.sampled_from(COUNTRIES)),
        }
        late = timedelta(hours=draw(st.sampled_from([0, 1, 24 * 3, 24 * 40])))
        original = PricedCdr(_row(f"CDR{i:03d}", result, parties, late), result)
        out.append(original)
        if credits and draw(st.integers(0, 4)) == 0:
            credit = dict(original.row)
            for key, value in list(credit.items()):
                if key.startswith("total_") and key.endswith("_vat") and value is not None:
                    credit[key] = -value
            credit.update(
                cdr_id=f"CDR{i:03d}-credit",
                is_credit=True,
                credit_of=original.row["cdr_id"],
                created_at=original.row["created_at"] + timedelta(days=draw(st.sampled_from([1, 20, 45]))),
            )
            out.append(PricedCdr(credit, result))
    assume(out)
    return out


def cdr_table(cdrs: list[PricedCdr]) -> pd.DataFrame:
    """Settlement's minor-unit CDR table of ``cdrs`` (:func:`settlement.core.cdrs.prepare_cdrs`)."""
    frame = pd.DataFrame([c.row for c in cdrs])
    frame["end_date_time"] = pd.to_datetime(frame["end_date_time"], utc=True)
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    return prepare_cdrs(frame)


def vat(row: dict[str, Any]) -> Decimal:
    return Decimal(row["total_cost_incl_vat"]) - Decimal(row["total_cost_excl_vat"])
