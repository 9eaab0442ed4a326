"""The OCPI 2.2.1 CDR an external CPO POSTs to the hub's eMSP side (CDRs module 10.4.1, its classes 10.4.2-10.4.7),
validated as real peers send it.

Tolerant where peers differ and nothing is lost: unknown fields are kept (bounded, as everywhere:
:func:`kernel.validation.check_extras`), ``country_code`` / ``party_id`` and the enums (token type, auth method)
in any case (upper-cased; the ids are CiStrings, compared in upper case by the receiver), a DateTime without an
offset is UTC, amounts as JSON numbers (read exactly, never through a float: :func:`kernel.jsonutil.loads`) or
as strings of digits.

Strict where money is at stake: every amount is exact (a float or a boolean is refused, :func:`kernel.money.
to_decimal`) and has at most the currency's minor-unit decimals (``10.005`` EUR is refused, never rounded);
``incl_vat`` is never below ``excl_vat`` (in size, for a credit CDR); a CDR's amounts are not negative and a
credit CDR's ``total_cost`` not positive (OCPI: "only the values in the total_cost field SHALL contain the
negative amounts of the original CDR"), and a credit CDR names the CDR it credits (``credit_reference_id``);
energy (kWh) and times (hours) are not negative, with at most 6 decimals (what the hub stores, and settles
exactly); ``end_date_time`` is not before ``start_date_time``; a non-credit CDR's id has at most 36
characters (the spec: 39 only for a credit CDR's appended suffix).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, model_validator

from kernel.domain._fields import one_of, upper
from kernel.domain.tokens import CiString36, CountryCode, PartyId, TokenType
from kernel.money import MoneyError, normalize_currency, parse_amount, to_decimal
from kernel.validation import check_extras, ci_string, ocpi_string, utc_instant
from ocpi.schemas.common import OcpiModel

AUTH_METHODS = ("AUTH_REQUEST", "COMMAND", "WHITELIST")
MAX_AMOUNT = Decimal(10) ** 9
"""No session costs a billion: larger amounts are refused before they reach a column or a sum."""
MAX_QUANTITY = Decimal(10) ** 7
QUANTITY_DECIMALS = 6


def _exact(value: Any) -> Decimal:
    """An exact number (int, Decimal or digits; a float or a boolean is refused), below :data:`MAX_AMOUNT`."""
    try:
        number = to_decimal(value)
    except MoneyError as exc:
        raise ValueError(str(exc)) from None
    if abs(number) >= MAX_AMOUNT:
        raise ValueError(f"{value} is out of range")
    return number


def _quantity(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError("must not be negative")
    if abs(value) >= MAX_QUANTITY:
        raise ValueError(f"{value} is out of range")
    if value != round(value, QUANTITY_DECIMALS):
        raise ValueError(f"at most {QUANTITY_DECIMALS} decimals")
    return value


def _currency(value: str) -> str:
    try:
        return normalize_currency(value)
    except MoneyError as exc:
        raise ValueError(str(exc)) from None


ExactNumber = Annotated[Decimal, BeforeValidator(_exact)]
Quantity = Annotated[Decimal, BeforeValidator(_exact), AfterValidator(_quantity)]
CdrId = Annotated[str, Field(min_length=1, max_length=39), AfterValidator(ci_string)]
CiString36Opt = Annotated[str, Field(min_length=1, max_length=36), AfterValidator(ci_string)]
CiString48 = Annotated[str, Field(min_length=1, max_length=48), AfterValidator(ci_string)]
String = Annotated[str, AfterValidator(ocpi_string)]
Currency = Annotated[str, AfterValidator(_currency)]
AuthMethod = Annotated[str, BeforeValidator(upper), AfterValidator(one_of(AUTH_METHODS))]
UtcDateTime = Annotated[datetime, AfterValidator(utc_instant)]


class _Bounded(OcpiModel):
    @model_validator(mode="after")
    def _bounded_extras(self) -> _Bounded:
        check_extras(self.model_extra)  # kept in the stored CDR: a partner may not store megabytes there
        return self


class Price(_Bounded):
    """OCPI Price: ``excl_vat`` and, optionally, ``incl_vat``."""

    excl_vat: ExactNumber
    incl_vat: ExactNumber | None = None


class CdrToken(_Bounded):
    country_code: CountryCode
    party_id: PartyId
    uid: CiString36
    type: TokenType
    contract_id: CiString36


class GeoLocation(_Bounded):
    latitude: Annotated[str, Field(max_length=10)]
    longitude: Annotated[str, Field(max_length=11)]


class CdrLocation(_Bounded):
    """Where the session took place (kept as the CPO sent it; the hub has no row of an external location)."""

    id: CiString36
    name: Annotated[str, Field(max_length=255)] | None = None
    address: Annotated[String, Field(max_length=45)]
    city: Annotated[String, Field(max_length=45)]
    postal_code: Annotated[String, Field(max_length=10)] | None = None
    state: Annotated[String, Field(max_length=20)] | None = None
    country: Annotated[str, BeforeValidator(upper), Field(min_length=3, max_length=3)]
    coordinates: GeoLocation
    evse_uid: CiString36
    evse_id: CiString48
    connector_id: CiString36
    connector_standard: Annotated[str, Field(min_length=1, max_length=64)]
    connector_format: Annotated[str, Field(min_length=1, max_length=16)]
    connector_power_type: Annotated[str, Field(min_length=1, max_length=16)]


class CdrDimension(_Bounded):
    type: Annotated[str, BeforeValidator(upper), Field(min_length=1, max_length=32)]
    volume: ExactNumber


class ChargingPeriod(_Bounded):
    start_date_time: UtcDateTime
    dimensions: Annotated[list[CdrDimension], Field(min_length=1)]
    tariff_id: CiString36Opt | None = None


PRICE_FIELDS = (
    "total_cost",
    "total_fixed_cost",
    "total_energy_cost",
    "total_time_cost",
    "total_parking_cost",
    "total_reservation_cost",
)


class OcpiCdr(_Bounded):
    """An OCPI 2.2.1 CDR as an external CPO posts it (see the module docstring for what is checked)."""

    country_code: CountryCode
    party_id: PartyId
    id: CdrId
    start_date_time: UtcDateTime
    end_date_time: UtcDateTime
    session_id: CiString36Opt | None = None
    cdr_token: CdrToken
    auth_method: AuthMethod
    authorization_reference: CiString36Opt | None = None
    cdr_location: CdrLocation
    meter_id: Annotated[String, Field(max_length=255)] | None = None
    currency: Currency
    tariffs: list[dict[str, Any]] = Field(default_factory=list, max_length=100)
    charging_periods: Annotated[list[ChargingPeriod], Field(min_length=1, max_length=10_000)]
    signed_data: dict[str, Any] | None = None
    total_cost: Price
    total_fixed_cost: Price | None = None
    total_energy: Quantity
    total_energy_cost: Price | None = None
    total_time: Quantity
    total_time_cost: Price | None = None
    total_parking_time: Quantity | None = None
    total_parking_cost: Price | None = None
    total_reservation_cost: Price | None = None
    remark: Annotated[String, Field(max_length=255)] | None = None
    invoice_reference_id: CdrId | None = None
    credit: bool | None = None
    credit_reference_id: CdrId | None = None
    home_charging_compensation: bool | None = None
    last_updated: UtcDateTime

    @property
    def is_credit(self) -> bool:
        return bool(self.credit)

    @model_validator(mode="after")
    def _consistent(self) -> OcpiCdr:
        if self.end_date_time < self.start_date_time:
            raise ValueError("end_date_time is before start_date_time")
        if self.is_credit and not self.credit_reference_id:
            raise ValueError(
                "a credit CDR (credit: true) needs credit_reference_id, the id of the CDR it credits"
            )
        if not self.is_credit and len(self.id) > 36:
            raise ValueError("id: at most 36 characters (39 only for a credit CDR)")
        if self.total_parking_time is not None and self.total_parking_time > self.total_time:
            raise ValueError("total_parking_time is longer than total_time")
        for name in PRICE_FIELDS:
            price = getattr(self, name)
            if price is not None:
                self._check_price(name, price)
        return self

    def _check_price(self, name: str, price: Price) -> None:
        credit_total = self.is_credit and name == "total_cost"
        for side in ("excl_vat", "incl_vat"):
            amount = getattr(price, side)
            if amount is None:
                continue
            try:
                parse_amount(amount, self.currency, allow_negative=True)
            except MoneyError as exc:
                raise ValueError(f"{name}.{side}: {exc}") from None
            if credit_total and amount > 0:
                raise ValueError(f"{name}.{side}: a credit CDR's total_cost is negative (or zero)")
            if not credit_total and amount < 0:
                raise ValueError(f"{name}.{side}: must not be negative")
        if price.incl_vat is not None and abs(price.incl_vat) < abs(price.excl_vat):
            raise ValueError(f"{name}: incl_vat is below excl_vat")
        if price.incl_vat is not None and price.excl_vat == 0 and price.incl_vat != 0:
            raise ValueError(f"{name}: VAT on nothing (excl_vat 0, incl_vat {price.incl_vat})")
