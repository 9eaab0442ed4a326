"""Bad input to the pricing, grid, CDR and settlement commands: one ``error:`` line, a non-zero exit, no
traceback, and the database exactly as it was.

One table of cases runs against one seeded network (two priced CDRs, a grid zone, an agreement); each case
is a subtest. The real CLI (typer's runner on :data:`evhub.cli.app`) on the real test database.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner, Result

from evhub.cli import app
from kernel.db.base import Base
from kernel.db.engine import Database
from kernel.models import Cdr
from settlement.agreement_store import add_agreements
from tariffs.rating import rate_pending
from tests.world.demo_network import DEMO, seed_pricing_network
from tests.world.sessions import seed_ended_session

ROAMING = {
    "kind": "roaming",
    "agreement_id": "roam-ems-amp",
    "version": 1,
    "valid_from": "2026-01-01",
    "emsp": "NL*EMS",
    "cpo": "NL*AMP",
}


def _hub_fee(**fields: Any) -> dict[str, Any]:
    return {
        "kind": "hub_fee",
        "agreement_id": "fee-eur",
        "version": 1,
        "valid_from": "2026-11-01",
        "currency": "EUR",
        "percentage": "0.05",
        "vat_rates": {"NLD": "0.21"},
        **fields,
    }


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    says: str  # expected in the error line


def _write(folder: Path, name: str, data: Any) -> str:
    path = folder / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


def _cases(tmp: Path) -> list[Case]:
    rules = str(DEMO / "grid_rules.json")
    tariff_data = json.loads((DEMO / "tariffs.json").read_text())[0]
    tariff = _write(tmp, "tariff.json", tariff_data)
    other_cpo = _write(tmp, "other.json", {**tariff_data, "party_id": "XXX"})
    no_elements = _write(tmp, "broken.json", {"id": "X", "currency": "EUR"})
    cdr = _write(
        tmp,
        "cdr.json",
        {
            "start_date_time": "2026-11-10T21:30:00Z",
            "end_date_time": "2026-11-10T22:30:00Z",
            "charging_periods": {"not": "a list"},
        },
    )
    huge = {
        "start_date_time": "2026-11-10T21:30:00Z",
        "end_date_time": "2026-11-10T22:30:00Z",
        "charging_periods": [
            {"start_date_time": "2026-11-10T21:30:00Z", "dimensions": [{"type": "ENERGY", "volume": "1e30"}]}
        ],
    }
    huge_cdr = _write(tmp, "huge-cdr.json", huge)
    attach = ("grid", "attach", "NL-NH", "--tariff", "NL*AMP*AMS-TOD", "--rules")
    replay = ("tariffs", "replay", "--tariff", tariff)
    bad_rules = {
        "threshold.json": ([{"direction": "above", "threshold": 180}], "rules[0].threshold 180"),
        "dimension.json": ([{"direction": "above", "threshold": 80, "add": {"ENRGY": "0.1"}}], "'ENRGY'"),
        "direction.json": ([{"direction": "sideways", "threshold": 80}], "rules[0].direction"),
        "missing.json": ([{"threshold": 80}], "rules[0]: missing direction"),
        "empty.json": ([], "at least one rule"),
        "object.json": ({"direction": "above"}, "expected a JSON list"),
        "multiply.json": ([{"direction": "below", "threshold": 30, "multiply": "-1"}], "multiply -1"),
        "huge.json": ([{"direction": "below", "threshold": 30, "multiply": "1e999999"}], "below 1,000,000"),
        "name.json": ([{"direction": "below", "threshold": 30, "name": "n" * 65}], "at most 64 characters"),
        "twice.json": ([{"direction": "below", "threshold": 30}] * 2, "another rule has that name"),
    }
    agreements = {
        "fields.json": ([{"kind": "hub_fee", "agreement_id": "F", "version": 1}], "currency: missing"),
        "kind.json": ([{"kind": "bonus", "agreement_id": "F"}], "kind 'bonus'"),
        "no-kind.json": ([{"agreement_id": "F"}], "kind missing"),
        "cents.json": ([_hub_fee(fixed_per_session="0.255")], "fixed_per_session: amount 0.255"),
        "jpy.json": ([_hub_fee(currency="JPY", minimum_per_session="0.5")], "JPY has minor units (0)"),
        "currency.json": ([_hub_fee(currency="EUX")], "unknown currency 'EUX'"),
        "percent.json": ([_hub_fee(percentage="5")], "percentage: rate 5"),
        "digits.json": ([_hub_fee(per_kwh="1e-99999999")], "per_kwh: 1e-99999999 has more than 10 decimals"),
        "date.json": ([_hub_fee(valid_from="2026-13-01")], "valid_from"),
        "until.json": ([_hub_fee(valid_until="2026-10-01")], "valid_until must be after valid_from"),
        "extra.json": ([_hub_fee(colour="red")], "colour: unknown field"),
        "nothing.json": ([], "no agreements"),
        "again.json": ([ROAMING], "exists already"),
        "role.json": (
            [{**ROAMING, "agreement_id": "r3", "emsp": "NL*AMP"}],
            "emsp NL*AMP is registered as CPO, not EMSP",
        ),
        "vat.json": ([_hub_fee(vat_rates={"NL": "0.21"})], "vat_rates 'NL' is not an ISO 3166 alpha-3"),
        "site.json": (
            [
                {
                    "kind": "site_host",
                    "agreement_id": "s1",
                    "version": 1,
                    "valid_from": "2026-11-01",
                    "site_host": "NL*SIT",
                    "cpo": "GB*LDN",
                    "location_id": "AMS-CENTRAAL",
                    "share_percentage": "0.1",
                }
            ],
            "location_id AMS-CENTRAAL is a location of NL*AMP, not GB*LDN",
        ),
        "not-json.json": ("[{", "not valid JSON"),
    }
    return [
        # grid load
        Case(("grid", "load", "NL-NH", "abc"), "PERCENT 'abc'"),
        Case(("grid", "load", "NL-NH", "150"), "between 0 and 100"),
        Case(("grid", "load", "NL-NH", "--", "-1"), "between 0 and 100"),
        Case(("grid", "load", "NL-NH", "NaN"), "between 0 and 100"),
        Case(("grid", "load", "NL-NH", "50.0000001"), "at most 6 decimals"),
        Case(("grid", "load", "NL-NH", "1e-999999999999"), "at most 6 decimals"),
        Case(("grid", "load", "NOPE", "50"), "unknown grid zone 'NOPE' (known: NL-NH)"),
        Case(("grid", "load", "NL-NH", "50", "--at", "2026-11-10T18:00"), "Z or an offset"),
        Case(("grid", "load", "NL-NH", "50", "--at", "tomorrow"), "--at 'tomorrow'"),
        # grid attach
        Case((*attach, rules, "--hysteresis", "-1"), "--hysteresis '-1'"),
        Case((*attach, rules, "--hysteresis", "abc"), "--hysteresis 'abc'"),
        Case((*attach, rules, "--hysteresis", "101"), "between 0 and 100"),
        Case((*attach, rules, "--min-hold", "-5"), "--min-hold -5"),
        Case(("grid", "attach", "NOPE", "--tariff", "NL*AMP*AMS-TOD", "--rules", rules), "unknown grid zone"),
        Case(
            ("grid", "attach", "NL-NH", "--tariff", "NL*AMP*NOPE", "--rules", rules), "unknown tariff 'NOPE'"
        ),
        Case(
            ("grid", "attach", "NL-NH", "--tariff", "NL*XXX*AMS-TOD", "--rules", rules), "unknown CPO NL*XXX"
        ),
        Case(("grid", "attach", "NL-NH", "--tariff", "NLAMP", "--rules", rules), "COUNTRY*PARTY*TARIFF_ID"),
        Case((*attach, str(tmp / "none.json")), "no such file"),
        *[Case((*attach, _write(tmp, name, data)), says) for name, (data, says) in bad_rules.items()],
        # tariffs replay / price
        Case((*replay, "--from", "2026-12-01", "--to", "2026-11-01"), "must be before --to"),
        Case((*replay, "--from", "2026-11-01", "--to", "2026-11-01"), "must be before --to"),
        Case((*replay, "--from", "2026-11-01T10:00", "--to", "2026-12-01"), "Z or an offset"),
        Case((*replay, "--from", "2026-13-01", "--to", "2026-12-01"), "--from '2026-13-01'"),
        Case(
            ("tariffs", "replay", "--tariff", other_cpo, "--from", "2026-11-01", "--to", "2026-12-01"),
            "NL*XXX",
        ),
        Case(
            ("tariffs", "replay", "--tariff", no_elements, "--from", "2026-11-01", "--to", "2026-12-01"),
            "elements",
        ),
        Case(("tariffs", "price", "--tariff", tariff, "--cdr", cdr), "charging_periods must be a list"),
        Case(
            ("tariffs", "price", "--tariff", tariff, "--cdr", huge_cdr),
            "volume: Value error, 1E+30 is out of",
        ),
        Case(
            ("tariffs", "price", "--tariff", tariff, "--cdr", cdr, "--decimals", "keep"), "--decimals 'keep'"
        ),
        # CDRs
        Case(("cdrs", "show", "nope"), "unknown CDR 'nope'"),
        Case(("cdrs", "show", ""), "must not be empty"),
        Case(("cdrs", "correct", "nope"), "unknown CDR 'nope'"),
        Case(("cdrs", "list", "--limit", "0"), "--limit 0"),
        Case(("cdrs", "list", "--limit", "99999999999999999999"), "expected 1 to 1,000,000"),
        # settlement
        Case(("settle", "--period", "2026-13"), "--period '2026-13'"),
        Case(("settle", "--period", "2026-1"), "YYYY-MM"),
        Case(("settle",), "--period YYYY-MM is required"),
        Case(("settle", "--period", "9999-12"), "--period '9999-12'"),
        Case(("settle", "--period", "0000-01"), "--period '0000-01'"),
        Case(("settle", "--period", "2026-11", "--engine", "spark"), "--engine 'spark'"),
        Case(("settle", "--period", "2026-11", "--scheduler", "tcp://127.0.0.1:1"), "needs --engine dask"),
        Case(("settle", "--period", "2026-11", "--out", tariff), "is not a folder"),
        Case(("settle", "explain", "nope"), "unknown CDR 'nope'"),
        Case(("agreements", "add", str(tmp / "none.json")), "no such file"),
        *[
            Case(("agreements", "add", _write(tmp, name, data)), says)
            for name, (data, says) in agreements.items()
        ],
    ]


async def _seed(db: Database) -> list[str]:
    await seed_pricing_network(db)
    for i, day in enumerate((10, 12)):
        start = datetime(2026, 11, day, 21, 30, tzinfo=UTC)
        await seed_ended_session(db, "AMS-01-1", start, 60, "10", uid=f"sess-{i}")
    assert await rate_pending(db, ()) == 2
    async with db.session() as s:
        await add_agreements(
            s, [ROAMING, _hub_fee(agreement_id="hub-fee", valid_from="2026-01-01", hub="NL*HUB")]
        )
        return list((await s.scalars(select(Cdr.cdr_uid).order_by(Cdr.id))).all())


async def snapshot(db: Database) -> dict[str, list[tuple]]:
    """Every row of every table: what "the database unchanged" is checked against."""
    out: dict[str, list[tuple]] = {}
    async with db.session() as s:
        for table in Base.metadata.sorted_tables:
            rows = (await s.execute(select(table))).all()
            out[table.name] = sorted((tuple(r) for r in rows), key=repr)
    return out


@pytest.fixture
def cli(db: Database, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("EVHUB_DATABASE_URL", db.url)
    runner = CliRunner()

    async def invoke(*args: str) -> Result:
        # The CLI runs its own event loop (asyncio.run), so it gets a thread of its own.
        return await asyncio.to_thread(runner.invoke, app, list(args))

    return invoke


def assert_refused(result: Result, says: str) -> None:
    """Non-zero exit through the CLI's own error path: exactly one ``error:`` line on stderr, no traceback."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert says in lines[0], lines[0]


