"""Fleet isolation after a token moves (issue 14): a session belongs to the fleet its CDR is billed to (the
token's fleet when the CDR was made), so the fleet a token left keeps its sessions, with the driver and vehicle
they had, and the fleet it joined sees only the sessions since (and the unpriced ones, by the token's fleet now)
-- in the sessions list and CSV, a session's page, the filter choices and the monthly report, over HTTP."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

from fastapi import FastAPI
from sqlalchemy import select

from evhub import lifecycle
from kernel.db.engine import Database
from kernel.models import ChargingSession, Token
from kernel.timeutil import utcnow
from tests.portal.helpers import login, portal_client
from tests.world.fleets import add_fleet_with_manager, add_session, add_token, base_world


async def _uid(db: Database, session_id: int) -> str:
    async with db.session() as s:
        sess = await s.get(ChargingSession, session_id)
        assert sess is not None
        return sess.session_uid


def _driver_options(page: str) -> set[str]:
    form = page.split('name="driver"', 1)[1].split("</select>", 1)[0]
    return {o for o in re.findall(r"<option[^>]*>([^<]*)</option>", form) if o != "all"}


async def test_a_fleet_keeps_the_sessions_of_a_token_that_moved_and_the_new_fleet_does_not_see_them(
    db: Database, app: FastAPI
) -> None:
    world = await base_world(db)
    await add_fleet_with_manager(db, world, "Acme", "boss@acme.test")
    await add_fleet_with_manager(db, world, "Globex", "boss@globex.test")
    await add_token(db, world, "Acme", "ACME01", driver="Alice", vehicle="Van 1")
    await add_token(db, world, "Globex", "GLOBEX1", driver="Gina", vehicle="Truck")
    start = utcnow().replace(hour=6, minute=0, second=0, microsecond=0) - timedelta(days=3)
    old_id, _ = await add_session(db, world, "ACME01", start, "12.5")  # Acme's, Alice's
    async with db.session() as s:  # the token moves to Globex and becomes Gus's (the CLI's token update)
        token = await s.scalar(select(Token).where(Token.uid == "ACME01"))
        assert token is not None
        changes = lifecycle.TokenChanges(fleet="Globex", driver_name="Gus", vehicle="Truck 2")
        await lifecycle.update_token(s, token, changes)
    new_id, _ = await add_session(db, world, "ACME01", start + timedelta(days=1), "20")  # Globex's, Gus's
    open_id, _ = await add_session(db, world, "ACME01", start + timedelta(days=2), "3", priced=False)
    old, new, unpriced = [await _uid(db, i) for i in (old_id, new_id, open_id)]
    month = start.strftime("%Y-%m")
    seen: dict[str, dict[str, str]] = {}
    for manager in ("boss@acme.test", "boss@globex.test"):
        async with portal_client(app) as client:
            await login(client, manager)
            rows = list(csv.DictReader(io.StringIO((await client.get("/portal/sessions.csv")).text)))
            seen[manager] = {r["session_id"]: f"{r['driver']} / {r['vehicle']}" for r in rows}
            status = {
                i: (await client.get(f"/portal/sessions/{i}")).status_code for i in (old_id, new_id, open_id)
            }
            page = (await client.get("/portal/sessions")).text
            report = (await client.get("/portal/reports.csv", params={"month": month})).text
            filtered = (await client.get("/portal/sessions.csv", params={"driver": "Alice"})).text
            if manager == "boss@acme.test":
                assert status == {old_id: 200, new_id: 404, open_id: 404}
                assert _driver_options(page) == {"Alice"}  # the token's old driver, still Acme's
                assert old in report and new not in report and unpriced not in report
                assert old in filtered
            else:
                assert status == {old_id: 404, new_id: 200, open_id: 200}
                assert _driver_options(page) == {"Gina", "Gus"}
                assert old not in report and new in report and "Alice" not in report
                assert old not in filtered
    assert seen["boss@acme.test"] == {old: "Alice / Van 1"}
    assert seen["boss@globex.test"] == {new: "Gus / Truck 2", unpriced: "Gus / Truck 2"}
