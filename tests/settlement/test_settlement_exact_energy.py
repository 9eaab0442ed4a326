"""Issue #12, S3: per-kWh hub fees and site host shares were computed on the CDR's energy rounded to the Wh.

docs/settlement.md: the hub fee is ``percentage x total + fixed_per_session + per_kwh x kWh``, rounded once. A
CDR's energy has 6 decimals of kWh; it is now carried exactly (int64 micro-kWh), so ``per_kwh x kWh`` is exact
before the one rounding."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import pytest

from settlement.core.agreements import AgreementBook, HubFeeAgreement, RoamingAgreement, SiteHostAgreement
from settlement.core.cdrs import kwh_to_micro_kwh, prepare_cdrs
from settlement.core.explain import explain_cdr
from settlement.core.split import split

from .testkit import CPOS, EMSPS, dec, one_cdr_row

BOOK = AgreementBook(
    [
        RoamingAgreement(agreement_id="R", version=1, valid_from="2026-01-01", emsp=EMSPS[0], cpo=CPOS[0]),
        HubFeeAgreement(
            agreement_id="HUB",
            version=1,
            valid_from="2026-01-01",
            currency="EUR",
            per_kwh="0.50",
            vat_rates={"NL": "0.21"},
        ),
        SiteHostAgreement(
            agreement_id="SH",
            version=1,
            valid_from="2026-01-01",
            site_host="HOST*ONE",
            cpo=CPOS[0],
            location_id="LOC1",
            per_kwh="0.50",
            currency="EUR",
            vat_rate="0.21",
        ),
    ]
)


def test_per_kwh_hub_fee_is_on_the_exact_energy():
    # 0.50 x 0.0099 kWh = 0.00495 -> 0.00; on 0.010 kWh (rounded to the Wh) it was 0.005 -> 0.01
    lines = split(one_cdr_row(energy_micro_kwh=9_900), BOOK).lines.set_index("kind")
    assert dec(lines.loc["hub_fee", "net_minor"], "EUR") == Decimal("0.00")


def test_per_kwh_site_host_share_is_on_the_exact_energy():
    lines = split(one_cdr_row(location_id="LOC1", energy_micro_kwh=10_009_900), BOOK).lines.set_index("kind")
    # 0.50 x 10.0099 = 5.00495 -> 5.00 (on 10.010 kWh: 5.005 -> 5.01)
    assert dec(lines.loc["site_host_share", "net_minor"], "EUR") == Decimal("5.00")
    assert dec(lines.loc["hub_fee", "net_minor"], "EUR") == Decimal("5.00")


def test_prepare_keeps_six_decimals_of_kwh_and_refuses_more():
    assert kwh_to_micro_kwh(Decimal("12.345678")) == 12_345_678
    assert kwh_to_micro_kwh("0.0099") == 9_900
    with pytest.raises(ValueError, match="6 decimals"):
        kwh_to_micro_kwh(Decimal("1.0000001"))
    row = pd.DataFrame(
        [
            {
                "cdr_id": "D1",
                "cpo": CPOS[0],
                "emsp": EMSPS[0],
                "location_id": "LOC1",
                "country": "NL",
                "currency": "EUR",
                "end_date_time": pd.Timestamp("2026-10-05T12:00Z"),
                "total_energy": Decimal("0.0099"),
                "total_cost_excl_vat": Decimal("0.01"),
                "total_cost_incl_vat": Decimal("0.01"),
            }
        ]
    )
    minor = prepare_cdrs(row)
    assert minor.loc[0, "energy_micro_kwh"] == 9_900
    assert explain_cdr(minor, BOOK, "D1")["energy_kwh"] == "0.009900"
