"""Issue 13: the token the hub presents to a partner is sealed at rest (kernel/sealed.py), and the hub still
presents the right one: the handshake both ways, a push the partner accepts only with its own token, a rotation.
At start the hub seals rows stored before sealing (and rows of an older key) and refuses a key that opens none.
And the CiString lookups (upper(id)) have expression indexes the planner uses (PostgreSQL EXPLAIN)."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.dialects import postgresql, sqlite

from evhub.app import RunningHub
from kernel import sealed
from kernel.db.engine import Database
from kernel.models import Cdr, ChargingSession, Location
from kernel.models.roaming import OcpiAuthorization, OcpiPartner
from kernel.sealed import DEVELOPMENT_WARNING, UnsealError
from kernel.settings import load_settings
from ocpi import credentials
from tests.conftest import free_port
from tests.ocpi._helpers import connect
from tests.world.sites import seed_cpo, seed_location

KEY = "the-hub-sealing-key-for-tests-1"
OLD = "the-previous-sealing-key-0000"


@pytest.fixture(autouse=True)
def sealing_key() -> Iterator[None]:
    """This module's hubs seal with KEY (the hub's keyring is the process's); the next test gets it back."""
    before = sealed.keyring()
    sealed.configure(KEY)
    yield
    sealed.configure(",".join(before.keys))


async def _stored(db: Database, partner_id: int) -> str:
    """The column as the database holds it (raw SQL: no ORM, no unsealing)."""
    async with db.engine.connect() as conn:
        query = text("SELECT outgoing_token FROM ocpi_partners WHERE id = :id")
        value = (await conn.execute(query, {"id": partner_id})).scalar_one()
    assert isinstance(value, str)
    return value


async def _outgoing(db: Database, partner_id: int) -> str | None:
    async with db.session() as s:
        partner = await s.get(OcpiPartner, partner_id)
        assert partner is not None
        return partner.outgoing_token


def _presented(header: str) -> str:
    assert header.startswith("Token ")
    return base64.b64decode(header.removeprefix("Token ")).decode()


async def test_partner_registers_and_is_pushed_to_with_its_sealed_token(hub, sim):
    cpo = await seed_cpo(hub.db)
    await seed_location(hub.db, cpo, "LOC1")
    partner_id = await connect(hub, sim)  # the partner registers: its token B is what the hub presents
    stored = await _stored(hub.db, partner_id)
    assert sim.my_token and sim.my_token not in stored and stored.startswith("v1:")
    assert await _outgoing(hub.db, partner_id) == sim.my_token
    # a push round trip: the simulator answers 401 to any other token
    assert await hub.component.scan_once() >= 1
    await sim.wait_for(lambda: "LOC1" in sim.locations)
    puts = [r for r in sim.log if r.method == "PUT" and "/locations/" in r.path]
    assert puts and {_presented(r.headers["authorization"]) for r in puts} == {sim.my_token}


async def test_hub_registers_and_rotates_with_sealed_tokens(hub, sim):
    await seed_cpo(hub.db)
    partner = await credentials.register(hub.db, hub.platform, sim.versions_url, sim.token_a)
    token_c = sim.my_token  # what the simulator answered: the hub presents it from now on
    assert token_c and token_c not in await _stored(hub.db, partner.id)
    assert await _outgoing(hub.db, partner.id) == token_c
    await credentials.rotate(hub.db, hub.platform, partner.id)  # PUT with the unsealed C, keep the new C
    assert sim.my_token != token_c
    stored = await _stored(hub.db, partner.id)
    assert sim.my_token not in stored and token_c not in stored
    assert await _outgoing(hub.db, partner.id) == sim.my_token
    assert await sim.fetch_all("locations") == []  # and the partner still reaches the hub


async def _start(db: Database, secrets_key: str) -> RunningHub:
    settings = load_settings(
        _env_file=None,
        database_url=db.url,
        http_host="127.0.0.1",
        http_port=free_port(),
        ocpp_host="127.0.0.1",
        ocpp_port=0,
        ocpp_ping_interval=0,
        auto_migrate=True,
        secrets_key=secrets_key,
    )
    running = RunningHub(settings, components=[])
    try:
        await running.start()
    except BaseException:
        await running.stop()
        raise
    return running


