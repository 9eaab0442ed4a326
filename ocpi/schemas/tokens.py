"""The partial Token of a Tokens PATCH, checked with the field types of the one Token validator
(:class:`kernel.domain.tokens.OcpiToken`)."""

from __future__ import annotations

from pydantic import model_validator

from kernel.domain.tokens import (
    CiString36,
    CountryCode,
    EnergyContract,
    Issuer,
    Language,
    OptionalCiString36,
    PartyId,
    ProfileType,
    String64,
    TokenType,
    UtcDateTime,
    WhitelistType,
)
from kernel.validation import check_extras
from ocpi.schemas.common import OcpiModel


class TokenPatch(OcpiModel):
    """Every field optional but ``last_updated`` (required in a PATCH)."""

    last_updated: UtcDateTime
    country_code: CountryCode | None = None
    party_id: PartyId | None = None
    uid: CiString36 | None = None
    type: TokenType | None = None
    contract_id: CiString36 | None = None
    visual_number: String64 | None = None
    issuer: Issuer | None = None
    group_id: OptionalCiString36 | None = None
    valid: bool | None = None
    whitelist: WhitelistType | None = None
    language: Language | None = None
    default_profile_type: ProfileType | None = None
    energy_contract: EnergyContract | None = None

    @model_validator(mode="after")
    def _bounded_extras(self) -> TokenPatch:
        check_extras(self.model_extra)  # merged into tokens.data like a PUT's
        return self
