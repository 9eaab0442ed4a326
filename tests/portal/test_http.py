"""The portal over HTTP (the app served in-process): login, CSRF, lockout, fleet isolation, tokens, CSV export,
reports."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from kernel.clock import pinned
from kernel.db.engine import Database
from kernel.models import FleetManager, Token
from kernel.timeutil import utcnow
from portal.admin import AdminError, add_fleet, add_manager
from tests.portal.helpers import csrf_token, login, portal_client
from tests.world.fleets import PASSWORD, add_fleet_with_manager, add_session, add_token, base_world, cost_incl


async def _world(db: Database):
    world = await base_world(db)
    await add_fleet_with_manager(db, world, "Acme", "boss@acme.test")
    await add_fleet_with_manager(db, world, "Globex", "boss@globex.test")
    await add_token(db, world, "Acme", "ACME01", driver="Alice", email="alice@acme.test", vehicle="Van 1")
    await add_token(db, world, "Acme", "ACME02", driver="Bob", vehicle="Van 2")
    await add_token(db, world, "Globex", "GLOBEX1", driver="Gina", vehicle="Truck")
    return world


async def test_login_logout_csrf_and_secure_cookies(db: Database, app: FastAPI) -> None:
    world = await _world(db)
    assert world.fleets
    async with portal_client(app) as client:
        first = await client.get("/portal/", follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"] == "/portal/login"
        # A login POST without the login form's token is refused.
        bad = await client.post("/portal/login", data={"email": "boss@acme.test", "password": PASSWORD})
        assert bad.status_code == 403
        ok = await login(client, "boss@acme.test")
        assert ok.status_code == 303
        cookie = ok.headers.get_list("set-cookie")
        session_cookie = next(c for c in cookie if c.startswith("evhub_portal="))
        assert (
            "HttpOnly" in session_cookie
            and "SameSite=lax" in session_cookie
            and "Path=/portal" in session_cookie
        )
        assert "Secure" not in session_cookie  # plain http here
        home = await client.get("/portal/")
        assert home.status_code == 200 and "Acme" in home.text
        assert "default-src 'self'" in home.headers["content-security-policy"]
        # POST without / with a wrong CSRF token is refused.
        assert (await client.post("/portal/drivers", data={"name": "X"})).status_code == 403
        assert (
            await client.post("/portal/drivers", data={"name": "X", "csrf_token": "nope"})
        ).status_code == 403
        # A cross-origin POST is refused even with the token.
        token = csrf_token(home.text)
        cross = await client.post(
            "/portal/drivers",
            data={"name": "X", "csrf_token": token},
            headers={"Origin": "https://evil.example"},
        )
        assert cross.status_code == 403
        # A tampered session cookie is not accepted.
        raw = client.cookies.get("evhub_portal", path="/portal")
        client.cookies.set("evhub_portal", raw[:-2] + "xx", path="/portal")
        assert (await client.get("/portal/", follow_redirects=False)).status_code == 303
        client.cookies.set("evhub_portal", raw, path="/portal")
        out = await client.post("/portal/logout", data={"csrf_token": token})
        assert out.status_code == 303
        # The old cookie value no longer works (the session is gone server-side).
        client.cookies.set("evhub_portal", raw, path="/portal")
        assert (await client.get("/portal/", follow_redirects=False)).status_code == 303
    # Behind an https proxy the cookie is Secure.
    async with portal_client(app, headers={"X-Forwarded-Proto": "https"}) as client:
        page = await client.get("/portal/login")
        assert all("Secure" in c for c in page.headers.get_list("set-cookie"))


async def test_lockout_after_repeated_failures(db: Database, app: FastAPI) -> None:
    """Five wrong passwords lock the account from that client (429 with Retry-After, even for the right
    password); issue 15: the lock is per (account, client), so another client still logs in, and it lifts."""
    await _world(db)
    async with portal_client(app) as client:
        for _ in range(4):
            assert (await login(client, "boss@acme.test", "wrong password")).status_code == 401
        assert (await login(client, "boss@acme.test", "wrong password")).status_code == 429
        # Even the right password is refused while locked.
        locked = await login(client, "boss@acme.test")
        assert locked.status_code == 429 and "locked" in locked.text
        assert 0 < int(locked.headers["retry-after"]) <= 15 * 60
        assert (await login(client, "nobody@acme.test")).status_code == 401
    async with db.session() as db_session:
        m = (
            await db_session.execute(select(FleetManager).where(FleetManager.email == "boss@acme.test"))
        ).scalar_one()
        assert m.locked_until is None  # the account itself is not locked
        assert m.password_hash.startswith("$argon2id$")
    other_client = httpx.ASGITransport(app=app, client=("10.9.8.7", 4000))
    async with httpx.AsyncClient(transport=other_client, base_url="http://portal.test") as other:
        assert (await login(other, "boss@acme.test")).status_code == 303
    with pinned(utcnow() + timedelta(minutes=16)):
        async with portal_client(app) as client:
            assert (await login(client, "boss@acme.test")).status_code == 303


async def test_admin_functions_refuse_duplicates(db: Database) -> None:
    await add_fleet(db, "Solo", "eur")
    await add_manager(db, "Solo", "Me@Solo.test", "long enough pw")
    for call in (
        add_fleet(db, "Solo", "EUR"),
        add_manager(db, "Solo", "me@solo.test", "long enough pw"),
        add_manager(db, "Nope", "x@solo.test", "long enough pw"),
        add_manager(db, "Solo", "y@solo.test", "short"),
    ):
        try:
            await call
        except AdminError:
            continue
        raise AssertionError("expected AdminError")


async def test_fleet_isolation_over_http(db: Database, app: FastAPI) -> None:
    world = await _world(db)
    start = utcnow().replace(hour=8, minute=0, second=0, microsecond=0)
    acme_sid, _ = await add_session(db, world, "ACME01", start, "12.5")
    globex_sid, _ = await add_session(db, world, "GLOBEX1", start, "30")
    async with portal_client(app) as client:
        await login(client, "boss@acme.test")
        home = await client.get("/portal/")
        token = csrf_token(home.text)
        pages = {
            p: (await client.get(p)).text
            for p in ("/portal/", "/portal/tokens", "/portal/drivers", "/portal/sessions", "/portal/reports")
        }
        for path, text in pages.items():
            assert "GLOBEX1" not in text and "Gina" not in text and "Truck" not in text, path
        assert "ACME01" in pages["/portal/tokens"]
        for path in ("/portal/sessions.csv", "/portal/reports.csv"):
            body = (await client.get(path)).text
            assert "GLOBEX1" not in body and "ACME01" in body, path
        assert (await client.get(f"/portal/sessions/{globex_sid}")).status_code == 404
        assert (await client.get(f"/portal/sessions/{acme_sid}")).status_code == 200
        gid = world.tokens["GLOBEX1"]
        for action in ("block", "unblock", "limit", "assign"):
            r = await client.post(
                f"/portal/tokens/{gid}/{action}", data={"csrf_token": token, "monthly_limit": "1"}
            )
            assert r.status_code == 404, action
    async with db.session() as db_session:
        g = await db_session.get(Token, gid)
        assert g is not None and g.valid and g.monthly_limit is None


async def test_tokens_block_limit_assign(db: Database, app: FastAPI) -> None:
    world = await _world(db)
    tid = world.tokens["ACME02"]
    async with portal_client(app, follow_redirects=True) as client:
        await login(client, "boss@acme.test")
        token = csrf_token((await client.get("/portal/tokens")).text)
        await client.post(
            "/portal/drivers", data={"csrf_token": token, "name": "Carol", "email": "carol@acme.test"}
        )
        await client.post("/portal/vehicles", data={"csrf_token": token, "label": "Van 9", "plate": "B-EV 9"})
        r = await client.post(f"/portal/tokens/{tid}/block", data={"csrf_token": token})
        assert "blocked" in r.text
        r = await client.post(
            f"/portal/tokens/{tid}/limit", data={"csrf_token": token, "monthly_limit": "150,5"}
        )
        assert r.status_code == 200
        page = (await client.get("/portal/tokens")).text
        carol = re.search(r'<option value="(\d+)"\s*>Carol</option>', page)
        van = re.search(r'<option value="(\d+)"\s*>Van 9</option>', page)
        assert carol and van
        await client.post(
            f"/portal/tokens/{tid}/assign",
            data={"csrf_token": token, "driver_id": carol.group(1), "vehicle_id": van.group(1)},
        )
        r = await client.post(
            "/portal/tokens", data={"csrf_token": token, "uid": "NEW123", "visual_number": "N-1"}
        )
        assert "NEW123" in r.text
    async with db.session() as db_session:
        tok = await db_session.get(Token, tid)
        assert tok is not None
        assert tok.valid is False
        assert tok.monthly_limit == Decimal("150.50") and tok.limit_currency == "EUR"
        assert (tok.driver_name, tok.driver_email, tok.vehicle) == ("Carol", "carol@acme.test", "Van 9")
        new = (await db_session.execute(select(Token).where(Token.uid == "NEW123"))).scalar_one()
        assert new.fleet_id == world.fleets["Acme"] and new.valid


async def test_sessions_filter_pagination_csv_and_report(db: Database, app: FastAPI) -> None:
    world = await _world(db)
    day = datetime(2025, 3, 10, 7, 0, tzinfo=UTC)
    expected_alice = []
    for i in range(30):
        uid = "ACME01" if i % 3 else "ACME02"
        kwh = str(10 + i)
        await add_session(db, world, uid, day + timedelta(hours=i * 5), kwh)
        if uid == "ACME01":
            expected_alice.append(kwh)
    await add_session(db, world, "ACME01", day + timedelta(days=30), "99")  # April: outside the filter
    async with portal_client(app) as client:
        await login(client, "boss@acme.test")
        q = {"from": "2025-03-01", "to": "2025-03-31", "driver": "Alice"}
        page1 = await client.get("/portal/sessions", params=q)
        assert '<span id="total-count">20</span>' in page1.text
        assert page1.text.count("data-session=") == 20
        all_march = await client.get("/portal/sessions", params={"from": "2025-03-01", "to": "2025-03-31"})
        assert '<span id="total-count">30</span>' in all_march.text
        assert all_march.text.count("data-session=") == 25 and "Page 1 of 2" in all_march.text
        page2 = await client.get(
            "/portal/sessions", params={"from": "2025-03-01", "to": "2025-03-31", "page": 2}
        )
        assert page2.text.count("data-session=") == 5
        export = await client.get("/portal/sessions.csv", params=q)
        assert export.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(export.text)))
        assert len(rows) == 20 and {r["driver"] for r in rows} == {"Alice"}
        assert sorted(Decimal(r["energy_kwh"]) for r in rows) == sorted(Decimal(k) for k in expected_alice)
        assert all(
            Decimal(r["cost_incl_vat"]) == cost_incl(str(Decimal(r["energy_kwh"]).normalize())) for r in rows
        )
        # The export link on the page carries exactly the filter.
        link = re.search(r'id="csv-export" href="([^"]+)"', page1.text)
        assert link and "driver=Alice" in link.group(1).replace("&amp;", "&")
        # Monthly report: HTML and CSV agree on the total.
        report = await client.get("/portal/reports", params={"month": "2025-03"})
        total = sum((cost_incl(str(10 + i)) for i in range(30)), Decimal(0))
        assert f'id="report-total-EUR">{total}<' in report.text
        rcsv = list(
            csv.reader(
                io.StringIO((await client.get("/portal/reports.csv", params={"month": "2025-03"})).text)
            )
        )
        assert rcsv[-1][0] == "TOTAL" and Decimal(rcsv[-1][13]) == total
        assert len(rcsv) == 1 + 30 + 1
        # Session detail shows the tariff engine's explanation lines.
        sid = re.search(r'href="/portal/sessions/(\d+)"', page1.text)
        assert sid
        detail = await client.get(f"/portal/sessions/{sid.group(1)}")
        assert "Price breakdown" in detail.text and "ENERGY" in detail.text and "FLAT" in detail.text
