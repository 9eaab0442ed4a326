"""Issue #12 "what must hold" item 2 (D3): a CDR's signed meter data is verified, carries the signed Start and
End with their encoding and public key (OCPI 2.2.1 mod_cdrs SignedData / SignedValue), and the outcome is
stored on the session (``sessions.signed_verification`` / ``signed_verification_reason``). Billing never waits
for it: an invalid one leaves ``signed_data`` out and the CDR still goes out.

Every OCMF message is signed in the test with a key pair made in the test run (:mod:`tests.world.ocmf`)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from cpo_gateway.server import Gateway
from evhub import provisioning as prov
from evhub.cli import app
from kernel.db.engine import Database
from kernel.models import Cdr, ChargePoint, ChargingSession, MeterValue, PricingState
from kernel.timeutil import utcnow
from tariffs.rating import rate_pending
from tests.gateway.conftest import gateway_settings, iso, open_client, seed
from tests.world.demo_network import seed_pricing_network
from tests.world.ocmf import SigningMeter
from tests.world.sessions import seed_ended_session

BEGIN_AT, END_AT = "2026-03-02T08:00:00,000+0000", "2026-03-02T08:30:00,000+0000"


@contextlib.asynccontextmanager
async def _gateway(db: Database, database_url: str) -> AsyncIterator[Gateway]:
    """The gateway of tests/gateway (CP16 and CP201 of CPO NL*ABC), with a DEFAULT tariff of 0.30 EUR/kWh."""
    await seed(db)
    tariff = {"country_code": "NL", "party_id": "ABC", "id": "DEFAULT", "currency": "EUR",
              "elements": [{"price_components": [{"type": "ENERGY", "price": "0.30", "step_size": 1}]}],
              "last_updated": "2026-01-01T00:00:00Z"}  # fmt: skip
    async with db.session() as s:
        await prov.import_tariff(s, tariff)
    gw = Gateway(gateway_settings(database_url), db, "node-a")
    await gw.start("127.0.0.1", 0)
    try:
        yield gw
    finally:
        await gw.stop()


async def _set_charger_key(db: Database, identity: str, key: str | None) -> None:
    async with db.session() as s:
        await s.execute(
            update(ChargePoint).where(ChargePoint.identity == identity).values(meter_public_key=key)
        )


async def _priced(db: Database, transaction_id: str) -> tuple[ChargingSession, Cdr]:
    assert await rate_pending(db, []) == 1
    async with db.session() as s:
        sess = await s.scalar(select(ChargingSession).where(ChargingSession.transaction_id == transaction_id))
        assert sess is not None and sess.pricing_state == PricingState.PRICED, sess and sess.pricing_error
        cdr = await s.scalar(select(Cdr).where(Cdr.session_id == sess.id))
        assert cdr is not None
        return sess, cdr


def _decoded(signed_data: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (v["nature"], v["plain_data"], base64.b64decode(v["signed_data"]).decode())
        for v in signed_data["signed_values"]
    ]


def _signed_sample(at: str, data: str, context: str) -> dict[str, Any]:
    return {"timestamp": at, "sampledValue": [{"value": data, "format": "SignedData", "context": context,
            "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]}  # fmt: skip


async def test_a_16_charger_over_websockets_gets_its_signed_start_and_end_into_the_cdr(
    db: Database, database_url: str
) -> None:
    """Item 2 (D3): a 1.6 charger sends a signed Begin (hex, as 1.6's SignedData "encoded as hex data") and a
    signed End (plain OCMF) as SignedData samples; the operator set the meter's public key for the charger. The
    CDR's signed_data: OCMF version 1, the key in base64, Start and End with the signed readings as plain data
    and the messages base64; the session is verified."""
    meter = SigningMeter()
    begin = meter.reading("B", "1.000", page=1, at=BEGIN_AT)
    end = meter.reading("E", "1.500", page=2, at=END_AT)
    start = utcnow() - timedelta(minutes=40)
    stop = start + timedelta(minutes=30)
    async with _gateway(db, database_url) as gw:
        await _set_charger_key(db, "CP16", meter.public_key_hex)
        c = await open_client(gw, "CP16", "ocpp1.6")
        tx = (await c.ok("StartTransaction", {"connectorId": 1, "idTag": "AABBCC01", "meterStart": 1000,
                                              "timestamp": iso(start)}))["transactionId"]  # fmt: skip
        await c.ok("MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": [
            _signed_sample(iso(start), begin.encode().hex(), "Transaction.Begin"),
            {"timestamp": iso(start + timedelta(minutes=15)), "sampledValue": [{"value": "1250"}]},
        ]})  # fmt: skip
        await c.ok("StopTransaction", {"transactionId": tx, "meterStop": 1500, "timestamp": iso(stop),
                                       "transactionData": [_signed_sample(iso(stop), end, "Transaction.End")]})  # fmt: skip
        await c.close()
    sess, cdr = await _priced(db, str(tx))
    assert (sess.signed_verification, sess.signed_verification_reason) == ("verified", None)
    signed = cdr.data["signed_data"]
    assert signed["encoding_method"] == "OCMF" and signed["encoding_method_version"] == 1
    assert signed["public_key"] == meter.public_key_b64 and len(signed["public_key"]) <= 512
    assert _decoded(signed) == [("Start", "1.000 kWh", begin), ("End", "1.500 kWh", end)]
    assert all(len(v["signed_data"]) <= 5000 for v in signed["signed_values"])
    assert cdr.total_energy_kwh == Decimal("0.5")


async def test_a_201_charger_sends_the_public_key_with_its_signed_values(
    db: Database, database_url: str
) -> None:
    """Item 2 (D3): a 2.0.1 charger sends signedMeterValue {signedMeterData (base64 OCMF), publicKey}: the key
    is kept on the session (sessions.meter_public_key) and verifies the Begin and End; the CDR carries it."""
    meter = SigningMeter()
    start = utcnow() - timedelta(minutes=40)
    stop = start + timedelta(minutes=30)

    def reg(at: Any, kwh: float, context: str, data: str) -> dict[str, Any]:
        signed = {"signedMeterData": base64.b64encode(data.encode()).decode(), "signingMethod": "ECDSA-secp256r1-SHA256",
                  "encodingMethod": "OCMF", "publicKey": meter.public_key_b64}  # fmt: skip
        return {"timestamp": iso(at), "sampledValue": [{"value": kwh, "context": context,
                "unitOfMeasure": {"unit": "kWh"}, "signedMeterValue": signed}]}  # fmt: skip

    def event(kind: str, at: Any, seq: int, value: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"eventType": kind, "timestamp": iso(at), "triggerReason": "Authorized", "seqNo": seq,
                "transactionInfo": {"transactionId": "TX-SIGNED", **extra}, "evse": {"id": 1, "connectorId": 1},
                "idToken": {"idToken": "AABBCC01", "type": "ISO14443"}, "meterValue": [value]}  # fmt: skip

    async with _gateway(db, database_url) as gw:
        c = await open_client(gw, "CP201", "ocpp2.0.1")
        begin = meter.reading("B", "2.000", page=7, at=BEGIN_AT)
        end = meter.reading("E", "2.750", page=8, at=END_AT)
        await c.ok(
            "TransactionEvent", event("Started", start, 0, reg(start, 2.0, "Transaction.Begin", begin))
        )
        await c.ok("TransactionEvent", event("Ended", stop, 1, reg(stop, 2.75, "Transaction.End", end),
                                             stoppedReason="Local"))  # fmt: skip
        await c.close()
    sess, cdr = await _priced(db, "TX-SIGNED")
    assert sess.meter_public_key == meter.public_key_b64
    assert (sess.signed_verification, sess.signed_verification_reason) == ("verified", None)
    assert cdr.data["signed_data"]["public_key"] == meter.public_key_b64
    assert _decoded(cdr.data["signed_data"]) == [("Start", "2.000 kWh", begin), ("End", "2.750 kWh", end)]


async def _signed_session(db: Database, uid: str, begin: str | None, end: str | None) -> int:
    """A priced-to-be session of the demo network (meter 1000 -> 1500 Wh) with signed-only 1.6 placeholders
    for its Begin and End."""
    start = utcnow() - timedelta(hours=2)
    sid = await seed_ended_session(db, "AMS-01-1", start, 30, "0.5", uid=uid)
    async with db.session() as s:
        for at, context, data in (
            (start, "Transaction.Begin", begin),
            (start + timedelta(minutes=30), "Transaction.End", end),
        ):
            if data is not None:
                s.add(MeterValue(session_id=sid, timestamp=at, context=context, unit="SignedData", value=Decimal(0),
                                 signed_data=data))  # fmt: skip
    return sid


async def test_a_tampered_end_is_invalid_and_the_cdr_goes_out_without_signed_data(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Item 2 (D3): the End reading was changed after signing (1.500 -> 1.501 kWh): invalid, the reason
    stored; the session is still priced and its CDR has no signed_data; ``evhub sessions show`` says so."""
    await seed_pricing_network(db)
    meter = SigningMeter()
    tampered = meter.reading("E", "1.500", page=2, at=END_AT).replace('"RV":1.500', '"RV":1.501')
    await _signed_session(db, "tampered", meter.reading("B", "1.000", page=1, at=BEGIN_AT), tampered)
    await _set_charger_key(db, "CP-AMS-01-1", meter.public_key_b64)
    sess, cdr = await _priced(db, "tampered")
    assert sess.signed_verification == "invalid"
    assert sess.signed_verification_reason == (
        "the signature of End does not match (altered data or another meter's key)"
    )
    assert "signed_data" not in cdr.data and cdr.total_cost_excl_vat > 0
    monkeypatch.setenv("EVHUB_DATABASE_URL", db.url)
    shown = await asyncio.to_thread(CliRunner().invoke, app, ["sessions", "show", "tampered"])
    assert shown.exit_code == 0, shown.output
    assert "signed data      INVALID (the signature of End does not match" in shown.output, shown.output
    shown = await asyncio.to_thread(CliRunner().invoke, app, ["sessions", "show", "tampered", "--json"])
    assert json.loads(shown.stdout)["signed_verification"] == "invalid"


async def test_the_key_the_operator_set_wins_then_the_chargers_then_none(db: Database) -> None:
    """Item 2 (D3): charge_points.meter_public_key (set by the operator) wins over the key a charger sent
    (sessions.meter_public_key, here another meter's); without the operator's, the charger's key is used; with
    neither it is unverifiable and the CDR still carries the signed values, without a public_key; data that is
    not OCMF is unverifiable too (encoding UNKNOWN, the plain register as plain data)."""
    await seed_pricing_network(db)
    meter, other = SigningMeter(), SigningMeter()
    begin, end = (
        meter.reading("B", "1.000", page=1, at=BEGIN_AT),
        meter.reading("E", "1.500", page=2, at=END_AT),
    )
    cases = (
        ("operator-key", meter.public_key_hex, other.public_key_b64, "verified", None),
        ("charger-key", None, meter.public_key_b64, "verified", None),
        ("no-key", None, None, "unverifiable", "no public key"),
    )
    for uid, operator_key, charger_key, status, reason in cases:
        sid = await _signed_session(db, uid, begin, end)
        async with db.session() as s:
            await s.execute(
                update(ChargingSession).where(ChargingSession.id == sid).values(meter_public_key=charger_key)
            )
        await _set_charger_key(db, "CP-AMS-01-1", operator_key)
        sess, cdr = await _priced(db, uid)
        assert (sess.signed_verification, sess.signed_verification_reason) == (status, reason), uid
        signed = cdr.data["signed_data"]
        assert signed.get("public_key") == (meter.public_key_b64 if operator_key or charger_key else None), (
            uid
        )
        assert _decoded(signed) == [("Start", "1.000 kWh", begin), ("End", "1.500 kWh", end)], uid
    await _signed_session(db, "not-ocmf", "DEADBEEF", "0A0B0C0D")
    sess, cdr = await _priced(db, "not-ocmf")
    assert (sess.signed_verification, sess.signed_verification_reason) == ("unverifiable", "not OCMF")
    signed = cdr.data["signed_data"]
    assert signed["encoding_method"] == "UNKNOWN" and "encoding_method_version" not in signed
    values = [(v["nature"], v["plain_data"]) for v in signed["signed_values"]]
    assert values == [("Start", "1.000 kWh"), ("End", "1.500 kWh")]
    assert base64.b64decode(signed["signed_values"][1]["signed_data"]) == bytes.fromhex("0A0B0C0D")


async def test_a_session_without_signed_data_has_no_verification(db: Database) -> None:
    """Item 2 (D3): nothing signed: no verification stored, no signed_data in the CDR."""
    await seed_pricing_network(db)
    start = utcnow() - timedelta(hours=2)
    await seed_ended_session(db, "AMS-01-1", start, 30, "0.5", uid="plain")
    sess, cdr = await _priced(db, "plain")
    assert (sess.signed_verification, sess.signed_verification_reason) == (None, None)
    assert "signed_data" not in cdr.data
