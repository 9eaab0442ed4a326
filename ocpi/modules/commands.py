"""Commands, Receiver interface: START_SESSION, STOP_SESSION, UNLOCK_CONNECTOR, RESERVE_NOW,
CANCEL_RESERVATION. Answered with a CommandResponse at once; the CommandResult follows at ``response_url``.

A command naming a location (START_SESSION, RESERVE_NOW, UNLOCK_CONNECTOR) may only name one the caller may
see under the Locations sender's rule (:func:`ocpi.visibility.may_see`: ``publish`` / ``publish_allowed_to``
for the calling role, and the partner's ``allowed_cpo_ids``); any other is answered exactly as an unknown
location (2003), so its existence is not disclosed, and nothing reaches the charger.

The token of a START_SESSION or RESERVE_NOW must be one whose uid the calling eMSP may hold
(:mod:`kernel.token_uids`): a uid another issuer holds is answered REJECTED (the charger would present it as
that issuer's card). A START_SESSION token the hub does not know yet is stored as the eMSP's (so a long uid's
mapped 1.6 idTag resolves back to it); RESERVE_NOW stores its token in any case (:mod:`ocpi.reservation_store`).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import func, select

from kernel.domain.tokens import OcpiToken
from kernel.models import EVSE, ChargingSession, Location, Token
from kernel.models.roaming import OcpiAuthorization
from kernel.token_uids import UidTaken, claim
from ocpi import reservation_store, status
from ocpi.command_runner import METHODS, RESULT_TYPES, CommandRunner
from ocpi.deps import Caller, caller, read_model
from ocpi.envelope import NotFound, OcpiError, ok
from ocpi.modules.tokens import store_token
from ocpi.routing import routing_headers
from ocpi.schemas.commands import CancelReservation, ReserveNow, StartSession, StopSession, UnlockConnector
from ocpi.visibility import may_see

log = logging.getLogger(__name__)

router = APIRouter()

CommandRequest = StartSession | StopSession | UnlockConnector | ReserveNow | CancelReservation
MODELS: dict[str, type[CommandRequest]] = {
    "START_SESSION": StartSession,
    "STOP_SESSION": StopSession,
    "UNLOCK_CONNECTOR": UnlockConnector,
    "RESERVE_NOW": ReserveNow,
    "CANCEL_RESERVATION": CancelReservation,
}


def _response(result: str, timeout: int, message: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"result": result, "timeout": timeout}
    if message:
        body["message"] = [{"language": "en", "text": message}]
    return body


async def _location(c: Caller, command: str, body: StartSession | ReserveNow | UnlockConnector) -> Location:
    """The addressed CPO's location ``body.location_id`` if the caller may see it; 2003 when it does not exist
    or the caller may not see it (the same answer: a hidden location is not disclosed). Location id and EVSE
    uid are CiString(36): matched whatever the casing, then ``body`` carries them as stored, so everything
    after (the gateway, the pending command, the authorization row) matches them exactly."""
    location_id, evse_uid = body.location_id, body.evse_uid
    unknown = NotFound(f"Unknown location {location_id}", code=status.UNKNOWN_LOCATION)
    loc = await c.db_session.scalar(
        select(Location).where(
            Location.cpo_id == c.cpo.id, func.upper(Location.ocpi_id) == location_id.upper()
        )
    )
    if loc is None:
        raise unknown
    if not await may_see(c.db_session, loc, [c.role.party_pk], c.partner.allowed_cpo_ids):
        log.warning(
            "%s from partner %s (%s*%s) names location %s of CPO %s*%s, which it may not see "
            "(publish false without a matching token, or no agreement): answered as unknown location",
            command,
            c.partner.id,
            c.role.country_code,
            c.role.party_id,
            location_id,
            c.cpo.country_code,
            c.cpo.party_id,
        )
        raise unknown
    body.location_id = loc.ocpi_id
    if evse_uid is not None:
        evse = await c.db_session.scalar(
            select(EVSE).where(EVSE.location_id == loc.id, func.upper(EVSE.uid) == evse_uid.upper())
        )
        if evse is None:
            raise NotFound(f"Unknown EVSE {evse_uid}", code=status.UNKNOWN_LOCATION)
        body.evse_uid = evse.uid
    return loc


async def _command_token(c: Caller, token: OcpiToken, *, store_unknown: bool) -> None:
    """Check that the caller may hold ``token``'s uid (:class:`UidTaken` if another issuer holds it) and, with
    ``store_unknown``, store it as the caller's when the hub knows no token of the caller with that uid (never
    pushed, under any type: a second row of another type must not outvote a token the eMSP blocked)."""
    await claim(c.db_session, token.country_code, token.party_id, token.uid, source="command")
    if not store_unknown:
        return
    known = await c.db_session.scalar(
        select(Token.id)
        .where(
            Token.country_code == token.country_code.upper(),
            Token.party_id == token.party_id.upper(),
            Token.uid_key == token.uid.upper(),
        )
        .limit(1)
    )
    if known is None:
        await store_token(c.db_session, c.role.party_pk, token, source="command")


def _reference(body: Any) -> str:
    """What the command is about, for the pending-commands table."""
    if isinstance(body, StopSession):
        return body.session_id
    if isinstance(body, ReserveNow | CancelReservation):
        return body.reservation_id
    parts = [body.location_id, body.evse_uid, getattr(body, "connector_id", None)]
    return "/".join(str(p) for p in parts if p)


@router.post("/{command}")
async def post_command(command: str, request: Request, c: Caller = Depends(caller)):
    if command not in MODELS:
        raise OcpiError(status.INVALID_PARAMETERS, f"Unknown command {command}")
    body = await read_model(request, MODELS[command])
    return ok(await run_command(c, command, body))


async def run_command(c: Caller, command: str, body: CommandRequest) -> dict[str, Any]:
    """Run ``command`` for the caller and its addressed CPO: the CommandResponse (2.2.1) to answer at once.
    Shared with the 2.1.1 route (:mod:`ocpi.modules.v211.commands`), which translates body and answer."""
    runner: CommandRunner = c.platform.command_runner()
    timeout = runner.timeout
    kwargs: dict[str, Any] = {"cpo_id": c.cpo.id}
    loc: Location | None = None
    if isinstance(body, StartSession | ReserveNow):
        if (body.token.country_code.upper(), body.token.party_id.upper()) != (
            c.role.country_code,
            c.role.party_id,
        ):
            raise OcpiError(status.INVALID_PARAMETERS, "Token of another party")
        loc = await _location(c, command, body)
        try:
            await _command_token(c, body.token, store_unknown=isinstance(body, StartSession))
        except UidTaken as exc:
            return _response("REJECTED", timeout, str(exc))
        token = body.token.model_dump(mode="json", exclude_none=True)
        kwargs.update(
            location_id=body.location_id,
            evse_uid=body.evse_uid,
            id_tag=body.token.uid,
            token=token,
            authorization_reference=body.authorization_reference,
        )
        if isinstance(body, StartSession):
            if body.evse_uid is None:
                # EVSE-less start: the gateway needs an EVSE; refuse rather than guess.
                return _response("REJECTED", timeout, "evse_uid is required by this CPO")
            kwargs["connector_id"] = body.connector_id
        else:
            kwargs.update(reservation_id=body.reservation_id, expiry_date=body.expiry_date)
    elif isinstance(body, StopSession):
        cs = await c.db_session.scalar(
            select(ChargingSession)
            .join(Token, Token.id == ChargingSession.token_id)
            .where(
                func.upper(ChargingSession.session_uid) == body.session_id.upper(),  # CiString(36)
                ChargingSession.cpo_id == c.cpo.id,
                Token.emsp_id == c.role.party_pk,
            )
        )
        if cs is None:
            return _response("UNKNOWN_SESSION", timeout, "Unknown session")
        kwargs["session_uid"] = cs.session_uid  # as stored: the gateway matches it exactly
    elif isinstance(body, UnlockConnector):
        await _location(c, command, body)
        kwargs.update(location_id=body.location_id, evse_uid=body.evse_uid, connector_id=body.connector_id)
    else:
        kwargs["reservation_id"] = body.reservation_id
    if not runner.supports(command):
        return _response("NOT_SUPPORTED", timeout, f"{METHODS[command]} is not available")
    if isinstance(body, ReserveNow | CancelReservation):
        return await _reservation_command(c, runner, command, body, kwargs, loc)
    if isinstance(body, StartSession) and body.authorization_reference:
        c.db_session.add(
            OcpiAuthorization(
                token_uid=body.token.uid,
                token_type=body.token.type,
                location_pk=loc.id if loc is not None else None,
                evse_uid=body.evse_uid,
                authorization_reference=body.authorization_reference,
                source="command",
            )
        )
    await runner.submit(
        c.db_session,
        command,
        kwargs,
        response_url=body.response_url,
        partner_id=c.partner.id,
        routing=routing_headers(c.cpo.country_code, c.cpo.party_id, c.role.country_code, c.role.party_id),
        reference=_reference(body),
    )
    return _response("ACCEPTED", timeout)


async def _reservation_command(
    c: Caller,
    runner: CommandRunner,
    command: str,
    body: ReserveNow | CancelReservation,
    kwargs: dict[str, Any],
    loc: Location | None,
) -> dict[str, Any]:
    """RESERVE_NOW / CANCEL_RESERVATION with their ``reservations`` row (:mod:`ocpi.reservation_store`): the
    charger gets the row's own reservation number, and its answer is stored on the row before the
    CommandResult is queued."""
    rows = reservation_store
    method = getattr(runner.gateway, METHODS[command])
    record: Any
    if isinstance(body, ReserveNow):
        assert loc is not None
        token = await store_token(c.db_session, c.role.party_pk, body.token, keep_newer=True)
        try:
            row = await rows.reserve(
                c.db_session,
                cpo_id=c.cpo.id,
                emsp_id=c.role.party_pk,
                loc=loc,
                body=body,
                token_id=token.id if token is not None else None,
            )
        except rows.ReservationRefused as exc:
            return _response("REJECTED", runner.timeout, str(exc))
        record = rows.record_reserve_answer
    else:
        row = await rows.find(c.db_session, c.role.party_pk, body.reservation_id)
        record = rows.record_cancel_answer
    if row is not None:
        kwargs = {**kwargs, "reservation_id": str(row.ocpp_reservation_id)}
    row_pk = row.id if row is not None else None

    async def call() -> Any:
        answer = await method(**kwargs)
        if row_pk is not None:
            await record(runner.db, row_pk, answer)
        return answer

    await runner.submit_call(
        c.db_session,
        call,
        response_url=body.response_url,
        partner_id=c.partner.id,
        routing=routing_headers(c.cpo.country_code, c.cpo.party_id, c.role.country_code, c.role.party_id),
        module="commands",
        command=command,
        reference=_reference(body),
        allowed=RESULT_TYPES,
    )
    return _response("ACCEPTED", runner.timeout)
