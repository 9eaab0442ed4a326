"""Issue #12, S2: a CDR rejected in a period that is then closed was stuck for ever (its settlement period
came from ``created_at``, agreements cannot start inside a closed period, and the split picked agreements at
the CDR's end time). Now the closing run's rejections are stored (``settlement_rejections``) and every later
run tries them again: they settle as adjustments of their service period, with the terms in force at the
start of the period they settle in when those at their end cannot split them, or stay listed in each later
run's ``rejected.csv`` with the period that first rejected them. Closed periods replay to the same hash.

Issue item 6: "every priced CDR settles or is rejected for a documented reason, listed in the exports"."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from typer.testing import CliRunner

from evhub.app import create_app
from evhub.cli import app as cli_app
from kernel.clock import pinned
from kernel.components import Hub
from kernel.db.engine import Database
from kernel.models import Cdr, SettlementRejection, SettlementRun, SettlementStatement
from kernel.settings import load_settings
from settlement.agreement_store import AgreementChangeError, add_agreements
from settlement.component import SettlementComponent
from settlement.core.accounting_periods import closed_until, parse_period
from settlement.core.agreements import AgreementBook, RoamingAgreement, check_change
from settlement.core.canonical_exports import rejected_csv
from settlement.core.explain import explain_cdr
from settlement.core.minor import from_minor
from settlement.core.run import RunResult, settle
from settlement.core.split import REJECT_REASONS
from settlement.job import run_period
from tariffs.rating import correct_cdr, rate_pending
from tests.world.api_network import seed_api_network
from tests.world.demo_network import price_with_max_price_tariff, seed_pricing_network
from tests.world.sessions import seed_ended_session

from .testkit import CPOS, EMSPS, cdr_rows, make_book, one_cdr_row, reference_split

BOOK = make_book()
OCT_CLOSED = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)
NEW_EMSP = "XX*NEW"
NEW_ROAMING = RoamingAgreement(
    agreement_id="R-new", version=1, valid_from="2026-11-01", emsp=NEW_EMSP, cpo=CPOS[0]
)


def _orphan() -> pd.DataFrame:
    """An October CDR of an eMSP without a roaming agreement, priced on time."""
    return one_cdr_row(cdr_id="ORPHAN", emsp=NEW_EMSP, created_at=pd.Timestamp("2026-10-05T12:10Z"))


def _settled(run: RunResult) -> set[str]:
    return set(run.lines["cdr_id"].astype(str))


def _carried(*runs: RunResult) -> pd.DataFrame:
    """What the job loads from ``settlement_rejections``: the closing runs' rejections."""
    return pd.DataFrame(
        [(str(c), run.period) for run in runs for c in run.rejected["cdr_id"]], columns=["cdr_id", "period"]
    )


def test_a_rejection_of_a_closed_period_settles_later_as_an_adjustment_of_its_period(tmp_path: Path):
    """S2: rejected in 2026-10, which closes; the agreement that was missing is added from 2026-11-01 (the
    first day an agreement may start); 2026-11 settles the CDR as an adjustment of 2026-10; replaying
    2026-10 gives the closing run's hash."""
    cdrs = pd.concat(
        [one_cdr_row(created_at=pd.Timestamp("2026-10-05T12:10Z")), _orphan()], ignore_index=True
    )
    closing = settle(cdrs, BOOK, "2026-10")
    assert list(closing.rejected["cdr_id"]) == ["ORPHAN"]
    assert rejected_csv(closing.rejected).decode().splitlines()[1] == (
        "ORPHAN,no_roaming_agreement,2026-10,2026-10,2026-10"
    )
    closes = {"2026-10": OCT_CLOSED}
    # the agreement cannot be backdated into the closed period; from the first open day it can
    assert check_change(
        BOOK.agreements,
        NEW_ROAMING.model_copy(update={"valid_from": date(2026, 10, 1)}),
        closed_until(closes),
    )
    assert check_change(BOOK.agreements, NEW_ROAMING, closed_until(closes)) == []
    book = AgreementBook([*BOOK.agreements, NEW_ROAMING])

    november = settle(cdrs, book, "2026-11", closes, carried=_carried(closing))
    assert november.rejected.empty
    lines = november.lines
    assert set(lines["cdr_id"]) == {"ORPHAN"}
    assert lines["is_adjustment"].all()
    assert set(lines["adjusts_period"].astype(str)) == {"2026-10"}
    assert set(lines["service_period"].astype(str)) == {"2026-10"}
    assert set(lines["settlement_period"].astype(str)) == {"2026-11"}
    owed = lines[lines["kind"] == "emsp_owes_cpo"]
    assert owed["agreement_id"].astype(str).item() == "R-new"
    assert from_minor(owed["gross_minor"].item(), "EUR") == -from_minor(1210, "EUR")

    replay = settle(cdrs, book, "2026-10", closes, carried=_carried(closing), replay=True)
    assert replay.summary.content_hash == closing.summary.content_hash
    assert list(replay.rejected["cdr_id"]) == ["ORPHAN"]
    # settled once: the run after 2026-11 closed with it settled neither lists it nor settles it again
    closes["2026-11"] = datetime(2026, 12, 2, tzinfo=UTC)
    december = settle(cdrs, book, "2026-12", closes, carried=_carried(closing, november))
    assert december.lines.empty and december.rejected.empty


