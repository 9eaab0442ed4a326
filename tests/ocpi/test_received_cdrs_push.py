"""A CDR an external CPO posted to the hub as its eMSP is never pushed on (issue 14, item 4): not by the CDR hook
the receiver runs, not by the push scanner, and its session (no charger) neither. The rule is the push's own
(``cdrs.received``, ``sessions.charge_point_id``), proven beside a CDR and a session of the hub's own that the
same partner does get."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import select

from kernel.db.engine import Database
from kernel.models import Cdr, ChargingSession, OutboxMessage, PricingState, SessionStatus
from kernel.models.roaming import OcpiPartner
from kernel.timeutil import utcnow
from ocpi.push.cdr_push import enqueue_cdr
from ocpi.push.scanner import scan
from ocpi.push.session_push import enqueue_session_update
from tests.ocpi.cpo_partner_kit import add_cpo_partner, add_emsp_token, add_hosted_emsp
from tests.ocpi.received_cdrs_kit import cdr_body, cdrs_url, emsp_world, ion_headers, post_cdr
from tests.world.sites import seed_charge_point, seed_cpo, seed_location

if TYPE_CHECKING:
    from tests.ocpi.conftest import RunningHub


async def _ocpi_rows(db: Database) -> list[OutboxMessage]:
    async with db.session() as s:
        return list((await s.scalars(select(OutboxMessage).where(OutboxMessage.channel == "ocpi"))).all())


async def _emsp_partner_with_receivers(db: Database) -> int:
    """The eMSP partner DE*EMS, registered, with Sessions and CDRs Receivers; its party's pk."""
    partner_id = await add_cpo_partner(db, None, key="DE*EMS", role="EMSP", token_c="ems-c")
    async with db.session() as s:
        partner = await s.get(OcpiPartner, partner_id)
        assert partner is not None
        partner.endpoints = [
            {"identifier": m, "role": "RECEIVER", "url": f"http://emsp.test/ocpi/emsp/2.2.1/{m}"}
            for m in ("sessions", "cdrs")
        ]
        return partner.roles[0].party_pk


async def _row(db: Database, cpo: int, token: int, emsp: int, *, received: bool, charger: int | None) -> int:
    """A session and its CDR of ``token`` (the eMSP partner's card); ``received``: an external CPO's (posted to
    the hub), else the hub's own at ``charger``. The CDR's id."""
    now = utcnow()
    async with db.session() as s:
        session = ChargingSession(
            session_uid=f"S-{received}",
            charge_point_id=charger,
            transaction_id=f"T-{received}",
            cpo_id=cpo,
            token_id=token,
            status=SessionStatus.COMPLETED,
            start_time=now - timedelta(hours=1),
            end_time=now,
            pricing_state=PricingState.PRICED,
            last_updated=now,
        )
        s.add(session)
        await s.flush()
        cdr = Cdr(
            cdr_uid=f"C-{received}",
            session_id=session.id,
            cpo_id=cpo,
            emsp_id=emsp,
            token_id=token,
            received=received,
            currency="EUR",
            start_date_time=now - timedelta(hours=1),
            end_date_time=now,
            total_energy_kwh=Decimal(10),
            total_time_hours=Decimal(1),
            total_cost_excl_vat=Decimal("3.00"),
            data={"id": f"C-{received}"},
            created_at=now,
            last_updated=now,
        )
        s.add(cdr)
        await s.flush()
        return cdr.id


async def test_the_push_leaves_a_received_cdr_and_its_session_alone_but_not_the_hubs_own(
    db: Database,
) -> None:
    emsp = await _emsp_partner_with_receivers(db)
    card = await add_emsp_token(db, emsp, "DE0EMS0001")
    hosted = await seed_cpo(db, "NL", "AMP")
    charger = await seed_charge_point(db, hosted, await seed_location(db, hosted), "CP-1")
    external = await seed_cpo(db, "BE", "ION", "an external CPO's party")
    own = await _row(db, hosted, card, emsp, received=False, charger=charger)
    theirs = await _row(db, external, card, emsp, received=True, charger=None)
    async with db.session() as s:
        assert await enqueue_cdr(theirs, s) == 0
        own_session, their_session = (
            await s.scalars(select(Cdr.session_id).where(Cdr.id.in_((own, theirs))).order_by(Cdr.id))
        ).all()
        assert await enqueue_session_update(their_session, s) == 0
    await scan(db)  # a full sweep: the safety net queues what no hook did
    rows = await _ocpi_rows(db)
    assert sorted((r.payload["module"], r.payload["method"]) for r in rows) == [
        ("cdrs", "POST"),
        ("sessions", "PUT"),
    ]
    assert {r.payload["body"]["id"] for r in rows if r.payload["module"] == "cdrs"} == {"C-False"}
    assert {r.payload["path"].rsplit("/", 1)[-1] for r in rows if r.payload["module"] == "sessions"} == {
        "S-False"
    }
    assert own_session != their_session


async def test_a_posted_cdr_reaches_no_partner(hub: RunningHub) -> None:
    """Through the receiver: the CDR hook (OCPI's push first) runs in the post's transaction, then the scanner
    sweeps and the dispatcher runs; nothing is queued, for any partner."""
    await emsp_world(hub.db)
    await add_hosted_emsp(hub.db, "NL*EV2")
    async with hub.http() as client:
        reply, _ = await post_cdr(
            client, cdrs_url(hub.url), cdr_body(start=utcnow() - timedelta(hours=3)), ion_headers()
        )
    assert reply.status_code == 201, reply.text
    assert await hub.component.scan_once() == 0
    await hub.dispatched()
    assert await _ocpi_rows(hub.db) == []
