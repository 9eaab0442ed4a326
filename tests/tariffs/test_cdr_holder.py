"""Whom a CDR is billed to, as pricing records it (issue 14; pure, no database): an original takes what its
session recorded for its token when it started, else its token's fleet, driver and vehicle now; a correction of the same token keeps the revision it replaces (the session
happened then), one that brings another token takes that token's; a credit copies its original's, recorded or
not; an older row without them reads its token's."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from kernel.domain.cdr_holder import Holder, holder_of, recorded_holder, token_holder
from kernel.models import Cdr, ChargingSession, Token
from tariffs.cdr_builder import holder_for
from tariffs.rating import credit_for

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _token(pk: int, fleet: int | None, driver: str | None, vehicle: str | None) -> Token:
    return Token(id=pk, fleet_id=fleet, driver_name=driver, vehicle=vehicle)


def _cdr(token: Token | None, holder: Holder | None) -> Cdr:
    return Cdr(
        id=11,
        cdr_uid="c-11",
        session_id=5,
        revision=0,
        cpo_id=1,
        token_id=token.id if token is not None else None,
        currency="EUR",
        start_date_time=NOW,
        end_date_time=NOW,
        total_energy_kwh=Decimal("10"),
        total_time_hours=Decimal("1"),
        total_cost_excl_vat=Decimal("3.00"),
        total_cost_incl_vat=Decimal("3.63"),
        tariff_versions=[],
        explanation={},
        data={"total_cost": {"excl_vat": Decimal("3.00"), "incl_vat": Decimal("3.63")}},
        **(recorded_holder(holder) if holder is not None else {"holder_recorded": False}),
    )


def test_an_original_takes_its_tokens_holder_now() -> None:
    token = _token(1, 7, "Ann", "EV-1")
    assert holder_for(token, None) == Holder(7, "Ann", "EV-1")
    assert holder_for(None, None) == Holder(None, None, None)


def test_an_original_takes_the_holder_its_session_recorded_for_its_token() -> None:
    moved = _token(1, 8, "Carl", None)  # moved to fleet 8 while the car charged
    session = ChargingSession(
        id=5, token_id=1, fleet_id=7, driver_name="Ann", vehicle="EV-1", holder_recorded=True
    )
    assert holder_for(moved, None, session) == Holder(7, "Ann", "EV-1")
    assert holder_for(_token(2, 9, "Eve", None), None, session) == Holder(9, "Eve", None)  # another token
    unrecorded = ChargingSession(id=6, token_id=1, holder_recorded=False)  # started without a known token
    assert holder_for(moved, None, unrecorded) == Holder(8, "Carl", None)
    previous = _cdr(_token(1, 6, "Zed", None), Holder(6, "Zed", None))  # a correction keeps its revision's
    assert holder_for(moved, previous, session) == Holder(6, "Zed", None)


def test_a_correction_of_the_same_token_keeps_the_holder_of_the_revision_it_replaces() -> None:
    previous = _cdr(_token(1, 7, "Ann", "EV-1"), Holder(7, "Ann", "EV-1"))
    moved = _token(1, 8, "Carl", None)  # the token moved to fleet 8 since
    assert holder_for(moved, previous) == Holder(7, "Ann", "EV-1")
    fleetless = _cdr(moved, Holder(None, None, None))  # no fleet when the original was made: stays so
    assert holder_for(moved, fleetless) == Holder(None, None, None)
    other = _token(2, 9, "Eve", "EV-3")  # a late start that brings another token: that token's
    assert holder_for(other, previous) == Holder(9, "Eve", "EV-3")
    old = _cdr(_token(1, 7, "Ann", "EV-1"), None)  # a revision from before holders were recorded
    assert holder_for(moved, old) == token_holder(moved) == Holder(8, "Carl", None)


def test_a_credit_is_billed_to_whom_its_original_is() -> None:
    token = _token(1, 7, "Ann", "EV-1")
    original = _cdr(token, Holder(7, "Ann", "EV-1"))
    credit = credit_for(original, "s-5", now=NOW)
    assert (credit.fleet_id, credit.driver_name, credit.vehicle, credit.holder_recorded) == (
        7,
        "Ann",
        "EV-1",
        True,
    )
    moved = _token(1, 8, "Carl", None)
    assert holder_of(credit, moved) == Holder(7, "Ann", "EV-1")
    unrecorded = credit_for(_cdr(token, None), "s-5", now=NOW)
    assert unrecorded.holder_recorded is False
    assert holder_of(unrecorded, moved) == Holder(8, "Carl", None)  # an old pair: the token's now, both
