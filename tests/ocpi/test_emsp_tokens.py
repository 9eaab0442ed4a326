"""The hub as the eMSP of its hosted eMSPs towards external CPOs (issue 14, item 4): the tokens Sender (list,
real-time authorization), the token push with billing's holds, both in OCPI 2.2.1 and 2.1.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select, update

from billing.store.holds import BLOCK, LOWER_LIMIT, place_hold
from kernel.db.engine import Database
from kernel.models import BillingAccount, BillingDocument, OutboxMessage, OutboxStatus, Token
from kernel.models.roaming import OcpiPushState
from kernel.timeutil import format_rfc3339, parse_datetime, utcnow
from ocpi import credentials
from ocpi.partner_auth import encode_token
from ocpi.push.token_push import enqueue_tokens
from tests.billing import dunning_kit
from tests.ocpi._helpers import wait_until
from tests.ocpi._network import InProcessNetwork
from tests.ocpi.cpo_partner_kit import (
    FakeCpo,
    add_cpo_partner,
    add_emsp_token,
    add_hosted_emsp,
    cpo_headers,
    own_token,
    serve_cpo,
)

if TYPE_CHECKING:
    from tests.ocpi.conftest import RunningHub

PATIENCE = 60.0
"""Seconds a test waits for a PUT to reach the CPO: an upper bound for a loaded CI box (PostgreSQL saw 5 s
exceeded), never a wait; each wait ends as soon as the PUT is there."""


@pytest.fixture
async def cpo(network: InProcessNetwork | None) -> AsyncIterator[FakeCpo]:
    fake = await serve_cpo(network, "cpo-be.test")
    try:
        yield fake
    finally:
        await fake.stop()


async def _hold(db: Database, d: dunning_kit.Dunned, action: str) -> None:
    async with db.session() as s:
        account = await s.get(BillingAccount, d.account_id)
        document = await s.get(BillingDocument, d.document_id)
        assert account is not None and document is not None
        limit = Decimal("0") if action == LOWER_LIMIT else None
        await place_hold(
            s, account, document, action, "test", limit=limit, currency="EUR" if limit is not None else None
        )


async def _dunned_fleet(db: Database) -> tuple[int, dunning_kit.Dunned]:
    """The hosted eMSP NL*EVH issuing the dunned fleet's token ACME0001; (eMSP pk, dunning world)."""
    emsp = await add_hosted_emsp(db)
    d = await dunning_kit.seed(db)
    await own_token(db, d.token_id, emsp)
    return emsp, d


def _sender_url(hub: RunningHub, version: str = "2.2.1") -> str:
    return f"{hub.url}/ocpi/emsp/{version}/tokens"


async def test_details_and_credentials_advertise_the_hosted_emsps(hub: RunningHub) -> None:
    await add_hosted_emsp(hub.db, "NL*EVH")
    await add_cpo_partner(hub.db, None)
    async with hub.http() as client:
        details = (await client.get(f"{hub.url}/ocpi/2.2.1", headers=cpo_headers())).json()["data"]
        own = (await client.get(f"{hub.url}/ocpi/2.2.1/credentials", headers=cpo_headers())).json()["data"]
    assert [(r["country_code"], r["party_id"], r["role"]) for r in own["roles"]] == [("NL", "EVH", "EMSP")]
    sender = [e for e in details["endpoints"] if e["identifier"] == "tokens" and e["role"] == "SENDER"]
    receiver = [e for e in details["endpoints"] if e["identifier"] == "tokens" and e["role"] == "RECEIVER"]
    assert [e["url"] for e in sender] == [_sender_url(hub)]
    assert [e["url"] for e in receiver] == [f"{hub.url}/ocpi/cpo/2.2.1/tokens"]


