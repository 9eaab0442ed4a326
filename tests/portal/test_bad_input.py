"""Issue 15 item 5 on ``/portal``: a logged-in manager's odd query values (Unicode digits, which
``str.isdigit`` accepts and ``int`` refuses or reads as another digit; twenty-digit numbers, past every integer
column; dates at the calendar's end) are never a 500, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from kernel.db.engine import Database
from tests.portal.helpers import login, portal_client
from tests.world.fleets import add_fleet_with_manager, add_token, base_world

ODD = ["²", "٣", "99999999999999999999", "-1", "1e9", " 7 ", "\u00a0"]


@pytest.mark.parametrize(
    "path",
    [
        "/portal/sessions?page={v}",
        "/portal/sessions?location={v}",
        "/portal/sessions.csv?location={v}",
        "/portal/price?location={v}",
        "/portal/reports?month={v}",
        "/portal/sessions?from=9999-12-31&to=9999-12-31",
        "/portal/sessions?from=0001-01-01&to=0001-01-01",
    ],
)
async def test_odd_query_values_are_answered_not_500(db: Database, app: FastAPI, path: str) -> None:
    world = await base_world(db)
    await add_fleet_with_manager(db, world, "Acme", "boss@acme.test")
    await add_token(db, world, "Acme", "ACME01", driver="Alice", vehicle="Van 1")
    async with portal_client(app) as client:
        assert (await login(client, "boss@acme.test")).status_code in (200, 303)
        for value in ODD:
            r = await client.get(path.format(v=value), follow_redirects=False)
            assert r.status_code < 500, (path, value, r.status_code, r.text[:300])
            assert r.status_code in (200, 303, 400, 404, 422), (path, value, r.status_code)
