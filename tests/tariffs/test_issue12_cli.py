"""Issue 12, the tariff import and the pricing CLI: what is stored can be priced, what is priced can be re-priced.

T4: a connector listing two tariffs of one type active at the same time was accepted (OCPI 2.2.1 mod_locations,
Connector ``tariff_ids``: "only one of each Tariff.type can be active at the same time"); versions stored before
the tariff checks existed stayed in use; a corrected version could only start when stored, so the sessions
that failed on the bad one failed for ever. T5: a CDR could not be re-priced from its own OCPI content
(``tariffs price`` took one tariff file and ignored the CDR's ``tariffs``). S3: ``tariffs replay`` re-rated
every location of the CPO, also those that do not use the tariff. And the Tariff object pushed to partners
said a back-dated start although the version applies only from when it was stored (the publication rule).
"""

from __future__ import annotations

import json
import logging
from copy import deepcopy
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner, Result

from evhub import provisioning as prov
from kernel.db.engine import Database
from kernel.models import (
    EVSE,
    Cdr,
    ChargingSession,
    Connector,
    Location,
    OutboxMessage,
    PricingState,
    TariffVersion,
)
from kernel.timeutil import format_rfc3339
from ocpi.push.tariff_push import enqueue_tariff
from tariffs.rating import rate_pending
from tests.world.demo_network import demo_json, seed_ocpi_partner, seed_pricing_network
from tests.world.sessions import seed_ended_session

PUBLISHED = datetime(2026, 5, 1, tzinfo=UTC)
"""When the tests' tariffs were stored (well before their sessions), unless a test says otherwise."""


def _tariff(tariff_id: str, *components: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "country_code": "NL",
        "party_id": "AMP",
        "id": tariff_id,
        "currency": "EUR",
        "type": "REGULAR",
        "elements": [{"price_components": list(components)}],
        "last_updated": "2026-05-01T00:00:00Z",
        **extra,
    }


def _pc(kind: str, price: str, *, vat: str | None = None, step: int = 1) -> dict[str, Any]:
    out: dict[str, Any] = {"type": kind, "price": price, "step_size": step}
    if vat is not None:
        out["vat"] = vat
    return out


async def _store(db: Database, *tariffs: dict[str, Any], created_at: datetime = PUBLISHED) -> None:
    """Import ``tariffs`` as the CLI would and date their versions ``created_at`` (stored then)."""
    async with db.session() as s:
        for data in tariffs:
            row, _ = await prov.import_tariff(s, data)
            row.created_at = created_at


async def _point(db: Database, location_id: str, tariff_ids: list[str]) -> None:
    """Every connector of the location lists ``tariff_ids`` (as an operator's SQL-free fix would set them)."""
    async with db.session() as s:
        connectors = await s.scalars(
            select(Connector)
            .join(EVSE, Connector.evse_pk == EVSE.id)
            .join(Location, EVSE.location_id == Location.id)
            .where(Location.ocpi_id == location_id)
        )
        for c in connectors:
            c.tariff_ids = tariff_ids


def _amsterdam(tariff_ids: list[str]) -> dict[str, Any]:
    """The demo's AMS-CENTRAAL location with its first connector listing ``tariff_ids``."""
    loc = deepcopy(next(x for x in demo_json("locations.json") if x["id"] == "AMS-CENTRAAL"))
    loc["evses"][0]["connectors"][0]["tariff_ids"] = tariff_ids
    return loc


async def _connector_ids(db: Database) -> list[list[str]]:
    async with db.session() as s:
        return [list(c) for c in (await s.scalars(select(Connector.tariff_ids).order_by(Connector.id))).all()]


# --- T4 (a): one tariff of each type at a time on a connector ---------------------------------------------

OPEN_A = _tariff("A", _pc("ENERGY", "0.25"))
B_FROM_JULY = _tariff("B", _pc("ENERGY", "0.40"), start_date_time="2026-07-01T00:00:00Z")