def test_a_cdr_still_not_settleable_is_listed_by_every_later_run_with_its_first_rejected_in():
    """S2: a CDR no terms can split stays in each later run's rejected.csv, ``first_rejected_in`` = the
    period that first rejected it; each closed period replays to its closing hash."""
    cdrs = _orphan()
    october = settle(cdrs, BOOK, "2026-10")
    closes = {"2026-10": OCT_CLOSED}
    november = settle(cdrs, BOOK, "2026-11", closes, carried=_carried(october))
    assert rejected_csv(november.rejected).decode().splitlines() == [
        "cdr_id,reason,service_period,settlement_period,first_rejected_in",
        "ORPHAN,no_roaming_agreement,2026-10,2026-11,2026-10",
    ]
    closes["2026-11"] = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)
    carried = _carried(october, november)
    december = settle(cdrs, BOOK, "2026-12", closes, carried=carried)
    assert rejected_csv(december.rejected).decode().splitlines()[1] == (
        "ORPHAN,no_roaming_agreement,2026-10,2026-12,2026-10"
    )
    for closing in (october, november):
        replay = settle(cdrs, BOOK, closing.period, closes, carried=carried, replay=True)
        assert replay.summary.content_hash == closing.summary.content_hash


def test_two_runs_differing_only_in_rejections_hash_differently():
    """S2: the content hash covers the rejections, including the period that first rejected each."""
    on_time = one_cdr_row(
        cdr_id="OK",
        created_at=pd.Timestamp("2026-11-03T00:00Z"),
        end_date_time=pd.Timestamp("2026-11-02T00:00Z"),
    )
    closes = {"2026-10": OCT_CLOSED}
    carried_orphan = pd.concat([on_time, _orphan()], ignore_index=True)
    late_orphan = pd.concat(
        [on_time, _orphan().assign(created_at=pd.Timestamp("2026-11-20T00:00Z"))], ignore_index=True
    )
    a = settle(carried_orphan, BOOK, "2026-11", closes, carried=_carried(settle(_orphan(), BOOK, "2026-10")))
    b = settle(late_orphan, BOOK, "2026-11", closes, carried=_carried())
    c = settle(on_time, BOOK, "2026-11", closes)
    assert a.lines.equals(b.lines) and _settled(a) == _settled(c) == {"OK"}
    assert list(a.rejected["first_rejected_in"].astype(str)) == ["2026-10"]
    assert list(b.rejected["first_rejected_in"].astype(str)) == ["2026-11"]
    assert len({a.summary.content_hash, b.summary.content_hash, c.summary.content_hash}) == 3


def test_which_terms_a_cdr_settling_after_its_period_uses():
    """S2, the agreement rule: the terms in force at the CDR's end; only when they cannot split it and it
    settles in a later period, the terms in force at the start of that period. A CDR settling in its own
    period never takes later terms."""
    closes = {"2026-10": OCT_CLOSED}
    book = AgreementBook([*BOOK.agreements, NEW_ROAMING])
    # on time in its own (open) period: November's agreement does not reach back
    assert settle(_orphan(), book, "2026-10").rejected["reason"].tolist() == ["no_roaming_agreement"]
    # priced after the close (late): it settles in November with the terms of 2026-11-01
    late = _orphan().assign(created_at=pd.Timestamp("2026-11-04T00:00Z"))
    assert _settled(settle(late, book, "2026-11", closes)) == {"ORPHAN"}
    # terms at its end that split it win over later ones: hub fee v1 (end 2026-10-05), not v2 (from 10-16)
    late_ok = one_cdr_row(cpo=CPOS[1], created_at=pd.Timestamp("2026-11-04T00:00Z"))
    hub = settle(late_ok, book, "2026-11", closes).lines.query("kind == 'hub_fee'")
    assert (hub["agreement_id"].astype(str).item(), hub["agreement_version"].item()) == ("HUB-EUR", 1)
    # a content rejection is never retried with other terms
    bad = _orphan().assign(total_incl=900, created_at=pd.Timestamp("2026-11-04T00:00Z"))
    assert settle(bad, book, "2026-11", closes).rejected["reason"].tolist() == ["negative_vat"]
    # explain shows the carried CDR as the next open period tries it
    carried = _carried(settle(_orphan(), BOOK, "2026-10"))
    explained = explain_cdr(_orphan(), book, "ORPHAN", closes, carried=carried)
    assert explained["settlement_period"] == "2026-11" and explained["is_adjustment"]
    still = explain_cdr(_orphan(), BOOK, "ORPHAN", closes, carried=carried)
    assert (still["rejected"], still["first_rejected_in"]) == ("no_roaming_agreement", "2026-10")


