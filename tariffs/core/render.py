"""Rendering a PricingResult: OCPI CDR cost fields and a machine-readable explanation, as JSON-ready dicts;
and the published form of the tariffs a CDR carries.

Decimals stay exact: :func:`cdr_fields` / :func:`explanation` return dicts holding Decimals (and datetimes);
:func:`render_json` turns them into text with Decimals as JSON numbers (default) or strings, never via float.

A CDR is reproducible from its own OCPI content (issue 12, T5): :func:`cdr_tariffs` gives its ``tariffs``
field, every version the engine chose for one of its periods or at its start (also one that billed nothing
there, which re-pricing would otherwise replace by another), each in :func:`publishable_tariff` form, so
pricing the CDR's ``charging_periods`` with its ``tariffs`` gives its totals.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from kernel.timeutil import format_rfc3339
from tariffs.core.engine import compile_versions, version_at
from tariffs.core.ocpi_periods import to_ocpi
from tariffs.core.pricing_result import PricingResult
from tariffs.core.tariff_document import Tariff
from tariffs.core.tariff_json import dumps, to_jsonable


def _whole_ms(instant: datetime | None) -> datetime | None:
    """``instant`` rounded up to a whole millisecond, as the published periods' boundaries are."""
    if instant is None or not instant.microsecond % 1000:
        return instant
    return instant + timedelta(microseconds=1000 - instant.microsecond % 1000)


def publishable_tariff(tariff: Tariff) -> dict[str, Any]:
    """The OCPI Tariff object of a version as priced (``start_date_time`` = when it applies, the publication
    rule) in the form it is published: exact decimals, validity bounds on whole milliseconds (an OCPI
    DateTime's precision; up, as period boundaries), no empty fields."""
    bounds = {k: _whole_ms(getattr(tariff, k)) for k in ("start_date_time", "end_date_time")}
    published = tariff.model_copy(update={k: v for k, v in bounds.items() if v != getattr(tariff, k)})
    return to_jsonable(published.model_dump(mode="python", exclude_none=True), decimals_as="keep")


def cdr_tariffs(tariffs: Sequence[Tariff], result: PricingResult) -> list[dict[str, Any]]:
    """The CDR's ``tariffs`` (OCPI 2.2.1: "List of relevant Tariff Elements"): of the versions ``result`` was
    priced with, in their order, each one the engine chose at the session start or at a period's start, as
    :func:`publishable_tariff`; the last version when it chose none."""
    if not tariffs:
        return []
    compiled = compile_versions(list(tariffs))
    chosen: set[int] = set()
    for instant in (result.session_start, *(p.start for p in result.periods)):
        version = version_at(compiled, instant)
        if version is not None and version.source is not None:
            chosen.add(id(version.source))
    used = [t for t in tariffs if id(t) in chosen] or [tariffs[-1]]
    return [publishable_tariff(t) for t in used]


def _price(p: Any) -> dict[str, Any]:
    return {"excl_vat": p.excl_vat, "incl_vat": p.incl_vat}


def cdr_fields(result: PricingResult, *, with_periods: bool = True) -> dict[str, Any]:
    """The OCPI 2.2.1 CDR cost fields (and ``charging_periods`` when asked)."""
    out: dict[str, Any] = {
        "currency": result.currency,
        "start_date_time": format_rfc3339(result.session_start),
        "end_date_time": format_rfc3339(result.session_end),
        "total_cost": _price(result.total_cost),
        "total_fixed_cost": _price(result.total_fixed_cost),
        "total_energy": result.total_energy,
        "total_energy_cost": _price(result.total_energy_cost),
        "total_time": result.total_time,
        "total_time_cost": _price(result.total_time_cost),
        "total_parking_time": result.total_parking_time,
        "total_parking_cost": _price(result.total_parking_cost),
        "total_reservation_cost": _price(result.total_reservation_cost),
    }
    if with_periods:
        out["charging_periods"] = [
            to_jsonable(cp, decimals_as="keep") for cp in to_ocpi(result.periods, result.period_tariffs)
        ]
    return out


def explanation(result: PricingResult) -> dict[str, Any]:
    """How the totals were obtained: tariff versions, lines (rounded once), per-period charges, step rounding."""
    return {
        "currency": result.currency,
        "tariffs_used": [{"tariff_id": t, "version": v} for t, v in result.tariffs_used],
        "lines": [
            {
                "kind": ln.kind,
                "dimension": ln.dimension,
                "tariff_id": ln.tariff_id,
                "tariff_version": ln.tariff_version,
                "element_index": ln.element_index,
                "component_index": ln.component_index,
                "quantity": ln.quantity,
                "unit_price": ln.unit_price,
                "vat": ln.vat,
                "amount_excl_vat": ln.amount_excl,
                "amount_incl_vat": ln.amount_incl,
                "periods": [
                    {
                        "period_index": c.period_index,
                        "start": format_rfc3339(c.start),
                        "end": format_rfc3339(c.end),
                        "quantity_used": c.quantity,
                        "step_extra": c.step_extra,
                        "step_size": c.step_size,
                        "amount_excl_vat": c.amount_excl,
                        "amount_incl_vat": c.amount_incl,
                    }
                    for c in ln.charges
                ],
            }
            for ln in result.lines
        ],
        "step_roundings": [
            {
                "group": s.group,
                "dimension": s.dimension,
                "step_size": s.step_size,
                "used": s.used,
                "billed": s.billed,
                "period_index": s.period_index,
            }
            for s in result.step_roundings
        ],
        "units": {
            "ENERGY": "Wh (quantity_used, step_extra), kWh (line quantity)",
            "TIME": "seconds (quantity_used, step_extra), hours (line quantity)",
        },
    }


def render_json(
    result: PricingResult, *, decimals_as: Literal["number", "string"] = "number", indent: int | None = 2
) -> str:
    """``{"cdr": cdr_fields, "explanation": explanation}`` as JSON text, Decimals exact."""
    return dumps(
        {"cdr": cdr_fields(result), "explanation": explanation(result)},
        decimals_as=decimals_as,
        indent=indent,
    )
