"""The pricing CLI tells the truth about money (issue 12).

T4: ``evhub tariffs rerate`` printed the sessions it still could not price and exited 0, so a cron job or an
operator's script saw success; now it exits 1 with one line per session still FAILED (uid and reason), and 0
once every session it retried is priced.

S3 (replay): ``evhub tariffs replay`` mixed currencies (a GBP CDR counted on the actual side only) and credits
(a credit CDR on the actual side, never on the proposed side; a credited original and its re-issue both
replayed), so replaying with the identical tariff showed a difference. Now it compares like with like: only
CDRs in the proposed tariff's currency (the others counted as "not comparable"), and only the current revision
of each session on both sides."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from kernel.db.engine import Database
from kernel.models import EVSE, Cdr, ChargingSession, Connector, PricingState
from tariffs.rating import correct_cdr, rate_pending
from tests.world.demo_network import DEMO, seed_pricing_network
from tests.world.sessions import seed_ended_session

NOV_10 = datetime(2026, 11, 10, 21, 30, tzinfo=UTC)


async def _set_tariff_ids(db: Database, evse_uid_prefix: str, tariff_ids: list[str]) -> dict[int, list]:
    """Point the connectors of the EVSEs whose uid starts with ``evse_uid_prefix`` at ``tariff_ids``; returns
    connector pk -> the tariff ids they had."""
    async with db.session() as s:
        rows = (
            await s.execute(
                select(Connector)
                .join(EVSE, Connector.evse_pk == EVSE.id)
                .where(EVSE.uid.startswith(evse_uid_prefix))
            )
        ).scalars()
        before = {}
        for c in rows:
            before[c.id] = list(c.tariff_ids or [])
            c.tariff_ids = tariff_ids
        return before


async def test_rerate_exits_1_naming_each_session_still_failed_and_0_once_all_are_priced(
    db: Database, cli
) -> None:
    await seed_pricing_network(db)
    before = await _set_tariff_ids(db, "AMS-01-1", ["MISSING"])
    await seed_ended_session(db, "AMS-01-1", NOV_10, 60, "10", uid="stuck")
    await seed_ended_session(db, "AMS-01-2", NOV_10, 60, "10", uid="fine")
    assert await rate_pending(db, ()) == 1  # "stuck" is FAILED now

    result = await cli("tariffs", "rerate", ok=False)
    assert result.exit_code == 1, result.output
    failed_lines = [line for line in result.stderr.splitlines() if "stuck" in line]
    assert len(failed_lines) == 1 and "MISSING" in failed_lines[0], result.stderr
    assert "fine" not in result.stderr

    async with db.session() as s:  # the operator fixes the connector's tariff
        for pk, ids in before.items():
            connector = await s.get(Connector, pk)
            assert connector is not None
            connector.tariff_ids = ids
    await cli("tariffs", "rerate")  # exit 0
    async with db.session() as s:
        states = set((await s.scalars(select(ChargingSession.pricing_state))).all())
    assert states == {PricingState.PRICED}


async def test_replay_with_the_identical_tariff_shows_no_difference(
    db: Database, cli, tmp_path: Path
) -> None:
    await seed_pricing_network(db)
    await seed_ended_session(db, "AMS-01-1", NOV_10, 60, "10", uid="corrected")
    assert await rate_pending(db, ()) == 1
    pounds_session = await seed_ended_session(db, "AMS-01-2", NOV_10, 60, "10", uid="in-pounds")
    async with db.session() as s:
        original = await s.scalar(select(Cdr))
        assert original is not None
        # A CDR of the same CPO in another currency, as a back office that bills in pounds would have sent it.
        s.add(
            Cdr(
                cdr_uid="IN-POUNDS",
                session_id=pounds_session,
                cpo_id=original.cpo_id,
                location_id=original.location_id,
                token_id=original.token_id,
                currency="GBP",
                start_date_time=original.start_date_time,
                end_date_time=original.end_date_time,
                total_energy_kwh=original.total_energy_kwh,
                total_time_hours=original.total_time_hours,
                total_cost_excl_vat=original.total_cost_excl_vat,
                total_cost_incl_vat=original.total_cost_incl_vat,
                data={**original.data, "id": "IN-POUNDS", "session_id": "in-pounds", "currency": "GBP"},
                last_updated=original.last_updated,
            )
        )
    # The corrected session: original, its credit and the re-issue (same total: no newer tariff covers it).
    credit, fresh = await correct_cdr(db, original.cdr_uid, ())
    assert fresh.total_cost_excl_vat == original.total_cost_excl_vat == -credit.total_cost_excl_vat

    identical = tmp_path / "identical.json"
    identical.write_text(json.dumps(json.loads((DEMO / "tariffs.json").read_text())[0]))
    args = ("tariffs", "replay", "--tariff", str(identical), "--from", "2026-11-01", "--to", "2026-12-01")
    out = json.loads((await cli(*args, "--json")).stdout)
    assert out["locations"] == [
        {
            "location_id": "AMS-CENTRAAL",
            "currency": "EUR",
            "cdrs": 1,
            "actual_excl_vat": "3.90",
            "proposed_excl_vat": "3.90",
            "difference_excl_vat": "0.00",
        }
    ]
    assert out["not_comparable"] == {"GBP": 1} and out["not_priced"] == 0
    table = (await cli(*args)).stdout
    assert "0.00 EUR" in table and "1 CDR not comparable (GBP)" in table