async def test_the_list_is_paginated_and_a_cpo_sees_only_the_addressed_emsps_tokens(hub: RunningHub) -> None:
    evh = await add_hosted_emsp(hub.db, "NL*EVH")
    ev2 = await add_hosted_emsp(hub.db, "NL*EV2")
    for uid in ("EVH001", "EVH002", "EVH003"):
        await add_emsp_token(hub.db, evh, uid)
    await add_emsp_token(hub.db, ev2, "EV2001")
    await add_cpo_partner(hub.db, None)
    await add_cpo_partner(hub.db, None, key="DE*EMS", role="EMSP", token_c="emsp-token-c")
    async with hub.http() as client:
        first = await client.get(_sender_url(hub), params={"limit": 2}, headers=cpo_headers())
        assert first.status_code == 200, first.text
        assert [t["uid"] for t in first.json()["data"]] == ["EVH001", "EVH002"]
        assert first.headers["X-Total-Count"] == "3" and first.headers["X-Limit"] == "2"
        next_url = first.headers["Link"].split(";")[0].strip("<>")
        second = await client.get(next_url, headers=cpo_headers())
        assert [t["uid"] for t in second.json()["data"]] == ["EVH003"]
        assert "Link" not in second.headers
        other = await client.get(_sender_url(hub), headers=cpo_headers(to="NL*EV2"))
        assert [t["uid"] for t in other.json()["data"]] == ["EV2001"]
        assert other.json()["data"][0]["valid"] is True
        # an eMSP the hub does not host (a partner's), and an eMSP partner calling: nothing to see
        foreign = await client.get(_sender_url(hub), headers=cpo_headers(to="DE*EMS"))
        assert (foreign.status_code, foreign.json()["status_code"]) == (404, 4001)
        as_emsp = await client.get(_sender_url(hub), headers=cpo_headers("emsp-token-c", sender="DE*EMS"))
        assert as_emsp.status_code == 403
        wrong_from = await client.get(_sender_url(hub), headers=cpo_headers(sender="BE*XXX"))
        assert (wrong_from.status_code, wrong_from.json()["status_code"]) == (400, 2001)


async def test_date_from_finds_a_token_whose_hold_changed_since_though_its_row_did_not(
    hub: RunningHub,
) -> None:
    """A CPO pulling the changes since its last pull (``date_from``) gets the dunned token when a hold was
    placed or released since, with the ``last_updated`` of that change: the Sender filters and orders by the
    ``last_updated`` the CPO sees, not the token row's own."""
    _, d = await _dunned_fleet(hub.db)
    await add_cpo_partner(hub.db, None)
    async with hub.db.session() as s:
        await s.execute(
            update(Token).where(Token.id == d.token_id).values(last_updated=datetime(2026, 1, 5, tzinfo=UTC))
        )

    async def pulled(**window: datetime) -> list[dict]:
        params = {k: format_rfc3339(v) for k, v in window.items()}
        async with hub.http() as client:
            reply = await client.get(_sender_url(hub), params=params, headers=cpo_headers())
        assert reply.status_code == 200, reply.text
        return [t for t in reply.json()["data"] if t["uid"] == dunning_kit.TOKEN]

    last_pull = utcnow()
    assert await pulled(date_from=last_pull) == []  # nothing changed since
    assert [t["valid"] for t in await pulled(date_to=last_pull)] == [True]
    await _hold(hub.db, d, BLOCK)
    [blocked] = await pulled(date_from=last_pull)
    assert blocked["valid"] is False and parse_datetime(blocked["last_updated"]) >= last_pull
    assert await pulled(date_to=last_pull) == []  # its state is no longer the one of before the pull
    after_block = parse_datetime(blocked["last_updated"]) + timedelta(milliseconds=1)  # shown to the ms
    assert await pulled(date_from=after_block) == []
    await dunning_kit.pay(hub.db, d.document_id)  # releases the hold
    [released] = await pulled(date_from=after_block)
    assert released["valid"] is True and released["last_updated"] > blocked["last_updated"]


async def test_authorize_answers_the_gateways_decision_for_held_released_and_unknown_tokens(
    hub: RunningHub,
) -> None:
    _, d = await _dunned_fleet(hub.db)
    ev2 = await add_hosted_emsp(hub.db, "NL*EV2")
    await add_emsp_token(hub.db, ev2, "EV2001")
    await add_cpo_partner(hub.db, None)
    url = f"{_sender_url(hub)}/{dunning_kit.TOKEN}/authorize"
    where = {"location_id": "LOC1", "evse_uids": ["E1"]}

    async def ask(uid_url: str = url, **params: str) -> tuple[int, dict]:
        async with hub.http() as client:
            reply = await client.post(uid_url, params=params, json=where, headers=cpo_headers())
            return reply.status_code, reply.json()

    code, body = await ask()
    assert code == 200 and body["data"]["allowed"] == "ALLOWED", body
    assert body["data"]["token"]["uid"] == dunning_kit.TOKEN and body["data"]["location"] == where
    await _hold(hub.db, d, BLOCK)
    code, body = await ask()
    assert body["data"]["allowed"] == "BLOCKED"
    assert body["data"]["info"]["text"] == f"unpaid invoice {d.number}"
    assert body["data"]["token"]["valid"] is False
    await dunning_kit.pay(hub.db, d.document_id)
    assert (await ask())[1]["data"]["allowed"] == "ALLOWED"
    code, body = await ask(type="APP_USER")  # the token is an RFID card
    assert (code, body["status_code"]) == (404, 2004)
    code, body = await ask(f"{_sender_url(hub)}/NOSUCH/authorize")
    assert (code, body["status_code"]) == (404, 2004)
    code, body = await ask(f"{_sender_url(hub)}/EV2001/authorize")  # another hosted eMSP's token
    assert (code, body["status_code"]) == (404, 2004)


