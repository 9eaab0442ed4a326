"""``evhub tariffs price``: an OCPI Tariff and a CDR-like object in, cost fields and explanation out;
``evhub tariffs replay``: stored CDRs re-rated with a proposed tariff."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from evhub.cli import app
from kernel.db.engine import Database
from tariffs.rating import rate_pending
from tests.world.demo_network import DEMO, seed_pricing_network
from tests.world.sessions import seed_ended_session


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


def test_price_refuses_an_unknown_decimals_style(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "tariffs",
            "price",
            "--tariff",
            str(_tariff(tmp_path)),
            "--cdr",
            str(_cdr(tmp_path)),
            "--decimals",
            "x",
        ],
    )
    assert result.exit_code == 1 and result.stderr.startswith("error: --decimals 'x'")


async def test_replay_compares_the_tariffs_own_cpo_in_the_range_as_json(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed_pricing_network(db)
    await seed_ended_session(db, "AMS-01-1", datetime(2026, 11, 10, 21, 30, tzinfo=UTC), 60, "10", uid="in")
    await seed_ended_session(db, "AMS-01-2", datetime(2026, 12, 1, 0, 30, tzinfo=UTC), 60, "10", uid="after")
    await seed_ended_session(db, "LDN-01-1", datetime(2026, 11, 11, 9, 0, tzinfo=UTC), 60, "10", uid="london")
    assert await rate_pending(db, ()) == 3
    proposed = json.loads((DEMO / "tariffs.json").read_text())[0]
    for element in proposed["elements"]:
        for component in element["price_components"]:
            if component["type"] == "ENERGY":  # 10 cents more per kWh
                component["price"] = str(Decimal(str(component["price"])) + Decimal("0.10"))
    path = tmp_path / "proposed.json"
    path.write_text(json.dumps(proposed))
    monkeypatch.setenv("EVHUB_DATABASE_URL", db.url)
    args = [
        "tariffs",
        "replay",
        "--tariff",
        str(path),
        "--from",
        "2026-11-01",
        "--to",
        "2026-12-01T00:30:00Z",
    ]
    result = await asyncio.to_thread(CliRunner().invoke, app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    # London is another CPO's; the session that ended on 1 December at 01:30 is outside the range.
    assert out["locations"] == [
        {
            "location_id": "AMS-CENTRAAL",
            "currency": "EUR",
            "cdrs": 1,
            "actual_excl_vat": "3.90",
            "proposed_excl_vat": "4.90",
            "difference_excl_vat": "1.00",
        }
    ]
    assert out["from"] == "2026-11-01T00:00:00+00:00" and out["not_priced"] == 0
    table = await asyncio.to_thread(CliRunner().invoke, app, args)
    assert table.exit_code == 0 and "1.00 EUR" in table.stdout
