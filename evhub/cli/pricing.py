"""``evhub tariffs price|replay|rerate``, ``evhub cdrs ...`` and ``evhub grid ...`` — pricing from the CLI.

The commands that create CDRs (``tariffs rerate``, ``cdrs correct``) or tariff versions (``grid load``) run
the hooks ``evhub serve`` runs (:func:`evhub.wiring.wired_hooks`), so OCPI pushes and receipts are queued in
the same transaction as what they deliver."""

from __future__ import annotations

import sys
from collections import defaultdict
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict

import typer
from pydantic import ValidationError
from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from evhub import provisioning as prov
from evhub.cli._common import (
    console,
    error_line,
    fail,
    print_json,
    reported_errors,
    run_with_db,
    settings,
    table,
)
from evhub.cli._lookup import resolve_prefix
from evhub.cli.provision import tariffs_app
from evhub.wiring import wired_hooks
from kernel.db.engine import Database
from kernel.models import EVSE, Cdr, ChargingSession, Connector, Location, Party, PartyRole, PricingState
from kernel.money import format_amount, round_amount
from kernel.timeutil import zone
from kernel.validation import describe_validation_error

cdrs_app = typer.Typer(
    help="Charge detail records: the priced, immutable outcome of each session.", no_args_is_help=True
)
grid_app = typer.Typer(help="Grid load and the dynamic-pricing rules attached to it.", no_args_is_help=True)
JSON_OPTION = typer.Option("--json", help="Print JSON instead of a table")
MAX_LIMIT = 1_000_000


def _read(path: Path) -> str:
    if not path.is_file():
        raise prov.ProvisioningError(f"no such file: {path}")
    return path.read_text(encoding="utf-8")


def _load_tariff(path: Path) -> Any:
    """An OCPI Tariff from a file, or one line naming the file and the field."""
    from tariffs.core import tariff_json as tjson

    text = _read(path)
    try:
        return tjson.load_tariff(text)
    except ValidationError as exc:
        fail(f"invalid tariff {path}: {describe_validation_error(exc)}")
    except ValueError as exc:
        fail(f"invalid tariff {path}: {exc}")


def _instant(text: str, option: str, *, day: bool = False) -> datetime:
    """An aware instant from an RFC 3339 time (``Z`` or an offset), or with ``day`` also ``YYYY-MM-DD``
    (00:00 UTC). A time without an offset is refused: on the command line it would be a guess."""
    example = "YYYY-MM-DD or " if day else ""
    try:
        if day and len(text.strip()) == 10:
            return datetime.combine(date.fromisoformat(text.strip()), datetime.min.time(), tzinfo=UTC)
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        fail(f"{option} {text!r}: expected {example}an RFC 3339 time such as 2026-11-10T18:00:00Z")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        fail(f"{option} {text!r}: give the time with Z or an offset (e.g. 2026-11-10T18:00:00Z)")
    return parsed.astimezone(UTC)


def _cdr_input(path: Path) -> tuple[dict[str, Any], list[Any], datetime, datetime]:
    """A CDR-like JSON object: (the object, its charging periods, its start, its end), or one line naming
    the file and the field."""
    from tariffs.core.tariff_document import ChargingPeriod

    data = prov.load_json(_read(path), str(path))
    if not isinstance(data, dict):
        fail(f"{path}: expected a JSON object")
    for key in ("start_date_time", "end_date_time", "charging_periods"):
        if key not in data:
            fail(f"{path}: missing field {key}")
    if not isinstance(data["charging_periods"], list):
        fail(f"{path}: charging_periods must be a list")
    try:
        periods = [ChargingPeriod.model_validate(p) for p in data["charging_periods"]]
        start, end = (
            ChargingPeriod.model_validate(
                {"start_date_time": data[key], "dimensions": [{"type": "ENERGY", "volume": 0}]}
            ).start_date_time
            for key in ("start_date_time", "end_date_time")
        )
    except ValidationError as exc:
        fail(f"invalid CDR {path}: {describe_validation_error(exc)}")
    return data, periods, start, end


