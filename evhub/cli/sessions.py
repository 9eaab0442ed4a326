"""``evhub sessions list|show|release`` — charging sessions, where they stand in pricing, their meter values
and CDRs, and the operator's repair of a held one.

``--state`` takes a session status (``active``, ``completed``, ``invalid``, ``pending``, ``reservation``) or a
pricing state: ``pricing-pending`` (ended, waiting for the tariffs engine), ``priced``, ``failed`` (pricing
could not price it; the reason is shown), ``held`` (implausible or incomplete, held for review; the reason is
shown) and ``reprice`` (priced, but late data changed it). ``release`` hands a held session back to pricing,
optionally with corrected times. Lists show full session uids; ``show`` and ``release`` take the uid or any
unique prefix of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import typer
from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from evhub.cli._common import console, fail, print_json, run_with_db, table
from evhub.cli._lookup import resolve_prefix
from evhub.provisioning import ProvisioningError, find_party
from kernel.db.engine import Database
from kernel.models import (
    EVSE,
    Cdr,
    ChargePoint,
    ChargingSession,
    Location,
    MeterValue,
    Party,
    PartyRole,
    PricingState,
    SessionStatus,
    Token,
)
from kernel.signed_meter import describe
from kernel.timeutil import parse_datetime

sessions_app = typer.Typer(help="Charging sessions: list, filter, and show one.", no_args_is_help=True)

STATUS_STATES = {s.value.lower(): s for s in SessionStatus}
PRICING_STATES = {
    "pricing-pending": PricingState.PENDING,
    "priced": PricingState.PRICED,
    "failed": PricingState.FAILED,
    "held": PricingState.HELD,
    "reprice": PricingState.REPRICE,
}
STATES = [*STATUS_STATES, *PRICING_STATES]

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]


def _when(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        return parse_datetime(value)
    except ValueError:
        raise ProvisioningError(
            f"{option} {value!r}: expected an ISO 8601 date or time, e.g. 2026-11-01 or 2026-11-01T08:00Z"
        ) from None


def _kwh(wh: Decimal | None) -> str:
    return "" if wh is None else f"{(Decimal(wh) / 1000).quantize(Decimal('0.001'))}"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


async def _filtered(
    db_session: AsyncSession,
    *,
    state: str | None,
    cpo: str | None,
    charger: str | None,
    since: str | None,
    until: str | None,
) -> Select[ChargingSession]:
    """The sessions query for the filters, every value checked first (one clear line when one is wrong)."""
    query = select(ChargingSession)
    if state is not None:
        key = state.strip().lower()
        if key in STATUS_STATES:
            query = query.where(ChargingSession.status == STATUS_STATES[key])
        elif key in PRICING_STATES:
            query = query.where(ChargingSession.pricing_state == PRICING_STATES[key])
        else:
            raise ProvisioningError(f"--state {state!r}: expected one of {', '.join(STATES)}")
    start, end = _when(since, "--since"), _when(until, "--until")
    if start is not None and end is not None and start >= end:
        raise ProvisioningError(f"--since {since} is not before --until {until}")
    if start is not None:
        query = query.where(ChargingSession.start_time >= start)
    if end is not None:
        query = query.where(ChargingSession.start_time < end)
    if cpo is not None:
        query = query.where(ChargingSession.cpo_id == (await find_party(db_session, cpo, PartyRole.CPO)).id)
    if charger is not None:
        cp_id = await db_session.scalar(select(ChargePoint.id).where(ChargePoint.identity == charger))
        if cp_id is None:
            raise ProvisioningError(f"unknown charger {charger!r}; see `evhub chargers list`")
        query = query.where(ChargingSession.charge_point_id == cp_id)
    return query


async def _names(db_session: AsyncSession, column: Any, ids: set[int | None]) -> dict[int, str]:
    """id -> ``column`` of the rows of ``column``'s table with these ids (one query for a whole list)."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    model = column.class_
    return {
        row[0]: row[1]
        for row in await db_session.execute(select(model.id, column).where(model.id.in_(wanted)))
    }


