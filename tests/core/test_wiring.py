"""The wiring: the hub's hook lists are what :mod:`evhub.wiring` says, a misspelt seam fails loudly, and the CLI
commands that create CDRs or tariff versions queue their deliveries (OCPI pushes, receipts) in the same
transaction, exactly as ``evhub serve`` does: no scanner needed."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from billing.component import cdr_hook as billing_cdr_hook
from evhub import provisioning as prov
from evhub.wiring import load_components, wire, wired_hooks
from kernel.components import Hub
from kernel.db.engine import Database
from kernel.models import Cdr, OutboxMessage, TariffVersion
from kernel.seams import Hooks, Services
from kernel.settings import Settings
from ocpi.push.hooks import cdr_hook, evse_status_hook, session_hook, tariff_hook
from ocpi.push.token_push import hold_hook
from ocpi.realtime_authorization import session_reference_hook
from portal.component import ReceiptHook
from tariffs.dynamic import attach_rules
from tariffs.rating import rate_pending
from tests.world.demo_network import DEMO, seed_demo_network, seed_ocpi_partner, seed_tokens
from tests.world.sessions import seed_ended_session

START = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)


def test_the_wiring_installs_the_hooks_in_the_documented_order(database_url: str) -> None:
    hub = Hub(settings=Settings(database_url=database_url), db=Database(database_url), node_name="test")
    wire(hub, load_components())
    assert hub.hooks.session == [session_reference_hook, session_hook]  # the reference before the push
    # the invoice before the receipt, which is then the invoice
    assert hub.hooks.cdr == [cdr_hook, billing_cdr_hook, ReceiptHook(hub.services)]
    assert hub.hooks.tariff == [tariff_hook]
    assert hub.hooks.evse_status == [evse_status_hook]
    assert hub.hooks.hold == [hold_hook]
    assert hub.services.gateway is not None and hub.services.pricing is not None
    assert hub.services.realtime_authorizer is not None and hub.services.outbox is not None
    assert hub.services.billing is not None
    assert hub.component_names == ["gateway", "pricing", "ocpi", "settlement", "billing", "portal"]
    assert wired_hooks(hub.settings, hub.db) == hub.hooks  # what the CLI runs is what serve runs


def test_a_misspelt_seam_fails_loudly() -> None:
    hooks, services = Hooks(), Services()
    with pytest.raises(AttributeError):
        hooks.cdrs.append(cdr_hook)  # type: ignore[attr-defined]
    with pytest.raises(AttributeError):
        services.gatway = object()  # type: ignore[attr-defined]
    assert {f.name for f in dataclasses.fields(Hooks)} == {"session", "evse_status", "cdr", "tariff", "hold"}


async def _world(db: Database) -> int:
    """A CPO with the demo locations and tariffs, a fleet token with a driver e-mail issued by an eMSP that is
    a registered OCPI partner receiving CDRs and tariffs. Returns the partner's id."""
    network = await seed_demo_network(db)
    await seed_tokens(db, "TOKEN-1", driver_email="driver@example.test")
    return await seed_ocpi_partner(db, network.parties["NL*EMS"])


async def _ended_session(db: Database, uid: str = "sess-1") -> None:
    """An ended session of TOKEN-1 at AMS-01-1, 12:00-13:00 UTC, 10 kWh evenly, waiting to be priced."""
    await seed_ended_session(db, "AMS-01-1", START, 60, "10", uid=uid)


async def _outbox(db: Database) -> set[tuple[str, str | None]]:
    async with db.session() as s:
        return {(m.channel, m.dedupe_key) for m in (await s.scalars(select(OutboxMessage))).all()}


async def _cdrs(db: Database) -> list[Cdr]:
    async with db.session() as s:
        return list((await s.scalars(select(Cdr).order_by(Cdr.id))).all())


async def test_tariffs_rerate_queues_the_ocpi_push_and_the_receipt(db: Database, cli) -> None:
    partner = await _world(db)
    await _ended_session(db)
    await cli("tariffs", "rerate")
    [cdr] = await _cdrs(db)
    queued = await _outbox(db)
    assert ("ocpi", f"ocpi:{partner}:cdr:{cdr.id}") in queued
    assert sum(1 for channel, _ in queued if channel == "email") == 1  # the driver's receipt


async def test_cdrs_correct_queues_the_pushes_of_the_credit_and_the_new_cdr(db: Database, cli) -> None:
    partner = await _world(db)
    await _ended_session(db)
    assert await rate_pending(db, ()) == 1  # priced without hooks: nothing queued for the original
    before = await _outbox(db)
    [original] = await _cdrs(db)
    await cli("cdrs", "correct", original.cdr_uid)
    credit, fresh = [c for c in await _cdrs(db) if c.id != original.id]
    added = await _outbox(db) - before
    assert {(c, k) for c, k in added if c == "ocpi"} == {
        ("ocpi", f"ocpi:{partner}:cdr:{credit.id}"),
        ("ocpi", f"ocpi:{partner}:cdr:{fresh.id}"),
    }
    # the corrected CDR's receipt (a credit CDR gets none)
    assert sum(1 for channel, _ in added if channel == "email") == 1


async def test_grid_load_queues_the_push_of_each_published_tariff_version(db: Database, cli) -> None:
    partner = await _world(db)
    rules = json.loads((DEMO / "grid_rules.json").read_text())
    async with db.session() as s:
        cpo = await prov.find_party(s, "NL*AMP", prov.PartyRole.CPO)
        await attach_rules(s, "NL-NH", cpo.id, "AMS-TOD", rules)
    before = await _outbox(db)
    out = (await cli("grid", "load", "NL-NH", "85", "--at", "2026-11-10T12:30:00Z")).output
    assert "published tariff AMS-TOD version 2" in out
    async with db.session() as s:
        version = await s.scalar(
            select(TariffVersion).where(TariffVersion.tariff_id == "AMS-TOD", TariffVersion.version == 2)
        )
    assert await _outbox(db) - before == {("ocpi", f"ocpi:{partner}:tariff:{version.id}")}


async def test_tariffs_import_queues_the_push_of_a_new_version(db: Database, cli, tmp_path: Path) -> None:
    partner = await _world(db)
    tariff = json.loads((DEMO / "tariffs.json").read_text())[0]
    tariff["elements"][0]["price_components"][0]["price"] = 0.55
    tariff["last_updated"] = "2026-11-11T00:00:00Z"
    path = tmp_path / "tariff.json"
    path.write_text(json.dumps(tariff))
    before = await _outbox(db)
    await cli("tariffs", "import", str(path))
    async with db.session() as s:
        version = await s.scalar(
            select(TariffVersion).where(TariffVersion.tariff_id == tariff["id"], TariffVersion.version == 2)
        )
    assert await _outbox(db) - before == {("ocpi", f"ocpi:{partner}:tariff:{version.id}")}
