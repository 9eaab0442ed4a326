"""The OCPI 2.2.1 Token object (Tokens module, 12.3.2): the one validator of a Token, used by
``evhub tokens add`` (:mod:`evhub.provisioning`) and by the OCPI tokens module (PUT, and the tokens pull),
and the field types a partial Token (a PATCH) is checked with.

The spec's types: a ``CiString(n)`` is printable ASCII (case-insensitive), a ``string(n)`` printable UTF-8
(no line breaks, no tabs), of at most ``n`` characters. Required: country_code, party_id, uid, type,
contract_id, issuer, valid, whitelist, last_updated. Enum values (``type``, ``whitelist``,
``default_profile_type``) and the CiStrings ``country_code``/``party_id`` are accepted in any case and
upper-cased (peers re-case them: ``rfid`` -> ``RFID``); a ``last_updated`` without an offset is UTC. Unknown
fields are kept (a newer peer's extras are stored in ``tokens.data``, not lost), up to
:data:`kernel.validation.MAX_EXTRA_BYTES` and :data:`~kernel.validation.MAX_EXTRA_DEPTH`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from kernel.domain._fields import one_of, upper
from kernel.models.tokens import TOKEN_TYPES, WHITELIST_TYPES
from kernel.validation import check_extras, ci_string, ocpi_string, utc_instant

PROFILE_TYPES = ("CHEAP", "FAST", "GREEN", "REGULAR")  # OCPI 2.2.1 ProfileType (Smart Charging)


CountryCode = Annotated[
    str, BeforeValidator(upper), Field(min_length=2, max_length=2), AfterValidator(ci_string)
]
PartyId = Annotated[str, BeforeValidator(upper), Field(min_length=3, max_length=3), AfterValidator(ci_string)]
CiString36 = Annotated[str, Field(min_length=1, max_length=36), AfterValidator(ci_string)]
OptionalCiString36 = Annotated[str, Field(max_length=36), AfterValidator(ci_string)]
String64 = Annotated[str, Field(max_length=64), AfterValidator(ocpi_string)]
Issuer = Annotated[str, Field(min_length=1, max_length=64), AfterValidator(ocpi_string)]
Language = Annotated[str, Field(min_length=2, max_length=2), AfterValidator(ocpi_string)]  # ISO 639-1
TokenType = Annotated[str, BeforeValidator(upper), AfterValidator(one_of(TOKEN_TYPES))]
WhitelistType = Annotated[str, BeforeValidator(upper), AfterValidator(one_of(WHITELIST_TYPES))]
ProfileType = Annotated[str, BeforeValidator(upper), AfterValidator(one_of(PROFILE_TYPES))]
UtcDateTime = Annotated[datetime, AfterValidator(utc_instant)]


class EnergyContract(BaseModel):
    """The driver's own energy supplier and contract (12.4.2)."""

    model_config = ConfigDict(extra="allow")

    supplier_name: String64
    contract_id: String64 | None = None

    @model_validator(mode="after")
    def _bounded_extras(self) -> EnergyContract:
        check_extras(self.model_extra)
        return self


class OcpiToken(BaseModel):
    """An OCPI 2.2.1 Token as an eMSP (or ``evhub tokens add``) gives it."""

    model_config = ConfigDict(extra="allow")

    country_code: CountryCode
    party_id: PartyId
    uid: CiString36
    type: TokenType
    contract_id: CiString36
    visual_number: String64 | None = None
    issuer: Issuer
    group_id: OptionalCiString36 | None = None
    valid: bool
    whitelist: WhitelistType
    language: Language | None = None
    default_profile_type: ProfileType | None = None
    energy_contract: EnergyContract | None = None
    last_updated: UtcDateTime

    @model_validator(mode="after")
    def _bounded_extras(self) -> OcpiToken:
        check_extras(self.model_extra)  # kept in tokens.data: a partner may not store megabytes there
        return self