MONTHS = ("2026-09", "2026-10", "2026-11", "2026-12")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cdr_rows(n_max=30), st.integers(0, 20), st.sampled_from(MONTHS[1:]))
def test_every_cdr_settles_once_or_stays_listed_and_closed_periods_replay(cdrs, close_day, new_from):
    """S2 and issue item 6 over months run and closed in turn (late CDRs, credits, caps, three currencies):
    each CDR settles in exactly one run or is listed by every run from its first rejection on; a CDR
    rejected by a closing run reappears in the next run; every split matches the scalar reference with the
    terms rule; every closed period replays to its closing hash under the final agreements."""
    closes_at = {
        "2026-09": datetime(2026, 10, 2, tzinfo=UTC),
        "2026-10": datetime(2026, 11, 1 + close_day, tzinfo=UTC),
        "2026-11": datetime(2026, 12, 3, tzinfo=UTC),
        "2026-12": datetime(2027, 1, 2, tzinfo=UTC),
    }
    # an agreement for a pair that had none, starting in the first open month after new_from's predecessor
    extra = RoamingAgreement(
        agreement_id="R-MSB-CPC", version=1, valid_from=f"{new_from}-01", emsp=EMSPS[1], cpo=CPOS[2]
    )
    closes: dict[str, datetime] = {}
    closing: dict[str, RunResult] = {}
    settled_in: dict[str, str] = {}
    for month in MONTHS:
        book = AgreementBook([*BOOK.agreements, extra]) if month >= new_from else BOOK
        existing = cdrs[cdrs["created_at"] < pd.Timestamp(closes_at[month])]  # what the closing run read
        run = settle(existing, book, month, closes, carried=_carried(*closing.values()))
        for cdr_id in _settled(run):
            assert cdr_id not in settled_in, f"{cdr_id} settled twice"
            settled_in[cdr_id] = month
        for previous in closing.values():  # every CDR a closing run rejected is tried again here
            for cdr_id in map(str, previous.rejected["cdr_id"]):
                assert (
                    cdr_id in _settled(run)
                    or cdr_id in set(run.rejected["cdr_id"])
                    or (settled_in.get(cdr_id, month) < month)
                )
        _check_against_reference(existing, book, run)
        assert set(run.rejected["reason"]) <= set(REJECT_REASONS)
        closes[month] = closes_at[month]
        closing[month] = run
    final = AgreementBook([*BOOK.agreements, extra])
    last = settle(cdrs, final, "2027-01", closes, carried=_carried(*closing.values()))
    # every CDR (they all end by 2026-11-03) has settled once or is still listed
    assert set(settled_in) | _settled(last) | set(last.rejected["cdr_id"]) == set(cdrs["cdr_id"])
    assert not set(settled_in) & _settled(last)
    _check_party_totals(cdrs, pd.concat([*(r.lines for r in closing.values()), last.lines]))
    for month, run in closing.items():
        replay = settle(cdrs, final, month, closes, carried=_carried(*closing.values()), replay=True)
        assert replay.summary.content_hash == run.summary.content_hash, month


def _check_party_totals(cdrs: pd.DataFrame, lines: pd.DataFrame) -> None:
    """Per party and currency, settlement lines == CDR totals: an eMSP's lines are minus the totals of its
    settled CDRs; a CPO's own line plus the hub's and site host's lines on it are their totals (excl. VAT and
    incl. VAT)."""
    settled = cdrs[cdrs["cdr_id"].isin(set(lines["cdr_id"]))]
    for role, sign in (("emsp", -1), ("cpo", 1)):
        expected = settled.groupby([role, "currency"])[["total_excl", "total_incl"]].sum()
        if role == "emsp":
            mine = lines[lines["kind"] == "emsp_owes_cpo"].assign(who=lambda f: f["party"].astype(str))
        else:
            mine = lines[lines["kind"] != "emsp_owes_cpo"]
            mine = mine.assign(
                who=mine["party"]
                .astype(str)
                .where(mine["kind"] == "cpo_retained", mine["counterparty"].astype(str))
            )
        got = (
            mine.assign(currency=mine["currency"].astype(str))
            .groupby(["who", "currency"])[["net_minor", "gross_minor"]]
            .sum()
        )
        assert sorted(got.index) == sorted(expected.index), role
        for key, row in expected.iterrows():
            assert (got.loc[key, "net_minor"], got.loc[key, "gross_minor"]) == (
                sign * row["total_excl"],
                sign * row["total_incl"],
            ), (role, key)


