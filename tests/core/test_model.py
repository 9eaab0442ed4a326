"""The shared model's constraints: unique identities, foreign keys, exact money, aware UTC, immutable CDRs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, StatementError

from kernel.db.engine import Database
from kernel.models import (
    Cdr,
    ChargePoint,
    ChargingSession,
    ImmutableRecordError,
    MeterValue,
    OcppVersion,
    Party,
    PartyRole,
    Token,
)

NOW = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


async def _cpo(db: Database) -> int:
    async with db.session() as s:
        party = Party(country_code="NL", party_id="ABC", role=PartyRole.CPO, name="ABC")
        s.add(party)
        await s.flush()
        return party.id


async def test_party_key_is_unique_per_role(db: Database) -> None:
    await _cpo(db)
    async with db.session() as s:
        s.add(Party(country_code="NL", party_id="ABC", role=PartyRole.EMSP, name="same key, other role"))
    with pytest.raises(IntegrityError):
        async with db.session() as s:
            s.add(Party(country_code="NL", party_id="ABC", role=PartyRole.CPO, name="duplicate"))


async def test_charger_identity_unique_and_cpo_must_exist(db: Database) -> None:
    cpo_id = await _cpo(db)
    async with db.session() as s:
        s.add(ChargePoint(identity="CP-1", ocpp_version=OcppVersion.V16, cpo_id=cpo_id))
    with pytest.raises(IntegrityError):
        async with db.session() as s:
            s.add(ChargePoint(identity="CP-1", ocpp_version=OcppVersion.V201, cpo_id=cpo_id))
    with pytest.raises(IntegrityError):
        async with db.session() as s:
            s.add(ChargePoint(identity="CP-2", ocpp_version=OcppVersion.V16, cpo_id=cpo_id + 999))
    async with db.session() as s:
        stored = await s.scalar(select(ChargePoint.ocpp_version).where(ChargePoint.identity == "CP-1"))
        raw = await s.scalar(text("SELECT ocpp_version FROM charge_points"))
    assert stored is OcppVersion.V16
    assert raw == "1.6"


async def _session(db: Database, cpo_id: int) -> int:
    async with db.session() as s:
        cp = ChargePoint(identity="CP-9", ocpp_version=OcppVersion.V16, cpo_id=cpo_id)
        s.add(cp)
        await s.flush()
        sess = ChargingSession(
            session_uid="s-1",
            charge_point_id=cp.id,
            transaction_id="42",
            cpo_id=cpo_id,
            start_time=NOW,
            last_updated=NOW,
            energy_wh=Decimal("12345.678901"),
        )
        s.add(sess)
        await s.flush()
        return sess.id


async def test_money_and_energy_stay_exact_decimals(db: Database) -> None:
    cpo_id = await _cpo(db)
    sid = await _session(db, cpo_id)
    async with db.session() as s:
        sess = await s.get(ChargingSession, sid)
        s.add(MeterValue(session_id=sid, timestamp=NOW, value=Decimal("0.000001")))
    async with db.session() as s:
        energy = await s.scalar(select(ChargingSession.energy_wh).where(ChargingSession.id == sid))
        value = await s.scalar(select(MeterValue.value))
    assert isinstance(energy, Decimal) and energy == Decimal("12345.678901")
    assert value == Decimal("0.000001")
    with pytest.raises(StatementError):
        async with db.session() as s:
            sess = await s.get(ChargingSession, sid)
            sess.energy_wh = 0.1  # type: ignore[assignment]


async def test_token_limit_needs_a_currency(db: Database) -> None:
    with pytest.raises(IntegrityError):
        async with db.session() as s:
            s.add(
                Token(
                    country_code="NL",
                    party_id="EMS",
                    uid="U1",
                    contract_id="C",
                    issuer="I",
                    monthly_limit=Decimal("100"),
                    limit_currency=None,
                    last_updated=NOW,
                )
            )


async def test_times_are_aware_utc_and_naive_is_refused(db: Database) -> None:
    cpo_id = await _cpo(db)
    sid = await _session(db, cpo_id)
    async with db.session() as s:
        sess = await s.get(ChargingSession, sid)
        sess.end_time = datetime(2026, 10, 25, 3, 15, tzinfo=timezone(timedelta(hours=2)))
    async with db.session() as s:
        end = await s.scalar(select(ChargingSession.end_time).where(ChargingSession.id == sid))
    assert end == datetime(2026, 10, 25, 1, 15, tzinfo=UTC)
    assert end.utcoffset() == timedelta(0)
    with pytest.raises(StatementError, match="naive"):
        async with db.session() as s:
            sess = await s.get(ChargingSession, sid)
            sess.end_time = datetime(2026, 10, 25, 3, 15)


async def test_meter_value_replay_is_rejected_by_the_key(db: Database) -> None:
    cpo_id = await _cpo(db)
    sid = await _session(db, cpo_id)
    async with db.session() as s:
        s.add(MeterValue(session_id=sid, timestamp=NOW, value=Decimal(1)))
    with pytest.raises(IntegrityError):
        async with db.session() as s:
            s.add(MeterValue(session_id=sid, timestamp=NOW, value=Decimal(1)))


async def test_cdrs_are_immutable(db: Database) -> None:
    cpo_id = await _cpo(db)
    sid = await _session(db, cpo_id)
    async with db.session() as s:
        cdr = Cdr(
            cdr_uid="CDR-1",
            session_id=sid,
            cpo_id=cpo_id,
            currency="EUR",
            start_date_time=NOW,
            end_date_time=NOW + timedelta(hours=1),
            total_energy_kwh=Decimal("10"),
            total_time_hours=Decimal("1"),
            total_cost_excl_vat=Decimal("3.50"),
            data={"id": "CDR-1"},
        )
        s.add(cdr)
    with pytest.raises(ImmutableRecordError):
        async with db.session() as s:
            row = await s.scalar(select(Cdr))
            row.total_cost_excl_vat = Decimal("0")
    with pytest.raises(ImmutableRecordError):
        async with db.session() as s:
            await s.delete(await s.scalar(select(Cdr)))
    async with db.session() as s:
        assert (await s.scalar(select(Cdr.total_cost_excl_vat))) == Decimal("3.50")
    with pytest.raises(IntegrityError):  # one original CDR per session
        async with db.session() as s:
            s.add(
                Cdr(
                    cdr_uid="CDR-2",
                    session_id=sid,
                    cpo_id=cpo_id,
                    currency="EUR",
                    start_date_time=NOW,
                    end_date_time=NOW,
                    total_energy_kwh=Decimal(0),
                    total_time_hours=Decimal(0),
                    total_cost_excl_vat=Decimal(0),
                    data={},
                )
            )
