"""Agreements: validation, the version in force, and the closed-period change rule."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from settlement.core.agreements import (
    AgreementBook,
    HubFeeAgreement,
    RoamingAgreement,
    SiteHostAgreement,
    check_change,
    dump_agreements,
    in_force,
    parse_agreements,
    validate_agreements,
)
from settlement.core.split import split

from .testkit import make_book, one_cdr_row

CLOSED_UNTIL = datetime(2026, 11, 1, tzinfo=UTC)


def _hub(version=1, valid_from="2026-01-01", **kw):
    return HubFeeAgreement(
        agreement_id="H",
        version=version,
        valid_from=valid_from,
        currency="EUR",
        percentage=kw.pop("percentage", "0.02"),
        vat_rates={"NL": "0.21"},
        **kw,
    )


def test_models_refuse_floats_and_nonsense():
    with pytest.raises(ValidationError):
        _hub(percentage=0.02)
    with pytest.raises(ValidationError):
        _hub(percentage="1.5")
    with pytest.raises(ValidationError):
        _hub(minimum_per_session="2", maximum_per_session="1")
    with pytest.raises(ValidationError):
        SiteHostAgreement(
            agreement_id="S",
            version=1,
            valid_from="2026-01-01",
            site_host="H",
            cpo="C",
            location_id="L",
            share_percentage="0.1",
            per_kwh="0.01",
            currency="EUR",
        )
    with pytest.raises(ValidationError):
        SiteHostAgreement(
            agreement_id="S",
            version=1,
            valid_from="2026-01-01",
            site_host="H",
            cpo="C",
            location_id="L",
            per_kwh="0.01",
        )
    with pytest.raises(ValidationError):
        RoamingAgreement(
            agreement_id="R", version=1, valid_from="2026-02-01", valid_until="2026-01-01", emsp="E", cpo="C"
        )


def test_json_round_trip():
    book = make_book()
    again = parse_agreements(dump_agreements(book.agreements))
    assert tuple(sorted(again, key=lambda a: (a.kind, a.agreement_id, a.version))) == book.agreements


def test_version_in_force_by_end_time_and_by_period():
    book = make_book()
    assert (
        in_force(book.agreements, "hub_fee", ("*", "EUR"), datetime(2026, 10, 15, 23, 59, tzinfo=UTC)).version
        == 1
    )
    assert in_force(book.agreements, "hub_fee", ("*", "EUR"), datetime(2026, 10, 16, tzinfo=UTC)).version == 2
    late_in_month = one_cdr_row(cpo="DE*CPB", end_date_time=pd.Timestamp("2026-10-20T10:00Z"))
    by_end = split(late_in_month, book).lines
    by_period = split(late_in_month, book, pick_basis="period_start").lines
    hub = by_end[by_end["kind"] == "hub_fee"]
    assert hub["agreement_version"].item() == 2
    assert by_period.loc[by_period["kind"] == "hub_fee", "agreement_version"].item() == 1
    # a CPO-specific hub agreement wins over the default from its valid_from on
    specific = split(one_cdr_row(end_date_time=pd.Timestamp("2026-10-02T00:00Z")), book).lines
    assert specific.loc[specific["kind"] == "hub_fee", "agreement_id"].item() == "HUB-CPA-EUR"
    before = split(one_cdr_row(end_date_time=pd.Timestamp("2026-09-30T23:59:59Z")), book).lines
    assert before.loc[before["kind"] == "hub_fee", "agreement_id"].item() == "HUB-EUR"


def test_valid_until_ends_an_agreement():
    book = AgreementBook(
        [
            RoamingAgreement(
                agreement_id="R",
                version=1,
                valid_from="2026-01-01",
                valid_until="2026-10-10",
                emsp="NL*MSA",
                cpo="NL*CPA",
            ),
            _hub(),
        ]
    )
    ok = split(one_cdr_row(end_date_time=pd.Timestamp("2026-10-09T23:00Z"), location_id="X"), book)
    gone = split(one_cdr_row(end_date_time=pd.Timestamp("2026-10-10T00:00Z"), location_id="X"), book)
    assert ok.rejected.empty
    assert list(gone.rejected["reason"]) == ["no_roaming_agreement"]


def test_overlapping_agreements_for_one_scope_are_refused():
    a = RoamingAgreement(agreement_id="R1", version=1, valid_from="2026-01-01", emsp="E", cpo="C")
    b = RoamingAgreement(agreement_id="R2", version=1, valid_from="2026-06-01", emsp="E", cpo="C")
    assert validate_agreements([a, b])
    with pytest.raises(ValueError, match="both in force"):
        AgreementBook([a, b])
    ended = a.model_copy(update={"valid_until": datetime(2026, 6, 1).date()})
    assert validate_agreements([ended, b]) == []
    assert validate_agreements([a, a]) != []


def test_frozen_version_cannot_be_edited_only_superseded():
    v1 = _hub()
    assert check_change([v1], _hub(percentage="0.03"), CLOSED_UNTIL) != []
    assert check_change([v1], _hub(percentage="0.03"), None) == []  # nothing closed yet: editing is fine
    assert check_change([v1], v1, CLOSED_UNTIL) == []
    assert check_change([v1], _hub(version=2, valid_from="2026-11-01", percentage="0.03"), CLOSED_UNTIL) == []
    assert check_change([v1], _hub(version=2, valid_from="2026-10-15", percentage="0.03"), CLOSED_UNTIL) != []
    assert check_change([v1], _hub(version=3, valid_from="2026-11-01"), CLOSED_UNTIL) != []
    # ending a frozen version at an open-period date is allowed; ending it inside the closed past is not
    assert check_change([v1], _hub(valid_until="2026-12-01"), CLOSED_UNTIL) == []
    assert check_change([v1], _hub(valid_until="2026-10-01"), CLOSED_UNTIL) != []
    # a new agreement cannot appear retroactively in a closed period
    new = RoamingAgreement(agreement_id="NEW", version=1, valid_from="2026-10-01", emsp="E", cpo="C")
    assert check_change([], new, CLOSED_UNTIL) != []
    # changing the scope is a new agreement, not a version
    moved = HubFeeAgreement(
        agreement_id="H", version=2, valid_from="2026-12-01", cpo="X", currency="EUR", vat_rates={"NL": "0.2"}
    )
    assert any("scope" in p for p in check_change([v1], moved, CLOSED_UNTIL))


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 360), st.integers(1, 360))
def test_closed_period_outcome_never_changes_under_allowed_changes(day_a, day_b):
    """Any change check_change allows leaves the version in force before closed_until unchanged."""
    v1 = _hub()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    candidate = _hub(version=2, valid_from=(start + pd.Timedelta(days=day_a)).date(), percentage="0.05")
    probe = start + pd.Timedelta(days=day_b)
    allowed = check_change([v1], candidate, CLOSED_UNTIL) == []
    if allowed and probe < CLOSED_UNTIL:
        assert in_force([v1, candidate], "hub_fee", ("*", "EUR"), probe) == v1
