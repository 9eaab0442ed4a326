"""Issue 13, CiString defect (C1): a token's uid is case-insensitive (OCPP 1.6 idTag CiString20, OCPI uid
CiString36), so a token blocked under one casing is blocked under every casing, over a real 1.6 websocket."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from cpo_gateway.server import Gateway
from kernel.db.engine import Database
from kernel.models import Party, Token
from tests.gateway.conftest import T0, Seed, iso, open_client


async def _add_tokens(db: Database, *rows: tuple[str, bool, int]) -> None:
    """Tokens of the seeded eMSP DE*XYZ: (uid, valid, minutes after T0 of last_updated)."""
    async with db.session() as db_session:
        emsp = await db_session.scalar(select(Party).where(Party.party_id == "XYZ"))
        assert emsp is not None
        for uid, valid, minutes in rows:
            db_session.add(
                Token(
                    country_code="DE",
                    party_id="XYZ",
                    uid=uid,
                    contract_id=f"DE-XYZ-{uid}",
                    issuer="XYZ",
                    emsp_id=emsp.id,
                    valid=valid,
                    last_updated=T0 + timedelta(minutes=minutes),
                )
            )


async def test_blocked_token_is_blocked_under_every_casing(
    gateway: Gateway, db: Database, seeded: Seed
) -> None:
    """C1: a token stored blocked as CASETEST1 answers Blocked to Authorize and StartTransaction for
    casetest1, CaseTest1 and CASETEST1 (never Accepted)."""
    await _add_tokens(db, ("CASETEST1", False, 0))
    c = await open_client(gateway, "CP16", "ocpp1.6")
    try:
        await c.ok("BootNotification", {"chargePointVendor": "ACME", "chargePointModel": "W1"})
        for tag in ("casetest1", "CaseTest1", "CASETEST1"):
            answer = await c.ok("Authorize", {"idTag": tag})
            assert answer["idTagInfo"]["status"] == "Blocked", (tag, answer)
        start = await c.ok(
            "StartTransaction",
            {"connectorId": 1, "idTag": "casetest1", "meterStart": 0, "timestamp": iso(T0)},
        )
        assert start["idTagInfo"]["status"] == "Blocked", start
    finally:
        await c.close()


async def test_newest_casing_variant_decides(gateway: Gateway, db: Database, seeded: Seed) -> None:
    """C1: two rows differing only in the uid's casing (as the hub stored them before the fix: the eMSP pushed
    casetest2 valid, then blocked CASETEST2) are one token; the newer (blocked) row decides for every casing,
    while a re-validation stored later makes it Accepted again under every casing."""
    await _add_tokens(db, ("casetest2", True, 0), ("CASETEST2", False, 5))
    c = await open_client(gateway, "CP16", "ocpp1.6")
    try:
        for tag in ("casetest2", "CASETEST2", "Casetest2"):
            assert (await c.ok("Authorize", {"idTag": tag}))["idTagInfo"]["status"] == "Blocked", tag
        async with db.session() as db_session:
            row = await db_session.scalar(select(Token).where(Token.uid == "casetest2"))
            assert row is not None
            row.last_updated = T0 + timedelta(minutes=10)
        for tag in ("casetest2", "CASETEST2"):
            assert (await c.ok("Authorize", {"idTag": tag}))["idTagInfo"]["status"] == "Accepted", tag
    finally:
        await c.close()