async def test_a_lowered_limit_is_no_credit_and_pushed_as_real_time_only(
    hub: RunningHub, cpo: FakeCpo
) -> None:
    _, d = await _dunned_fleet(hub.db)
    await add_cpo_partner(hub.db, cpo)
    await _hold(hub.db, d, LOWER_LIMIT)
    async with hub.http() as client:
        reply = await client.post(f"{_sender_url(hub)}/{dunning_kit.TOKEN}/authorize", headers=cpo_headers())
    assert reply.json()["data"]["allowed"] == "NO_CREDIT", reply.text
    await wait_until(lambda: bool(cpo.puts(dunning_kit.TOKEN)), "the token PUT", timeout=PATIENCE)
    pushed = cpo.puts(dunning_kit.TOKEN)[-1]
    assert (pushed["valid"], pushed["whitelist"]) == (True, "NEVER")
    assert (
        await hub.component.push_tokens_once() == 0
    )  # the hold's hook queued it: the job has nothing to add


@pytest.mark.parametrize("where", ["in_process", pytest.param("sockets", marks=pytest.mark.real_sockets)])
async def test_a_held_token_is_pushed_invalid_and_valid_again_within_seconds_of_the_payment(
    hub: RunningHub, cpo: FakeCpo, where: str
) -> None:
    _, d = await _dunned_fleet(hub.db)
    partner_id = await add_cpo_partner(hub.db, cpo)
    await add_cpo_partner(hub.db, None, key="DE*EMS", role="EMSP", token_c="emsp-token-c")  # gets nothing
    assert await hub.component.push_tokens_once() == 1  # the first run: every hosted token
    await wait_until(lambda: len(cpo.puts(dunning_kit.TOKEN)) == 1, "the first PUT", timeout=PATIENCE)
    first = cpo.received[0]
    assert first.path == f"/ocpi/cpo/2.2.1/tokens/NL/EVH/{dunning_kit.TOKEN}" and first.query == "type=RFID"
    assert (cpo.server is None) == (where == "in_process")
    assert first.headers["ocpi-from-party-id"] == "EVH" and first.headers["ocpi-to-party-id"] == "ION"
    assert first.body["valid"] is True and first.body["contract_id"]
    assert await hub.component.push_tokens_once() == 0  # nothing changed: nothing queued

    stop = asyncio.Event()

    async def job() -> None:  # the component's ocpi-token-push job, as the scheduler runs it
        while not stop.is_set():
            await hub.component.push_tokens_once()
            await asyncio.sleep(0.05)

    running = asyncio.create_task(job())
    try:
        await _hold(hub.db, d, BLOCK)
        await wait_until(
            lambda: len(cpo.puts(dunning_kit.TOKEN)) == 2, "the PUT of the hold", timeout=PATIENCE
        )
        held = cpo.puts(dunning_kit.TOKEN)[1]
        assert held["valid"] is False and held["last_updated"] > first.body["last_updated"]
        await dunning_kit.pay(hub.db, d.document_id)
        # "within seconds", whatever the load: the payment itself queued the release, due at once (no job's
        # interval, no delay), so the dispatcher's next round sends it; and it left without a failed attempt
        queued = await _outbox(hub.db)
        assert len(queued) == 3, [m.payload for m in queued]
        release = queued[2]
        assert (
            release.status == OutboxStatus.DELIVERED
            or release.attempts > 0
            or release.next_attempt_at <= utcnow()
        )
        await wait_until(
            lambda: len(cpo.puts(dunning_kit.TOKEN)) == 3, "the PUT of the release", timeout=PATIENCE
        )
        await wait_until(  # the CPO's answer recorded (the PUT was seen above before its answer left)
            lambda: _status(hub.db, release.id, OutboxStatus.DELIVERED),
            "the release marked delivered",
            timeout=PATIENCE,
        )
        async with hub.db.session() as s:
            sent = await s.get(OutboxMessage, release.id)
        assert sent is not None and (sent.last_error, sent.failing_since) == (None, None)  # no failed attempt
        released = cpo.puts(dunning_kit.TOKEN)[2]
        assert released["valid"] is True and released["last_updated"] >= held["last_updated"]
    finally:
        stop.set()
        await running
    async with hub.db.session() as s:
        rows = (await s.scalars(select(OutboxMessage).where(OutboxMessage.channel == "ocpi"))).all()
    assert {r.destination for r in rows} == {str(partner_id)}  # the eMSP partner got no token
    assert len(rows) == 3


