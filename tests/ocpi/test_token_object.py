"""The one OCPI 2.2.1 Token validator (kernel.domain.tokens.OcpiToken), as the tokens PUT, the tokens pull,
the commands (START_SESSION, RESERVE_NOW) and ``evhub tokens add`` use it: the spec's field rules."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from kernel.domain.tokens import OcpiToken
from ocpi.schemas.tokens import TokenPatch

FULL_RFID: dict[str, Any] = {  # the spec's "Full RFID example" (12.3.2.1)
    "country_code": "DE",
    "party_id": "TNM",
    "uid": "12345678905880",
    "type": "RFID",
    "contract_id": "DE8ACC12E46L89",
    "visual_number": "DF000-2001-8999-1",
    "issuer": "TheNewMotion",
    "group_id": "DF000-2001-8999",
    "valid": True,
    "whitelist": "ALLOWED",
    "language": "it",
    "default_profile_type": "GREEN",
    "energy_contract": {"supplier_name": "Greenpeace Energy eG", "contract_id": "0123456789"},
    "last_updated": "2018-12-10T17:25:10Z",
}


def test_the_spec_example_is_a_token_and_extras_are_kept() -> None:
    token = OcpiToken.model_validate({**FULL_RFID, "x_vendor": {"a": 1}})
    dumped = token.model_dump(mode="json", exclude_none=True)
    assert dumped["energy_contract"] == FULL_RFID["energy_contract"]
    assert dumped["x_vendor"] == {"a": 1}
    assert token.last_updated == datetime(2018, 12, 10, 17, 25, 10, tzinfo=UTC)


def test_enum_values_and_party_codes_are_upper_cased_and_a_naive_time_is_utc() -> None:
    token = OcpiToken.model_validate(
        {
            **FULL_RFID,
            "country_code": "de",
            "party_id": "tnm",
            "type": "app_user",
            "whitelist": "allowed_offline",
            "default_profile_type": "fast",
            "last_updated": "2018-12-10T17:25:10",
        }
    )
    assert (token.country_code, token.party_id, token.type) == ("DE", "TNM", "APP_USER")
    assert (token.whitelist, token.default_profile_type) == ("ALLOWED_OFFLINE", "FAST")
    assert token.last_updated.tzinfo is not None and token.last_updated.utcoffset() == UTC.utcoffset(None)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"whitelist": None}, "whitelist"),  # required (the CLI used to default it)
        ({"valid": None}, "valid"),
        ({"type": "NFC"}, "type"),
        ({"uid": "U" * 37}, "uid"),  # CiString(36)
        ({"uid": "ÜBER-1"}, "uid"),  # CiString: printable ASCII only
        ({"contract_id": ""}, "contract_id"),
        ({"issuer": "New\nMotion"}, "issuer"),  # string: printable, no line breaks
        ({"issuer": "I" * 65}, "issuer"),
        ({"group_id": "G" * 37}, "group_id"),
        ({"language": "ita"}, "language"),
        ({"default_profile_type": "TURBO"}, "default_profile_type"),
        ({"energy_contract": {"contract_id": "1"}}, "energy_contract"),  # supplier_name is required
        ({"country_code": "DEU"}, "country_code"),
    ],
)
def test_what_the_spec_does_not_allow_is_refused(change: dict[str, Any], field: str) -> None:
    body = {k: v for k, v in {**FULL_RFID, **change}.items() if v is not None}
    with pytest.raises(ValidationError) as refused:
        OcpiToken.model_validate(body)
    assert field in {str(error["loc"][0]) for error in refused.value.errors()}


def test_a_patch_is_checked_with_the_same_field_rules() -> None:
    patch = TokenPatch.model_validate({"last_updated": "2019-01-01T00:00:00Z", "whitelist": "never"})
    assert patch.whitelist == "NEVER"
    with pytest.raises(ValidationError):
        TokenPatch.model_validate({"last_updated": "2019-01-01T00:00:00Z", "uid": "U" * 37})
    with pytest.raises(ValidationError):
        TokenPatch.model_validate({"whitelist": "NEVER"})  # last_updated is required in a PATCH
