"""Settlement against the real database: CDRs priced by the hub, agreements from the CLI's store, runs that
are stored, closed, replayed byte-for-byte, and late CDRs that land in the next period."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from evhub.cli import app
from kernel.db.engine import Database
from kernel.models import Cdr, SettlementRun, SettlementStatement
from settlement.agreement_store import AgreementChangeError, add_agreements
from settlement.job import run_period
from tariffs.rating import rate_pending
from tests.world.agreements import PRICING_NETWORK_AGREEMENTS as AGREEMENTS
from tests.world.demo_network import seed_pricing_network
from tests.world.sessions import seed_ended_session


async def _setup(db: Database) -> None:
    await seed_pricing_network(db)
    async with db.session() as s:
        await add_agreements(s, AGREEMENTS)
    base = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)
    for i in range(4):
        await seed_ended_session(db, "AMS-01-1", base + timedelta(days=i), 45, str(8 + i), uid=f"oct-{i}")
    await rate_pending(db, ())


async def test_run_stores_statements_that_add_up(db: Database, tmp_path: Path) -> None:
    await _setup(db)
    job = await run_period(db, "2026-10", out_dir=tmp_path)
    summary = job.result.summary
    assert summary.cdrs_settled == 4 and summary.cdrs_rejected == 0
    async with db.session() as s:
        cdrs = (await s.scalars(select(Cdr))).all()
        statements = (await s.scalars(select(SettlementStatement))).all()
    by_party = {st.party: st for st in statements}
    assert set(by_party) == {"NL*EMS", "NL*AMP", "NL*HUB", "NL*SIT"}
    # Money neither appears nor disappears: every party's gross adds up to zero.
    assert sum((st.gross for st in statements), Decimal(0)) == 0
    # The eMSP owes exactly the CDRs' totals incl. VAT.
    assert by_party["NL*EMS"].gross == -sum((c.total_cost_incl_vat for c in cdrs), Decimal(0))
    # Hub fee per CDR: 5 % of net + 0.10, rounded once per CDR.
    expected_fee = sum(
        ((c.total_cost_excl_vat * Decimal("0.05") + Decimal("0.10")).quantize(Decimal("0.01")) for c in cdrs),
        Decimal(0),
    )
    assert by_party["NL*HUB"].net == expected_fee
    for name in ("lines.csv", "lines.parquet", "transfers.csv", "summary.json", "statements/NL_AMP.html"):
        assert (job.output_dir / name).is_file()


async def test_a_period_without_cdrs_settles_to_nothing(db: Database, tmp_path: Path) -> None:
    """A fresh hub's first monthly close: no CDRs yet is an empty run, not a failure."""
    await _setup(db)
    job = await run_period(db, "2026-03", out_dir=tmp_path)
    assert job.result.summary.cdrs_settled == 0 and job.result.summary.cdrs_rejected == 0
    async with db.session() as s:
        runs = (await s.scalars(select(SettlementRun).where(SettlementRun.period == "2026-03"))).all()
    assert len(runs) == 1
    assert (job.output_dir / "summary.json").is_file()


async def test_closed_period_replays_identically_and_late_cdr_goes_next(db: Database, tmp_path: Path) -> None:
    await _setup(db)
    closing = await run_period(db, "2026-10", out_dir=tmp_path, close=True)
    again = await run_period(db, "2026-10", out_dir=tmp_path)
    assert again.replay and again.reproduced
    assert (again.output_dir / "lines.csv").read_bytes() == (closing.output_dir / "lines.csv").read_bytes()
    async with db.session() as s:
        assert len((await s.scalars(select(SettlementRun))).all()) == 1  # a replay stores nothing

    # A session of October that is priced only now (after the close) settles in November as an adjustment.
    await seed_ended_session(db, "AMS-01-2", datetime(2026, 10, 30, 9, 0, tzinfo=UTC), 30, "5", uid="late")
    await rate_pending(db, ())
    november = await run_period(db, "2026-11", out_dir=tmp_path)
    lines = november.result.lines
    assert november.result.summary.adjustments == 1
    assert set(lines["adjusts_period"].astype(str)) == {"2026-10"}
    replay = await run_period(db, "2026-10", out_dir=tmp_path)
    assert replay.reproduced, "a late CDR must not change a closed period"


async def test_agreements_in_force_in_a_closed_period_cannot_change(db: Database, tmp_path: Path) -> None:
    await _setup(db)
    await run_period(db, "2026-10", close=True)
    edited = dict(AGREEMENTS[1], percentage="0.07")
    with pytest.raises(AgreementChangeError, match="exists already"):
        async with db.session() as s:
            await add_agreements(s, [edited])
    backdated = dict(AGREEMENTS[1], version=2, valid_from="2026-10-15", percentage="0.07")
    with pytest.raises(AgreementChangeError):
        async with db.session() as s:
            await add_agreements(s, [backdated])
    superseding = dict(AGREEMENTS[1], version=2, valid_from="2026-11-01", percentage="0.07")
    async with db.session() as s:
        await add_agreements(s, [superseding])


async def test_settle_cli_and_explain(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    await _setup(db)
    monkeypatch.setenv("EVHUB_DATABASE_URL", db.url)
    runner = CliRunner()
    result = await asyncio.to_thread(
        runner.invoke, app, ["settle", "--period", "2026-10", "--out", str(tmp_path), "--engine", "dask"]
    )
    assert result.exit_code == 0, result.output
    assert "content hash" in result.output and "NL*HUB" in result.output
    pandas_run = await run_period(db, "2026-10")
    async with db.session() as s:
        hashes = [
            r.content_hash for r in (await s.scalars(select(SettlementRun).order_by(SettlementRun.id))).all()
        ]
        cdr_id = (await s.scalars(select(Cdr.cdr_uid))).first()
    assert hashes[0] == hashes[1] == pandas_run.result.summary.content_hash  # dask == pandas
    explained = await asyncio.to_thread(runner.invoke, app, ["settle", "explain", cdr_id])
    assert explained.exit_code == 0 and "hub_fee" in explained.output and cdr_id in explained.output
    unknown = await asyncio.to_thread(runner.invoke, app, ["settle", "explain", "nope"])
    assert unknown.exit_code != 0 and "unknown CDR" in unknown.output
    bad = await asyncio.to_thread(runner.invoke, app, ["settle", "--period", "2026-13"])
    assert bad.exit_code != 0


async def test_agreements_api(db: Database) -> None:
    import httpx

    from evhub.app import RunningHub
    from kernel.settings import load_settings
    from settlement.component import SettlementComponent

    await seed_pricing_network(db)
    running = RunningHub(
        load_settings(database_url=db.url, http_host="127.0.0.1", http_port=0, _env_file=None),
        components=[SettlementComponent()],
    )
    await running.start()
    try:
        async with httpx.AsyncClient(base_url=running.hub.endpoints["http"], timeout=60.0) as client:
            created = await client.post("/api/agreements", json=AGREEMENTS)
            assert created.status_code == 201, created.text
            assert {a["agreement_id"] for a in created.json()} == {a["agreement_id"] for a in AGREEMENTS}
            again = await client.post("/api/agreements", json=AGREEMENTS[:1])
            assert again.status_code == 422 and "exists already" in again.text
            bad = await client.post("/api/agreements", json=[{"kind": "roaming", "agreement_id": "x"}])
            assert bad.status_code == 422
            listed = await client.get("/api/agreements")
            assert len(listed.json()) == len(AGREEMENTS)
    finally:
        await running.stop()
