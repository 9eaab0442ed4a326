"""``evhub sessions list/show`` on the real CLI and database: filters, pricing failures with their reason (the
real pricing engine fails a session whose CPO has no tariff), the meter values summary and the CDR ids."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import select

from kernel.db.engine import Database
from kernel.models import EVSE, Cdr, ChargePoint, ChargingSession, Connector, MeterValue, PricingState
from tariffs.rating import rate_pending
from tests.world.demo_network import DEMO

START = datetime(2026, 6, 10, 8, 0, tzinfo=UTC)


async def _provision(cli, tmp_path: Path) -> None:
    """Two CPOs with a charger each; only AmsterPower has a tariff."""
    await cli("parties", "add", "NL*AMP", "--role", "CPO", "--name", "AmsterPower")
    await cli("parties", "add", "GB*LDN", "--role", "CPO", "--name", "London Charge Co")
    await cli("locations", "import", str(DEMO / "locations.json"))
    ams_only = tmp_path / "tariffs.json"
    ams_only.write_text(
        json.dumps([t for t in json.loads((DEMO / "tariffs.json").read_text()) if t["id"] == "AMS-TOD"])
    )
    await cli("tariffs", "import", str(ams_only))
    for identity, location, evse in (
        ("AMS-1", "AMS-CENTRAAL", "AMS-01-1"),
        ("LDN-1", "LDN-KINGSX", "LDN-01-1"),
    ):
        await cli(
            "chargers",
            "add",
            identity,
            "--password",
            "charger-secret",
            "--location",
            location,
            "--evse",
            evse,
        )


async def _session(
    db: Database, uid: str, charger: str, evse_uid: str, start: datetime, *, ended: bool
) -> None:
    """What the gateway records: a session with a meter value per minute (10 minutes, 1 kWh)."""
    async with db.session() as s:
        cp = await s.scalar(select(ChargePoint).where(ChargePoint.identity == charger))
        evse = await s.scalar(select(EVSE).where(EVSE.uid == evse_uid))
        connector = await s.scalar(select(Connector).where(Connector.evse_pk == evse.id))
        row = ChargingSession(
            session_uid=uid,
            charge_point_id=cp.id,
            transaction_id=uid[:8],
            cpo_id=cp.cpo_id,
            location_id=cp.location_id,
            evse_pk=evse.id,
            connector_pk=connector.id,
            id_tag="TAG-1",
            start_time=start,
            end_time=start + timedelta(minutes=10) if ended else None,
            meter_start_wh=Decimal(0),
            meter_stop_wh=Decimal(1000) if ended else None,
            energy_wh=Decimal(1000),
            status="COMPLETED" if ended else "ACTIVE",
            pricing_state=PricingState.PENDING if ended else PricingState.NOT_READY,
            last_updated=start,
        )
        s.add(row)
        await s.flush()
        for m in range(11):
            s.add(
                MeterValue(session_id=row.id, timestamp=start + timedelta(minutes=m), value=Decimal(100 * m))
            )


async def test_list_filters_and_pricing_failures(cli, db: Database, tmp_path: Path) -> None:
    await _provision(cli, tmp_path)
    await _session(db, "aaaa1111-0000-4000-8000-000000000001", "AMS-1", "AMS-01-1", START, ended=True)
    await _session(
        db,
        "bbbb2222-0000-4000-8000-000000000002",
        "LDN-1",
        "LDN-01-1",
        START + timedelta(hours=1),
        ended=True,
    )
    await _session(
        db,
        "cccc3333-0000-4000-8000-000000000003",
        "AMS-1",
        "AMS-01-1",
        START + timedelta(days=2),
        ended=False,
    )
    assert await rate_pending(db, ()) == 1  # the London session has no tariff: pricing fails and says why

    failed = json.loads((await cli("sessions", "list", "--state", "failed", "--json")).stdout)
    assert [s["id"] for s in failed] == ["bbbb2222-0000-4000-8000-000000000002"]
    assert failed[0]["pricing_state"] == "failed" and "no tariff" in failed[0]["pricing_error"]
    table = (await cli("sessions", "list", "--state", "failed")).output
    assert "bbbb2222" in table and "aaaa1111" not in table
    assert "pricing failed for bbbb2222-0000-4000-8000-000000000002: no tariff for session" in table

    def ids(output: str) -> list[str]:
        return [s["id"][:4] for s in json.loads(output)]

    assert ids((await cli("sessions", "list", "--json")).stdout) == ["cccc", "bbbb", "aaaa"]  # newest first
    assert ids((await cli("sessions", "list", "--state", "priced", "--json")).stdout) == ["aaaa"]
    assert ids((await cli("sessions", "list", "--state", "ACTIVE", "--json")).stdout) == ["cccc"]
    assert ids((await cli("sessions", "list", "--cpo", "GB*LDN", "--json")).stdout) == ["bbbb"]
    assert ids((await cli("sessions", "list", "--charger", "AMS-1", "--json")).stdout) == ["cccc", "aaaa"]
    since = (START + timedelta(minutes=30)).isoformat()
    assert ids(
        (await cli("sessions", "list", "--since", since, "--until", "2026-06-11", "--json")).stdout
    ) == ["bbbb"]
    assert ids((await cli("sessions", "list", "--limit", "1", "--json")).stdout) == ["cccc"]

    for args, message in (
        (["--state", "stuck"], "--state 'stuck': expected one of"),
        (["--limit", "0"], "--limit 0: expected at least 1"),
        (["--cpo", "NL*XXX"], "unknown CPO NL*XXX"),
        (["--charger", "NOPE"], "unknown charger 'NOPE'"),
        (["--since", "yesterday"], "--since 'yesterday': expected an ISO 8601 date"),
        (["--since", "2026-06-11", "--until", "2026-06-10"], "is not before --until"),
    ):
        result = await cli("sessions", "list", *args, ok=False)
        assert result.exit_code == 1 and message in result.output, (args, result.output)
        assert "Traceback" not in result.output


async def test_show_by_prefix_with_meter_values_and_cdr(cli, db: Database, tmp_path: Path) -> None:
    await _provision(cli, tmp_path)
    await _session(db, "d1e2f3a4-0000-4000-8000-000000000001", "AMS-1", "AMS-01-1", START, ended=True)
    await _session(
        db,
        "d1e9f3a4-0000-4000-8000-000000000002",
        "AMS-1",
        "AMS-01-1",
        START + timedelta(hours=2),
        ended=True,
    )
    assert await rate_pending(db, ()) == 2
    async with db.session() as s:
        cdr_uid = await s.scalar(
            select(Cdr.cdr_uid)
            .join(ChargingSession, Cdr.session_id == ChargingSession.id)
            .where(ChargingSession.session_uid.startswith("d1e2"))
        )

    shown = json.loads((await cli("sessions", "show", "D1E2", "--json")).stdout)  # a prefix, any case
    assert shown["id"] == "d1e2f3a4-0000-4000-8000-000000000001" and shown["cdrs"] == [cdr_uid]
    assert shown["charger"] == "AMS-1" and shown["evse"] == "AMS-01-1" and shown["pricing_state"] == "priced"
    [energy] = shown["meter_values"]
    assert energy["measurand"] == "Energy.Active.Import.Register" and energy["samples"] == 11
    assert (energy["first"], energy["last"], energy["max"]) == ("0", "1000", "1000")
    assert (
        energy["first_at"] == START.isoformat()
        and energy["last_at"] == (START + timedelta(minutes=10)).isoformat()
    )

    text = (await cli("sessions", "show", "d1e2f3a4-0000-4000-8000-000000000001")).output
    assert cdr_uid in text and "Energy.Active.Import.Register" in text and "1.000 kWh" in text

    ambiguous = await cli("sessions", "show", "d1e", ok=False)
    assert ambiguous.exit_code == 1
    assert "session id 'd1e' is ambiguous: 2 ids start with it" in ambiguous.output
    unknown = await cli("sessions", "show", "ffff", ok=False)
    assert unknown.exit_code == 1 and "unknown session 'ffff'" in unknown.output
