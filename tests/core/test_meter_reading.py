"""One meaning of a meter reading (issue #12, defect M3: the meaning was coded four times and disagreed; the
OCPI session's derived periods could send a negative ENERGY for a reset; M2: a 1.6 SignedData sample was read
as a 0 Wh value; M1(a): a Transaction.Begin reading stamped before the start was not the baseline; M9:
current samples never reached rating).

One table of meter rows -> :func:`kernel.meter_reading.session_energy`, :func:`cumulative_series` and
:func:`interval_deltas` agree: the series ends at the session energy, the deltas are never negative and sum
to it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from typing import NamedTuple

import pytest

from kernel import meter_reading as mr

T0 = datetime(2026, 1, 5, 8, 30, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class Row(NamedTuple):
    timestamp: datetime
    value: D
    measurand: str = mr.ENERGY_REGISTER
    unit: str = "Wh"
    phase: str = ""
    context: str = "Sample.Periodic"


def reg(s: float, wh: str, unit: str = "Wh", context: str = "Sample.Periodic", phase: str = "") -> Row:
    return Row(at(s), D(wh), unit=unit, context=context, phase=phase)


SIGNED = "SignedData"

# name, rows, meter_start, end (s), expected energy Wh, expected flags
CASES = [
    ("wh", [reg(60, "1500"), reg(120, "2000")], D(1000), 120, D(1000), []),
    ("kwh", [reg(60, "1.5", "kWh"), reg(120, "2", "kWh")], D(1000), 120, D(1000), []),
    ("kwh_lowercase", [reg(60, "1.5", "kwh"), reg(120, "2", "KWH")], D(1000), 120, D(1000), []),
    (
        "signed_row_in_the_middle_is_no_value",
        [reg(60, "1500"), reg(90, "0", SIGNED), reg(120, "2000")],
        D(1000),
        120,
        D(1000),
        [],
    ),
    (
        "reset_counts_again_from_zero",
        [reg(60, "1500"), reg(90, "100"), reg(120, "400")],
        D(1000),
        120,
        D(900),
        [mr.METER_RESET],
    ),
    (
        "step_back_within_tolerance_is_rounding",
        [reg(60, "1500.4"), reg(90, "1495"), reg(120, "2000")],
        D(1000),
        120,
        D(1000),
        [],
    ),
    (
        "begin_before_start_is_the_baseline",
        [reg(-0.005, "0", context=mr.BEGIN), reg(60, "550"), reg(120, "1100", context=mr.END)],
        None,
        120,
        D(1100),
        [mr.METER_STOP_MISSING],
    ),
    (
        "end_after_end_is_the_final",
        [reg(0, "0", context=mr.BEGIN), reg(60, "550"), reg(120.2, "1100", context=mr.END)],
        None,
        120,
        D(1100),
        [mr.METER_STOP_MISSING],
    ),
    (
        "two_contexts_at_one_instant",
        [reg(60, "1500"), reg(60, "1500", context="Sample.Clock"), reg(120, "2000")],
        D(1000),
        120,
        D(1000),
        [],
    ),
    (
        "phase_sum_without_an_overall_value",
        [
            *(reg(60, "500", phase=p) for p in ("L1", "L2", "L3")),
            *(reg(120, "1000", phase=p) for p in ("L1", "L2", "L3")),
        ],
        D(1500),
        120,
        D(1500),
        [],
    ),
    (
        "overall_value_wins_over_phases",
        [reg(60, "1500"), reg(60, "9", phase="L1"), reg(120, "2000"), reg(120, "99", phase="L1")],
        D(1000),
        120,
        D(1000),
        [],
    ),
]


@pytest.mark.parametrize(
    ("rows", "meter_start", "end_s", "energy", "flags"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_energy_series_and_deltas_agree(rows, meter_start, end_s, energy, flags) -> None:
    readings = mr.register_readings(rows)
    got, _stop, got_flags = mr.session_energy(meter_start, T0, None, at(end_s), readings)
    assert got == energy
    assert [f for f in got_flags if f != mr.METER_STOP_MISSING] == [
        f for f in flags if f != mr.METER_STOP_MISSING
    ]
    series = mr.cumulative_series(rows, T0, at(end_s), meter_start, got)
    assert series[0] == mr.SeriesPoint(T0, D(0)) or (series[0].timestamp, series[0].energy_wh) == (T0, D(0))
    assert series[-1].timestamp == at(end_s) and series[-1].energy_wh == energy
    assert [p.timestamp for p in series] == sorted({p.timestamp for p in series})
    deltas = mr.interval_deltas(series)
    assert all(wh >= 0 for _a, _b, wh in deltas)
    assert sum(wh for _a, _b, wh in deltas) == energy
    assert all(T0 <= a < b <= at(end_s) for a, b, _wh in deltas)


def test_a_begin_reading_before_the_start_gives_the_first_interval_its_energy() -> None:
    """M1(a): Begin at t0-5ms (0 Wh), 550 Wh at +60 s: the first interval [t0, t0+60 s] has 550 Wh."""
    rows = [reg(-0.005, "0", context=mr.BEGIN), reg(60, "550"), reg(120, "1100")]
    series = mr.cumulative_series(rows, T0, at(120), None, D(1100))
    assert [(p.timestamp, p.energy_wh) for p in series] == [(T0, D(0)), (at(60), D(550)), (at(120), D(1100))]


def test_a_signature_is_never_a_value() -> None:
    """M2: a 1.6 signed-only sample (stored unit SignedData, value 0) is neither a reading nor energy."""
    assert mr.energy_wh(mr.ENERGY_REGISTER, "", SIGNED, D(0)) is None
    assert mr.register_readings([reg(60, "0", SIGNED)]) == []
    signed_every_second = [
        reg(s, str(s * 10)) if s % 120 == 0 else reg(s, "0", SIGNED) for s in range(0, 601, 60)
    ]
    plain = [r for r in signed_every_second if r.unit != SIGNED]
    assert mr.cumulative_series(signed_every_second, T0, at(600), None, D(6000)) == mr.cumulative_series(
        plain, T0, at(600), None, D(6000)
    )


@pytest.mark.parametrize(
    ("measurand", "unit", "value", "base"),
    [
        (mr.ENERGY_REGISTER, "Wh", "5", "5"),
        (mr.ENERGY_REGISTER, "kWh", "5", "5000"),
        (mr.ENERGY_REGISTER, "", "5", "5"),
        (mr.POWER, "W", "7400", "7400"),
        (mr.POWER, "kW", "7.4", "7400"),
        (mr.CURRENT, "A", "16", "16"),
        (mr.POWER, "Wh", "5", None),  # not a power unit
        (mr.ENERGY_REGISTER, "W", "5", None),
        (mr.ENERGY_REGISTER, SIGNED, "0", None),
    ],
)
def test_units(measurand: str, unit: str, value: str, base: str | None) -> None:
    got = mr.in_base_unit(measurand, unit, D(value))
    assert got == (D(base) if base is not None else None)


def test_multiplier() -> None:
    assert mr.scaled(D("7.4"), 3) == D("7400") and mr.scaled(D(5), 0) == D(5)


@pytest.mark.parametrize(
    ("by_phase", "overall"),
    [
        ({"": "16"}, "16"),
        ({"": "16", "L1": "5"}, "16"),
        ({"L1": "5.4", "L2": "5.4", "L3": "5.4"}, "16.2"),
        ({"L1-N": "5", "L2-N": "5", "L3-N": "6"}, "16"),
        ({"L1": "5", "L2": "5"}, None),  # incomplete: unknown
        ({"L1-L2": "400", "L2-L3": "400", "L3-L1": "400"}, None),  # line-to-line is never summed
        ({"N": "1"}, None),
    ],
)
def test_phases(by_phase: dict[str, str], overall: str | None) -> None:
    got = mr.overall({k: D(v) for k, v in by_phase.items()})
    assert got == (D(overall) if overall is not None else None)


def test_current_and_power_ride_on_the_series() -> None:
    """M9: Current.Import (phase-less, or the sum of L1..L3) reaches the series as ``current_a``."""
    rows = [
        reg(0, "0", context=mr.BEGIN),
        Row(at(0), D(16), mr.CURRENT, "A"),
        reg(60, "500"),
        *(Row(at(60), D("5.4"), mr.CURRENT, "A", p) for p in ("L1", "L2", "L3")),
        Row(at(60), D("11"), mr.POWER, "kW"),
    ]
    series = mr.cumulative_series(rows, T0, None)
    assert [(p.energy_wh, p.power_w, p.current_a) for p in series] == [
        (D(0), None, D(16)),
        (D(500), D(11000), D("16.2")),
    ]


def test_deltas_of_a_series_with_a_reset_are_not_negative() -> None:
    """M3: the OCPI session's periods never carry a negative ENERGY for a reset."""
    rows = [reg(60, "5000"), reg(120, "20"), reg(180, "520")]
    series = mr.cumulative_series(rows, T0, None, D(4000))
    assert [wh for _a, _b, wh in mr.interval_deltas(series)] == [D(1000), D(20), D(500)]


def test_no_other_module_codes_the_meaning_of_a_reading() -> None:
    """M3: the reset tolerance and the unit conversions of meter values live in kernel/meter_reading.py only."""
    from pathlib import Path

    root = Path(__file__).parents[2]
    patterns = (
        "RESET_DROP_WH",
        "RESET_TOLERANCE_WH = ",
        'unit.lower() == "kwh"',
        'unit == "kWh"',
        'unit == "Wh"',
    )
    offenders = [
        f"{path.relative_to(root)}: {pattern}"
        for package in ("kernel", "cpo_gateway", "tariffs", "ocpi", "portal", "settlement", "evhub")
        for path in (root / package).rglob("*.py")
        if path.name != "meter_reading.py"
        for pattern in patterns
        if pattern in path.read_text()
    ]
    assert offenders == []
