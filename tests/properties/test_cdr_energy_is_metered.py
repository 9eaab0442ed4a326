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

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

from hypothesis import assume, event, given
from hypothesis import strategies as st

from cpo_gateway import v16, v201
from cpo_gateway.meter_rules import RegisterRow, register_readings, sample_rows, unique_rows
from kernel.meter_reading import ENERGY_REGISTER, cumulative_series, session_energy
from simulators.chargepoints import frames
from tariffs.core.compiled_tariff import compile_tariff
from tariffs.core.engine import price_session
from tariffs.core.meter_periods import MeterSample, periods_from_meter_values
from tariffs.core.ocpi_periods import to_ocpi
from tariffs.core.tariff_document import CdrDimensionType

from .strategies import TZ, budget, start_instants, tariff_from

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


@dataclass(frozen=True)
class Script:
    version: str
    start: datetime
    register_wh: int  # the register at the start
    interval_s: int
    increments: tuple[int, ...]  # Wh per interval
    reset_at: int | None  # after this many intervals the register restarts from reset_to
    reset_to: int
    unit: str  # 1.6: Wh or kWh; 2.0.1: Wh (multiplier 0) or kWh via multiplier 3
    phases: bool
    signed_every: int  # 1.6: every n-th sample also (or only) as SignedData; 0: none
    signed_only: bool
    begin_early_ms: int

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=self.interval_s * len(self.increments))

    def registers(self) -> list[int]:
        """The register after each interval (before: ``register_wh``)."""
        out, r = [], self.register_wh
        for i, inc in enumerate(self.increments):
            if self.reset_at is not None and i == self.reset_at:
                r = self.reset_to
            r += inc
            out.append(r)
        return out

    def metered_wh(self) -> Decimal:
        """Ground truth from the script: every increment, and the register value a reset restarted from."""
        return D(sum(self.increments) + (self.reset_to if self.reset_at is not None else 0))


@st.composite
def scripts(draw: st.DrawFn) -> Script:
    version = draw(st.sampled_from(["1.6", "2.0.1"]))
    n = draw(st.integers(1, 30))
    increments = tuple(draw(st.lists(st.integers(0, 3000), min_size=n, max_size=n)))
    reset = draw(st.one_of(st.none(), st.integers(1, n - 1))) if n > 1 else None
    script = Script(
        version,
        draw(start_instants()),
        draw(st.integers(20, 10**8)),
        draw(st.sampled_from([60, 300, 900])),
        increments,
        reset,
        draw(st.integers(0, 15)),
        draw(st.sampled_from(["Wh", "kWh"])),
        draw(st.booleans()),
        draw(st.sampled_from([0, 0, 1, 2, 3])) if version == "1.6" else 0,
        draw(st.booleans()),
        draw(st.integers(0, 50)),
    )
    if script.reset_at is not None:
        # A reset is a register that goes back by more than the documented 10 Wh rounding tolerance
        # (docs/gateway.md, kernel.meter_reading.RESET_TOLERANCE_WH); a smaller step back is rounding.
        regs = [script.register_wh, *script.registers()]
        assume(regs[script.reset_at] - regs[script.reset_at + 1] > 10)
        # Signed-only samples around a reset hide it: the plain readings left may step back within the
        # tolerance (a signature is never read as a value), so the script's own truth is not observable.
        assume(not script.signed_only)
    return script


def _value(script: Script, at: datetime, wh: int, context: str, index: int) -> dict[str, Any]:
    """One meterValue of the register (and its phases, its signature) as the script's charger sends it."""
    v = script.version
    if v == "1.6":
        text = str(D(wh) / 1000) if script.unit == "kWh" else str(wh)
        values = []
        signed = script.signed_every and index % script.signed_every == 0 and context == "Sample.Periodic"
        if not (signed and script.signed_only):
            values.append(frames.sampled_value(v, text, context, unit=script.unit))
        if signed:
            values.append(frames.sampled_value(v, 0, context, signed=f'OCMF|{{}}|{{"RV":{wh}}}'))
    else:
        if script.unit == "kWh":
            values = [frames.sampled_value(v, D(wh) / 1000, context, unit="Wh", multiplier=3)]
        else:
            values = [frames.sampled_value(v, D(wh), context)]
    if script.phases:
        third = D(wh) / 3
        for phase in ("L1", "L2", "L3"):
            values.append(frames.sampled_value(v, str(third) if v == "1.6" else third, context, phase=phase))
    return frames.meter_value(at, values)


def meter_frames(script: Script) -> tuple[list[dict[str, Any]], Decimal | None, Decimal | None]:
    """The meterValues the charger sends for the session, and the meter start/stop of its transaction
    messages (1.6 StartTransaction / StopTransaction; 2.0.1: from the Begin / End readings)."""
    regs = script.registers()
    out = [_value(script, script.start - timedelta(milliseconds=script.begin_early_ms), script.register_wh,
                  "Transaction.Begin", 0)]  # fmt: skip
    for i, r in enumerate(regs[:-1], start=1):
        out.append(
            _value(script, script.start + timedelta(seconds=script.interval_s * i), r, "Sample.Periodic", i)
        )
    out.append(_value(script, script.end, regs[-1], "Transaction.End", len(regs)))
    if script.version == "1.6":
        start = frames.start_transaction(1, "TOKEN", script.register_wh, script.start)
        stop = frames.stop_transaction(1, "TOKEN", regs[-1], script.end, "EVDisconnected", [])
        return out, D(start["meterStart"]), D(stop["meterStop"])
    return out, None, None


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
    assert result.total_energy == (expected / 1000).quantize(D("0.000001"))
    volumes = [cp.volume(CdrDimensionType.ENERGY) or D(0) for cp in to_ocpi(result.periods)]
    assert sum(volumes, D(0)) == result.total_energy