async def test_a_location_whose_connector_lists_two_regular_tariffs_active_at_once_is_refused(
    db: Database, cli, tmp_path: Path
) -> None:
    """T4: A (open-ended) and B (from July), both REGULAR, on one connector: both would apply from July, so the
    location import is refused with one line naming the connector, both ids, the type and the instant; the
    stored connectors are unchanged."""
    await seed_pricing_network(db)
    await _store(db, OPEN_A, B_FROM_JULY)
    before = await _connector_ids(db)
    path = tmp_path / "loc.json"
    path.write_text(json.dumps(_amsterdam(["A", "B"])))

    result = await cli("locations", "import", str(path), ok=False)

    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for part in ("'A'", "'B'", "REGULAR", "2026-07-01T00:00:00Z", "AMS-01-1", "overlap"):
        assert part in lines[0], lines[0]
    assert await _connector_ids(db) == before


async def test_tariffs_of_one_type_that_follow_each_other_or_of_other_types_are_accepted(
    db: Database,
) -> None:
    """T4: the same connector is accepted when A ends when B starts (OCPI's replacement), or when B is for
    another kind of session (AD_HOC_PAYMENT)."""
    await seed_pricing_network(db)
    a_until_july = {**OPEN_A, "end_date_time": "2026-07-01T00:00:00Z"}
    adhoc = {**B_FROM_JULY, "id": "C", "type": "AD_HOC_PAYMENT"}
    await _store(db, a_until_july, B_FROM_JULY, adhoc)
    async with db.session() as s:
        await prov.import_location(s, _amsterdam(["A", "B"]))
    async with db.session() as s:
        await prov.import_location(s, _amsterdam(["A", "C", "B"]))
    assert (await _connector_ids(db))[0] == ["A", "C", "B"]


async def test_a_tariff_version_that_would_overlap_on_a_connector_is_refused(
    db: Database, cli, tmp_path: Path
) -> None:
    """T4: connectors list [A (until July), B (from July)]; a new version of A without an end would overlap B
    on every such connector: refused, one line, nothing stored."""
    await seed_pricing_network(db)
    await _store(db, {**OPEN_A, "end_date_time": "2026-07-01T00:00:00Z"}, B_FROM_JULY)
    await _point(db, "AMS-CENTRAAL", ["A", "B"])
    path = tmp_path / "a2.json"
    path.write_text(json.dumps({**OPEN_A, "elements": [{"price_components": [_pc("ENERGY", "0.30")]}]}))

    result = await cli("tariffs", "import", str(path), ok=False)

    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "'A' and 'B'" in result.stderr, result.stderr
    async with db.session() as s:
        assert await s.scalar(select(func.count()).where(TariffVersion.tariff_id == "A")) == 1


# --- T4 (b): stored versions that fail today's checks ----------------------------------------------------


async def _spoil_stored_versions(db: Database) -> None:
    """Make every stored version one stored before the checks existed: currency "EURO" (not ISO 4217)."""
    async with db.session() as s:
        for row in (await s.scalars(select(TariffVersion))).all():
            row.data = {**row.data, "currency": "EURO"}


async def test_tariffs_check_marks_invalid_stored_versions_and_exits_1(db: Database, cli) -> None:
    """T4: ``tariffs check`` validates every stored version, sets ``invalid_reason`` on those failing the
    tariff checks and exits 1 with one line per invalid version; an invalid version never prices a session."""
    await seed_pricing_network(db)
    async with db.session() as s:
        row = await s.scalar(select(TariffVersion).where(TariffVersion.tariff_id == "AMS-TOD"))
        assert row is not None
        row.data = {**row.data, "currency": "EURO"}

    result = await cli("tariffs", "check", ok=False)

    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "AMS-TOD version 1 marked invalid now" in lines[0] and "EURO" in lines[0]
    async with db.session() as s:
        reasons = dict((await s.execute(select(TariffVersion.tariff_id, TariffVersion.invalid_reason))).all())
    assert "EURO" in (reasons["AMS-TOD"] or "") and reasons["LDN-STD"] is None
    again = await cli("tariffs", "check", ok=False)
    assert "AMS-TOD version 1 invalid:" in again.stderr

    sid = await seed_ended_session(db, "AMS-01-1", datetime(2026, 6, 10, 12, 0, tzinfo=UTC), 30, "5")
    assert await rate_pending(db, ()) == 0
    async with db.session() as s:
        session = await s.get(ChargingSession, sid)
        assert session is not None and session.pricing_state == PricingState.FAILED
        assert "no tariff" in (session.pricing_error or "")


