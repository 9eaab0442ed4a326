"""Commands 2.1.1, Receiver interface: POST ``/{command}`` for START_SESSION, STOP_SESSION, RESERVE_NOW and
UNLOCK_CONNECTOR (2.1.1 has no CANCEL_RESERVATION: an unknown command, 2001).

The 2.1.1 body is translated by :func:`ocpi.v211.objects.command_from_211` (its token becomes the 2.2.1 Token
of the partner's party) and runs down the same path as a 2.2.1 command (:func:`ocpi.modules.commands.run_command`:
visibility, token rules, pending command, CommandRunner), addressed to the CPO of the named location (the first,
by id, of the CPOs the partner may see that has a location of that id it may see) or, for STOP_SESSION, of the
partner's session. The answer is the 2.1.1 CommandResponse (``{"result"}``); the result sent later to
``response_url`` goes in 2.1.1 form too (:mod:`ocpi.command_runner`, by the partner's version)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError
from sqlalchemy import func, select

from kernel.models import ChargingSession, Location, Party
from ocpi import status
from ocpi.deps import Caller211, caller_211, read_json
from ocpi.envelope import NotFound, OcpiError, ok
from ocpi.modules.commands import MODELS, CommandRequest, run_command
from ocpi.modules.sessions import visible_sessions
from ocpi.schemas.commands import StopSession
from ocpi.v211 import objects
from ocpi.visibility import may_see

router = APIRouter()


async def _location_cpo(c: Caller211, location_id: str) -> Party | None:
    """The CPO a location command goes to: the first with a location ``location_id`` the caller may see, else
    the first with one at all (the shared path then answers 2003 and logs it), else None."""
    rows = (
        await c.db_session.scalars(
            select(Location)
            .where(Location.cpo_id.in_(c.cpo_ids), func.upper(Location.ocpi_id) == location_id.upper())
            .order_by(Location.cpo_id)
        )
    ).all()
    for loc in rows:
        if await may_see(c.db_session, loc, [c.role.party_pk], c.partner.allowed_cpo_ids):
            return c.cpo(loc.cpo_id)
    return c.cpo(rows[0].cpo_id) if rows else None


async def _session_cpo(c: Caller211, session_id: str) -> Party | None:
    cs = await c.db_session.scalar(
        visible_sessions(c.cpo_ids, c.role.party_pk)
        .where(func.upper(ChargingSession.session_uid) == session_id.upper())
        .order_by(ChargingSession.cpo_id)
        .limit(1)
    )
    return c.cpo(cs.cpo_id) if cs is not None else None


@router.post("/{command}")
async def post_command(command: str, request: Request, c: Caller211 = Depends(caller_211)):
    if command not in objects.COMMANDS_211:
        raise OcpiError(status.INVALID_PARAMETERS, f"Unknown command {command}")
    raw = await read_json(request)
    if not isinstance(raw, dict):
        raise OcpiError(status.INVALID_PARAMETERS, "Request body must be a JSON object")
    translated = objects.command_from_211(command, raw, c.role.country_code, c.role.party_id)
    try:
        body: CommandRequest = MODELS[command].model_validate(translated)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        raise OcpiError(status.INVALID_PARAMETERS, f"Invalid object: {problems}") from None
    if isinstance(body, StopSession):
        cpo = await _session_cpo(c, body.session_id)
        if cpo is None:
            return ok(objects.command_response_to_211({"result": "UNKNOWN_SESSION"}))
    else:
        location_id: Any = getattr(body, "location_id", "")
        cpo = await _location_cpo(c, location_id)
        if cpo is None:
            raise NotFound(f"Unknown location {location_id}", code=status.UNKNOWN_LOCATION)
    response = await run_command(c.as_caller(cpo), command, body)
    return ok(objects.command_response_to_211(response))
