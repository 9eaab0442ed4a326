"""The 2.1.1 form of the credentials handshake: the 2.1.1 Credentials object (one party: ``token``, ``url``,
``business_details``, ``party_id``, ``country_code``; no roles) read from a partner, and the hub's own.

2.1.1 names one party per connection. The partner's party takes the role it was invited for
(``evhub partners invite --role``), EMSP when its invitation named none (the hub is a CPO platform). The hub's
2.1.1 Credentials name one hosted party as its face (:func:`ocpi.credentials.face`): towards a CPO partner the
first hosted eMSP (the hub is that CPO's eMSP, and sends its tokens under that party), else the first (by id)
of the partner's allowed CPOs, else the first hosted CPO; the partner still sees every CPO it may see on the
2.1.1 routes."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from ocpi.schemas.common import BusinessDetails, CiString2, CiString3, OcpiModel
from ocpi.v211 import objects

DEFAULT_ROLE = "EMSP"


class Credentials211(OcpiModel):
    """OCPI 2.1.1 credentials.md, 2.1 Credentials object."""

    token: Annotated[str, Field(min_length=1, max_length=64)]
    url: Annotated[str, Field(min_length=1, max_length=255)]
    business_details: BusinessDetails
    party_id: CiString3
    country_code: CiString2


def role_of(credentials: Credentials211, invited: set[tuple[str, str, str]]) -> str:
    """The role the 2.1.1 party takes: the one it was invited for (by country_code/party_id; EMSP first when it
    was invited for several), else EMSP."""
    key = (credentials.country_code.upper(), credentials.party_id.upper())
    kinds = sorted(
        {kind for cc, pid, kind in invited if (cc, pid) == key}, key=lambda k: (k != DEFAULT_ROLE, k)
    )
    return kinds[0] if kinds else DEFAULT_ROLE


def as_221(body: dict[str, Any], invited: set[tuple[str, str, str]]) -> dict[str, Any]:
    """A partner's 2.1.1 Credentials (validated) as the 2.2.1 Credentials object with its one role."""
    creds = Credentials211.model_validate(body)
    return objects.credentials_from_211(creds.model_dump(exclude_none=True), role_of(creds, invited))


def face_first(own: dict[str, Any], face: tuple[str, str, str] | None) -> dict[str, Any]:
    """The hub's 2.2.1 Credentials reduced to its face's role (``face``: its country_code, party_id, role)."""
    roles = [r for r in own.get("roles", []) if (r["country_code"], r["party_id"], r["role"]) == face]
    return {**own, "roles": roles or own["roles"][:1]}


def own_211(own: dict[str, Any], face: tuple[str, str, str] | None) -> dict[str, Any]:
    """The hub's 2.2.1 Credentials (one role per hosted CPO and eMSP) as its 2.1.1 Credentials, named by
    ``face``."""
    return objects.credentials_to_211(face_first(own, face))