async def test_bad_input_is_one_line_and_changes_nothing(cli, db: Database, tmp_path: Path, subtests) -> None:
    await _seed(db)
    before = await snapshot(db)
    for case in _cases(tmp_path):
        with subtests.test(msg=" ".join(case.args)):
            assert_refused(await cli(*case.args), case.says)
            assert await snapshot(db) == before


async def test_cdr_ids_take_a_unique_prefix(cli, db: Database) -> None:
    first, second = await _seed(db)
    shown = await cli("cdrs", "show", first[:8])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["cdr"]["id"] == first
    explained = await cli("settle", "explain", second[:8].upper())
    assert explained.exit_code == 0, explained.output
    assert json.loads(explained.stdout)["cdr_id"] == second
    corrected = await cli("cdrs", "correct", first[:8])
    assert corrected.exit_code == 0, corrected.output
    assert f"credited {first}" in corrected.stdout
    credit = (await cli("cdrs", "list", "--json")).stdout
    credit_id = next(c["id"] for c in json.loads(credit) if c["credit"])
    assert_refused(await cli("cdrs", "correct", credit_id), "is a credit CDR")
    listed = json.loads((await cli("cdrs", "list", "--json")).stdout)
    assert len(listed) == 4 and sum(c["credit"] for c in listed) == 1
    assert {"id", "session_id", "end_date_time", "currency", "total_cost_excl_vat"} <= set(listed[0])


