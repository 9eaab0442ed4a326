"""Issue #12 "what must hold" item 2 (D3): the driver's receipt says how the signed meter data checked out
("Signed meter data: verified / unverifiable (reason) / INVALID (reason)") and attaches the signed Begin and
End as OCMF text for transparency software, also when it is invalid (and so not in the CDR).

Sessions are priced for real (:func:`tariffs.rating.rate_pending`); the OCMF is signed in the test with a key
pair made in the test run (:mod:`tests.world.ocmf`)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select, update

from kernel.db.engine import Database
from kernel.models import Cdr, ChargePoint, ChargingSession, MeterValue, Token
from kernel.timeutil import utcnow
from portal.receipts import build_view, render
from tariffs.rating import rate_pending
from tests.world.demo_network import seed_pricing_network
from tests.world.ocmf import SigningMeter
from tests.world.sessions import seed_ended_session

BEGIN_AT, END_AT = "2026-03-02T08:00:00,000+0000", "2026-03-02T08:30:00,000+0000"


async def _receipt(db: Database, uid: str, begin: str, end: str, key: str | None) -> dict:
    """Price a session (meter 1000 -> 1500 Wh) with signed Begin/End, the charger's key ``key``; its receipt."""
    start = utcnow() - timedelta(hours=2)
    sid = await seed_ended_session(db, "AMS-01-1", start, 30, "0.5", uid=uid)
    async with db.session() as s:
        for at, context, data in (
            (start, "Transaction.Begin", begin),
            (start + timedelta(minutes=30), "Transaction.End", end),
        ):
            s.add(MeterValue(session_id=sid, timestamp=at, context=context, unit="SignedData", value=Decimal(0),
                             signed_data=data))  # fmt: skip
        await s.execute(
            update(ChargePoint).where(ChargePoint.identity == "CP-AMS-01-1").values(meter_public_key=key)
        )
    assert await rate_pending(db, []) == 1
    async with db.session() as s:
        cdr = await s.scalar(select(Cdr).where(Cdr.session_id == sid))
        assert cdr is not None
        token = await s.get(Token, cdr.token_id)
        assert token is not None
        return render(await build_view(s, cdr, token))


def _bodies(receipt: dict) -> tuple[str, str, str]:
    [attachment] = receipt["attachments"]
    return receipt["text"], receipt["html"], attachment["content"]


async def test_the_receipt_says_verified_unverifiable_or_invalid(db: Database) -> None:
    """Item 2 (D3): verified (the operator's key), unverifiable (no key anywhere), INVALID (the End changed
    after signing) on the text and the HTML receipt; the attachment is the Begin and End OCMF text each time."""
    await seed_pricing_network(db)
    meter = SigningMeter()
    begin = meter.reading("B", "1.000", page=1, at=BEGIN_AT)
    end = meter.reading("E", "1.500", page=2, at=END_AT)
    tampered = end.replace('"RV":1.500', '"RV":1.505')
    cases = (
        ("verified", end, meter.public_key_b64, "Signed meter data: verified"),
        ("no-key", end, None, "Signed meter data: unverifiable (no public key)"),
        (
            "tampered",
            tampered,
            meter.public_key_hex,
            "Signed meter data: INVALID (the signature of End does not match (altered data or another meter's key))",
        ),
    )
    for uid, signed_end, key, line in cases:
        text, html, attached = _bodies(await _receipt(db, uid, begin, signed_end, key))
        assert line in text, (uid, text)
        assert (
            line.replace("Signed meter data: ", "Signed meter data: <strong>").replace("'", "&#39;") in html
        ), uid
        assert begin in attached and signed_end in attached, uid
    async with db.session() as s:
        rows = await s.execute(select(ChargingSession.session_uid, ChargingSession.signed_verification))
        stored = {uid: status for uid, status in rows}
    assert stored == {"verified": "verified", "no-key": "unverifiable", "tampered": "invalid"}


async def test_a_receipt_without_signed_data_says_so_and_claims_no_verification(db: Database) -> None:
    """Item 2 (D3): nothing signed: no "Signed meter data:" outcome line, the receipt says the charger did not
    provide any, nothing is attached."""
    await seed_pricing_network(db)
    await seed_ended_session(db, "AMS-01-1", utcnow() - timedelta(hours=2), 30, "0.5", uid="plain")
    assert await rate_pending(db, []) == 1
    async with db.session() as s:
        cdr = await s.scalar(select(Cdr))
        assert cdr is not None
        token = await s.get(Token, cdr.token_id)
        assert token is not None
        receipt = render(await build_view(s, cdr, token))
    assert "Signed meter data:" not in receipt["text"] and receipt["attachments"] == []
    assert "did not provide signed meter data" in receipt["text"]
