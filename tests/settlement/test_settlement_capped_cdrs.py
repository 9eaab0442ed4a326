"""Issue #12, S1: every CDR capped by ``max_price`` was rejected (``components_exceed_total``).

OCPI 2.2.1 Tariff ``max_price``: "a Charging Session with this tariff will NOT cost more than this amount"; the
example tariff (0.25/kWh + 0.50 start fee, max 10.00 excl. / 11.00 incl. VAT) costs 10.00 / 11.00 for 50 kWh. The
engine keeps the component totals before the cap, so such a CDR's total is below the sum of its components:
a discount. It settles; component-based shares use the component scaled by total / sum of components, rounded
once, and the lines still add up to the CDR's totals."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from kernel.db.engine import Database
from kernel.models import Cdr
from settlement.agreement_store import add_agreements
from settlement.core.agreements import AgreementBook, HubFeeAgreement, RoamingAgreement, SiteHostAgreement
from settlement.core.split import split
from settlement.job import run_period
from tariffs.rating import rate_pending
from tests.world.demo_network import price_with_max_price_tariff, seed_pricing_network
from tests.world.sessions import seed_ended_session

from .testkit import CPOS, EMSPS, dec, one_cdr_row, reference_split

BOOK = AgreementBook(
    [
        RoamingAgreement(agreement_id="R", version=1, valid_from="2026-01-01", emsp=EMSPS[0], cpo=CPOS[0]),
        HubFeeAgreement(
            agreement_id="HUB",
            version=1,
            valid_from="2026-01-01",
            currency="EUR",
            percentage="0.05",
            vat_rates={"NL": "0.21"},
        ),
        SiteHostAgreement(
            agreement_id="SH",
            version=1,
            valid_from="2026-01-01",
            site_host="HOST*ONE",
            cpo=CPOS[0],
            location_id="LOC1",
            share_percentage="0.10",
        ),
    ]
)

# The spec's example 6 at 50 kWh: energy 12.50 (+10 % VAT), start fee 0.50 (+20 %), capped at 10.00 / 11.00.
CAPPED = {
    "location_id": "LOC1",
    "energy_micro_kwh": 50_000_000,
    "total_excl": 1000,
    "total_incl": 1100,
    "energy_excl": 1250,
    "energy_incl": 1375,
    "fixed_excl": 50,
    "fixed_incl": 60,
}


def _lines(frame):
    result = split(frame, BOOK)
    assert result.rejected.empty, list(result.rejected["reason"])
    return result.lines.set_index("kind")


def test_a_capped_cdr_settles_and_its_lines_add_up_to_the_capped_total():
    lines = _lines(one_cdr_row(**CAPPED))
    parts = lines.drop(index="emsp_owes_cpo")
    assert parts["net_minor"].sum() == 1000 and parts["gross_minor"].sum() == 1100
    assert lines.loc["emsp_owes_cpo", "net_minor"] == -1000
    assert lines.loc["emsp_owes_cpo", "vat_minor"] == -100
    # hub fee: 5 % of the CDR total (already capped) = 0.50, its VAT 21 % = 0.105 -> 0.11
    assert dec(lines.loc["hub_fee", "net_minor"], "EUR") == Decimal("0.50")
    assert dec(lines.loc["hub_fee", "vat_minor"], "EUR") == Decimal("0.11")


def test_site_host_share_uses_the_energy_revenue_after_the_cap_rounded_once():
    lines = _lines(one_cdr_row(**CAPPED))
    # energy revenue after the cap: 12.50 x 10.00 / 13.00 = 9.615384...; 10 % = 0.9615... -> 0.96 (not 1.25)
    assert dec(lines.loc["site_host_share", "net_minor"], "EUR") == Decimal("0.96")
    # energy VAT after the cap: 1.25 x 1.00 / 1.35; carried pro rata: x 0.96 / 9.615384... = 0.0924... -> 0.09
    assert dec(lines.loc["site_host_share", "vat_minor"], "EUR") == Decimal("0.09")
    assert reference_split(one_cdr_row(**CAPPED).to_dict("records")[0], BOOK)["site_host_share"][:2] == (
        Decimal("0.96"),
        Decimal("0.09"),
    )


def test_a_fully_discounted_cdr_settles_with_no_share():
    lines = _lines(one_cdr_row(**{**CAPPED, "total_excl": 0, "total_incl": 0}))
    assert (lines["net_minor"] == 0).all() and (lines["vat_minor"] == 0).all()


def test_a_credit_of_a_capped_cdr_mirrors_it():
    original = _lines(one_cdr_row(**CAPPED))
    negated = {k: -v for k, v in CAPPED.items() if k.endswith(("_excl", "_incl"))}
    credit = _lines(
        one_cdr_row(**{**CAPPED, **negated, "cdr_id": "X1-CR", "is_credit": True, "credit_of": "X1"})
    )
    for kind in original.index:
        assert credit.loc[kind, "net_minor"] == -original.loc[kind, "net_minor"]
        assert credit.loc[kind, "vat_minor"] == -original.loc[kind, "vat_minor"]


@pytest.mark.parametrize(
    "change",
    [
        # a discount excl. VAT but more than the components incl. VAT: a discount and a surcharge at once
        {"total_excl": 1000, "total_incl": 1500},
        # more than the components excl. VAT, less incl. VAT
        {"total_excl": 1400, "total_incl": 1420},
    ],
)
def test_a_cdr_that_contradicts_itself_is_still_rejected(change):
    result = split(one_cdr_row(**{**CAPPED, **change}), BOOK)
    assert list(result.rejected["reason"]) == ["total_contradicts_components"]
    assert reference_split(one_cdr_row(**{**CAPPED, **change}).to_dict("records")[0], BOOK) == (
        "total_contradicts_components"
    )


AGREEMENTS = [
    {
        "kind": "roaming",
        "agreement_id": "roam-ems-amp",
        "version": 1,
        "valid_from": "2026-01-01",
        "emsp": "NL*EMS",
        "cpo": "NL*AMP",
    },
    {
        "kind": "hub_fee",
        "agreement_id": "hub-fee-eur",
        "version": 1,
        "valid_from": "2026-01-01",
        "hub": "NL*HUB",
        "currency": "EUR",
        "percentage": "0.05",
        "vat_rates": {"NLD": "0.21"},
    },
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


async def test_a_session_priced_with_the_spec_max_price_tariff_settles(db: Database, tmp_path: Path) -> None:
    await seed_pricing_network(db)
    await price_with_max_price_tariff(db)
    async with db.session() as s:
        await add_agreements(s, AGREEMENTS)
    await seed_ended_session(db, "AMS-01-1", datetime(2026, 10, 5, 9, 0, tzinfo=UTC), 300, "50", uid="capped")
    assert await rate_pending(db, ()) == 1
    async with db.session() as s:
        cdr = await s.scalar(select(Cdr))
        assert cdr is not None
    assert (cdr.total_cost_excl_vat, cdr.total_cost_incl_vat) == (Decimal("10.00"), Decimal("11.00"))
    assert Decimal(str(cdr.data["total_energy_cost"]["excl_vat"])) == Decimal("12.50")

    job = await run_period(db, "2026-10", out_dir=tmp_path)
    assert job.result.summary.cdrs_rejected == 0 and job.result.summary.cdrs_settled == 1
    lines = job.result.lines.set_index("kind")
    assert dec(lines.loc["site_host_share", "net_minor"], "EUR") == Decimal("0.96")
    assert lines.drop(index="emsp_owes_cpo")["gross_minor"].sum() == 1100