def _check_against_reference(cdrs: pd.DataFrame, book: AgreementBook, run: RunResult) -> None:
    rows = cdrs.set_index(cdrs["cdr_id"].astype(str))
    rejected = dict(zip(run.rejected["cdr_id"].astype(str), run.rejected["reason"], strict=True))
    periods = {
        str(c): str(p) for c, p in zip(run.rejected["cdr_id"], run.rejected["service_period"], strict=True)
    }
    periods.update(
        {str(c): str(p) for c, p in zip(run.lines["cdr_id"], run.lines["service_period"], strict=True)}
    )
    for cdr_id, service in periods.items():
        row = rows.loc[cdr_id].to_dict()
        later = service != run.period
        expected = reference_split(row, book, parse_period(run.period).start if later else None)
        if isinstance(expected, str):
            assert rejected.get(cdr_id) == expected, (cdr_id, row)
            continue
        got = run.lines[run.lines["cdr_id"].astype(str) == cdr_id]
        assert sorted(got["kind"].astype(str)) == sorted(expected), (cdr_id, row)
        for line in got.itertuples(index=False):
            net, vat, ref = expected[str(line.kind)]
            assert from_minor(line.net_minor, row["currency"]) == net, (line.kind, row)
            assert from_minor(line.vat_minor, row["currency"]) == vat, (line.kind, row)
            assert f"{line.agreement_id}@v{line.agreement_version}" == ref


def test_the_dask_engine_carries_rejections_forward_the_same_way():
    """S2: the Dask engine splits carried CDRs as pandas does (same lines, rejections, hash)."""
    distributed = pytest.importorskip("distributed")
    from settlement.dask_engine import dask_splitter

    cdrs = pd.concat(
        [_orphan(), _orphan().assign(cdr_id="ORPHAN2", emsp="YY*NONE"), one_cdr_row(cdr_id="OK")],
        ignore_index=True,
    )
    closes = {"2026-10": OCT_CLOSED}
    carried = _carried(settle(cdrs, BOOK, "2026-10"))
    book = AgreementBook([*BOOK.agreements, NEW_ROAMING])
    cluster = distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    )
    with cluster, distributed.Client(cluster):
        on_dask = settle(cdrs, book, "2026-11", closes, carried=carried, splitter=dask_splitter(partitions=2))
    on_pandas = settle(cdrs, book, "2026-11", closes, carried=carried)
    assert _settled(on_pandas) == {"ORPHAN"}
    assert on_dask.summary == on_pandas.summary
    assert rejected_csv(on_dask.rejected) == rejected_csv(on_pandas.rejected)


# --- against the database (SQLite by default, PostgreSQL with EVHUB_TEST_DATABASE_URL) -----------------------

NO_ROAMING = [
    {
        "kind": "hub_fee",
        "agreement_id": "hub-fee-eur",
        "version": 1,
        "valid_from": "2026-01-01",
        "hub": "NL*HUB",
        "currency": "EUR",
        "percentage": "0.05",
        "fixed_per_session": "0.10",
        "vat_rates": {"NLD": "0.21"},
    }
]
ROAMING = {
    "kind": "roaming",
    "agreement_id": "roam-ems-amp",
    "version": 1,
    "valid_from": "2026-11-01",
    "emsp": "NL*EMS",
    "cpo": "NL*AMP",
}