async def test_list_commands_print_json(cli, db: Database, tmp_path: Path) -> None:
    await _seed(db)
    agreements = json.loads((await cli("agreements", "list", "--json")).stdout)
    assert [a["agreement_id"] for a in agreements] == ["hub-fee", "roam-ems-amp"]
    run = await cli("settle", "--period", "2026-11", "--out", str(tmp_path / "out"), "--json")
    assert run.exit_code == 0, run.output
    summary = json.loads(run.stdout)
    assert summary["period"] == "2026-11" and summary["summary"]["cdrs_settled"] == 2, summary["summary"][
        "rejected_by_reason"
    ]
    assert {s["party"] for s in summary["statements"]} == {"NL*AMP", "NL*EMS", "NL*HUB"}
    assert Path(summary["exports"], "lines.csv").is_file()


async def test_an_agreement_may_name_an_emsp_that_registers_later(cli, db: Database, tmp_path: Path) -> None:
    await _seed(db)
    later = {**ROAMING, "agreement_id": "roam-new-amp", "emsp": "DE*NEW"}  # joins over OCPI afterwards
    added = await cli("agreements", "add", _write(tmp_path, "later.json", [later]))
    assert added.exit_code == 0, added.output
    assert "added roaming agreement roam-new-amp@v1" in added.stdout
