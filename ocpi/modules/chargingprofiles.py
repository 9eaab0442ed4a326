"""ChargingProfiles, Receiver interface: set, clear or read the charging profile of a running session.

Answered with a ChargingProfileResponse at once; the result (ChargingProfileResult, ClearProfileResult,
ActiveChargingProfileResult) is POSTed to ``response_url`` through the outbox when the charger answered.
Available when the gateway carries smart charging (``set_charging_profile`` ...), else ``NOT_SUPPORTED``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select

from kernel.models import ChargingSession, SessionStatus, Token
from ocpi import status
from ocpi.command_runner import CommandRunner
from ocpi.deps import Caller, caller, read_model
from ocpi.envelope import OcpiError, ok
from ocpi.routing import routing_headers
from ocpi.schemas.chargingprofiles import SetChargingProfile

router = APIRouter()
RESULTS = {"ACCEPTED", "REJECTED", "UNKNOWN"}


def _response(result: str, timeout: int) -> dict[str, Any]:
    return {"result": result, "timeout": timeout}


async def _session(c: Caller, session_id: str) -> ChargingSession | None:
    return await c.db_session.scalar(
        select(ChargingSession)
        .join(Token, Token.id == ChargingSession.token_id)
        .where(
            ChargingSession.session_uid == session_id,
            ChargingSession.cpo_id == c.cpo.id,
            Token.emsp_id == c.role.party_pk,
        )
    )


async def _submit(c: Caller, method_name: str, kwargs: dict[str, Any], response_url: str) -> dict[str, Any]:
    runner: CommandRunner = c.platform.command_runner()
    gw = runner.gateway
    method = getattr(gw, method_name, None) if gw is not None else None
    if method is None:
        return _response("NOT_SUPPORTED", runner.timeout)
    await runner.submit_call(
        c.db_session,
        lambda: method(**kwargs),
        response_url=response_url,
        partner_id=c.partner.id,
        routing=routing_headers(c.cpo.country_code, c.cpo.party_id, c.role.country_code, c.role.party_id),
        module="chargingprofiles",
        command=method_name,
        reference=str(kwargs.get("session_uid") or ""),
        allowed=RESULTS,
        failed="REJECTED",
    )
    return _response("ACCEPTED", runner.timeout)


def _response_url(request: Request) -> str:
    url = request.query_params.get("response_url")
    if not url:
        raise OcpiError(status.INVALID_PARAMETERS, "response_url is required")
    return url


@router.get("/{session_id}")
async def get_active_profile(session_id: str, request: Request, c: Caller = Depends(caller)):
    response_url = _response_url(request)
    try:
        duration = int(request.query_params.get("duration", ""))
    except ValueError:
        raise OcpiError(status.INVALID_PARAMETERS, "duration (seconds) is required") from None
    cs = await _session(c, session_id)
    if cs is None or cs.status != SessionStatus.ACTIVE:
        return ok(_response("UNKNOWN_SESSION", c.platform.command_timeout))
    kwargs = {"cpo_id": c.cpo.id, "session_uid": session_id, "duration": duration}
    return ok(await _submit(c, "get_active_charging_profile", kwargs, response_url))


@router.put("/{session_id}")
async def put_profile(session_id: str, request: Request, c: Caller = Depends(caller)):
    body = await read_model(request, SetChargingProfile)
    cs = await _session(c, session_id)
    if cs is None or cs.status != SessionStatus.ACTIVE:
        return ok(_response("UNKNOWN_SESSION", c.platform.command_timeout))
    profile = body.charging_profile.model_dump(mode="json", exclude_none=True)
    kwargs = {"cpo_id": c.cpo.id, "session_uid": session_id, "profile": profile}
    return ok(await _submit(c, "set_charging_profile", kwargs, body.response_url))


@router.delete("/{session_id}")
async def delete_profile(session_id: str, request: Request, c: Caller = Depends(caller)):
    response_url = _response_url(request)
    cs = await _session(c, session_id)
    if cs is None or cs.status != SessionStatus.ACTIVE:
        return ok(_response("UNKNOWN_SESSION", c.platform.command_timeout))
    kwargs = {"cpo_id": c.cpo.id, "session_uid": session_id}
    return ok(await _submit(c, "clear_charging_profile", kwargs, response_url))
