"""One charger's absurd but finite value never fails the group-commit batch it shares with innocent chargers
(issue 15, "per-charger validation"): it is refused for that charger alone (CALLERROR
PropertyConstraintViolation), every other charger of the batch is stored and answered."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from cpo_gateway.charger_values import sample_value, scaled_sample
from cpo_gateway.events import Sample, SessionStarted
from cpo_gateway.framing import OcppError
from cpo_gateway.meter_rules import sample_rows
from cpo_gateway.server import Gateway
from kernel.db.engine import Database
from kernel.models import ChargePoint, MeterValue, OcppVersion, RegistrationStatus
from kernel.security import hash_password
from tests.gateway.conftest import PASSWORD, T0, Seed, iso, open_client

INNOCENT = 40


@pytest.mark.parametrize("raw", ["1E-20000", "1e-40", "-0.00000000000000000000000000000000000001"])
def test_values_no_column_holds_are_refused(raw: str) -> None:
    with pytest.raises(OcppError) as refused:
        sample_value(Decimal(raw), raw)
    assert refused.value.code == "PropertyConstraintViolation" and len(str(refused.value)) < 200


@pytest.mark.parametrize("multiplier", [Decimal("-1E+8"), -100000000, 41, Decimal("1.5"), "x", None])
def test_absurd_multipliers_are_refused(multiplier: object) -> None:
    with pytest.raises(OcppError) as refused:
        scaled_sample(Decimal(5), multiplier, "5")
    assert refused.value.code == "PropertyConstraintViolation"


def test_plausible_values_pass() -> None:
    for raw in ("0", "0.30000000000000004", "1.2345678901234567e-05", "99999999999999.5", "-12.5"):
        assert sample_value(Decimal(raw), raw) == Decimal(raw)
    assert scaled_sample(Decimal("1.5"), 3, "1.5") == Decimal(1500)
    assert scaled_sample(Decimal("1500"), Decimal(-3), "1500") == Decimal("1.5")


async def _sessions(gateway: Gateway, count: int) -> list[int]:
    loaded = await gateway.chargers.load_charger("CP201")
    assert loaded is not None
    ref = loaded[1]
    ids = []
    for n in range(count):
        started = await gateway.sessions.started(ref, SessionStarted(f"T{n}", 1, 1, None, T0), None)
        ids.append(started.id)
    return ids


async def _stored(db: Database, session_ids: list[int]) -> int:
    async with db.session() as db_session:
        return int(
            await db_session.scalar(
                select(func.count()).select_from(MeterValue).where(MeterValue.session_id.in_(session_ids))
            )
            or 0
        )


async def test_a_bad_message_fails_only_itself_in_the_shared_batch(
    gateway: Gateway, db: Database, seeded: Seed
) -> None:
    """The writer itself, given a message the database refuses (past the gateway's checks): a naive
    timestamp, a register in kWh whose Wh overflow the session's energy column; the 40 others are stored."""
    ids = await _sessions(gateway, INNOCENT + 2)
    good, naive, overflow = ids[:INNOCENT], ids[INNOCENT], ids[INNOCENT + 1]
    writer = gateway.meter_writer

    def rows(sid: int, **kw: object) -> list[dict[str, object]]:
        return sample_rows(sid, (Sample(timestamp=T0 + timedelta(minutes=1), value=Decimal(1000)),))

    bad_time = [dict(rows(naive)[0], timestamp=T0.replace(tzinfo=None))]
    too_big = [{"sid": overflow, "energy": Decimal(10) ** 17, "now": T0}]
    results = await asyncio.gather(
        *(writer.write(rows(sid), [{"sid": sid, "energy": Decimal(10), "now": T0}]) for sid in good),
        writer.write(bad_time, []),
        writer.write(rows(overflow), too_big),
        return_exceptions=True,
    )
    assert results[:INNOCENT] == [None] * INNOCENT
    assert (
        isinstance(results[INNOCENT], OcppError) and results[INNOCENT].code == "PropertyConstraintViolation"
    )
    if not db.is_sqlite:  # SQLite keeps the number as text and does not refuse it
        assert isinstance(results[INNOCENT + 1], OcppError)
    assert await _stored(db, good) == INNOCENT


async def test_one_charger_of_forty_sends_an_absurd_value(
    gateway: Gateway, db: Database, seeded: Seed
) -> None:
    """Over real websockets: 40 chargers and one that sends 1e-20000 (PostgreSQL: "value overflows numeric
    format") and a 2.0.1 multiplier of -1e8 in the same moment; only that one is refused."""
    async with db.session() as db_session:
        pw = hash_password(PASSWORD)
        for n in range(INNOCENT + 1):
            db_session.add(
                ChargePoint(
                    identity=f"BATCH{n:02d}",
                    password_hash=pw,
                    ocpp_version=OcppVersion.V16,
                    cpo_id=seeded.cpo_id,
                    location_id=seeded.location_id,
                    registration_status=RegistrationStatus.ACCEPTED,
                )
            )
    clients = [await open_client(gateway, f"BATCH{n:02d}", "ocpp1.6") for n in range(INNOCENT + 1)]
    v201 = await open_client(gateway, "CP201", "ocpp2.0.1")
    try:
        txs = []
        for c in clients:
            answer = await c.ok(
                "StartTransaction",
                {"connectorId": 1, "idTag": "AABBCC01", "meterStart": 0, "timestamp": iso(T0)},
            )
            txs.append(answer["transactionId"])
        for minute in (1, 2, 3):
            stamp = iso(T0 + timedelta(minutes=minute))

            def meter(tx: int, value: str, stamp: str = stamp) -> dict[str, object]:
                return {"connectorId": 1, "transactionId": tx,
                        "meterValue": [{"timestamp": stamp, "sampledValue": [{"value": value}]}]}  # fmt: skip

            answers = await asyncio.gather(
                *(
                    c.call("MeterValues", meter(tx, str(100 * minute)))
                    for c, tx in zip(clients, txs, strict=True)
                ),
                clients[-1].raw(
                    json.dumps([2, f"bad{minute}", "MeterValues", meter(txs[-1], "1E-20000")]), f"bad{minute}"
                ),
                v201.raw(
                    json.dumps(
                        [
                            2,
                            f"m{minute}",
                            "TransactionEvent",
                            {
                                "eventType": "Updated",
                                "timestamp": stamp,
                                "triggerReason": "MeterValuePeriodic",
                                "seqNo": minute,
                                "transactionInfo": {"transactionId": "TXB"},
                                "meterValue": [
                                    {
                                        "timestamp": stamp,
                                        "sampledValue": [
                                            {"value": 5, "unitOfMeasure": {"multiplier": -100_000_000}}
                                        ],
                                    }
                                ],
                            },
                        ]
                    ),
                    f"m{minute}",
                ),
            )
            assert [a[0] for a in answers[:-2]] == [3] * (INNOCENT + 1), answers
            assert answers[-2][0] == 4 and answers[-2][2] == "PropertyConstraintViolation", answers[-2]
            assert answers[-1][0] == 4 and answers[-1][2] == "PropertyConstraintViolation", answers[-1]
        async with db.session() as db_session:
            stored = await db_session.scalar(select(func.count()).select_from(MeterValue))
        # every innocent value (the bad charger's good ones too), no bad one
        assert stored == 3 * (INNOCENT + 1)
    finally:
        for c in [*clients, v201]:
            await c.close()
