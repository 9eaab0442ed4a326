"""``evhub tariffs price|replay|rerate``, ``evhub cdrs ...`` and ``evhub grid ...`` — pricing from the CLI."""

from __future__ import annotations

import sys
from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from sqlalchemy import select

from evhub import provisioning as prov
from evhub.cli._common import console, fail, reported_errors, run_with_db, table
from evhub.cli.provision import tariffs_app
from evhub.db.engine import Database
from evhub.models import Cdr, ChargingSession, Location, PartyRole, PricingState
from evhub.money import format_amount, round_amount
from evhub.timeutil import zone

cdrs_app = typer.Typer(
    help="Charge detail records: the priced, immutable outcome of each session.", no_args_is_help=True
)
grid_app = typer.Typer(help="Grid load and the dynamic-pricing rules attached to it.", no_args_is_help=True)


def _read(path: Path) -> str:
    if not path.is_file():
        raise prov.ProvisioningError(f"no such file: {path}")
    return path.read_text(encoding="utf-8")


@tariffs_app.command("price")
def tariffs_price(
    tariff: Annotated[Path, typer.Option(help="OCPI Tariff JSON")],
    cdr: Annotated[Path, typer.Option(help="OCPI CDR-like JSON: start/end_date_time and charging_periods")],
    time_zone: Annotated[str, typer.Option(help="IANA zone the restrictions are read in")] = "UTC",
    decimals: Annotated[str, typer.Option(help="number or string")] = "number",
) -> None:
    """Price a CDR-like object with a tariff and print the OCPI cost fields and the explanation as JSON."""
    from tariffs import json as tjson
    from tariffs.engine import PricingError, price_session
    from tariffs.model import ChargingPeriod
    from tariffs.render import cdr_fields, explanation

    with reported_errors():
        try:
            tariff_obj = tjson.load_tariff(_read(tariff))
        except ValidationError as exc:
            fail(f"invalid tariff {tariff}: {prov.describe_validation_error(exc)}")
        except ValueError as exc:
            fail(f"invalid tariff {tariff}: {exc}")
        data = prov.load_json(_read(cdr), str(cdr))
        if not isinstance(data, dict):
            fail(f"{cdr}: expected a JSON object")
        for key in ("start_date_time", "end_date_time", "charging_periods"):
            if key not in data:
                fail(f"{cdr}: missing field {key}")
        try:
            periods = [ChargingPeriod.model_validate(p) for p in data["charging_periods"]]
            start = ChargingPeriod.model_validate(
                {"start_date_time": data["start_date_time"], "dimensions": [{"type": "ENERGY", "volume": 0}]}
            ).start_date_time
            end = ChargingPeriod.model_validate(
                {"start_date_time": data["end_date_time"], "dimensions": [{"type": "ENERGY", "volume": 0}]}
            ).start_date_time
        except ValidationError as exc:
            fail(f"invalid CDR {cdr}: {prov.describe_validation_error(exc)}")
        zone(time_zone)
        try:
            result = price_session(tariff_obj, periods, start, end, time_zone)
        except PricingError as exc:
            fail(str(exc))
        out = {**cdr_fields(result), "explanation": explanation(result)}
        sys.stdout.write(tjson.dumps(out, decimals_as=decimals, indent=2) + "\n")


def _day(text: str, option: str) -> datetime:
    try:
        return (
            datetime.fromisoformat(text).replace(tzinfo=UTC)
            if len(text) == 10
            else datetime.fromisoformat(text)
        )
    except ValueError:
        fail(f"{option} {text!r}: expected YYYY-MM-DD")