async def test_a_211_cpo_gets_211_tokens_and_answers(
    hub: RunningHub, network: InProcessNetwork | None
) -> None:
    cpo = await serve_cpo(network, "cpo-211.test", version="2.1.1")
    try:
        _, d = await _dunned_fleet(hub.db)
        await add_cpo_partner(hub.db, cpo, key="FR*OLD", token_c="old-token")
        headers = {"Authorization": "Token old-token"}
        async with hub.http() as client:
            details = (await client.get(f"{hub.url}/ocpi/2.1.1", headers=headers)).json()["data"]
            tokens = [e["url"] for e in details["endpoints"] if e["identifier"] == "tokens"]
            assert tokens == [_sender_url(hub, "2.1.1")]
            listed = (await client.get(_sender_url(hub, "2.1.1"), headers=headers)).json()["data"]
            assert [t["auth_id"] for t in listed] == ["DE-FLT-ACME0001"] and "country_code" not in listed[0]
            await _hold(hub.db, d, BLOCK)
            answer = await client.post(
                f"{_sender_url(hub, '2.1.1')}/{dunning_kit.TOKEN}/authorize", headers=headers
            )
            assert answer.json()["data"]["allowed"] == "BLOCKED" and "token" not in answer.json()["data"]
            refused = await client.get(_sender_url(hub), headers={"Authorization": encode_token("old-token")})
            assert refused.status_code == 404  # the 2.2.1 routes are not its version's
        await wait_until(lambda: bool(cpo.puts(dunning_kit.TOKEN)), "the 2.1.1 PUT", timeout=PATIENCE)
        put = cpo.received[-1]
        assert put.path == f"/ocpi/cpo/2.1.1/tokens/NL/EVH/{dunning_kit.TOKEN}" and put.query == ""
        assert put.body["valid"] is False and put.body["auth_id"] == "DE-FLT-ACME0001"
        assert "country_code" not in put.body and "ocpi-from-party-id" not in put.headers
        assert put.headers["authorization"] == "Token hub-token-for-FR*OLD"
    finally:
        await cpo.stop()


async def test_a_state_older_than_the_one_queued_is_never_queued(hub: RunningHub, cpo: FakeCpo) -> None:
    _, d = await _dunned_fleet(hub.db)
    partner_id = await add_cpo_partner(hub.db, cpo)
    assert await hub.component.push_tokens_once() == 1
    async with hub.db.session() as s:  # as if a newer state had been queued by another process meanwhile
        state = await s.scalar(
            select(OcpiPushState).where(
                OcpiPushState.partner_id == partner_id, OcpiPushState.object_key == str(d.token_id)
            )
        )
        assert state is not None and state.last_status is not None
        state.last_status = "29990101T000000.000000|1|A"
    await _hold(hub.db, d, BLOCK)  # the hold's hook sees the newer state: queues nothing
    async with hub.db.session() as s:
        token = await s.get(Token, d.token_id)
        assert token is not None
        assert await enqueue_tokens(s, [token]) == 0
        assert len((await s.scalars(select(OutboxMessage))).all()) == 1  # the first run's PUT only
    async with hub.db.session() as s:  # and once the partner's state is older, the hold is queued
        await s.execute(
            update(OcpiPushState).where(OcpiPushState.partner_id == partner_id).values(last_status="1|1|A")
        )
        token = await s.get(Token, d.token_id)
        assert token is not None
        assert await enqueue_tokens(s, [token]) == 1


