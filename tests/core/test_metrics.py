"""Prometheus metrics, read as Prometheus reads them: ``/metrics`` text through the real HTTP app, while real
chargers talk OCPP to the real gateway, sessions are priced (and fail to be), settlement runs and receipts go
out over SMTP. Counters are process-wide, so each assertion is on the change across the action."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncSession
from websockets.exceptions import ConnectionClosed

from cpo_gateway.component import GatewayComponent
from evhub import provisioning as prov
from evhub.app import RunningHub
from kernel.apiauth import create_key
from kernel.db.engine import Database
from kernel.outbox import OutboxDispatcher, enqueue, register_channel
from kernel.ports import free_port
from kernel.settings import load_settings
from portal.receipts import make_email_sender
from portal.smtp import SmtpConfig, start_smtp_sink
from settlement.job import run_period
from tariffs.component import PricingComponent
from tests.gateway.conftest import DEFAULT_TARIFF, T0, iso, open_client, seed

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def start_hub(db: Database, **settings: Any) -> RunningHub:
    config = load_settings(
        _env_file=None,
        database_url=db.url,
        http_host="127.0.0.1",
        http_port=free_port(),
        ocpp_host="127.0.0.1",
        ocpp_port=0,
        ocpp_ping_interval=0,
        auto_migrate=True,
        log_level="WARNING",
        **settings,
    )
    running = RunningHub(config, components=[GatewayComponent(), PricingComponent(interval=3600)])  # type: ignore[list-item]
    await running.start()
    return running


@pytest.fixture
async def hub(db: Database) -> AsyncIterator[RunningHub]:
    await seed(db)
    running = await start_hub(db, api_auth=True)
    try:
        yield running
    finally:
        await running.stop()


class Scraper:
    """GET /metrics through the hub's HTTP app and parse it with Prometheus' own text parser."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def __call__(self) -> Samples:
        reply = await self.client.get("/metrics")
        assert reply.status_code == 200
        return {
            (s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(reply.text)
            for s in family.samples
        }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def until(scrape: Scraper, check: Callable[[Samples], bool], timeout: float = 10.0) -> Samples:
    """Scrape until ``check`` holds (the gateway's disconnect bookkeeping runs after the socket closes)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        samples = await scrape()
        if check(samples) or asyncio.get_running_loop().time() > deadline:
            return samples
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def http(running: RunningHub) -> AsyncIterator[tuple[httpx.AsyncClient, Scraper]]:
    transport = httpx.ASGITransport(app=running.hub.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://hub.test") as client:
        yield client, Scraper(client)


async def test_gateway_sessions_and_pricing_metrics(hub: RunningHub, db: Database) -> None:
    gateway = hub.hub.services.gateway
    async with http(hub) as (_client, scrape):
        before = await scrape()
        connected = value(before, "evhub_ocpp_connected_chargers", version="1.6")
        c16 = await open_client(gateway, "CP16", "ocpp1.6")
        c201 = await open_client(gateway, "CP201", "ocpp2.0.1")
        await c16.ok("Heartbeat", {})
        await c201.ok("Heartbeat", {})
        bad = await c16.call("StartTransaction", {"connectorId": "one", "idTag": "X", "meterStart": 0,
                                                  "timestamp": iso(T0)})  # fmt: skip
        assert bad[2] == "TypeConstraintViolation"
        assert (await c16.call("FlyToTheMoon", {}))[2] == "NotImplemented"
        assert (await c16.raw("this is not json", "-1"))[2] == "FormationViolation"
        tx = (await c16.ok("StartTransaction", {"connectorId": 1, "idTag": "AABBCC01", "meterStart": 0,
                                                "timestamp": iso(T0)}))["transactionId"]  # fmt: skip
        during = await scrape()

        def delta(name: str, **labels: str) -> float:
            return value(after, name, **labels) - value(before, name, **labels)

        after = during
        assert value(during, "evhub_ocpp_connected_chargers", version="1.6") == connected + 1
        assert value(during, "evhub_ocpp_connected_chargers", version="2.0.1") >= 1
        assert delta("evhub_ocpp_messages_total", version="1.6", action="Heartbeat") == 1
        assert delta("evhub_ocpp_messages_total", version="2.0.1", action="Heartbeat") == 1
        assert delta("evhub_ocpp_messages_total", version="1.6", action="StartTransaction") == 2
        assert delta("evhub_ocpp_messages_total", version="1.6", action="(unknown)") == 1
        callerror = "evhub_ocpp_callerrors_total"
        assert delta(callerror, version="1.6", action="StartTransaction", code="TypeConstraintViolation") == 1
        assert delta(callerror, version="1.6", action="(unknown)", code="NotImplemented") == 1
        assert delta(callerror, version="1.6", action="(none)", code="FormationViolation") == 1
        assert not any("FlyToTheMoon" in str(labels) for _name, labels in during)  # no free-text labels
        assert value(during, "evhub_sessions_open") == 1
        assert value(during, "evhub_sessions_pricing_pending") == 0

        await c16.ok("StopTransaction", {"transactionId": tx, "meterStop": 7000,
                                         "timestamp": iso(T0 + timedelta(hours=1))})  # fmt: skip
        ended = await scrape()
        assert value(ended, "evhub_sessions_open") == 0
        assert value(ended, "evhub_sessions_pricing_pending") == 1

        # No tariff yet: pricing fails, visibly.
        pricing = hub.hub.services.pricing
        assert await pricing.run_once() == 0
        after = await scrape()
        assert value(after, "evhub_sessions_pricing_pending") == 0
        assert value(after, "evhub_sessions_pricing_failed") == 1
        assert delta("evhub_pricing_seconds_count", outcome="failed") == 1
        assert delta("evhub_cdrs_created_total", kind="original") == 0

        # The operator imports the tariff and retries: one CDR.
        async with db.session() as s:
            await prov.import_tariff(s, DEFAULT_TARIFF)
        from tariffs.rating import retry_failed

        assert await retry_failed(db) == 1
        assert await pricing.run_once() == 1
        after = await scrape()
        assert value(after, "evhub_sessions_pricing_failed") == 0
        assert delta("evhub_pricing_seconds_count", outcome="priced") == 1
        assert delta("evhub_pricing_seconds_sum", outcome="priced") > 0
        assert delta("evhub_cdrs_created_total", kind="original") == 1

        # Settling the month of that CDR is a run; a period that does not exist is a failed one.
        await run_period(db, "2026-03")
        with pytest.raises(ValueError):
            await run_period(db, "2026-13")
        after = await scrape()
        assert delta("evhub_settlement_runs_total", mode="run") == 1
        assert delta("evhub_settlement_run_failures_total") == 1

        await c16.close()
        await c201.close()
        gone = await until(
            scrape, lambda s: value(s, "evhub_ocpp_connected_chargers", version="1.6") == connected
        )
        assert value(gone, "evhub_ocpp_connected_chargers", version="1.6") == connected


async def test_rate_limit_disconnects_are_counted(db: Database) -> None:
    await seed(db)
    running = await start_hub(db, ocpp_rate_limit=5, ocpp_rate_burst=10)
    try:
        async with http(running) as (_client, scrape):
            before = await scrape()
            c = await open_client(running.hub.services.gateway, "CP16", "ocpp1.6")
            with contextlib.suppress(ConnectionClosed):
                for i in range(100):
                    await c.ws.send(json.dumps([2, f"f{i}", "Heartbeat", {}]))
            assert await c.wait_closed() == 1008
            after = await scrape()
            name = "evhub_ocpp_rate_limit_disconnects_total"
            assert value(after, name, version="1.6") - value(before, name, version="1.6") == 1
    finally:
        await running.stop()


async def test_http_requests_are_labelled_by_route_template(hub: RunningHub, db: Database) -> None:
    async with db.session() as s:
        key = await create_key(s, "metrics-test", None)
    async with http(hub) as (client, scrape):
        before = await scrape()
        assert (
            await client.get("/api/chargers/CP16", headers={"Authorization": f"Bearer {key}"})
        ).status_code == 200
        assert (await client.get("/api/chargers/CP201")).status_code == 401  # refused before routing
        assert (await client.get("/no/such/page/42")).status_code == 404
        after = await scrape()
    counted = [
        dict(labels)
        for (name, labels), count in after.items()
        if name == "evhub_http_requests_total" and count > before.get((name, labels), 0.0)
    ]
    routes = {labels["route"] for labels in counted}
    templated = [r for r in routes if r.startswith("/api/chargers/{")]
    assert len(templated) == 1, routes  # both charger requests, one template
    route = templated[0]
    assert not any("CP16" in r or "CP201" in r or "42" in r for r in routes)  # raw paths never become labels

    def delta(**labels: str) -> float:
        return value(after, "evhub_http_requests_total", **labels) - value(
            before, "evhub_http_requests_total", **labels
        )

    assert delta(method="GET", route=route, status="200") == 1
    assert delta(method="GET", route=route, status="401") == 1
    assert delta(method="GET", route="(unmatched)", status="404") == 1
    assert value(after, "evhub_http_request_seconds_count", method="GET", route=route) >= 2


async def test_receipt_metrics(hub: RunningHub, db: Database, tmp_path: Path) -> None:
    sink = await start_smtp_sink(tmp_path / "mail", refuse=lambda addr: "bounce" in addr)
    try:
        sender = make_email_sender(db, lambda: SmtpConfig.from_url(sink.url), "receipts@evhub.test")
        register_channel(METRICS_EMAIL, sender)  # the e-mail sender on a channel of this test's own
        async with http(hub) as (_client, scrape):
            before = await scrape()
            async with db.session() as s:  # the sender marks a leased outbox row before it sends
                for n, to in enumerate(("driver@fleet.test", "bounce@fleet.test")):
                    await _enqueue(s, n, to)
                # dunning reminders go through the same sender: counted apart, never as receipts
                for n, to in enumerate(("manager@fleet.test", "manager2@fleet.test", "bounce@fleet.test")):
                    await _enqueue(s, 10 + n, to, kind="reminder")
            await OutboxDispatcher(db, channels=[METRICS_EMAIL]).drain()

            def delta(samples: Samples, metric: str, outcome: str) -> float:
                return value(samples, metric, outcome=outcome) - value(before, metric, outcome=outcome)

            def counts(samples: Samples) -> tuple[tuple[float, ...], tuple[float, ...]]:
                return (
                    tuple(delta(samples, "evhub_receipts_total", o) for o in ("sent", "bounced", "failed")),
                    tuple(
                        delta(samples, "evhub_reminder_emails_total", o)
                        for o in ("sent", "bounced", "failed")
                    ),
                )

            # the hub's own dispatcher may deliver some of them: wait for every outcome to be counted
            after = await until(scrape, lambda samples: sum(map(sum, counts(samples))) >= 5)
    finally:
        await sink.stop()

    receipts, reminders = counts(after)
    assert receipts == (1, 1, 0)
    assert reminders == (2, 1, 0)
    assert len(sink.messages()) == 3


METRICS_EMAIL = "metrics-email"


async def _enqueue(db_session: AsyncSession, n: int, to: str, kind: str | None = None) -> None:
    payload: dict[str, Any] = {
        "to": to,
        "subject": "Your charging receipt",
        "text": "Thank you for charging.",
    }
    if kind is not None:
        payload["kind"] = kind
    await enqueue(db_session, METRICS_EMAIL, destination=to, ordering_key=f"metrics:{n}", payload=payload)
