"""``evhub tariffs price``: an OCPI Tariff and a CDR-like object in, cost fields and explanation out."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from typer.testing import CliRunner

from evhub.cli import app

DEMO = Path(__file__).resolve().parents[2] / "evhub" / "demo_data"


def _cdr(tmp_path: Path, **overrides) -> Path:
    cdr = {
        "start_date_time": "2026-11-10T21:30:00Z",
        "end_date_time": "2026-11-10T22:30:00Z",
        "charging_periods": [
            {
                "start_date_time": "2026-11-10T21:30:00Z",
                "dimensions": [{"type": "ENERGY", "volume": 5}, {"type": "TIME", "volume": 0.5}],
            },
            {
                "start_date_time": "2026-11-10T22:00:00Z",
                "dimensions": [{"type": "ENERGY", "volume": 5}, {"type": "TIME", "volume": 0.5}],
            },
        ],
    }
    cdr.update(overrides)
    path = tmp_path / "cdr.json"
    path.write_text(json.dumps(cdr))
    return path


def _tariff(tmp_path: Path) -> Path:
    path = tmp_path / "tariff.json"
    path.write_text(json.dumps(json.loads((DEMO / "tariffs.json").read_text())[0]))
    return path


def test_price_prints_cost_fields_and_explanation(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "tariffs",
            "price",
            "--tariff",
            str(_tariff(tmp_path)),
            "--cdr",
            str(_cdr(tmp_path)),
            "--time-zone",
            "Europe/Amsterdam",
            "--decimals",
            "string",
        ],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    # 22:30-23:00 local at 0.39, 23:00-23:30 at night price 0.29, plus 0.50 flat.
    assert Decimal(out["total_cost"]["excl_vat"]) == Decimal("3.90")
    assert Decimal(out["total_energy"]) == Decimal("10")
    assert out["explanation"]["tariffs_used"][0]["tariff_id"] == "AMS-TOD"
    # In UTC the whole session is before 23:00: all energy at the day price.
    utc = CliRunner().invoke(
        app,
        [
            "tariffs",
            "price",
            "--tariff",
            str(_tariff(tmp_path)),
            "--cdr",
            str(_cdr(tmp_path)),
            "--decimals",
            "string",
        ],
    )
    assert Decimal(json.loads(utc.output)["total_cost"]["excl_vat"]) == Decimal("4.40")


def test_invalid_input_names_the_field(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(
        app, ["tariffs", "price", "--tariff", str(_tariff(tmp_path)), "--cdr", str(tmp_path / "none.json")]
    )
    assert missing.exit_code != 0 and "no such file" in missing.output
    cdr = _cdr(tmp_path)
    data = json.loads(cdr.read_text())
    del data["end_date_time"]
    cdr.write_text(json.dumps(data))
    result = runner.invoke(app, ["tariffs", "price", "--tariff", str(_tariff(tmp_path)), "--cdr", str(cdr)])
    assert result.exit_code != 0 and "end_date_time" in result.output
    bad_tariff = tmp_path / "bad.json"
    bad_tariff.write_text(json.dumps({"id": "X", "currency": "EUR"}))
    result = runner.invoke(
        app, ["tariffs", "price", "--tariff", str(bad_tariff), "--cdr", str(_cdr(tmp_path))]
    )
    assert result.exit_code != 0 and "elements" in result.output
    result = runner.invoke(
        app,
        [
            "tariffs",
            "price",
            "--tariff",
            str(_tariff(tmp_path)),
            "--cdr",
            str(_cdr(tmp_path)),
            "--time-zone",
            "Nowhere/City",
        ],
    )
    assert result.exit_code != 0 and "Nowhere/City" in result.output