async def test_importing_a_new_version_marks_the_invalid_stored_ones(db: Database) -> None:
    """T4: importing a version of a tariff id checks its stored versions first: the bad one is marked."""
    await seed_pricing_network(db)
    await _spoil_stored_versions(db)
    tod = next(t for t in demo_json("tariffs.json") if t["id"] == "AMS-TOD")
    async with db.session() as s:
        row, created = await prov.import_tariff(s, tod)
    assert created and row.version == 2 and row.invalid_reason is None
    async with db.session() as s:
        first = await s.scalar(
            select(TariffVersion).where(TariffVersion.tariff_id == "AMS-TOD", TariffVersion.version == 1)
        )
        assert first is not None and "currency" in (first.invalid_reason or "")


# --- T4 (c): --supersedes ----------------------------------------------------------------------------------


async def _failed_on_a_bad_version(db: Database) -> tuple[int, Path]:
    """AMS-TOD's only version is bad (stored before the checks), a session of 10 June failed on it; returns the
    session's pk and a file with the corrected tariff."""
    await seed_pricing_network(db)
    await _spoil_stored_versions(db)
    sid = await seed_ended_session(
        db, "AMS-01-1", datetime(2026, 6, 10, 12, 0, tzinfo=UTC), 60, "10", uid="bad"
    )
    assert await rate_pending(db, ()) == 0
    return sid, Path(__file__).resolve().parents[2] / "evhub" / "demo_data" / "tariffs.json"


async def test_a_correction_that_supersedes_the_bad_version_prices_the_failed_sessions(
    db: Database, cli, tmp_path: Path
) -> None:
    """T4: ``tariffs import FILE --supersedes 1`` stores version 2 with version 1's validity window (always,
    here), version 1 no longer applies, and ``tariffs rerate`` prices the session that failed on it (exit 0)."""
    sid, demo = await _failed_on_a_bad_version(db)
    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps(next(t for t in json.loads(demo.read_text()) if t["id"] == "AMS-TOD")))

    out = (await cli("tariffs", "import", str(fixed), "--supersedes", "1")).stdout
    assert "version 2, superseding version 1" in out, out
    for again in (("--supersedes", "1"), ()):  # the same correction, or the same content: nothing new
        assert "unchanged (version 2)" in (await cli("tariffs", "import", str(fixed), *again)).stdout
    await cli("tariffs", "rerate")

    async with db.session() as s:
        session = await s.get(ChargingSession, sid)
        assert session is not None and session.pricing_state == PricingState.PRICED, session.pricing_error
        cdr = await s.scalar(select(Cdr).where(Cdr.session_id == sid))
        v2 = await s.scalar(select(TariffVersion).where(TariffVersion.version == 2))
        assert cdr is not None and v2 is not None and v2.supersedes_version == 1
        assert [v["row_ids"] for v in cdr.tariff_versions] == [[v2.id]]


async def test_a_correction_without_supersedes_starts_when_stored_and_rerate_still_exits_1(
    db: Database, cli, tmp_path: Path
) -> None:
    """T4: the publication rule: a plain re-import applies from when it is stored (16 June), so the session of
    10 June has no valid version (the bad one never applies) and ``tariffs rerate`` exits 1 naming it."""
    _, demo = await _failed_on_a_bad_version(db)
    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps(next(t for t in json.loads(demo.read_text()) if t["id"] == "AMS-TOD")))
    await cli("tariffs", "import", str(fixed))

    result = await cli("tariffs", "rerate", ok=False)

    assert result.exit_code == 1
    assert "session bad not priced: no tariff version valid at 2026-06-10T12:00:00Z" in result.stderr


