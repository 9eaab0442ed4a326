"""HubClientInfo, Receiver interface: a hub tells the platform which of its parties are connected.

Kept per partner in ``ocpi_partners.client_info`` (keyed ``CC*PID*ROLE``), shown by the partners API.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from ocpi import status
from ocpi.deps import Caller, caller, read_model
from ocpi.envelope import NotFound, OcpiError, ok
from ocpi.schemas.hubclientinfo import ClientInfo

router = APIRouter()


@router.get("/{country_code}/{party_id}")
async def get_client_info(country_code: str, party_id: str, c: Caller = Depends(caller)):
    prefix = f"{country_code.upper()}*{party_id.upper()}*"
    found = [v for k, v in (c.partner.client_info or {}).items() if k.startswith(prefix)]
    if not found:
        raise NotFound("Unknown client")
    return ok(found[0])


@router.put("/{country_code}/{party_id}")
async def put_client_info(country_code: str, party_id: str, request: Request, c: Caller = Depends(caller)):
    info = await read_model(request, ClientInfo)
    if (info.country_code.upper(), info.party_id.upper()) != (country_code.upper(), party_id.upper()):
        raise OcpiError(status.INVALID_PARAMETERS, "country_code/party_id differ from the URL")
    infos = dict(c.partner.client_info or {})
    infos[f"{country_code.upper()}*{party_id.upper()}*{info.role}"] = info.model_dump(mode="json")
    c.partner.client_info = infos
    return ok()