async def test_a_cpo_registers_through_the_handshake_and_receives_the_hosted_tokens(
    hub: RunningHub, cpo: FakeCpo
) -> None:
    await _dunned_fleet(hub.db)
    invitation = await credentials.invite(hub.db, hub.platform, "ION", roles=[("BE", "ION", "CPO")])
    async with hub.http() as client:
        hubs = await cpo.register(client, invitation.versions_url, invitation.token_a, "BE*ION", "token-b")
        assert ("NL", "EVH", "EMSP") in {(r["country_code"], r["party_id"], r["role"]) for r in hubs["roles"]}
        listed = await client.get(_sender_url(hub), headers=cpo_headers(hubs["token"]))
        assert [t["uid"] for t in listed.json()["data"]] == [dunning_kit.TOKEN]
    assert await hub.component.push_tokens_once() == 1
    await wait_until(
        lambda: bool(cpo.puts(dunning_kit.TOKEN)), "the token PUT to the registered CPO", timeout=PATIENCE
    )
    assert cpo.received[-1].headers["authorization"] == encode_token("token-b")


async def _status(db: Database, message_id: int, status: OutboxStatus) -> bool:
    async with db.session() as s:
        message = await s.get(OutboxMessage, message_id)
        return message is not None and message.status == status


async def _outbox(db: Database) -> list[OutboxMessage]:
    async with db.session() as s:
        return list((await s.scalars(select(OutboxMessage).order_by(OutboxMessage.id))).all())


async def test_a_hold_queues_the_token_puts_in_its_own_transaction_and_they_leave_without_the_job(
    hub: RunningHub, cpo: FakeCpo
) -> None:
    _, d = await _dunned_fleet(hub.db)
    await add_cpo_partner(hub.db, cpo)
    async with hub.db.session() as s:
        account = await s.get(BillingAccount, d.account_id)
        document = await s.get(BillingDocument, d.document_id)
        assert account is not None and document is not None
        await place_hold(s, account, document, BLOCK, "test")
        queued = (
            await s.scalars(select(OutboxMessage))
        ).all()  # before the commit, in the hold's transaction
        assert [(m.channel, m.payload["method"]) for m in queued] == [("ocpi", "PUT")]
    # no run of the ocpi-token-push job: the dispatcher alone delivers what the hold queued
    await wait_until(lambda: len(cpo.puts(dunning_kit.TOKEN)) == 1, "the PUT of the block", timeout=PATIENCE)
    blocked = cpo.puts(dunning_kit.TOKEN)[0]
    assert blocked["valid"] is False and blocked["uid"] == dunning_kit.TOKEN
    assert await dunning_kit.pay(hub.db, d.document_id) == 1
    await wait_until(
        lambda: len(cpo.puts(dunning_kit.TOKEN)) == 2, "the PUT of the release", timeout=PATIENCE
    )
    released = cpo.puts(dunning_kit.TOKEN)[1]
    assert released["valid"] is True and released["last_updated"] > blocked["last_updated"]
    # the catch-up job's first run looks at every token: the CPO has their states, nothing is queued again
    assert await hub.component.push_tokens_once() == 0
    assert len(await _outbox(hub.db)) == 2


async def test_a_hold_rolled_back_sends_nothing(hub: RunningHub, cpo: FakeCpo) -> None:
    _, d = await _dunned_fleet(hub.db)
    await add_cpo_partner(hub.db, cpo)

    class Crash(Exception):
        pass

    with pytest.raises(Crash):
        async with hub.db.session() as s:
            account = await s.get(BillingAccount, d.account_id)
            document = await s.get(BillingDocument, d.document_id)
            assert account is not None and document is not None
            await place_hold(s, account, document, BLOCK, "test")
            assert len((await s.scalars(select(OutboxMessage))).all()) == 1
            raise Crash  # the dunning step fails after the hold: the hold and its PUT go together
    assert await _outbox(hub.db) == []
    async with hub.db.session() as s:
        assert (await s.scalars(select(OcpiPushState))).all() == []  # no state claims a PUT that never left
    await hub.dispatched(3)
    assert cpo.received == []
    # and the hold placed again, committed this time, is pushed
    await _hold(hub.db, d, BLOCK)
    await wait_until(
        lambda: len(cpo.puts(dunning_kit.TOKEN)) == 1, "the PUT of the committed block", timeout=PATIENCE
    )
    assert cpo.puts(dunning_kit.TOKEN)[0]["valid"] is False
