"""Billing's holds are enforced by every ``evhub serve`` at once (issue 14): two processes share one database, a
fleet token is Accepted at a charger on each; the dunning job (run here) blocks the fleet for its unpaid invoice
and the next Authorize on EACH process answers Blocked within 1 s (StartTransaction too); the payment is recorded
(a bank transfer, or Stripe's webhook to one of the processes) and its holds released, and each answers
Accepted again within 1 s. On PostgreSQL and on a SQLite file."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import psutil
import pytest
from sqlalchemy import func, select

from billing.payments.bank_transfers import record_bank_transfer
from billing.store.dunning import run_dunning
from kernel.db.engine import Database
from kernel.models import BillingHold, BillingPayment, ChargePoint, OcppVersion, RegistrationStatus
from kernel.ports import free_port
from kernel.security import hash_password
from kernel.timeutil import utcnow
from tests.billing.dunning_kit import TOKEN, Dunned, day, seed
from tests.billing.payments_kit import WEBHOOK_SECRET, signed
from tests.gateway.conftest import EVHUB, PASSWORD, Client, basic

WITHIN = 1.0  # seconds: the bound for a block or a release to reach every process


async def _add_charger(db: Database, d: Dunned, identity: str) -> None:
    async with db.session() as s:
        s.add(ChargePoint(identity=identity, password_hash=hash_password(PASSWORD), ocpp_version=OcppVersion.V16,
                          cpo_id=d.world.cpo_id, location_id=d.world.location_id,
                          registration_status=RegistrationStatus.ACCEPTED))  # fmt: skip


def _kill_tree(pid: int) -> None:
    try:
        root = psutil.Process(pid)
        procs = [*root.children(recursive=True), root]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()


@contextlib.asynccontextmanager
async def _serve(db: Database, tmp_path: Path, node: str) -> AsyncIterator[tuple[int, int]]:
    """``evhub serve`` as a process on the test database; yields its HTTP and OCPP ports once it answers
    /health."""
    http_port, ocpp_port = free_port(), free_port()
    env = dict(os.environ, EVHUB_DATABASE_URL=db.url, EVHUB_HTTP_HOST="127.0.0.1", EVHUB_HTTP_PORT=str(http_port),
               EVHUB_OCPP_HOST="127.0.0.1", EVHUB_OCPP_PORT=str(ocpp_port), EVHUB_NODE_NAME=node,
               EVHUB_STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET)  # fmt: skip
    folder = tmp_path / node
    folder.mkdir()
    with open(folder / "stderr.log", "wb") as log:
        proc = await asyncio.create_subprocess_exec(
            EVHUB, "serve", env=env, cwd=folder, stdout=asyncio.subprocess.DEVNULL, stderr=log
        )
    try:
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=5) as api:
            while True:
                assert proc.returncode is None, (folder / "stderr.log").read_text()[-3000:]
                assert time.monotonic() < deadline, f"evhub serve {node} did not start"
                with contextlib.suppress(httpx.TransportError):
                    if (await api.get("/health")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        yield http_port, ocpp_port
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                _kill_tree(proc.pid)
                await proc.wait()


async def _connect(port: int, identity: str) -> Client:
    from websockets.asyncio.client import connect

    deadline = time.monotonic() + 20
    while True:
        try:
            ws = await connect(f"ws://127.0.0.1:{port}/ocpp/{identity}", subprotocols=["ocpp1.6"],
                               additional_headers=basic(identity, PASSWORD))  # fmt: skip
            return Client(ws)
        except OSError:
            assert time.monotonic() < deadline, f"could not connect {identity}"
            await asyncio.sleep(0.1)


async def _status(charger: Client) -> str:
    answer = await charger.ok("Authorize", {"idTag": TOKEN})
    return str(answer["idTagInfo"]["status"])


async def _within(chargers: list[Client], status: str) -> float:
    """Seconds until the Authorize of every charger answers ``status`` (polled; fails after :data:`WITHIN`)."""
    start = time.monotonic()
    pending = list(chargers)
    while pending:
        pending = [c for c in pending if await _status(c) != status]
        elapsed = time.monotonic() - start
        assert elapsed < WITHIN or not pending, f"still not {status} after {elapsed:.2f} s"
    return time.monotonic() - start


async def _pay_by_webhook(db: Database, d: Dunned, http_port: int) -> None:
    """Stripe's ``payment_intent.succeeded`` for a card payment of the invoice, signed, to one process."""
    async with db.session() as s:
        s.add(BillingPayment(document_id=d.document_id, account_id=d.account_id, method="card", provider="stripe",
                             provider_ref="pi_holds_test", idempotency_key=f"holds-test-{d.document_id}",
                             amount=d.payable, currency="EUR", status="pending", attempt=2))  # fmt: skip
    intent = {
        "id": "pi_holds_test",
        "object": "payment_intent",
        "amount": int(d.payable * 100),
        "currency": "eur",
    }
    payload, header = signed({"id": "evt_holds_test", "object": "event", "type": "payment_intent.succeeded",
                              "data": {"object": intent}})  # fmt: skip
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=5) as api:
        answer = await api.post(
            "/billing/webhooks/stripe", content=payload, headers={"Stripe-Signature": header}
        )
    assert answer.status_code == 200 and answer.json() == {"status": "applied"}, answer.text


@pytest.mark.parametrize("paid_by", ["bank transfer", "webhook"])
async def test_a_block_and_its_release_reach_every_process_within_a_second(
    db: Database, tmp_path: Path, paid_by: str
) -> None:
    d = await seed(db)
    await _add_charger(db, d, "HOLD-A")
    await _add_charger(db, d, "HOLD-B")
    async with (
        _serve(db, tmp_path, "hub-a") as (http_a, port_a),
        _serve(db, tmp_path, "hub-b") as (http_b, port_b),
    ):
        chargers = [await _connect(port_a, "HOLD-A"), await _connect(port_b, "HOLD-B")]
        try:
            assert [await _status(c) for c in chargers] == ["Accepted", "Accepted"]

            assert await run_dunning(db, today=day(d, 21)) == 5  # ... lower limit, then block
            assert await _within(chargers, "Blocked") < WITHIN
            started = await chargers[1].ok("StartTransaction", {"connectorId": 1, "idTag": TOKEN, "meterStart": 0,
                                                                "timestamp": "2026-06-16T10:00:00Z"})  # fmt: skip
            assert started["idTagInfo"]["status"] == "Blocked"
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_a}", timeout=5) as api:
                [status] = (await api.get("/api/billing/dunning")).json()  # the component mounts the API
            assert (status["state"], status["held_for"], status["last_step"]["rule"]) == (
                "blocked", [d.number], "block")  # fmt: skip

            if paid_by == "webhook":  # to the other process than the one asked below first
                await _pay_by_webhook(db, d, http_b)
            else:  # the payments part's bank transfer releases the holds in its transaction
                async with db.session() as s:
                    await record_bank_transfer(s, d.number, d.payable, f"RF {d.number}", utcnow().date())
            assert await _within(chargers, "Accepted") < WITHIN
            async with db.session() as s:
                assert (await s.scalar(select(func.count()).where(BillingHold.released_at.is_(None)))) == 0
        finally:
            for charger in chargers:
                await charger.ws.close()
