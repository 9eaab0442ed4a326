"""``evhub issuers dunning`` and ``evhub dunning run|status|steps`` on the real CLI and database (issue 14): a
schedule stored from a file and shown, a bad one refused in one line, the job run as on a date, the accounts'
states and an invoice's steps with their rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kernel.db.engine import Database
from tests.billing.dunning_kit import day, seed
from tests.cli_kit import Cli, one_error

SCHEDULE = {
    "rules": [
        {"name": "first", "days_after_due": 2, "action": "reminder"},
        {"name": "fee", "days_after_due": 5, "action": "fee", "fee": "5"},
        {"name": "block", "days_after_due": 9, "action": "block_tokens"},
    ]
}


async def test_schedule_file_show_run_status_and_steps(cli: Cli, db: Database, tmp_path: Path) -> None:
    d = await seed(db)
    shown = json.loads((await cli("issuers", "dunning", "voltstreet", "--show")).output)
    assert shown["default"] is True and [r["name"] for r in shown["rules"]][-1] == "block"
    path = tmp_path / "schedule.json"
    path.write_text(json.dumps(SCHEDULE), encoding="utf-8")
    out = (await cli("issuers", "dunning", "voltstreet", "--file", str(path))).output
    assert "a schedule of 3 rule(s)" in out
    shown = json.loads((await cli("issuers", "dunning", "voltstreet", "--show")).output)
    assert shown["default"] is False and shown["rules"] == SCHEDULE["rules"]

    assert "0 dunning step(s) done" in (await cli("dunning", "run", "--today", d.due.isoformat())).output
    [ok] = json.loads((await cli("dunning", "status", "--json", "--today", d.due.isoformat())).output)
    assert ok["state"] == "ok" and ok["last_step"] is None and ok["outstanding"] == str(d.payable)
    assert "3 dunning step(s) done" in (await cli("dunning", "run", "--today", str(day(d, 9)))).output
    assert "0 dunning step(s) done" in (await cli("dunning", "run", "--today", str(day(d, 9)))).output
    args = ["dunning", "status", "--issuer", "voltstreet", "--json", "--today", str(day(d, 9))]
    [blocked] = json.loads((await cli(*args)).output)
    assert blocked["state"] == "blocked" and blocked["held_for"] == [d.number]
    assert blocked["last_step"]["rule"] == "block" and blocked["overdue"] == str(d.payable)
    table = (await cli("dunning", "status")).output
    assert "blocked" in table and "Acme" in table
    steps = json.loads((await cli("dunning", "steps", d.number, "--json")).output)
    assert [(s["rule"], s["action"]) for s in steps] == [
        ("first", "reminder"), ("fee", "fee"), ("block", "block_tokens")
    ]  # fmt: skip
    assert steps[1]["detail"]["fee"] == "5.00"
    assert "block_tokens" in (await cli("dunning", "steps", d.number, "--issuer", "voltstreet")).output

    assert "default schedule" in (await cli("issuers", "dunning", "voltstreet", "--default")).output
    assert json.loads((await cli("issuers", "dunning", "voltstreet", "--show")).output)["default"] is True


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not JSON"),
        ('{"rules": 3}', "a dunning schedule is an object"),
        ('{"rules": [{"name": "x", "days_after_due": 1, "action": "shout"}]}', "action must be one of"),
        ('{"rules": [{"name": "f", "days_after_due": 1, "action": "fee"}]}', "has a positive fee"),
        ('{"rules": [{"name": "f", "days_after_due": 1, "action": "fee", "fee": "-1"}]}', "fee"),
        ('{"rules": [{"name": "a", "days_after_due": 1, "action": "reminder"}, '
         '{"name": "a", "days_after_due": 2, "action": "reminder"}]}', "unique"),
        ('{"rules": [{"name": "r", "days_after_due": 1, "action": "retry_payment", "times": 3}]}', "repeat"),
        ('{"rules": [{"name": "r", "days_after_due": "1", "action": "reminder"}]}', "whole number"),
        ('{"rules": [{"name": "r", "days_after_due": 1, "action": "reminder", "colour": 1}]}', "unknown field"),
        ('{"rules": [{"name": "l", "days_after_due": 1, "action": "lower_limit", "limit": "x"}]}', "limit"),
    ],
)  # fmt: skip
async def test_a_bad_schedule_is_one_error_line(
    cli: Cli, db: Database, tmp_path: Path, content: str, message: str
) -> None:
    await seed(db)
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    one_error(await cli("issuers", "dunning", "voltstreet", "--file", str(path), ok=False), message)
    assert json.loads((await cli("issuers", "dunning", "voltstreet", "--show")).output)["default"] is True


async def test_bad_input_is_one_error_line(cli: Cli, db: Database, tmp_path: Path) -> None:
    await seed(db)
    one_error(await cli("issuers", "dunning", "nobody", "--show", ok=False), "no issuer")
    one_error(await cli("issuers", "dunning", "voltstreet", ok=False), "one of --file, --show or --default")
    one_error(await cli("issuers", "dunning", "voltstreet", "--file", str(tmp_path / "no.json"), ok=False),
               "cannot read")  # fmt: skip
    one_error(await cli("dunning", "run", "--today", "20.12.2026", ok=False), "is not a date")
    one_error(await cli("dunning", "run", "--issuer", "nobody", ok=False), "no issuer")
    one_error(await cli("dunning", "status", "--issuer", "nobody", ok=False), "no issuer")
    one_error(await cli("dunning", "steps", "INV-0", ok=False), "no invoice INV-0")
