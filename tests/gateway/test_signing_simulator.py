"""The simulated signing meter against the real gateway: a charger with a meter sends signed OCMF at each
Begin and End next to its plain values, in both OCPP versions, and what the hub stored verifies with the meter's
provisioned public key (demo item: signed meter data in the demo)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from cpo_gateway.server import Gateway
from kernel.db.engine import Database
from kernel.models import ChargePoint, ChargingSession, OcppVersion, SessionStatus
from kernel.security import hash_password
from kernel.signed_meter import public_key_base64
from simulators.chargepoints import ChargerFleet, make_specs
from simulators.signing_meter import SigningMeter
from tariffs.signed_data import session_signed_data
from tests.gateway.conftest import Seed


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_a_simulated_signing_meters_sessions_verify(
    gateway: Gateway, db: Database, seeded: Seed, version: str
) -> None:
    """Signed meter data (demo): every session of a charger with a SigningMeter carries a signed Begin and End
    that the hub verifies ("verified") with the key provisioned for the charger, and "invalid" with another
    meter's key: the signatures are real and over what was sent."""
    spec = make_specs(1, version=version, prefix="SIGN")[0]
    spec.energy_wh, spec.idle_s = (400.0, 600.0), (1.0, 5.0)
    spec.meter = meter = SigningMeter(serial="SIGN-EM")
    async with db.session() as db_session:
        db_session.add(ChargePoint(identity=spec.identity, password_hash=hash_password("sim-password"),
                                   ocpp_version=OcppVersion(version), cpo_id=seeded.cpo_id,
                                   location_id=seeded.location_id,
                                   meter_public_key=public_key_base64(meter.public_key_hex)))  # fmt: skip
    fleet = ChargerFleet(
        [spec], f"ws://127.0.0.1:{gateway.port}/ocpp", acceleration=3600, sessions_per_charger=2
    )
    await fleet.start()
    try:
        assert await fleet.wait_sessions(2, timeout=60) == 2
    finally:
        await fleet.stop()
    async with db.session() as db_session:
        sessions = (await db_session.scalars(select(ChargingSession))).all()
        assert len(sessions) == 2 and all(s.status == SessionStatus.COMPLETED for s in sessions)
        outcomes = [(await session_signed_data(db_session, s)).verification for s in sessions]
        assert [(v.status, v.reason) if v else None for v in outcomes] == [("verified", None)] * 2
        cp = await db_session.scalar(select(ChargePoint).where(ChargePoint.identity == spec.identity))
        assert cp is not None
        cp.meter_public_key = public_key_base64(SigningMeter(serial="OTHER").public_key_hex)
        await db_session.flush()
        other = [(await session_signed_data(db_session, s)).verification for s in sessions]
        assert [v.status if v else None for v in other] == ["invalid"] * 2