async def _partner(db: Database, token: str) -> int:
    async with db.session() as s:
        partner = OcpiPartner(name="Legacy eMSP", outgoing_token=token)
        s.add(partner)
        await s.flush()
        return partner.id


async def test_hub_start_seals_legacy_rows_and_rows_of_the_old_key(db: Database) -> None:
    legacy_id = await _partner(db, "legacy-token-stored-in-plain-text")
    async with db.engine.begin() as conn:  # as stored before sealing
        await conn.execute(
            text("UPDATE ocpi_partners SET outgoing_token = :t WHERE id = :id"),
            {"t": "legacy-token-stored-in-plain-text", "id": legacy_id},
        )
    sealed.configure(OLD)
    rotated_id = await _partner(db, "a-token-sealed-with-the-old-key")
    running = await _start(db, f"{KEY},{OLD}")  # rotation: the new key first, the old one second
    await running.stop()
    legacy = await _stored(db, legacy_id)
    assert legacy.startswith("v1:") and "legacy-token" not in legacy
    sealed.configure(KEY)  # the old key may go: every row opens with the new one
    assert await _outgoing(db, legacy_id) == "legacy-token-stored-in-plain-text"
    assert await _outgoing(db, rotated_id) == "a-token-sealed-with-the-old-key"


async def test_hub_refuses_to_start_with_a_key_that_opens_no_token(db: Database) -> None:
    partner_id = await _partner(db, "a-token-sealed-with-the-test-key")
    with pytest.raises(UnsealError) as err:
        await _start(db, "an-unrelated-key-for-this-test")
    message = str(err.value)
    assert f"OCPI partner {partner_id} ('Legacy eMSP')" in message and "EVHUB_SECRETS_KEY" in message
    assert "a-token-sealed-with-the-test-key" not in message


async def test_unset_key_warns_once_at_start(
    db: Database, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sealed, "_warned", False)
    with caplog.at_level(logging.WARNING, logger="kernel.sealed"):
        for _ in range(2):  # two hubs in one process: one warning, one keyring
            running = await _start(db, "")
            await running.stop()
    assert [r.getMessage() for r in caplog.records if r.name == "kernel.sealed"] == [DEVELOPMENT_WARNING]
    assert sealed.keyring().development


LOOKUPS = {
    "ix_sessions_session_uid_upper": select(ChargingSession).where(
        func.upper(ChargingSession.session_uid) == "SESS-1"
    ),
    "ix_cdrs_cdr_uid_upper": select(Cdr).where(func.upper(Cdr.cdr_uid) == "CDR-1"),
    "ix_locations_cpo_id_ocpi_id_upper": select(Location).where(
        Location.cpo_id == 1, func.upper(Location.ocpi_id) == "LOC1"
    ),
    "ix_ocpi_authorizations_token_uid_upper": select(OcpiAuthorization).where(
        func.upper(OcpiAuthorization.token_uid).in_(["CARD-1", "04A1B2"])
    ),
}


@pytest.mark.parametrize("index", list(LOOKUPS))
async def test_ci_string_lookups_use_their_expression_index(db: Database, index: str) -> None:
    dialect = sqlite.dialect() if db.is_sqlite else postgresql.dialect()
    sql = str(LOOKUPS[index].compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    async with db.engine.connect() as conn:
        if db.is_sqlite:
            rows = await conn.execute(text("EXPLAIN QUERY PLAN " + sql))
            plan = "\n".join(str(row[-1]) for row in rows)
        else:
            # statistics of the empty table, whatever autovacuum or an earlier test left on this database
            # (stale ones made the planner take another index once); rolled back below with the rest
            await conn.execute(text(f"ANALYZE {LOOKUPS[index].get_final_froms()[0].name}"))
            await conn.execute(
                text("SET enable_seqscan = off")
            )  # empty tables: make the planner show its index
            plan = "\n".join(row[0] for row in await conn.execute(text("EXPLAIN " + sql)))
        await conn.rollback()
    assert index in plan, plan