@pytest.mark.clock("2026-12-15T10:00:00Z")
async def test_a_rejection_is_stored_carried_forward_and_settled_by_a_later_run(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """S2 end to end: the closing run of 2026-10 stores its rejection; 2026-11's runs try it again (listed
    with first_rejected_in 2026-10 while no roaming agreement exists, settled as an adjustment of 2026-10
    once one is added from 2026-11-01); 2026-10 replays to its closing hash; the closed run's stored
    rejections are never rewritten."""
    await seed_pricing_network(db)
    async with db.session() as s:
        await add_agreements(s, NO_ROAMING)
    await seed_ended_session(db, "AMS-01-1", datetime(2026, 10, 5, 9, 0, tzinfo=UTC), 45, "8", uid="oct-1")
    assert await rate_pending(db, ()) == 1
    async with db.session() as s:
        cdr = (await s.scalars(select(Cdr))).one()

    october = await run_period(db, "2026-10", out_dir=tmp_path, close=True)
    assert (october.output_dir / "rejected.csv").read_text().splitlines()[1] == (
        f"{cdr.cdr_uid},no_roaming_agreement,2026-10,2026-10,2026-10"
    )
    with pytest.raises(AgreementChangeError):  # no agreement can start inside the closed period
        async with db.session() as s:
            await add_agreements(s, [dict(ROAMING, valid_from="2026-10-01")])

    still = await run_period(db, "2026-11", out_dir=tmp_path)
    assert (still.output_dir / "rejected.csv").read_text().splitlines()[1] == (
        f"{cdr.cdr_uid},no_roaming_agreement,2026-10,2026-11,2026-10"
    )
    async with db.session() as s:
        await add_agreements(s, [ROAMING])
    # `evhub settle explain` tells what the next run will do with it: settle it in 2026-11 for 2026-10
    monkeypatch.setenv("EVHUB_DATABASE_URL", db.url)
    explained = await asyncio.to_thread(CliRunner().invoke, cli_app, ["settle", "explain", cdr.cdr_uid])
    assert explained.exit_code == 0, explained.output
    told = json.loads(explained.output)
    assert told["settlement_period"] == "2026-11" and told["is_adjustment"] is True
    assert {line["kind"] for line in told["lines"]} >= {"emsp_owes_cpo", "cpo_retained"}
    november = await run_period(db, "2026-11", out_dir=tmp_path, close=True)
    lines = november.result.lines
    assert november.result.rejected.empty and november.result.summary.adjustments == 1
    assert set(lines["cdr_id"]) == {cdr.cdr_uid}
    assert set(lines["adjusts_period"].astype(str)) == {"2026-10"}
    owed = lines[lines["kind"] == "emsp_owes_cpo"]
    assert -from_minor(owed["gross_minor"].item(), "EUR") == cdr.total_cost_incl_vat

    replay = await run_period(db, "2026-10", out_dir=tmp_path)
    assert replay.replay and replay.reproduced
    assert replay.result.summary.content_hash == october.result.summary.content_hash
    december = await run_period(db, "2026-12", out_dir=tmp_path)
    assert december.result.lines.empty and december.result.rejected.empty
    async with db.session() as s:
        stored = (
            await s.execute(
                select(SettlementRun.period, SettlementRun.sequence, SettlementRejection)
                .join(SettlementRun, SettlementRun.id == SettlementRejection.run_id)
                .order_by(SettlementRun.id)
            )
        ).all()
    assert [(p, seq, r.cdr_id, r.reason, r.service_period, r.first_rejected_in) for p, seq, r in stored] == [
        ("2026-10", 1, cdr.id, "no_roaming_agreement", "2026-10", "2026-10"),
        ("2026-11", 1, cdr.id, "no_roaming_agreement", "2026-10", "2026-10"),
    ]


def test_content_rejections_stay_listed():
    """S2: a CDR rejected for its content (negative VAT) cannot be fixed by other terms: it stays listed by
    every later run, with the period that first rejected it."""
    bad = _orphan().assign(emsp=EMSPS[0], total_incl=900)
    closes = {"2026-10": OCT_CLOSED, "2026-11": datetime(2026, 12, 2, tzinfo=UTC)}
    carried = pd.DataFrame({"cdr_id": ["ORPHAN", "ORPHAN"], "period": ["2026-10", "2026-11"]})
    later = settle(bad, BOOK, "2026-12", closes, carried=carried)
    assert later.rejected[["reason", "settlement_period", "first_rejected_in"]].astype(
        str
    ).values.tolist() == [["negative_vat", "2026-12", "2026-10"]]


@pytest.mark.clock("2026-12-15T10:00:00Z")
async def test_a_cdr_stamped_after_the_closing_run_read_the_cdrs_settles_once_next_period(
    db: Database, tmp_path: Path
):
    """Issue item 6 ("every priced CDR settles"), S2: a closing run closes at the instant it reads the CDRs.
    A CDR stamped later (rating stamps its CDRs with the instant its batch started; a big run takes
    minutes) is late for the closed period: it settles once, in the next period, and the closed period
    replays to its hash. The run used to close at the instant it was stored, after computing; a CDR it had
    read but stamped after that instant was settled by the closing run and again by the next period, and
    the closed period no longer replayed to its hash (a CDR stamped before it but not read was never
    settled)."""
    await seed_pricing_network(db)
    async with db.session() as s:
        await add_agreements(s, [*NO_ROAMING, dict(ROAMING, valid_from="2026-01-01")])
    await seed_ended_session(db, "AMS-01-1", datetime(2026, 10, 5, 9, 0, tzinfo=UTC), 45, "8", uid="oct-1")
    assert await rate_pending(db, ()) == 1
    await seed_ended_session(db, "AMS-01-1", datetime(2026, 10, 6, 9, 0, tzinfo=UTC), 45, "9", uid="oct-2")
    assert await rate_pending(db, (), now=datetime(2026, 12, 15, 10, 5, tzinfo=UTC)) == 1
    async with db.session() as s:
        on_time, stamped_later = (await s.scalars(select(Cdr.cdr_uid).order_by(Cdr.created_at))).all()

    october = await run_period(db, "2026-10", out_dir=tmp_path, close=True)
    assert set(october.result.lines["cdr_id"]) == {on_time}
    with pinned(datetime(2026, 12, 15, 11, 0, tzinfo=UTC)):
        replay = await run_period(db, "2026-10", out_dir=tmp_path)
        november = await run_period(db, "2026-11", out_dir=tmp_path)
    assert replay.reproduced
    assert set(november.result.lines["cdr_id"]) == {stamped_later}
    assert set(november.result.lines["adjusts_period"].astype(str)) == {"2026-10"}


# --- the settlement invariants on the hub's own CDRs -------------------------------------------------

AUDIT_AGREEMENTS = [
    {
        "kind": "roaming",
        "agreement_id": "roam-ems-amp",
        "version": 1,
        "valid_from": "2026-01-01",
        "emsp": "NL*EMS",
        "cpo": "NL*AMP",
    },
    *[
        {
            "kind": "hub_fee",
            "agreement_id": f"hub-fee-{currency.lower()}",
            "version": 1,
            "valid_from": "2026-01-01",
            "hub": "NL*HUB",
            "currency": currency,
            "percentage": "0.05",
            "fixed_per_session": "0.10",
            "vat_rates": {"NLD": "0.21", "GBR": "0.20"},
        }
        for currency in ("EUR", "GBP")
    ],
    {
        "kind": "site_host",
        "agreement_id": "site-ams",
        "version": 1,
        "valid_from": "2026-01-01",
        "site_host": "NL*SIT",
        "cpo": "NL*AMP",
        "location_id": "AMS-CENTRAAL",
        "share_percentage": "0.10",
    },
]
LDN_ROAMING = {
    "kind": "roaming",
    "agreement_id": "roam-ems-ldn",
    "version": 1,
    "valid_from": "2026-11-01",
    "emsp": "NL*EMS",
    "cpo": "GB*LDN",
}


async def _cdr_rows(db: Database) -> list[Cdr]:
    async with db.session() as s:
        return list((await s.scalars(select(Cdr).order_by(Cdr.id))).all())


def _check_invariants(runs: list, cdrs: list[Cdr], statements: list) -> None:
    """Every CDR settled by exactly one run or listed by the last; per party and currency the lines are the
    CDR totals: each eMSP owes the totals of its CDRs, each CPO's lines with the hub and site host add up to
    them (net, VAT, gross); every line sums to zero per CDR; the stored statements are the lines."""
    lines = pd.concat([r.result.lines for r in runs], ignore_index=True)
    settled = lines.groupby("cdr_id")["settlement_period"].nunique()
    assert (settled == 1).all(), "a CDR settled by two runs"
    listed = set(runs[-1].result.rejected["cdr_id"])
    assert set(settled.index) | listed == {c.cdr_uid for c in cdrs}
    assert not set(settled.index) & listed
    by_uid = {c.cdr_uid: c for c in cdrs}
    for (party, role, currency), mine in lines.groupby(["party", "role", "currency"], observed=True):
        if role not in ("emsp", "cpo"):
            continue
        related = lines[
            lines["cdr_id"].isin(set(mine["cdr_id"]))
            & ((lines["party"] == party) | (lines["counterparty"] == party))
            & (lines["kind"] != "emsp_owes_cpo" if role == "cpo" else lines["kind"] == "emsp_owes_cpo")
        ]
        net = from_minor(int(related["net_minor"].sum()), currency)
        gross = from_minor(int(related["gross_minor"].sum()), currency)
        totals = [by_uid[c] for c in set(mine["cdr_id"])]
        sign = -1 if role == "emsp" else 1
        assert net == sign * sum((c.total_cost_excl_vat for c in totals), Decimal(0)), (party, currency)
        assert gross == sign * sum((c.total_cost_incl_vat for c in totals), Decimal(0)), (party, currency)
    per_cdr = lines.groupby("cdr_id")[["net_minor", "vat_minor", "gross_minor"]].sum()
    assert (per_cdr == 0).all().all()
    for run in runs:
        got = {(st.party, st.currency): st.gross for st in statements if st.run_id == run.run_id}
        expected = {
            (str(p), str(c)): from_minor(int(g), str(c))
            for (p, c), g in run.result.lines.groupby(["party", "currency"], observed=True)["gross_minor"]
            .sum()
            .items()
        }
        assert got == expected


@pytest.mark.clock("2026-12-15T10:00:00Z")
async def test_settlement_lines_are_the_cdr_totals_with_credits_corrections_caps_and_two_currencies(
    db: Database, tmp_path: Path
):
    """Issue item 6 ("every priced CDR settles or is rejected for a documented reason, listed in the
    exports"; "per party and currency, settlement lines == CDR totals") and S1/S2, on CDRs the hub priced:
    EUR and GBP, a CDR capped by max_price, corrections (credit + re-issue) in the period and after its
    close, GBP CDRs rejected for a missing roaming agreement, carried forward and settled (with their
    credit and re-issue) once the agreement exists; closed periods replay to their hash."""
    await seed_pricing_network(db)
    await price_with_max_price_tariff(db)
    async with db.session() as s:
        await add_agreements(s, AUDIT_AGREEMENTS)
    oct5 = datetime(2026, 10, 5, 9, 0, tzinfo=UTC)
    await seed_ended_session(db, "AMS-01-1", oct5, 300, "50", uid="capped")
    for i, (evse_uid, kwh) in enumerate([("AMS-01-2", "7.5"), ("AMS-02-1", "12"), ("LDN-01-1", "9")] * 2):
        await seed_ended_session(db, evse_uid, oct5 + timedelta(days=i + 1), 40 + i, kwh, uid=f"oct-{i}")
    assert await rate_pending(db, ()) == 7
    by_session = {c.session_id: c for c in await _cdr_rows(db)}
    capped = next(c for c in by_session.values() if c.total_cost_excl_vat == Decimal("10.00"))
    assert Decimal(str(capped.data["total_energy_cost"]["excl_vat"])) == Decimal("12.50")
    eur = [c for c in by_session.values() if c.currency == "EUR" and c is not capped]
    gbp = [c for c in by_session.values() if c.currency == "GBP"]
    assert len(eur) == 4 and len(gbp) == 2
    await correct_cdr(db, eur[0].cdr_uid, ())  # corrected within the period

    october = await run_period(db, "2026-10", out_dir=tmp_path, close=True)
    assert set(october.result.rejected["cdr_id"]) == {c.cdr_uid for c in gbp}
    assert set(october.result.rejected["reason"]) == {"no_roaming_agreement"}
    await correct_cdr(db, eur[1].cdr_uid, ())  # after the close: credit and re-issue adjust October
    await correct_cdr(db, gbp[0].cdr_uid, ())  # a rejected CDR corrected: all three settle together
    async with db.session() as s:
        await add_agreements(s, [LDN_ROAMING])
    nov = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
    await seed_ended_session(db, "LDN-01-1", nov, 30, "6", uid="nov-ldn")
    await seed_ended_session(db, "AMS-01-1", nov, 60, "10", uid="nov-capped")
    assert await rate_pending(db, ()) == 2
    november = await run_period(db, "2026-11", out_dir=tmp_path, close=True)
    assert november.result.rejected.empty
    adjusted = november.result.lines[november.result.lines["is_adjustment"]]
    assert set(adjusted["adjusts_period"].astype(str)) == {"2026-10"}

    cdrs = await _cdr_rows(db)
    assert len(cdrs) == 9 + 3 * 2  # 9 sessions, 3 corrections
    async with db.session() as s:
        statements = list((await s.scalars(select(SettlementStatement))).all())
    _check_invariants([october, november], cdrs, statements)
    # the corrected rejected CDR, its credit and re-issue net to one CDR's money for the eMSP
    reissued = [c for c in cdrs if c.session_id == gbp[0].session_id]
    owed = november.result.lines[
        november.result.lines["cdr_id"].isin({c.cdr_uid for c in reissued})
        & (november.result.lines["kind"] == "emsp_owes_cpo")
    ]
    assert -from_minor(int(owed["gross_minor"].sum()), "GBP") == gbp[0].total_cost_incl_vat
    for closed in (october, november):
        replay = await run_period(db, closed.period, out_dir=tmp_path)
        assert replay.reproduced, closed.period


def test_a_late_credit_of_a_carried_cdr_mirrors_it_after_the_terms_changed():
    """Issue item 6 ("per party and currency, settlement lines == CDR totals"), S2: an original carried
    forward and settled in 2026-11 with the terms of 2026-11-01; the hub fee changes from 2026-12-01; its
    credit, created after 2026-11 closed, settles in 2026-12 with the original's terms, so original and
    credit net to zero for every party (it used to take the 2026-12 hub fee and leave the hub a remainder)."""
    hub_v2 = next(a for a in BOOK.agreements if a.agreement_id == "HUB-CPA-EUR").model_copy(
        update={"version": 2, "valid_from": date(2026, 12, 1), "percentage": Decimal("0.20")}
    )
    book = AgreementBook([*BOOK.agreements, NEW_ROAMING, hub_v2])
    credit = _orphan().assign(
        cdr_id="ORPHAN-CR",
        total_excl=-1000,
        total_incl=-1210,
        energy_excl=-1000,
        energy_incl=-1210,
        is_credit=True,
        credit_of="ORPHAN",
        created_at=pd.Timestamp("2026-12-05T00:00Z"),
    )
    cdrs = pd.concat([_orphan().assign(is_credit=False, credit_of=None), credit], ignore_index=True)
    closes = {"2026-10": OCT_CLOSED, "2026-11": datetime(2026, 12, 2, tzinfo=UTC)}
    carried = pd.DataFrame({"cdr_id": ["ORPHAN"], "period": ["2026-10"]})
    november = settle(cdrs, book, "2026-11", closes, carried=carried, replay=True)
    december = settle(cdrs, book, "2026-12", closes, carried=carried)
    assert _settled(november) == {"ORPHAN"} and _settled(december) == {"ORPHAN-CR"}
    both = pd.concat([november.lines, december.lines], ignore_index=True)
    hub = both[both["kind"] == "hub_fee"]
    assert set(zip(hub["agreement_id"].astype(str), hub["agreement_version"], strict=True)) == {
        ("HUB-CPA-EUR", 1)
    }
    per_party = both.groupby(["party", "kind"], observed=True)[["net_minor", "vat_minor"]].sum()
    assert (per_party == 0).all().all()


@pytest.mark.clock("2026-12-15T10:00:00Z")
async def test_a_cdr_stored_after_the_closing_read_but_stamped_before_it_settles_next_period(
    db: Database, tmp_path: Path
):
    """Issue item 6 ("every priced CDR settles"), S2: rating stamps the CDRs of a batch with the batch's
    start, so a CDR can be stored after a closing run read the CDRs with a created_at before the close. The
    closing run keeps the highest CDR row it read; a CDR above it is late for that period: it settles once,
    in the next period, and the closed period replays to its hash. It used to belong to the closed period,
    which had not settled it: never settled, and the replay no longer matched."""
    await seed_pricing_network(db)
    async with db.session() as s:
        await add_agreements(s, [*NO_ROAMING, dict(ROAMING, valid_from="2026-01-01")])
    await seed_ended_session(db, "AMS-01-1", datetime(2026, 10, 5, 9, 0, tzinfo=UTC), 45, "8", uid="oct-1")
    assert await rate_pending(db, ()) == 1
    october = await run_period(db, "2026-10", out_dir=tmp_path, close=True)
    await seed_ended_session(db, "AMS-01-1", datetime(2026, 10, 6, 9, 0, tzinfo=UTC), 45, "9", uid="oct-2")
    stamped = datetime(2026, 12, 15, 9, 59, tzinfo=UTC)  # a batch that started before the close
    assert await rate_pending(db, (), now=stamped) == 1
    async with db.session() as s:
        missed = await s.scalar(select(Cdr).where(Cdr.created_at == stamped))
    assert missed is not None and october.result.summary.cdrs_settled == 1

    replay = await run_period(db, "2026-10", out_dir=tmp_path)
    november = await run_period(db, "2026-11", out_dir=tmp_path)
    assert replay.reproduced
    assert set(november.result.lines["cdr_id"]) == {missed.cdr_uid}
    assert set(november.result.lines["adjusts_period"].astype(str)) == {"2026-10"}


@pytest.mark.clock("2026-12-15T10:00:00Z")
async def test_the_runs_api_lists_each_cpo_its_own_rejected_cdrs(db: Database):
    """S2 / issue item 6: a run's rejected CDRs are listed by ``GET /api/settlement/runs`` too, with the
    period that first rejected them; a CPO's key sees only its own CDRs' rejections (and statements)."""
    network = await seed_api_network(db)  # one AmsterPower and one London CDR of 2026-11, no agreements
    await run_period(db, "2026-11")
    settings = load_settings(database_url=db.url, api_auth=True, _env_file=None)
    hub = Hub(settings=settings, db=db, node_name="test")
    hub.app = create_app(hub)
    SettlementComponent().install(hub)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=hub.app), base_url="http://hub") as http:
        seen = {}
        for who in ("hub", "amp", "ldn"):
            answer = await http.get(
                "/api/settlement/runs", headers={"Authorization": f"Bearer {network.keys[who]}"}
            )
            assert answer.status_code == 200, answer.text
            (run,) = answer.json()
            seen[who] = {(r["cdr_id"], r["reason"], r["first_rejected_in"]) for r in run["rejected"]}
    assert seen["amp"] == {(network.cdrs["amp"], "no_roaming_agreement", "2026-11")}
    assert seen["ldn"] == {(network.cdrs["ldn"], "no_roaming_agreement", "2026-11")}
    assert seen["hub"] == seen["amp"] | seen["ldn"]