async def _describe(db_session: AsyncSession, rows: Sequence[ChargingSession]) -> list[dict[str, Any]]:
    """The sessions as plain data, with the names of what they refer to and their CDR uids."""
    chargers = await _names(db_session, ChargePoint.identity, {r.charge_point_id for r in rows})
    locations = await _names(db_session, Location.ocpi_id, {r.location_id for r in rows})
    evses = await _names(db_session, EVSE.uid, {r.evse_pk for r in rows})
    tokens = await _names(db_session, Token.uid, {r.token_id for r in rows})
    cpos = {
        p.id: p.key
        for p in await db_session.scalars(select(Party).where(Party.id.in_({r.cpo_id for r in rows})))
    }
    cdrs: dict[int, list[str]] = {}
    if rows:
        query = select(Cdr.session_id, Cdr.cdr_uid).where(Cdr.session_id.in_([r.id for r in rows]))
        for session_id, uid in await db_session.execute(query.order_by(Cdr.id)):
            cdrs.setdefault(session_id, []).append(uid)
    return [
        {
            "id": r.session_uid,
            "cpo": cpos.get(r.cpo_id),
            "charger": chargers.get(r.charge_point_id) if r.charge_point_id else None,
            "transaction_id": r.transaction_id,
            "location": locations.get(r.location_id) if r.location_id else None,
            "evse": evses.get(r.evse_pk) if r.evse_pk else None,
            "token": tokens.get(r.token_id) if r.token_id else None,
            "id_tag": r.id_tag,
            "auth_method": r.auth_method,
            "status": r.status.value,
            "start_time": _iso(r.start_time),
            "end_time": _iso(r.end_time),
            "energy_wh": r.energy_wh,
            "meter_start_wh": r.meter_start_wh,
            "meter_stop_wh": r.meter_stop_wh,
            "stop_reason": r.stop_reason,
            "currency": r.currency,
            "pricing_state": r.pricing_state.value,
            "pricing_error": r.pricing_error,
            "review_reason": r.review_reason,
            "price_after": _iso(r.price_after),
            "cdrs": cdrs.get(r.id, []),
        }
        for r in rows
    ]


def _pricing(item: dict[str, Any]) -> str:
    if item["pricing_state"] == PricingState.FAILED.value:
        return f"failed: {item['pricing_error'] or '(no reason recorded)'}"
    if item["pricing_state"] == PricingState.HELD.value:
        return f"held: {item['review_reason'] or '(no reason recorded)'}"
    if item["pricing_state"] == PricingState.PENDING.value and item["price_after"]:
        return f"pending (not before {item['price_after']}: late data may still arrive)"
    return item["pricing_state"]


@sessions_app.command("list")
def sessions_list(
    state: Annotated[str | None, typer.Option(help=f"One of {', '.join(STATES)}")] = None,
    cpo: Annotated[str | None, typer.Option(help="Only this CPO's sessions (COUNTRY*PARTY)")] = None,
    charger: Annotated[str | None, typer.Option(help="Only this charger's sessions (identity)")] = None,
    since: Annotated[str | None, typer.Option(help="Started at or after (ISO date or time, UTC)")] = None,
    until: Annotated[str | None, typer.Option(help="Started before (ISO date or time, UTC)")] = None,
    limit: Annotated[int, typer.Option(help="Newest N")] = 50,
    as_json: JsonOption = False,
) -> None:
    """List sessions, newest first; `--state failed` shows the sessions pricing failed on, `--state held`
    those held for review, each with the reason."""

    if limit < 1:
        fail(f"--limit {limit}: expected at least 1")

    async def go(db: Database) -> None:
        async with db.session() as db_session:
            query = await _filtered(
                db_session, state=state, cpo=cpo, charger=charger, since=since, until=until
            )
            query = query.order_by(ChargingSession.start_time.desc(), ChargingSession.id.desc()).limit(limit)
            items = await _describe(db_session, (await db_session.scalars(query)).all())
        if as_json:
            print_json(items)
            return
        table(
            "Sessions",
            ["session", "charger", "start (UTC)", "kWh", "status", "pricing"],
            [
                [
                    i["id"],
                    i["charger"],
                    i["start_time"][:16].replace("T", " "),
                    _kwh(i["energy_wh"]),
                    i["status"],
                    i["pricing_state"],
                ]
                for i in items
            ],
        )
        for i in items:  # the reasons in full, one line each, where a table column would cut them
            if i["pricing_state"] == PricingState.FAILED.value:
                console.print(
                    f"pricing failed for {i['id']}: {_pricing(i)[len('failed: ') :]}", soft_wrap=True
                )
            elif i["pricing_state"] == PricingState.HELD.value:
                console.print(
                    f"held for review {i['id']}: {_pricing(i)[len('held: ') :]}",
                    soft_wrap=True,
                    highlight=False,
                )

    run_with_db(go)


def _meter_summary(values: Sequence[MeterValue]) -> list[dict[str, Any]]:
    """Per measurand (and phase/location): how many samples, over what time, first/last/min/max."""
    groups: dict[tuple[str, str, str, str], list[MeterValue]] = {}
    for v in values:
        groups.setdefault((v.measurand, v.phase, v.location, v.unit), []).append(v)
    summary = []
    for (measurand, phase, location, unit), rows in sorted(groups.items()):
        rows.sort(key=lambda r: r.timestamp)
        numbers = [Decimal(r.value) for r in rows]
        summary.append(
            {
                "measurand": measurand,
                "phase": phase or None,
                "location": location,
                "unit": unit,
                "samples": len(rows),
                "signed": sum(1 for r in rows if r.signed_data),
                "first_at": _iso(rows[0].timestamp),
                "last_at": _iso(rows[-1].timestamp),
                "first": numbers[0],
                "last": numbers[-1],
                "min": min(numbers),
                "max": max(numbers),
            }
        )
    return summary