@tariffs_app.command("replay")
def tariffs_replay(
    tariff: Annotated[Path, typer.Option(help="Proposed OCPI Tariff JSON")],
    from_: Annotated[str, typer.Option("--from", help="First day (YYYY-MM-DD, UTC), inclusive")],
    to: Annotated[str, typer.Option(help="Last day (YYYY-MM-DD, UTC), exclusive")],
) -> None:
    """Re-rate the CDRs of a period with a proposed tariff: revenue per location, actual vs proposed."""
    from tariffs import json as tjson
    from tariffs.compiled import compile_tariff
    from tariffs.engine import PricingError, price_session
    from tariffs.model import ChargingPeriod

    start, end = _day(from_, "--from"), _day(to, "--to")
    with reported_errors():
        try:
            proposed = compile_tariff(tjson.load_tariff(_read(tariff)))
        except ValidationError as exc:
            fail(f"invalid tariff {tariff}: {prov.describe_validation_error(exc)}")

    async def go(db: Database) -> None:
        async with db.session() as s:
            rows = (
                await s.execute(
                    select(Cdr, Location)
                    .join(Location, Cdr.location_id == Location.id)
                    .where(Cdr.end_date_time >= start, Cdr.end_date_time < end)
                    .order_by(Cdr.id)
                )
            ).all()
        actual: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        new: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        counts: dict[tuple[str, str], int] = defaultdict(int)
        skipped = 0
        for cdr, loc in rows:
            key = (loc.ocpi_id, cdr.currency)
            actual[key] += cdr.total_cost_excl_vat
            counts[key] += 1
            if cdr.is_credit:
                continue
            try:
                periods = [ChargingPeriod.model_validate(p) for p in cdr.data.get("charging_periods", [])]
                result = price_session(
                    proposed, periods, cdr.start_date_time, cdr.end_date_time, loc.time_zone
                )
            except (PricingError, ValidationError, ValueError):
                skipped += 1
                continue
            if result.currency != cdr.currency:
                skipped += 1
                continue
            new[(loc.ocpi_id, result.currency)] += result.total_cost.excl_vat
        table(
            f"Revenue excl. VAT {start.date()} .. {end.date()}: actual vs proposed tariff {proposed.tariff_id}",
            ["location", "CDRs", "actual", "proposed", "difference"],
            [
                [
                    loc_id,
                    counts[(loc_id, cur)],
                    format_amount(round_amount(actual[(loc_id, cur)], cur), cur),
                    format_amount(round_amount(new[(loc_id, cur)], cur), cur),
                    format_amount(round_amount(new[(loc_id, cur)] - actual[(loc_id, cur)], cur), cur),
                ]
                for loc_id, cur in sorted(actual)
            ],
        )
        if skipped:
            console.print(f"{skipped} CDR(s) could not be priced with the proposed tariff (currency or data)")

    run_with_db(go)


@tariffs_app.command("rerate")
def tariffs_rerate() -> None:
    """Price every session waiting for pricing now, retrying those that failed before (e.g. missing tariff)."""
    from tariffs.rating import rate_pending, retry_failed

    async def go(db: Database) -> None:
        retried = await retry_failed(db)
        made = await rate_pending(db, limit=100_000)
        console.print(f"{made} CDR(s) created ({retried} previously failed session(s) retried)")
        async with db.session() as s:
            failed = (
                await s.scalars(
                    select(ChargingSession).where(ChargingSession.pricing_state == PricingState.FAILED)
                )
            ).all()
        for f in failed:
            console.print(f"[red]not priced[/] {f.session_uid}: {f.pricing_error}")

    run_with_db(go)


@cdrs_app.command("list")
def cdrs_list(limit: Annotated[int, typer.Option(help="Newest N")] = 50) -> None:
    """List the newest CDRs."""

    async def go(db: Database) -> None:
        async with db.session() as s:
            rows = (await s.scalars(select(Cdr).order_by(Cdr.id.desc()).limit(limit))).all()
        table(
            "CDRs",
            ["id", "session", "end (UTC)", "kWh", "total excl. VAT", "total incl. VAT", "credit"],
            [
                [
                    c.cdr_uid,
                    c.data.get("session_id"),
                    c.end_date_time.isoformat(timespec="minutes"),
                    c.total_energy_kwh,
                    format_amount(c.total_cost_excl_vat, c.currency),
                    format_amount(c.total_cost_incl_vat, c.currency)
                    if c.total_cost_incl_vat is not None
                    else "",
                    "credit" if c.is_credit else "",
                ]
                for c in rows
            ],
        )

    run_with_db(go)