async def test_supersedes_is_refused_for_a_missing_or_already_superseded_version(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """T4: --supersedes names a stored version of the same tariff id that no correction superseded yet; the
    correction is logged."""
    await seed_pricing_network(db)
    tod = next(t for t in demo_json("tariffs.json") if t["id"] == "AMS-TOD")
    cheaper = {**tod, "elements": [{"price_components": [_pc("ENERGY", "0.10")]}]}
    async with db.session() as s:
        with pytest.raises(prov.ProvisioningError, match="has no version 7"):
            await prov.import_tariff(s, cheaper, supersedes=7)
    with caplog.at_level(logging.WARNING, logger="evhub.provisioning"):
        async with db.session() as s:
            row, _ = await prov.import_tariff(s, cheaper, supersedes=1)
    assert row.version == 2 and "supersedes version 1" in caplog.text
    async with db.session() as s:
        with pytest.raises(prov.ProvisioningError, match="already superseded by version 2"):
            await prov.import_tariff(s, tod, supersedes=1)


async def test_a_version_that_would_never_apply_is_refused(db: Database) -> None:
    """T4: a later version that ends before it could start to apply (stored after its end, 16 June) would
    never price; a tariff id's first version without a start applies always, so it may end in the past."""
    await seed_pricing_network(db)
    await _store(db, {**OPEN_A, "end_date_time": "2026-06-01T00:00:00Z"})
    async with db.session() as s:
        with pytest.raises(prov.ProvisioningError, match="would never apply"):
            await prov.import_tariff(s, {**OPEN_A, "end_date_time": "2026-06-02T00:00:00Z"})


# --- T5: a CDR re-prices from its own OCPI content --------------------------------------------------------


def _price(*args: str) -> Result:
    from evhub.cli import app

    return CliRunner().invoke(app, ["tariffs", "price", *args])


def test_price_takes_several_tariff_files_for_a_session_across_versions(tmp_path: Path) -> None:
    """T5: ``--tariff`` repeats: a session across OLD (until July) and NEW (from July) is priced by both."""
    old = tmp_path / "old.json"
    old.write_text(json.dumps({**OPEN_A, "id": "OLD", "end_date_time": "2026-07-01T00:00:00Z"}))
    new = tmp_path / "new.json"
    new.write_text(json.dumps({**B_FROM_JULY, "id": "NEW"}))
    cdr = tmp_path / "cdr.json"
    cdr.write_text(
        json.dumps(
            {
                "start_date_time": "2026-06-30T23:30:00Z",
                "end_date_time": "2026-07-01T00:30:00Z",
                "charging_periods": [
                    {
                        "start_date_time": "2026-06-30T23:30:00Z",
                        "dimensions": [{"type": "ENERGY", "volume": 5}],
                    },
                    {
                        "start_date_time": "2026-07-01T00:00:00Z",
                        "dimensions": [{"type": "ENERGY", "volume": 5}],
                    },
                ],
            }
        )
    )
    result = _price("--cdr", str(cdr), "--tariff", str(old), "--tariff", str(new), "--decimals", "string")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["total_cost"]["excl_vat"] == "3.25"  # 5 x 0.25 + 5 x 0.40
    alone = _price("--cdr", str(cdr), "--tariff", str(old))
    assert alone.exit_code == 1 and "no tariff version valid at 2026-07-01T00:00:00Z" in alone.stderr


OLD = _tariff(
    "OLD",
    _pc("ENERGY", "0.27", vat="21"),
    _pc("TIME", "1.20", vat="21", step=300),
    _pc("FLAT", "0.35", vat="21"),
    end_date_time="2026-07-01T00:00:00Z",
    min_price={"excl_vat": "1.00", "incl_vat": "1.21"},
)
NEW = _tariff(
    "NEW",
    _pc("ENERGY", "0.43", vat="9", step=500),
    _pc("PARKING_TIME", "2.40", vat="9", step=60),
    start_date_time="2026-07-01T00:00:00Z",
)
CAPPED = _tariff(
    "CAPPED",
    _pc("ENERGY", "0.395", vat="21"),
    _pc("FLAT", "0.50", vat="21"),
    max_price={"excl_vat": "2.00", "incl_vat": "2.42"},
)
FREE_AFTER = _tariff("STEPPED", _pc("ENERGY", "0.31", vat="19", step=100), _pc("TIME", "0.77", step=60))


async def _rated_cdrs(db: Database) -> list[Cdr]:
    """CDRs made by the rating path: across OLD -> NEW (step sizes, min price, VAT, parking), capped by
    max_price, and across two versions of one tariff, the second (free of charge) stored mid-session, so
    effective from then."""
    await seed_pricing_network(db)
    await _store(db, OLD, NEW, CAPPED, FREE_AFTER)
    await _point(db, "AMS-CENTRAAL", ["OLD", "NEW"])
    async with db.session() as s:  # the second EVSE: capped; the DC one: STEPPED, re-stored mid-session below
        for uid, ids in (("AMS-01-2", ["CAPPED"]), ("AMS-02-1", ["STEPPED"])):
            connector = await s.scalar(
                select(Connector).join(EVSE, Connector.evse_pk == EVSE.id).where(EVSE.uid == uid)
            )
            assert connector is not None
            connector.tariff_ids = ids
    night = datetime(2026, 6, 30, 23, 21, 7, tzinfo=UTC)
    await seed_ended_session(db, "AMS-01-1", night, 97, "7.3", uid="across", charge_minutes=71)
    await seed_ended_session(db, "AMS-01-2", night, 43, "9.7", uid="capped")
    stepped = datetime(2026, 6, 10, 9, 48, 13, tzinfo=UTC)
    await seed_ended_session(db, "AMS-02-1", stepped, 67, "31.9", uid="versions", charge_minutes=50)
    # From mid-session free of charge (OCPI: "a Tariff with type = FLAT and price = 0.00"): the version the
    # engine chooses for the rest of the session bills nothing there, yet the CDR must carry it.
    free = {**FREE_AFTER, "elements": [{"price_components": [_pc("FLAT", "0.00")]}]}
    await _store(db, free, created_at=stepped + timedelta(minutes=29, seconds=20, microseconds=123456))
    assert await rate_pending(db, ()) == 3
    async with db.session() as s:
        return list((await s.scalars(select(Cdr).order_by(Cdr.id))).all())


async def test_from_cdr_reproduces_rated_cdrs_to_the_cent(db: Database, tmp_path: Path) -> None:
    """T5: for CDRs made by the rating path over several tariffs and versions (step_size, min/max price,
    VAT), ``tariffs price --from-cdr`` prices the CDR's own ``tariffs`` and ``charging_periods`` and gives its
    total_cost excl. and incl. VAT (and every other cost total) to the cent, exit 0."""
    cdrs = await _rated_cdrs(db)
    assert {len(c.data["tariffs"]) for c in cdrs} == {1, 2}  # two CDRs span two versions
    for cdr in cdrs:
        path = tmp_path / f"{cdr.cdr_uid}.json"
        path.write_text(json.dumps(cdr.data, default=str))
        result = _price("--from-cdr", str(path), "--time-zone", "Europe/Amsterdam", "--decimals", "string")
        assert result.exit_code == 0, (cdr.data["session_id"], result.output)
        report = json.loads(result.stdout)
        totals = {t["field"]: t for t in report["totals"]}
        assert Decimal(totals["total_cost.excl_vat"]["recomputed"]) == cdr.total_cost_excl_vat
        assert Decimal(totals["total_cost.incl_vat"]["recomputed"]) == cdr.total_cost_incl_vat
        assert all(Decimal(t["difference"]) == 0 for t in report["totals"])


async def test_from_cdr_exits_1_naming_a_total_that_differs_by_a_cent(db: Database, tmp_path: Path) -> None:
    """T5: a CDR whose stated total is a cent off its own content: exit 1, one line naming the field."""
    cdr = (await _rated_cdrs(db))[0]
    data = json.loads(json.dumps(cdr.data, default=str))
    data["total_cost"]["incl_vat"] = str(Decimal(str(data["total_cost"]["incl_vat"])) + Decimal("0.01"))
    path = tmp_path / "off.json"
    path.write_text(json.dumps(data))
    result = _price("--from-cdr", str(path), "--time-zone", "Europe/Amsterdam")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "total_cost.incl_vat" in lines[0], result.stderr


def test_from_cdr_and_tariff_files_are_one_or_the_other(tmp_path: Path) -> None:
    """T5: --from-cdr uses the CDR's own tariffs; with --tariff too, or with neither input, one clear line."""
    path = tmp_path / "x.json"
    path.write_text("{}")
    both = _price("--from-cdr", str(path), "--tariff", str(path))
    assert both.exit_code == 1 and "own tariffs" in both.stderr
    neither = _price()
    assert neither.exit_code == 1 and "--from-cdr" in neither.stderr


# --- S3: replay only where the tariff is used -------------------------------------------------------------


async def test_replay_re_rates_only_the_locations_whose_connectors_list_the_tariff(
    db: Database, cli, tmp_path: Path
) -> None:
    """S3: a second AmsterPower location uses another tariff: replaying AMS-TOD compares AMS-CENTRAAL only;
    ``--all-locations`` widens it to every location of the CPO."""
    await seed_pricing_network(db)
    other = _tariff("AMS-OTHER", _pc("ENERGY", "0.33"))
    await _store(db, other)
    zuid = _amsterdam(["AMS-OTHER"])
    zuid["id"] = "AMS-ZUID"
    zuid["evses"] = [{**zuid["evses"][0], "uid": "AMS-Z-1", "evse_id": "NL*AMP*E0009*1"}]
    async with db.session() as s:
        await prov.import_location(s, zuid)
    nov = datetime(2026, 11, 10, 21, 30, tzinfo=UTC)
    await seed_ended_session(db, "AMS-01-1", nov, 60, "10", uid="centraal")
    await seed_ended_session(db, "AMS-Z-1", nov, 60, "10", uid="zuid")
    assert await rate_pending(db, ()) == 2
    proposed = tmp_path / "tod.json"
    proposed.write_text(json.dumps(next(t for t in demo_json("tariffs.json") if t["id"] == "AMS-TOD")))
    period = ("--from", "2026-11-01", "--to", "2026-12-01")
    args = ("tariffs", "replay", "--tariff", str(proposed), *period, "--json")

    used = json.loads((await cli(*args)).stdout)
    widened = json.loads((await cli(*args, "--all-locations")).stdout)

    assert [line["location_id"] for line in used["locations"]] == ["AMS-CENTRAAL"]
    assert used["locations"][0]["difference_excl_vat"] == "0.00"
    assert [line["location_id"] for line in widened["locations"]] == ["AMS-CENTRAAL", "AMS-ZUID"]


# --- the Tariff object partners receive says from when it applies -----------------------------------------


async def test_the_pushed_tariff_starts_when_the_version_applies(db: Database) -> None:
    """Publication rule: a version stored on 16 June with a back-dated start_date_time (1 June) applies from
    when it was stored, and the Tariff object pushed to partners says so; a version starting later than it is
    stored keeps its own start."""
    network = await seed_pricing_network(db)
    await seed_ocpi_partner(db, network.parties["NL*EMS"])
    tod = next(t for t in demo_json("tariffs.json") if t["id"] == "AMS-TOD")
    back_dated = {**tod, "start_date_time": "2026-06-01T00:00:00Z", "last_updated": "2026-06-16T09:00:00Z"}
    ahead = {**tod, "start_date_time": "2026-07-01T00:00:00Z", "last_updated": "2026-06-16T09:30:00Z"}
    starts, stored = [], []
    for data in (back_dated, ahead):
        async with db.session() as s:
            row, created = await prov.import_tariff(s, data)
            assert created
            stored.append(row.created_at)
            assert await enqueue_tariff(row, s) == 1
        async with db.session() as s:
            msg = await s.scalar(select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(1))
            assert msg is not None
            starts.append(msg.payload["body"]["start_date_time"])
    # Stored to the wire's milliseconds, so the published start is the exact instant it applies from.
    assert stored[0].microsecond % 1000 == 0 and stored[0].date().isoformat() == "2026-06-16"
    assert starts[0] == format_rfc3339(stored[0])
    assert starts[1] == "2026-07-01T00:00:00Z"