def _cdr_tariffs(path: Path, data: dict[str, Any]) -> list[Any]:
    """The OCPI Tariff objects a CDR carries in ``tariffs`` (OCPI 2.2.1: "List of relevant Tariff Elements")."""
    from tariffs.core import tariff_json as tjson

    raw = data.get("tariffs")
    if not isinstance(raw, list) or not raw:
        fail(f"{path}: the CDR has no tariffs to price it with (give --cdr {path} --tariff FILE instead)")
    out = []
    for i, item in enumerate(raw):
        try:
            out.append(tjson.load_tariff(item))
        except ValidationError as exc:
            fail(f"invalid CDR {path}: tariffs[{i}]: {describe_validation_error(exc)}")
        except ValueError as exc:
            fail(f"invalid CDR {path}: tariffs[{i}]: {exc}")
    return out


_COST_FIELDS = (
    "total_cost",
    "total_fixed_cost",
    "total_energy_cost",
    "total_time_cost",
    "total_parking_cost",
    "total_reservation_cost",
)
"""The CDR's money totals (OCPI Price objects) ``tariffs price --from-cdr`` compares."""


def _differences(cdr: dict[str, Any], recomputed: dict[str, Any]) -> list[dict[str, Any]]:
    """Each money total of ``cdr`` (the fields it states) next to the recomputed one, with the difference."""
    out = []
    for name in _COST_FIELDS:
        stated = cdr.get(name)
        if not isinstance(stated, dict):
            continue
        for part in ("excl_vat", "incl_vat"):
            if stated.get(part) is None:
                continue
            mine = recomputed[name][part]
            theirs = Decimal(str(stated[part]))
            out.append(
                {"field": f"{name}.{part}", "cdr": theirs, "recomputed": mine, "difference": mine - theirs}
            )
    return out


@tariffs_app.command("price")
def tariffs_price(
    tariff: Annotated[
        list[Path] | None,
        typer.Option(help="OCPI Tariff JSON; repeat it for a session that spans several versions or tariffs"),
    ] = None,
    cdr: Annotated[
        Path | None, typer.Option(help="OCPI CDR-like JSON: start/end_date_time and charging_periods")
    ] = None,
    from_cdr: Annotated[
        Path | None,
        typer.Option(
            "--from-cdr",
            help="An OCPI CDR: price its own tariffs and charging_periods and compare with its totals "
            "(exit 1 when they differ)",
        ),
    ] = None,
    time_zone: Annotated[str, typer.Option(help="IANA zone the restrictions are read in")] = "UTC",
    decimals: Annotated[str, typer.Option(help="number or string")] = "number",
    reservation_expired: Annotated[
        bool,
        typer.Option(
            "--reservation-expired",
            help="Price the reservation time as a reservation that expired (RESERVATION_EXPIRES elements); "
            "without it, a CDR with only RESERVATION_TIME periods is taken for one",
        ),
    ] = False,
) -> None:
    """Price a CDR-like object with tariffs (``--cdr`` and ``--tariff``), or re-price an OCPI CDR from its
    own content (``--from-cdr``), and print the OCPI cost fields and the explanation as JSON."""
    from tariffs.core import tariff_json as tjson
    from tariffs.core.engine import PricingError, price_session
    from tariffs.core.ocpi_periods import periods_from_ocpi
    from tariffs.core.render import cdr_fields, explanation

    if decimals not in ("number", "string"):
        fail(f"--decimals {decimals!r}: expected number or string")
    decimals_as: Literal["number", "string"] = "string" if decimals == "string" else "number"
    if (cdr is None) == (from_cdr is None):
        fail("give either --cdr FILE (with --tariff FILE) or --from-cdr CDR.json")
    if from_cdr is not None and tariff:
        fail(
            "--from-cdr prices the CDR with its own tariffs; to price it with others give --cdr and --tariff"
        )
    if cdr is not None and not tariff:
        fail("--cdr needs at least one --tariff FILE")
    with reported_errors():
        source = cdr if cdr is not None else from_cdr
        assert source is not None
        data, periods, start, end = _cdr_input(source)
        tariffs = [_load_tariff(t) for t in tariff] if tariff else _cdr_tariffs(source, data)
        zone(time_zone)
        if reservation_expired:  # T7: the operator knows the reservation expired
            periods = periods_from_ocpi(periods, end, reservation_expired=True)
        try:
            result = price_session(tariffs, periods, start, end, time_zone)
        except PricingError as exc:
            fail(str(exc))
        fields = cdr_fields(result)
        if from_cdr is None:
            out = {**fields, "explanation": explanation(result)}
            sys.stdout.write(tjson.dumps(out, decimals_as=decimals_as, indent=2) + "\n")
            return
        totals = _differences(data, fields)
        if str(data.get("currency", "")).upper() != result.currency:
            fail(f"{from_cdr}: the CDR is in {data.get('currency')!r}, its tariffs in {result.currency}")
        report = {
            "cdr_id": data.get("id"),
            "currency": result.currency,
            "totals": totals,
            "recomputed": {k: v for k, v in fields.items() if k != "charging_periods"},
            "explanation": explanation(result),
        }
        sys.stdout.write(tjson.dumps(report, decimals_as=decimals_as, indent=2) + "\n")
        differing = [t for t in totals if t["difference"]]
        for t in differing:
            error_line(
                f"CDR {data.get('id')}: {t['field']} is {t['cdr']} {result.currency}, its own tariffs and "
                f"charging periods give {t['recomputed']} {result.currency}"
            )
        if differing:
            raise typer.Exit(1)


