"""The hub as eMSP receives external CPOs' CDRs (issue 14, item 4): ``POST /ocpi/emsp/2.2.1/cdrs`` stores one CDR
once, in the hub's own tables, at the CPO's price; ``GET`` of the ``Location`` answered serves it to that CPO
only; bad input is an OCPI error, never a 500; a card the addressed eMSP does not have is refused (2004). On
SQLite and PostgreSQL (``EVHUB_TEST_DATABASE_URL``), over the in-process network."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import func, select

from kernel import jsonutil
from kernel.models import Cdr, PricingState
from kernel.timeutil import utcnow
from tests.conftest import OCPI_EXAMPLES, TEST_CLOCK_START
from tests.ocpi._shapes import check
from tests.ocpi.cpo_partner_kit import add_emsp_token, add_hosted_emsp, cpo_headers
from tests.ocpi.received_cdrs_kit import (
    CARD,
    EMSP_TOKEN,
    cdr_body,
    cdrs_url,
    cpx_headers,
    emsp_world,
    ion_headers,
    post_cdr,
    received_rows,
)

if TYPE_CHECKING:
    from tests.ocpi.conftest import RunningHub


def _start() -> Any:
    return utcnow() - timedelta(days=1)


async def _count(hub: RunningHub) -> int:
    async with hub.db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(Cdr).where(Cdr.received.is_(True))) or 0)


async def test_the_details_offer_the_cdrs_receiver_on_the_emsp_side(hub: RunningHub) -> None:
    await emsp_world(hub.db)
    async with hub.http() as client:
        details = (await client.get(f"{hub.url}/ocpi/2.2.1", headers=ion_headers())).json()["data"]
    cdrs = [(e["role"], e["url"]) for e in details["endpoints"] if e["identifier"] == "cdrs"]
    assert cdrs == [("SENDER", f"{hub.url}/ocpi/cpo/2.2.1/cdrs"), ("RECEIVER", cdrs_url(hub.url))]


async def test_a_posted_cdr_is_stored_once_at_the_cpos_price_and_served_at_its_location(
    hub: RunningHub,
) -> None:
    world = await emsp_world(hub.db)
    body = cdr_body(start=_start())
    async with hub.http() as client:
        first, answer = await post_cdr(client, cdrs_url(hub.url), body, ion_headers())
        assert (first.status_code, answer["status_code"]) == (201, 1000), first.text
        location = first.headers["Location"]
        assert location.startswith(cdrs_url(hub.url) + "/")
        # the same CDR again, as peers resend it: another casing of its ids, a trailing slash, restamped
        again = {**body, "id": body["id"].lower(), "party_id": "ion", "last_updated": body["end_date_time"]}
        second, answer2 = await post_cdr(client, cdrs_url(hub.url) + "/", again, ion_headers())
        assert (second.status_code, answer2["status_code"]) == (200, 1000), second.text
        assert second.headers["Location"] == location
        got = await client.get(location, headers=ion_headers())
        served = jsonutil.loads(got.content)
        slash = await client.get(location + "/", headers=ion_headers())
    assert got.status_code == 200 and served["status_code"] == 1000 and slash.status_code == 200
    assert served["data"]["id"] == "ION-CDR-0001"  # as the CPO sent it first
    assert served["data"]["total_cost"] == {"excl_vat": Decimal("10.00"), "incl_vat": Decimal("12.11")}
    assert check(served["data"], "CDR") == []
    rows = await received_rows(hub.db)
    assert len(rows) == 1
    cdr, session = rows[0]
    assert cdr.cdr_uid == "BE*ION*ION-CDR-0001" and cdr.received and not cdr.is_credit
    assert (cdr.emsp_id, cdr.token_id, cdr.fleet_id, cdr.driver_name) == (
        world.emsp_pk,
        world.token_id,
        world.fleet_id,
        "Ann",
    )
    assert (cdr.currency, cdr.total_cost_excl_vat, cdr.total_cost_incl_vat) == (
        "EUR",
        Decimal("10.00"),
        Decimal("12.11"),
    )
    assert (cdr.total_energy_kwh, cdr.total_time_hours) == (Decimal("20.5"), Decimal("1.5"))
    assert cdr.location_id is None and cdr.data["cdr_location"]["id"] == "ION-LOC-1"
    lines = cdr.explanation["lines"]
    assert [(ln["dimension"], ln["amount_excl_vat"], ln["vat"]) for ln in lines] == [
        ("ENERGY", "7.50", "21"),
        ("TIME", "2.00", "21"),
        ("FLAT", "0.50", "21"),
    ]
    assert [ln["quantity"] for ln in lines] == ["20.5", "1.0", "1"]  # kWh, charging hours (1.5 - 0.5 parked)
    assert session.charge_point_id is None and session.pricing_state == PricingState.PRICED
    assert (session.token_id, session.fleet_id, session.cpo_id) == (
        world.token_id,
        world.fleet_id,
        cdr.cpo_id,
    )


async def test_another_partner_cannot_read_it_nor_the_cpo_through_another_emsp(hub: RunningHub) -> None:
    await emsp_world(hub.db)
    await add_hosted_emsp(hub.db, "NL*EV2")
    async with hub.http() as client:
        reply, _ = await post_cdr(client, cdrs_url(hub.url), cdr_body(start=_start()), ion_headers())
        location = reply.headers["Location"]
        other_cpo = await client.get(location, headers=cpx_headers())
        other_emsp = await client.get(location, headers=ion_headers(to="NL*EV2"))
        as_emsp = await client.get(location, headers=cpo_headers(EMSP_TOKEN, sender="DE*EMS"))
        unknown = await client.get(cdrs_url(hub.url) + "/999999", headers=ion_headers())
        not_an_id = await client.get(cdrs_url(hub.url) + "/ION-CDR-0001", headers=ion_headers())
        mine = await client.get(location, headers=ion_headers())
    assert mine.status_code == 200
    for refused in (other_cpo, other_emsp, unknown, not_an_id):
        assert (refused.status_code, refused.json()["status_code"]) == (404, 2000), refused.text
        assert "data" not in refused.json()
    assert as_emsp.status_code == 403  # an eMSP partner has no business on the eMSP side


async def test_the_official_example_with_unknown_fields_is_accepted_and_kept(hub: RunningHub) -> None:
    """What a real peer sends: the spec's own example CDR (its CPO and card made ours), re-cased enums, a
    DateTime without an offset, an unknown field of a newer peer (kept, not served)."""
    await emsp_world(hub.db)
    body = jsonutil.loads((OCPI_EXAMPLES / "cdr_example.json").read_text())
    body.update(country_code="BE", party_id="ION", auth_method="whitelist", x_vendor={"note": "kept"})
    body["cdr_token"].update(country_code="nl", party_id="evh", uid=CARD.lower(), type="rfid")
    body["start_date_time"] = body["start_date_time"].rstrip("Z")
    async with hub.http() as client:
        reply, answer = await post_cdr(client, cdrs_url(hub.url), body, ion_headers())
        served = (await client.get(reply.headers["Location"], headers=ion_headers())).json()["data"]
    assert (reply.status_code, answer["status_code"]) == (201, 1000), reply.text
    [(cdr, _session)] = await received_rows(hub.db)
    assert cdr.data["x_vendor"] == {"note": "kept"} and "x_vendor" not in served
    assert (cdr.total_cost_excl_vat, cdr.total_cost_incl_vat) == (Decimal("4.00"), Decimal("4.40"))
    assert [(ln["dimension"], ln["vat"]) for ln in cdr.explanation["lines"]] == [("TIME", "10")]


def _bad_bodies() -> list[tuple[str, Any, str]]:
    # built at collection, before the test's clock is pinned: from the pinned start, not the real time, so
    # every xdist worker collects the same bodies and none is dated after the instant the test runs at
    start = TEST_CLOCK_START - timedelta(days=1)

    def cdr(**changes: Any) -> dict[str, Any]:
        body = cdr_body(start=start)
        for key, value in changes.items():
            if value is None:
                body.pop(key, None)
            else:
                body[key] = value
        return body

    deep: Any = "x"
    for _ in range(20):
        deep = {"d": deep}
    return [
        ("not JSON", b"{not json", "not valid JSON"),
        ("an array", [cdr()], "CDR object"),
        ("no total_cost", cdr(total_cost=None), "total_cost"),
        ("a string for total_cost", cdr(total_cost="10 EUR"), "total_cost"),
        ("a cent too fine", cdr(total_cost={"excl_vat": Decimal("10.005")}), "minor units"),
        ("a negative total", cdr(total_cost={"excl_vat": Decimal("-1.00")}), "negative"),
        ("incl. below excl. VAT", cdr(total_cost={"excl_vat": Decimal(10), "incl_vat": Decimal(9)}), "below"),
        ("energy of 7 decimals", cdr(total_energy=Decimal("1.0000001")), "6 decimals"),
        ("an absurd amount", cdr(total_cost={"excl_vat": Decimal("1E+30")}), "out of range"),
        ("an unknown currency", cdr(currency="XYZ"), "currency"),
        ("ends before it starts", cdr(end_date_time="2000-01-01T00:00:00Z"), "before"),
        ("a date that is none", cdr(start_date_time="yesterday"), "start_date_time"),
        ("an unknown auth method", cdr(auth_method="MAGIC"), "auth_method"),
        ("no charging period", cdr(charging_periods=[]), "charging_periods"),
        (
            "a credit without reference",
            cdr(credit=True, total_cost={"excl_vat": Decimal("-10.00")}),
            "credit",
        ),
        ("a 39-character id of no credit", cdr(id="X" * 39), "36"),
        ("another CPO's CDR", cdr(party_id="CPX"), "not of the calling role"),
        ("extras nested too deep", cdr(x_deep=deep), "nest"),
        ("NaN", json.dumps(cdr_body(start=start), default=str).replace('"10.00"', "NaN"), "total_cost"),
    ]


@pytest.mark.parametrize(("what", "body", "said"), _bad_bodies(), ids=[b[0] for b in _bad_bodies()])
async def test_bad_input_is_2001_with_the_reason_never_a_500(
    hub: RunningHub, what: str, body: Any, said: str
) -> None:
    await emsp_world(hub.db)
    async with hub.http() as client:
        reply, answer = await post_cdr(client, cdrs_url(hub.url), body, ion_headers())
    assert (reply.status_code, answer["status_code"]) == (400, 2001), (what, reply.text)
    assert said.lower() in answer["status_message"].lower(), (what, answer["status_message"])
    assert await _count(hub) == 0


async def test_callers_and_routing_that_are_not_a_cpo_to_a_hosted_emsp_are_refused(hub: RunningHub) -> None:
    await emsp_world(hub.db)
    body = cdr_body(start=_start())
    headers = ion_headers()
    no_routing = {k: v for k, v in headers.items() if not k.startswith("OCPI-to")}
    async with hub.http() as client:
        missing, m = await post_cdr(client, cdrs_url(hub.url), body, no_routing)
        foreign, f = await post_cdr(client, cdrs_url(hub.url), body, ion_headers(to="DE*EMS"))
        as_emsp, _ = await post_cdr(client, cdrs_url(hub.url), body, cpo_headers(EMSP_TOKEN, sender="DE*EMS"))
        no_token, _ = await post_cdr(client, cdrs_url(hub.url), body, {})
    assert (missing.status_code, m["status_code"]) == (400, 2001)
    assert (foreign.status_code, f["status_code"]) == (404, 4001)
    assert as_emsp.status_code == 403 and no_token.status_code == 401
    assert await _count(hub) == 0


async def test_a_cdr_with_other_content_under_a_stored_id_is_refused(hub: RunningHub) -> None:
    await emsp_world(hub.db)
    async with hub.http() as client:
        await post_cdr(client, cdrs_url(hub.url), cdr_body(start=_start()), ion_headers())
        changed = cdr_body(start=_start(), energy_cost=("8.00", "9.68"))
        reply, answer = await post_cdr(client, cdrs_url(hub.url), changed, ion_headers())
    assert (reply.status_code, answer["status_code"]) == (400, 2001)
    assert "never updated" in answer["status_message"]
    [(cdr, _)] = await received_rows(hub.db)
    assert cdr.total_cost_excl_vat == Decimal("10.00")


async def test_a_card_the_addressed_emsp_does_not_have_is_refused_2004_and_logged(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    await emsp_world(hub.db)
    other = await add_hosted_emsp(hub.db, "NL*EV2")
    await add_emsp_token(hub.db, other, "EV2CARD")  # another hosted eMSP's card, addressed to NL*EVH
    caplog.set_level(logging.WARNING, logger="ocpi.received_cdrs")
    async with hub.http() as client:
        unknown, u = await post_cdr(
            client, cdrs_url(hub.url), cdr_body(start=_start(), uid="NOSUCH"), ion_headers()
        )
        body = cdr_body("ION-CDR-0002", start=_start(), uid="EV2CARD")
        elsewhere, e = await post_cdr(client, cdrs_url(hub.url), body, ion_headers())
    for reply, answer in ((unknown, u), (elsewhere, e)):
        assert (reply.status_code, answer["status_code"]) == (400, 2004), reply.text
        assert "not stored" in answer["status_message"]
    assert "Unknown token NL*EVH NOSUCH (RFID)" in u["status_message"]
    assert await _count(hub) == 0
    refusals = [r.getMessage() for r in caplog.records if "unknown token" in r.getMessage()]
    assert len(refusals) == 2 and "ION-CDR-0001" in refusals[0] and "NOSUCH" in refusals[0]


async def test_a_credit_cdr_credits_once_and_a_correction_is_the_sessions_next_revision(
    hub: RunningHub,
) -> None:
    await emsp_world(hub.db)
    start = _start()
    original = cdr_body(start=start)
    credit = {
        **original,
        "id": "ION-CDR-0001-C",
        "credit": True,
        "credit_reference_id": "ion-cdr-0001",
        "total_cost": {"excl_vat": Decimal("-10.00"), "incl_vat": Decimal("-12.11")},
    }
    wrong = {**credit, "id": "ION-CDR-0001-D", "total_cost": {"excl_vat": Decimal("-9.00")}}
    corrected = cdr_body("ION-CDR-0001-R", start=start, energy_cost=("7.00", "8.47"))
    async with hub.http() as client:
        url, headers = cdrs_url(hub.url), ion_headers()
        early, e = await post_cdr(client, url, credit, headers)  # its original is not here yet
        assert (early.status_code, e["status_code"]) == (400, 2001) and "no CDR" in e["status_message"]
        await post_cdr(client, url, original, headers)
        wrong_reply, w = await post_cdr(client, url, wrong, headers)
        first, _ = await post_cdr(client, url, credit, headers)
        twice, _ = await post_cdr(client, url, credit, headers)
        other, o = await post_cdr(client, url, {**credit, "id": "ION-CDR-0001-C2"}, headers)
        fixed, _ = await post_cdr(client, url, corrected, headers)
    assert (wrong_reply.status_code, w["status_code"]) == (400, 2001) and "negated" in w["status_message"]
    assert (first.status_code, twice.status_code, fixed.status_code) == (201, 200, 201)
    assert (other.status_code, o["status_code"]) == (400, 2001) and "credited already" in o["status_message"]
    rows = await received_rows(hub.db)
    assert [(c.cdr_uid, c.revision, c.is_credit, c.total_cost_excl_vat) for c, _ in rows] == [
        ("BE*ION*ION-CDR-0001", 0, False, Decimal("10.00")),
        ("BE*ION*ION-CDR-0001-C", 0, True, Decimal("-10.00")),
        ("BE*ION*ION-CDR-0001-R", 1, False, Decimal("9.50")),
    ]
    assert rows[1][0].credit_of == rows[0][0].id
    assert len({session.id for _, session in rows}) == 1  # one CPO session, one session row


async def test_concurrent_posts_of_one_cdr_store_it_once(hub: RunningHub) -> None:
    await emsp_world(hub.db)
    body = cdr_body(start=_start())
    async with hub.http() as client:
        replies = await asyncio.gather(
            *(post_cdr(client, cdrs_url(hub.url), body, ion_headers()) for _ in range(4))
        )
    assert sorted(r.status_code for r, _ in replies) == [200, 200, 200, 201]
    assert {a["status_code"] for _, a in replies} == {1000}
    assert len({r.headers["Location"] for r, _ in replies}) == 1
    assert await _count(hub) == 1
