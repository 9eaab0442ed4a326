"""Property a (issue 12, item 6): a CDR's energy is the metered energy.

A charger script (OCPP 1.6 or 2.0.1 frames built with the simulator's own builders,
``simulators.chargepoints.frames``): a register start, a sample interval, increments, optionally a meter reset
mid-session, Wh or kWh (1.6) / a ``multiplier`` (2.0.1), per-phase values next to the overall one, signed-only
samples (1.6) next to plain ones, a ``Transaction.Begin`` reading stamped a few ms before the start. The frames
go through the gateway's parsers (``v16.samples`` / ``v201.samples``), its row builder and the store's
de-duplication (``meter_rules``), its energy rule (``kernel.meter_reading.session_energy``), and rating's
series, periods and engine (``cumulative_series``, ``periods_from_meter_values``, ``price_session``). The ground
truth is computed from the script alone: the sum of the increments, plus the register value after a reset.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from types import SimpleNamespace
from typing import Any

from hypothesis import event, given

from cpo_gateway import v16, v201
from cpo_gateway.meter_rules import RegisterRow, register_readings, sample_rows, unique_rows
from kernel.meter_reading import ENERGY_REGISTER, cumulative_series, session_energy
from tariffs.core.compiled_tariff import compile_tariff
from tariffs.core.engine import price_session
from tariffs.core.meter_periods import MeterSample, periods_from_meter_values
from tariffs.core.ocpi_periods import to_ocpi
from tariffs.core.tariff_document import CdrDimensionType

from .charger_scripts import Script, meter_frames, scripts
from .strategies import TZ, budget, tariff_from

D = Decimal
TARIFF = tariff_from(
    {
        "country_code": "NL",
        "party_id": "EVH",
        "id": "E",
        "currency": "EUR",
        "last_updated": "2026-01-01T00:00:00Z",
        "elements": [
            {"price_components": [{"type": "ENERGY", "price": D("0.30"), "step_size": 1}]},
        ],
    }
)


def stored_rows(script: Script) -> tuple[list[SimpleNamespace], Decimal | None, Decimal | None]:
    mvs, meter_start, meter_stop = meter_frames(script)
    parse = v16.samples if script.version == "1.6" else v201.samples
    rows: list[dict[str, Any]] = []
    for mv in mvs:  # one message per meterValue, as the charger sends them
        rows.extend(sample_rows(1, parse([mv])))
    rows = unique_rows(rows)
    if script.version == "2.0.1":  # the gateway's meter start/stop: the Begin / End registers
        regs = {
            r["context"]: r["value"] for r in rows if r["measurand"] == ENERGY_REGISTER and not r["phase"]
        }
        meter_start, meter_stop = regs.get("Transaction.Begin"), regs.get("Transaction.End")
    return [SimpleNamespace(**r) for r in rows], meter_start, meter_stop


@budget(150)
@given(scripts())
def test_cdr_energy_is_the_metered_energy(script: Script) -> None:
    """Issue 12 item 6a (M1, M2, M3): for a charger script through the gateway's parsers and energy rule and
    rating's series and periods, the CDR's total_energy == round(metered Wh / 1000, 6) (metered from the script
    alone) and the ENERGY volumes of its charging periods add up to total_energy."""
    rows, meter_start, meter_stop = stored_rows(script)
    register = [
        RegisterRow(r.timestamp, r.value, r.unit, r.context, r.signed_data)
        for r in sorted(rows, key=lambda r: (r.timestamp, r.context))
        if r.measurand == ENERGY_REGISTER and r.phase == ""
    ]
    readings, _signed = register_readings(register)
    energy, _stop, _flags = session_energy(meter_start, script.start, meter_stop, script.end, readings)
    expected = script.metered_wh()
    event(
        f"{script.version} {script.unit} reset={script.reset_at is not None} signed={bool(script.signed_every)}"
    )
    # a unit conversion that is not whole Wh (kWh text) stays exact; the reset rule is the script's own
    assert energy == expected
    series = [MeterSample(*p) for p in cumulative_series(rows, script.start, script.end, meter_start, energy)]
    assert TARIFF is not None
    compiled = [compile_tariff(TARIFF)]
    periods = periods_from_meter_values(series, script.start, script.end, compiled, TZ)
    result = price_session(compiled, periods, script.start, script.end, TZ, precut=True)
    assert result.total_energy == (expected / 1000).quantize(D("0.0001"), ROUND_HALF_UP)
    volumes = [cp.volume(CdrDimensionType.ENERGY) or D(0) for cp in to_ocpi(result.periods)]
    assert sum(volumes, D(0)) == result.total_energy
