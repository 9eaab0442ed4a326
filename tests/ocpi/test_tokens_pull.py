"""Tokens pull: after registration and periodically the hub GETs the eMSP's token list (its tokens Sender),
page by page following Link, and stores the tokens as the PUT receiver does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from kernel.models import Token
from kernel.models.roaming import OcpiPartner
from kernel.timeutil import utcnow
from tests.ocpi._helpers import connect, wait_until
from tests.world.sites import seed_cpo


def _stamp(minutes: int) -> str:
    return (datetime(2026, 3, 1, 8, 0, tzinfo=UTC) + timedelta(minutes=minutes)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


async def _count(db) -> int:  # type: ignore[no-untyped-def]
    async with db.session() as s:
        return await s.scalar(select(func.count()).select_from(Token)) or 0


async def test_token_list_is_pulled_after_registration_with_pagination(hub, sim):
    await seed_cpo(hub.db)
    sim.token_page_limit = 40
    for n in range(95):
        token = sim.make_token(f"PULL-{n:03d}", whitelist="ALWAYS" if n % 2 else "ALLOWED")
        token["last_updated"] = _stamp(n)
        sim.tokens[(token["uid"], token["type"])] = token
    foreign = sim.make_token("FOREIGN-1")
    foreign.update(country_code="FR", party_id="XXX")  # not one of the partner's roles: never stored
    sim.tokens[("FOREIGN-1", "RFID")] = foreign
    sim.tokens[("BROKEN", "RFID")] = {"uid": "BROKEN", "type": "RFID", "last_updated": _stamp(1)}
    partner_id = await connect(hub, sim)

    async def all_stored() -> bool:
        return await _count(hub.db) == 95

    await wait_until(all_stored, "95 tokens pulled and stored")
    gets = [r for r in sim.log if r.method == "GET" and r.path.endswith("/tokens")]
    assert len(gets) == 3  # 97 items, 40 per page, Link followed twice
    assert gets[0].headers["ocpi-to-party-id"] == "EMS" and gets[0].headers["ocpi-from-party-id"] == "CPO"
    async with hub.db.session() as s:
        t = await s.scalar(select(Token).where(Token.uid == "PULL-001"))
        assert (t.country_code, t.party_id, t.whitelist, t.valid) == ("DE", "EMS", "ALWAYS", True)
        assert t.emsp_id is not None and t.contract_id == sim.tokens[("PULL-001", "RFID")]["contract_id"]
        assert await s.scalar(select(Token).where(Token.uid == "FOREIGN-1")) is None
        partner = await s.get(OcpiPartner, partner_id)
        first_pull = partner.tokens_pulled_at
        assert first_pull is not None
    # the pulled token is the same row a PUT updates, and the eMSP reads it back through the receiver
    r = await sim.push_token(
        {**sim.tokens[("PULL-001", "RFID")], "valid": False, "last_updated": _stamp(500)}
    )
    assert r.json()["status_code"] == 1000
    assert await _count(hub.db) == 95

    # periodic: nothing due yet; once the interval passed, only what changed since the last pull is asked
    assert await hub.component.pull_tokens_once() == 0
    changed = sim.make_token("PULL-NEW")
    changed["last_updated"] = (utcnow() + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    sim.tokens[("PULL-NEW", "RFID")] = changed
    hub.component.tokens.interval = timedelta(0)
    assert await hub.component.pull_tokens_once() == 1
    last = [r for r in sim.log if r.method == "GET" and r.path.endswith("/tokens")][-1]
    assert "date_from=" in last.query and "date_from=" not in gets[0].query
    assert await _count(hub.db) == 96
    # a full pull never overwrites a token updated later (by a PUT) with an older copy
    sim.tokens[("PULL-001", "RFID")] = {
        **sim.tokens[("PULL-001", "RFID")],
        "valid": True,
        "last_updated": _stamp(1),
    }
    result = await hub.component.tokens.pull(partner_id, full=True)
    assert result.complete and result.pages == 3 and result.stored == 96
    async with hub.db.session() as s:
        t = await s.scalar(select(Token).where(Token.uid == "PULL-001"))
        assert t.valid is False


async def test_partner_without_token_list_is_tolerated(hub, sim, sim2):
    await seed_cpo(hub.db)
    sim.offer_tokens_sender = False  # no tokens Sender endpoint at all
    sim2.offer_token_list = False  # advertises one, answers 404
    p1 = await connect(hub, sim)
    p2 = await connect(hub, sim2)  # returns once the pull the registration kicked off is over
    assert await hub.component.pull_tokens_once() == 0
    r1 = await hub.component.tokens.pull(p1)
    r2 = await hub.component.tokens.pull(p2)
    assert not r1.supported and not r2.supported and r2.error and "404" in r2.error
    async with hub.db.session() as s:
        assert (await s.get(OcpiPartner, p1)).tokens_pulled_at is None  # nothing to pull from
        assert (await s.get(OcpiPartner, p2)).tokens_pulled_at is not None  # asked again after the interval
    # the partners still work: tokens pushed by PUT are stored
    await sim2.push_token(sim2.make_token("PUSHED-1"))
    assert await _count(hub.db) == 1
