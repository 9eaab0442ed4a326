"""The split of a CDR the hub settles on the eMSP side only (``emsp_side``: an external CPO's CDR, posted to the hub
as the token's eMSP, issue 14 item 4): two lines (the eMSP owes the CPO the total, the CPO keeps it), no hub fee
and no site host share whatever is in force, none missing either; next to a hosted CPO's CDR in the same split,
which keeps its four lines. Pure (no database)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pandas as pd

from settlement.core.agreements import AgreementBook, HubFeeAgreement, RoamingAgreement, SiteHostAgreement
from settlement.core.cdrs import prepare_cdrs
from settlement.core.split import split

END = datetime(2026, 11, 17, 20, 0, tzinfo=UTC)


def _cdr(cdr_id: str, cpo: str, location: str, country: str, emsp_side: bool) -> dict[str, object]:
    return {
        "cdr_id": cdr_id,
        "cpo": cpo,
        "emsp": "NL*EVH",
        "location_id": location,
        "country": country,
        "currency": "EUR",
        "end_date_time": END,
        "total_energy": Decimal("20.5"),
        "total_cost_excl_vat": Decimal("10.00"),
        "total_cost_incl_vat": Decimal("12.10"),
        "total_energy_cost_excl_vat": Decimal("8.00"),
        "total_energy_cost_incl_vat": Decimal("9.68"),
        "emsp_side": emsp_side,
    }


def _table() -> pd.DataFrame:
    # the same location id at both CPOs: the site host's agreement is the hosted CPO's location's only
    rows = [_cdr("OWN-1", "NL*AMP", "LOC-1", "NLD", False), _cdr("BE*ION*X-1", "BE*ION", "LOC-1", "", True)]
    return prepare_cdrs(pd.DataFrame(rows))


def _book(*, hub_fee: bool = True) -> AgreementBook:
    items: list[object] = [
        RoamingAgreement(
            agreement_id="r-amp", version=1, valid_from="2026-01-01", emsp="NL*EVH", cpo="NL*AMP"
        ),
        RoamingAgreement(
            agreement_id="r-ion", version=1, valid_from="2026-01-01", emsp="NL*EVH", cpo="BE*ION"
        ),
        SiteHostAgreement(
            agreement_id="host",
            version=1,
            valid_from="2026-01-01",
            site_host="NL*SIT",
            cpo="BE*ION",  # even an agreement naming the external CPO: the hub hosts none of its locations
            location_id="LOC-1",
            share_percentage="0.10",
        ),
        SiteHostAgreement(
            agreement_id="host-amp",
            version=1,
            valid_from="2026-01-01",
            site_host="NL*SIT",
            cpo="NL*AMP",
            location_id="LOC-1",
            share_percentage="0.10",
        ),
    ]
    if hub_fee:
        items.append(
            HubFeeAgreement(
                agreement_id="fee",
                version=1,
                valid_from="2026-01-01",
                currency="EUR",
                percentage="0.04",
                vat_rates={"NLD": "0.21"},  # none for the external CDR's (empty) country: not needed
            )
        )
    return AgreementBook(items)  # type: ignore[arg-type]


def _lines(book: AgreementBook) -> tuple[list[tuple[str, str, str, int, int]], list[tuple[str, str]]]:
    result = split(_table(), book)
    lines = [
        (str(r.cdr_id), str(r.kind), str(r.party), int(r.net_minor), int(r.vat_minor))
        for r in result.lines.itertuples(index=False)
    ]
    rejected = [(str(r.cdr_id), str(r.reason)) for r in result.rejected.itertuples(index=False)]
    return lines, rejected


def test_an_emsp_side_cdr_gets_two_lines_beside_a_hosted_cdrs_four() -> None:
    lines, rejected = _lines(_book())
    assert rejected == []
    assert lines == [
        ("OWN-1", "emsp_owes_cpo", "NL*EVH", -1000, -210),
        ("OWN-1", "cpo_retained", "NL*AMP", 880, 185),
        ("OWN-1", "hub_fee", "HUB", 40, 8),
        ("OWN-1", "site_host_share", "NL*SIT", 80, 17),  # 10 % of 8.00, VAT 1.68 pro rata
        ("BE*ION*X-1", "emsp_owes_cpo", "NL*EVH", -1000, -210),
        ("BE*ION*X-1", "cpo_retained", "BE*ION", 1000, 210),
    ]
    for cdr_id in ("OWN-1", "BE*ION*X-1"):  # money neither appears nor disappears
        assert sum(n for c, _, _, n, _ in lines if c == cdr_id) == 0
        assert sum(v for c, _, _, _, v in lines if c == cdr_id) == 0


def test_no_hub_fee_is_missing_for_an_emsp_side_cdr() -> None:
    lines, rejected = _lines(_book(hub_fee=False))
    assert rejected == [("OWN-1", "no_hub_fee_agreement")]
    assert [kind for c, kind, *_ in lines if c == "BE*ION*X-1"] == ["emsp_owes_cpo", "cpo_retained"]


def test_without_the_column_every_cdr_is_a_hosted_cpos() -> None:
    table = _table().drop(columns=["emsp_side"])
    result = split(table, _book())
    kinds = [str(r.kind) for r in result.lines.itertuples(index=False) if str(r.cdr_id) == "BE*ION*X-1"]
    assert kinds == [] and [str(r) for r in result.rejected["reason"]] == ["no_hub_vat_rate"]