class _RevenueLine(TypedDict):
    """One location and currency of ``tariffs replay``: revenue excl. VAT, actual vs proposed."""

    location_id: str
    currency: str
    cdrs: int
    actual_excl_vat: Decimal
    proposed_excl_vat: Decimal
    difference_excl_vat: Decimal


async def _locations_using(db_session: AsyncSession, cpo_id: int, tariff_id: str) -> set[int]:
    """The CPO's locations with a connector whose ``tariff_ids`` list ``tariff_id``."""
    rows = await db_session.execute(
        select(Location.id, Connector.tariff_ids)
        .join(EVSE, EVSE.location_id == Location.id)
        .join(Connector, Connector.evse_pk == EVSE.id)
        .where(Location.cpo_id == cpo_id)
    )
    return {loc_id for loc_id, ids in rows.all() if tariff_id in [str(t) for t in ids or []]}


@tariffs_app.command("replay")
def tariffs_replay(
    tariff: Annotated[Path, typer.Option(help="Proposed OCPI Tariff JSON")],
    from_: Annotated[
        str, typer.Option("--from", help="Start, inclusive: YYYY-MM-DD (00:00 UTC) or an RFC 3339 time")
    ],
    to: Annotated[str, typer.Option(help="End, exclusive: YYYY-MM-DD (00:00 UTC) or an RFC 3339 time")],
    all_locations: Annotated[
        bool,
        typer.Option(
            "--all-locations",
            help="Replay every location of the CPO, not only those whose connectors list it",
        ),
    ] = False,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """Re-rate the CDRs that ended in [FROM, TO) at the locations using the proposed tariff (a connector
    lists its id; ``--all-locations``: every location of its CPO): revenue per location, actual vs proposed,
    like with like (the current revision of each session; CDRs in another currency than the tariff's are
    counted as not comparable)."""
    from tariffs.core.compiled_tariff import compile_tariff
    from tariffs.core.engine import PricingError, price_session
    from tariffs.core.tariff_document import ChargingPeriod

    start, end = _instant(from_, "--from", day=True), _instant(to, "--to", day=True)
    if start >= end:
        fail(f"--from {from_} must be before --to {to} (the range is [from, to))")
    with reported_errors():
        tariff_obj = _load_tariff(tariff)
        proposed = compile_tariff(tariff_obj)

    async def go(db: Database) -> None:
        async with db.session() as db_session:
            cpo = await db_session.scalar(
                select(Party).where(
                    Party.country_code == tariff_obj.country_code.upper(),
                    Party.party_id == tariff_obj.party_id.upper(),
                    Party.role == PartyRole.CPO,
                )
            )
            if cpo is None:
                fail(
                    f"{tariff}: the tariff's CPO {tariff_obj.country_code}*{tariff_obj.party_id} is unknown; "
                    "a proposed tariff is replayed over its own CPO's CDRs"
                )
            # Like with like: the current revision of each session only (no credit CDR, no CDR a credit
            # cancels), on both sides.
            credit = aliased(Cdr)
            query = (
                select(Cdr, Location)
                .join(Location, Cdr.location_id == Location.id)
                .where(
                    Cdr.cpo_id == cpo.id,
                    Cdr.end_date_time >= start,
                    Cdr.end_date_time < end,
                    Cdr.is_credit.is_(False),
                    ~exists().where(credit.credit_of == Cdr.id),
                )
                .order_by(Cdr.id)
            )
            if not all_locations:
                query = query.where(
                    Location.id.in_(await _locations_using(db_session, cpo.id, tariff_obj.id))
                )
            rows = (await db_session.execute(query)).all()
        actual: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        new: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
        counts: dict[tuple[str, str], int] = defaultdict(int)
        not_comparable: dict[str, int] = defaultdict(int)
        skipped = 0
        for cdr, loc in rows:
            if cdr.currency.upper() != proposed.currency:
                not_comparable[cdr.currency.upper()] += 1
                continue
            try:
                periods = [ChargingPeriod.model_validate(p) for p in cdr.data.get("charging_periods", [])]
                result = price_session(
                    proposed, periods, cdr.start_date_time, cdr.end_date_time, loc.time_zone
                )
            except (PricingError, ValidationError, ValueError):
                skipped += 1  # on neither side
                continue
            key = (loc.ocpi_id, proposed.currency)
            actual[key] += cdr.total_cost_excl_vat
            new[key] += result.total_cost.excl_vat
            counts[key] += 1
        lines: list[_RevenueLine] = [
            {
                "location_id": loc_id,
                "currency": cur,
                "cdrs": counts[(loc_id, cur)],
                "actual_excl_vat": round_amount(actual[(loc_id, cur)], cur),
                "proposed_excl_vat": round_amount(new[(loc_id, cur)], cur),
                "difference_excl_vat": round_amount(new[(loc_id, cur)] - actual[(loc_id, cur)], cur),
            }
            for loc_id, cur in sorted(actual)
        ]
        if as_json:
            print_json(
                {
                    "tariff_id": proposed.tariff_id,
                    "from": start,
                    "to": end,
                    "locations": lines,
                    "not_priced": skipped,
                    "not_comparable": dict(sorted(not_comparable.items())),
                }
            )
            return
        table(
            f"Revenue excl. VAT {start.date()} .. {end.date()}: actual vs proposed tariff {proposed.tariff_id}",
            ["location", "CDRs", "actual", "proposed", "difference"],
            [
                [
                    line["location_id"],
                    line["cdrs"],
                    format_amount(line["actual_excl_vat"], line["currency"]),
                    format_amount(line["proposed_excl_vat"], line["currency"]),
                    format_amount(line["difference_excl_vat"], line["currency"]),
                ]
                for line in lines
            ],
        )
        for cur, n in sorted(not_comparable.items()):
            console.print(
                f"{n} CDR{'' if n == 1 else 's'} not comparable ({cur}): the proposed tariff is in "
                f"{proposed.currency}",
                soft_wrap=True,
                highlight=False,
            )
        if skipped:
            console.print(
                f"{skipped} CDR(s) could not be priced with the proposed tariff (left out on both sides)"
            )

    run_with_db(go)


@tariffs_app.command("rerate")
def tariffs_rerate() -> None:
    """Price every session waiting for pricing now, retrying those that failed before (e.g. missing tariff).

    Exits 1, with one line per session on stderr naming its reason, when any session is still not priced."""
    from kernel.plausibility import Limits
    from tariffs.rating import rate_pending, retry_failed

    async def go(db: Database) -> None:
        retried = await retry_failed(db)
        cfg = settings()  # the hooks serve runs, and its plausibility limits (M8)
        made = await rate_pending(
            db, wired_hooks(cfg, db).cdr, limit=100_000, limits=Limits.from_settings(cfg)
        )
        console.print(f"{made} CDR(s) created ({retried} previously failed session(s) retried)")
        async with db.session() as db_session:
            failed = (
                await db_session.scalars(
                    select(ChargingSession)
                    .where(ChargingSession.pricing_state == PricingState.FAILED)
                    .order_by(ChargingSession.id)
                )
            ).all()
        for f in failed:
            reason = " ".join((f.pricing_error or "no reason recorded").split())
            error_line(f"session {f.session_uid} not priced: {reason}")
        if failed:
            raise typer.Exit(1)

    run_with_db(go)


@tariffs_app.command("check")
def tariffs_check() -> None:
    """Validate every stored tariff version with today's tariff checks and mark the invalid ones (stored
    before the checks existed): an invalid version never prices a session. Exits 1, one line per invalid
    version on stderr, when there is any; correct one with ``tariffs import FILE --supersedes VERSION``."""

    async def go(db: Database) -> None:
        async with db.session() as db_session:
            invalid, marked = await prov.check_stored_tariffs(db_session)
            cpos = {p.id: p.key for p in await prov.list_parties(db_session)}
        now = {id(r) for r in marked}
        for row in invalid:
            state = "marked invalid now" if id(row) in now else "invalid"
            error_line(
                f"tariff {cpos.get(row.cpo_id)}*{row.tariff_id} version {row.version} {state}: {row.invalid_reason}"
            )
        console.print(f"{len(invalid)} invalid tariff version(s), {len(marked)} marked now")
        if invalid:
            raise typer.Exit(1)

    run_with_db(go)


def _cdr_row(c: Cdr) -> dict[str, Any]:
    return {
        "id": c.cdr_uid,
        "session_id": c.data.get("session_id"),
        "end_date_time": c.end_date_time,
        "total_energy_kwh": c.total_energy_kwh,
        "currency": c.currency,
        "total_cost_excl_vat": c.total_cost_excl_vat,
        "total_cost_incl_vat": c.total_cost_incl_vat,
        "credit": c.is_credit,
    }


@cdrs_app.command("list")
def cdrs_list(
    limit: Annotated[int, typer.Option(help="Newest N")] = 50,
    as_json: Annotated[bool, JSON_OPTION] = False,
) -> None:
    """List the newest CDRs."""
    if not 1 <= limit <= MAX_LIMIT:
        fail(f"--limit {limit}: expected 1 to {MAX_LIMIT:,}")

    async def go(db: Database) -> None:
        async with db.session() as db_session:
            rows = (await db_session.scalars(select(Cdr).order_by(Cdr.id.desc()).limit(limit))).all()
        if as_json:
            print_json([_cdr_row(c) for c in rows])
            return
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


CDR_ID = typer.Argument(metavar="CDR_ID", help="The CDR's id, or a unique prefix of it")


@cdrs_app.command("show")
def cdrs_show(cdr_id: Annotated[str, CDR_ID]) -> None:
    """Print one CDR (OCPI JSON) with the engine's explanation."""

    async def go(db: Database) -> None:
        async with db.session() as db_session:
            uid = await resolve_prefix(db_session, Cdr.cdr_uid, cdr_id, "CDR")
            cdr = (await db_session.execute(select(Cdr).where(Cdr.cdr_uid == uid))).scalar_one()
        print_json({"cdr": cdr.data, "explanation": cdr.explanation})

    run_with_db(go)


@cdrs_app.command("correct")
def cdrs_correct(cdr_id: Annotated[str, CDR_ID]) -> None:
    """Correct a CDR: a credit CDR for it plus a new CDR priced with the tariff versions stored now."""
    from tariffs.cdr_builder import RatingError
    from tariffs.rating import correct_cdr

    async def go(db: Database) -> None:
        async with db.session() as db_session:
            uid = await resolve_prefix(db_session, Cdr.cdr_uid, cdr_id, "CDR")
            if await db_session.scalar(select(Cdr.is_credit).where(Cdr.cdr_uid == uid)):
                fail(f"CDR {uid} is a credit CDR; correct the CDR it credits (its latest revision)")
        try:
            credit, fresh = await correct_cdr(db, uid, wired_hooks(settings(), db).cdr)
        except RatingError as exc:
            fail(str(exc))
        console.print(
            f"credited {uid} with {credit.cdr_uid} ({format_amount(credit.total_cost_excl_vat, credit.currency)}); "
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
    """Attach grid-load rules to a tariff in a zone (one a location carries)."""
    from tariffs.dynamic import GridConfigError, attach_rules, percent

    parts = tariff.split("*")
    if len(parts) != 3 or not all(parts):
        fail("--tariff: expected COUNTRY*PARTY*TARIFF_ID")
    try:
        points = percent(hysteresis, "--hysteresis")
    except GridConfigError as exc:
        fail(str(exc))
    if min_hold < 0:
        fail(f"--min-hold {min_hold}: seconds must not be negative")

    async def go(db: Database) -> None:
        raw: Any = prov.load_json(_read(rules), str(rules))
        if not isinstance(raw, list):
            fail(f"{rules}: expected a JSON list of rules")
        async with db.session() as db_session:
            cpo = await prov.find_party(db_session, f"{parts[0]}{parts[1]}", PartyRole.CPO)
            try:
                row = await attach_rules(
                    db_session, zone_name, cpo.id, parts[2], raw, hysteresis=points, min_hold_s=min_hold
                )
            except GridConfigError as exc:
                fail(str(exc))
        console.print(f"{len(row.rules)} rule(s) attached to tariff {parts[2]} in zone {zone_name}")

    run_with_db(go)


@grid_app.command("load")
def grid_load(
    zone_name: Annotated[str, typer.Argument(metavar="ZONE")],
    percent_text: Annotated[
        str, typer.Argument(metavar="PERCENT", help="Load in percent of capacity, 0 to 100")
    ],
    at: Annotated[str | None, typer.Option(help="RFC 3339 time with Z or an offset (default now)")] = None,
) -> None:
    """Record a grid load sample (like POST /api/grid/{zone}/load) and show the tariff versions it publishes."""
    from kernel.timeutil import utcnow
    from tariffs.dynamic import GridConfigError, percent, record_load

    try:
        load = percent(percent_text, "PERCENT")
    except GridConfigError as exc:
        fail(str(exc))
    when = _instant(at, "--at") if at else None

    async def go(db: Database) -> None:
        try:
            published = await record_load(
                db, zone_name, when or utcnow(), load, wired_hooks(settings(), db).tariff
            )
        except GridConfigError as exc:
            fail(str(exc))
        if not published:
            console.print("no price change")
        for v in published:
            assert v.start_date_time is not None, "a grid price change starts at its sample's time"
            console.print(
                f"published tariff {v.tariff_id} version {v.version} from {v.start_date_time.isoformat()}"
            )

    run_with_db(go)
