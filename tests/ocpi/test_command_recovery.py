"""Commands waiting for a charger survive a process restart: the pending command is a row, and the next
process POSTs the CommandResult (TIMEOUT, or the recorded answer) through the outbox once the deadline passed."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI
from sqlalchemy import func, select

from kernel.clock import CLOCK
from kernel.components import Hub
from kernel.models import OcpiPendingCommand, OutboxMessage
from kernel.models.roaming import CommandState
from kernel.settings import Settings
from ocpi.component import OcpiComponent
from tests.ocpi._helpers import FakeGateway, advance_clock, connect
from tests.world.sites import seed_cpo, seed_location


async def _restart(hub) -> OcpiComponent:  # type: ignore[no-untyped-def]
    """A new process on the same database: a fresh component (nothing in memory), started (which runs the
    recovery once)."""
    h2 = Hub(
        settings=Settings(database_url=hub.db.url, public_url=hub.url),
        db=hub.db,
        node_name="n2",
        app=FastAPI(),
    )
    component = OcpiComponent(command_timeout=2, dispatcher=hub.dispatcher, transport=hub.transport)
    component.install(h2)
    component.commands.recovery_grace = 0
    await component.start(h2)
    return component


async def _state(hub) -> tuple[CommandState, int]:  # type: ignore[no-untyped-def]
    """The pending command's state and how many command results the outbox holds."""
    async with hub.db.session() as s:
        row = await s.scalar(select(OcpiPendingCommand))
        assert row is not None
        results = await s.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.ordering_key.like("%:command:%"))
        )
        return row.state, int(results or 0)


async def test_pending_command_gets_timeout_after_restart(hub, sim):
    cpo = await seed_cpo(hub.db)
    await seed_location(hub.db, cpo, "LOC1")
    await connect(hub, sim)
    hub.services.gateway = FakeGateway(delay=30)  # the charger never answers in time
    ref, response = await sim.command(
        "UNLOCK_CONNECTOR", {"location_id": "LOC1", "evse_uid": "LOC1-E1", "connector_id": "1"}
    )
    assert response == {"result": "ACCEPTED", "timeout": 2}
    async with hub.db.session() as s:
        row = await s.scalar(select(OcpiPendingCommand))
        assert row is not None and row.state == CommandState.PENDING
        assert row.command == "UNLOCK_CONNECTOR" and row.reference == "LOC1/LOC1-E1/1"
        assert row.response_url.endswith(f"/commands/UNLOCK_CONNECTOR/{ref}") and row.timeout == 2
        deadline = row.deadline
    # the process stops while the charger has not answered: nothing is queued (the runner is gone)
    await hub.component.stop()
    assert await _state(hub) == (CommandState.PENDING, 0)
    # a restart before the deadline sends nothing yet: its recovery (run at start) leaves the row pending.
    # The clock is set a minute before the deadline, so a slow machine cannot reach it during the restart.
    CLOCK.pin(deadline - timedelta(minutes=1))
    early = await _restart(hub)
    assert await _state(hub) == (CommandState.PENDING, 0)
    await early.stop()
    CLOCK.pin(deadline + timedelta(seconds=0.5))  # past the deadline
    restarted = await _restart(hub)
    try:
        await sim.wait_for(lambda: ref in sim.command_results, timeout=5)
        assert sim.command_results[ref]["result"] == "TIMEOUT"
        # exactly once, however often recovery runs
        assert await restarted.recover_commands() == 0
        async with hub.db.session() as s:
            row = await s.scalar(select(OcpiPendingCommand))
            assert row.state == CommandState.SENT and row.result["result"] == "TIMEOUT"
            results = (
                await s.scalars(select(OutboxMessage).where(OutboxMessage.ordering_key.like("%:command:%")))
            ).all()
            assert len(results) == 1
    finally:
        await restarted.stop()


async def test_recorded_answer_is_sent_after_restart(hub, sim):
    cpo = await seed_cpo(hub.db)
    await seed_location(hub.db, cpo, "LOC1")
    await connect(hub, sim)
    hub.services.gateway = FakeGateway(delay=30)
    ref, _ = await sim.command(
        "UNLOCK_CONNECTOR", {"location_id": "LOC1", "evse_uid": "LOC1-E2", "connector_id": "1"}
    )
    async with hub.db.session() as s:
        command_id = await s.scalar(select(OcpiPendingCommand.id))
    # the charger's answer was recorded, then the process died before sending it
    await hub.component.commands.record_answer(command_id, {"result": "ACCEPTED"})
    await hub.component.stop()
    advance_clock(2.5)  # past the deadline
    restarted = await _restart(hub)
    try:
        await sim.wait_for(lambda: ref in sim.command_results, timeout=5)
        assert sim.command_results[ref]["result"] == "ACCEPTED"
    finally:
        await restarted.stop()


async def test_answered_command_is_not_recovered(hub, sim):
    cpo = await seed_cpo(hub.db)
    await seed_location(hub.db, cpo, "LOC1")
    await connect(hub, sim)
    hub.services.gateway = FakeGateway(delay=0.01)
    ref, _ = await sim.command(
        "UNLOCK_CONNECTOR", {"location_id": "LOC1", "evse_uid": "LOC1-E1", "connector_id": "1"}
    )
    await sim.wait_for(lambda: ref in sim.command_results)
    hub.component.commands.recovery_grace = -10  # even if the deadline were long past
    assert await hub.component.recover_commands() == 0
    assert await _state(hub) == (CommandState.SENT, 1)  # one result queued, none added by the recovery
    await hub.dispatched()  # a result queued by mistake would have been sent by now
    results = [r for r in sim.log if r.path.endswith(ref)]
    assert len(results) == 1 and sim.command_results[ref]["result"] == "ACCEPTED"