@cdrs_app.command("show")
def cdrs_show(cdr_id: str) -> None:
    """Print one CDR (OCPI JSON) with the engine's explanation."""
    from evhub.cli._common import print_json

    async def go(db: Database) -> None:
        async with db.session() as s:
            cdr = await s.scalar(select(Cdr).where(Cdr.cdr_uid == cdr_id))
        if cdr is None:
            fail(f"unknown CDR {cdr_id}")
        print_json({"cdr": cdr.data, "explanation": cdr.explanation})

    run_with_db(go)


@cdrs_app.command("correct")
def cdrs_correct(cdr_id: str) -> None:
    """Correct a CDR: a credit CDR for it plus a new CDR priced with the tariff versions stored now."""
    from tariffs.rating import RatingError, correct_cdr

    async def go(db: Database) -> None:
        try:
            credit, fresh = await correct_cdr(db, cdr_id)
        except RatingError as exc:
            fail(str(exc))
        console.print(
            f"credited {cdr_id} with {credit.cdr_uid} ({format_amount(credit.total_cost_excl_vat, credit.currency)}); "
            f"new CDR {fresh.cdr_uid} ({format_amount(fresh.total_cost_excl_vat, fresh.currency)})"
        )

    run_with_db(go)


@grid_app.command("attach")
def grid_attach(
    zone_name: Annotated[str, typer.Argument(metavar="ZONE", help="Grid zone (locations carry one)")],
    tariff: Annotated[str, typer.Option(help="CPO*TARIFF_ID, e.g. NL*ABC*AC-STD")],
    rules: Annotated[
        Path,
        typer.Option(help='JSON list: [{"direction": "above", "threshold": 80, "add": {"ENERGY": "0.10"}}]'),
    ],
    hysteresis: Annotated[
        str, typer.Option(help="Percentage points past a threshold before leaving a rule")
    ] = "0",
    min_hold: Annotated[int, typer.Option(help="Minimum seconds between two price changes")] = 0,
) -> None:
    """Attach grid-load rules to a tariff in a zone."""
    from tariffs.dynamic import GridConfigError, attach_rules

    parts = tariff.split("*")
    if len(parts) != 3:
        fail("--tariff: expected COUNTRY*PARTY*TARIFF_ID")

    async def go(db: Database) -> None:
        raw: Any = prov.load_json(_read(rules), str(rules))
        if not isinstance(raw, list):
            fail(f"{rules}: expected a JSON list of rules")
        async with db.session() as s:
            cpo = await prov.find_party(s, f"{parts[0]}{parts[1]}", PartyRole.CPO)
            try:
                row = await attach_rules(
                    s, zone_name, cpo.id, parts[2], raw, hysteresis=Decimal(hysteresis), min_hold_s=min_hold
                )
            except GridConfigError as exc:
                fail(str(exc))
        console.print(f"{len(row.rules)} rule(s) attached to tariff {parts[2]} in zone {zone_name}")

    run_with_db(go)


@grid_app.command("load")
def grid_load(
    zone_name: Annotated[str, typer.Argument(metavar="ZONE")],
    percent: Annotated[str, typer.Argument(help="Load in percent of capacity")],
    at: Annotated[str | None, typer.Option(help="RFC 3339 time (default now)")] = None,
) -> None:
    """Record a grid load sample (like POST /api/grid/{zone}/load) and show the tariff versions it publishes."""
    from evhub.timeutil import parse_datetime, utcnow
    from tariffs.dynamic import GridConfigError, record_load

    async def go(db: Database) -> None:
        try:
            published = await record_load(
                db, zone_name, parse_datetime(at) if at else utcnow(), Decimal(percent)
            )
        except GridConfigError as exc:
            fail(str(exc))
        if not published:
            console.print("no price change")
        for v in published:
            console.print(
                f"published tariff {v.tariff_id} version {v.version} from {v.start_date_time.isoformat()}"
            )

    run_with_db(go)