@sessions_app.command("show")
def sessions_show(
    session_id: Annotated[str, typer.Argument(help="Session uid (or a unique prefix)")],
    as_json: JsonOption = False,
) -> None:
    """One session: its charger, token, times, energy, pricing state, meter values summary and CDR ids."""

    async def go(db: Database) -> None:
        async with db.session() as db_session:
            uid = await resolve_prefix(db_session, ChargingSession.session_uid, session_id, "session")
            row = await db_session.scalar(select(ChargingSession).where(ChargingSession.session_uid == uid))
            assert row is not None
            item = (await _describe(db_session, [row]))[0]
            values = (
                await db_session.scalars(select(MeterValue).where(MeterValue.session_id == row.id))
            ).all()
            item["meter_values"] = _meter_summary(values)
            item["flags"] = list(row.flags or [])
            item["signed_verification"] = row.signed_verification
            item["signed_verification_reason"] = row.signed_verification_reason
        if as_json:
            print_json(item)
            return
        console.print(f"[bold]session {item['id']}[/]", highlight=False)
        fields = [
            ("CPO", item["cpo"]),
            ("charger", f"{item['charger']} (transaction {item['transaction_id']})"),
            ("location / EVSE", f"{item['location'] or '-'} / {item['evse'] or '-'}"),
            ("token", f"{item['token'] or item['id_tag'] or '-'} ({item['auth_method']})"),
            ("status", item["status"] + (f" ({item['stop_reason']})" if item["stop_reason"] else "")),
            ("start / end", f"{item['start_time']} / {item['end_time'] or '(running)'}"),
            ("energy", f"{_kwh(item['energy_wh'])} kWh"),
            ("pricing", _pricing(item)),
            ("CDRs", ", ".join(item["cdrs"]) or "none"),
        ]
        if item["flags"]:
            fields.append(("flags", ", ".join(str(f) for f in item["flags"])))
        signed = describe(item["signed_verification"], item["signed_verification_reason"])
        if signed:
            fields.append(("signed data", signed))  # checked at pricing: verified / unverifiable / INVALID
        for label, value in fields:
            console.print(f"  {label:16} {value}", highlight=False, soft_wrap=True)
        console.print("  meter values" + ("" if item["meter_values"] else "     none"), highlight=False)
        for m in item["meter_values"]:
            where = ", ".join(x for x in (m["phase"], m["location"]) if x)
            signed = f", {m['signed']} signed" if m["signed"] else ""
            console.print(
                f"    {m['measurand']} ({where}, {m['unit']}): {m['samples']} samples{signed} "
                f"{m['first_at']} .. {m['last_at']}, first {m['first']} last {m['last']} "
                f"min {m['min']} max {m['max']}",
                highlight=False,
                soft_wrap=True,
            )

    run_with_db(go)


@sessions_app.command("release")
def sessions_release(
    session_id: Annotated[str, typer.Argument(help="Session uid (or a unique prefix) of a held session")],
    start: Annotated[str | None, typer.Option(help="Corrected start (ISO date or time, UTC)")] = None,
    end: Annotated[str | None, typer.Option(help="Corrected end (ISO date or time, UTC)")] = None,
    accept: Annotated[
        bool,
        typer.Option(
            "--accept",
            help="Bill it as it is: reviewed, the plausibility checks (span, clock, power) no longer hold it",
        ),
    ] = False,
) -> None:
    """Hand a held session back to pricing after review, optionally with corrected start/end times: its
    review reason is cleared, its energy recomputed, and pricing checks and prices it (with --accept it is
    priced as it is, without the plausibility checks)."""

    async def go(db: Database) -> None:
        from cpo_gateway.session_store import SessionStore  # the gateway's session rules, loaded when used

        new_start, new_end = _when(start, "--start"), _when(end, "--end")
        async with db.session() as db_session:
            uid = await resolve_prefix(db_session, ChargingSession.session_uid, session_id, "session")
        session = await SessionStore(db).release(uid, start=new_start, end=new_end, accept=accept)
        console.print(
            f"released session {uid}: pending pricing{' as it is' if accept else ''}, "
            f"{session.start_time.isoformat()} .. "
            f"{session.end_time.isoformat() if session.end_time else '-'}, {_kwh(session.energy_wh)} kWh",
            highlight=False,
            soft_wrap=True,
        )

    run_with_db(go)
