"""Issue 13, L1 (token uids longer than OCPP 1.6's idTag): an OCPI token uid is a CiString(36), a 1.6 idTag a
CiString20. What must hold: a START_SESSION with a 36-character uid reaches a 1.6 charger as a deterministic
20-character idTag (``kernel.id_tags``); the charger starts; the idTag it presents (Authorize,
StartTransaction) resolves to the eMSP's token, so the session and the CDR name the 36-character uid."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from cpo_gateway.authorization import Authorizer
from evhub.app import RunningHub
from kernel.db.engine import Database
from kernel.id_tags import id_tag_for, is_mapped, ocpp16_id_tag
from kernel.models import ChargingSession, Token
from simulators.chargepoints import ChargerFleet
from simulators.emsp import EmspSimulator
from tests.world.roaming import roaming_world

LONG_UID = "bdf21bce-fc97-11e8-8eb2-f2801f1b9fd1"  # the uid of the spec's token_example_1_app_user.json


def test_the_mapping_is_a_deterministic_20_character_id_tag() -> None:
    """L1: a uid of 20 characters or fewer is sent as it is; a longer one maps to ``EVH`` + 17 upper-case hex
    digits, the same for every casing of the (CiString) token key, different for another eMSP's same uid;
    2.0.1 (idToken of 36) is not mapped."""
    tag = ocpp16_id_tag("DE", "EMS", LONG_UID)
    assert len(tag) == 20 and tag.startswith("EVH") and is_mapped(tag)
    assert tag == ocpp16_id_tag("de", "ems", LONG_UID.upper())
    assert tag != ocpp16_id_tag("NL", "EMS", LONG_UID)
    assert ocpp16_id_tag("DE", "EMS", "A" * 20) == "A" * 20
    assert not is_mapped("DE0EMS0000E2E")
    assert id_tag_for("2.0.1", "DE", "EMS", LONG_UID) == LONG_UID


@pytest.fixture
async def running(db: Database) -> AsyncIterator[tuple[RunningHub, EmspSimulator, ChargerFleet]]:
    async with roaming_world(db, name="long-uid eMSP", password="long-uid-password") as world:
        yield world


async def test_start_session_with_a_36_character_uid_on_a_1_6_charger(running: Any, db: Database) -> None:
    """L1: START_SESSION for a 36-character APP_USER uid on a 1.6 charger is ACCEPTED by the charger (it got
    a valid 20-character idTag, no ``too long`` failure); the session it opens belongs to the eMSP's token and
    names the 36-character uid; the idTag presented again (Authorize) resolves to the same token."""
    hub, sim, fleet = running
    pricing = hub.hub.services.pricing
    token = sim.make_token(LONG_UID, token_type="APP_USER")
    assert (await sim.push_token(token)).status_code == 200
    expected_tag = ocpp16_id_tag("DE", "EMS", LONG_UID)

    ref, answer = await sim.command(
        "START_SESSION",
        {"token": token, "location_id": "AMS-CENTRAAL", "evse_uid": "AMS-01-1", "connector_id": "1"},
    )
    assert answer["result"] == "ACCEPTED"
    await sim.wait_for(lambda: ref in sim.command_results, timeout=20)
    assert sim.command_results[ref]["result"] == "ACCEPTED"

    await sim.wait_for(lambda: any(s.get("status") == "ACTIVE" for s in sim.sessions.values()), timeout=30)
    session_id = next(iter(sim.sessions))
    assert sim.sessions[session_id]["cdr_token"]["uid"] == LONG_UID
    async with db.session() as s:
        cs = await s.scalar(select(ChargingSession).where(ChargingSession.session_uid == session_id))
        assert cs is not None and cs.id_tag == expected_tag  # what the charger was sent and presented
        stored = await s.scalar(select(Token).where(Token.uid == LONG_UID))
        assert stored is not None and cs.token_id == stored.id
    assert sim.sessions[session_id]["auth_method"] == "COMMAND"

    auth = await Authorizer(db).authorize(expected_tag.lower(), charge_point_id=cs.charge_point_id)
    assert auth.accepted and auth.token_id == stored.id

    _stop_ref, stop_answer = await sim.stop_session(session_id)
    assert stop_answer["result"] == "ACCEPTED"
    await sim.wait_for(lambda: fleet.chargers[0].stats.sessions_completed == 1, timeout=30)
    assert pricing is not None
    for _ in range(150):
        await pricing.run_once()
        if sim.cdrs:
            break
        await asyncio.sleep(0.2)
    assert len(sim.cdrs) == 1
    assert sim.cdrs[0]["cdr_token"]["uid"] == LONG_UID
