"""REST under ``/api/chargers``: chargers with their connection state, and remote commands.

A command (one of :class:`Command`) returns the charger's answer (200). Unknown charger 404, offline or not
accepted 409, bad parameters or a call (a command's or a raw one) not valid against the request schema of the
charger's OCPP version, formats included, 422 (one message naming the field; nothing is sent), the charger
answering with a CALLERROR 502 (code and description in the body), no answer in time 504. A CPO's API key sees and commands only that CPO's chargers (another CPO's
charger is 404, as if unknown). The list is paged (:mod:`kernel.apipaging`).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from cpo_gateway.cluster import ChargerOffline
from cpo_gateway.commands import COMMANDS, CommandError, build
from cpo_gateway.framing import CallErrorReply, OcppError
from cpo_gateway.validation import InvalidCall, validate_call
from kernel.apiauth import api_key, principal
from kernel.apierrors import errors, refuse_nul
from kernel.apipaging import Paging, paged, paging
from kernel.models import ChargePoint
from kernel.seams import OcppGateway

router = APIRouter(
    tags=["chargers"], dependencies=[Depends(api_key), Depends(refuse_nul)], responses=errors(401, 422, 503)
)

# mypy reads only literal members in the functional Enum API; these come from COMMANDS, so the OpenAPI enum
# and the command table cannot drift apart
Command = StrEnum("Command", {name.replace("-", "_").upper(): name for name in COMMANDS})  # type: ignore[misc]
"""The remote commands by name (see :mod:`cpo_gateway.commands` for each one's parameters)."""


class ChargerOut(BaseModel):
    """A charger with its connection state and what it said in its last BootNotification."""

    identity: str
    ocpp_version: str
    connected: bool
    status: str = Field(description="online, offline, ...")
    connected_node: str | None = Field(description="The hub process holding its connection")
    last_seen: datetime | None
    registration_status: str = Field(description="Accepted, Pending or Rejected")
    security_profile: int | None
    vendor: str | None
    model: str | None
    serial_number: str | None
    firmware_version: str | None


class CommandResult(BaseModel):
    """What was sent to the charger and what it answered."""

    charger: str
    ocpp_version: str
    action: str = Field(description="The OCPP action sent")
    request: dict[str, Any] = Field(description="The payload sent")
    response: dict[str, Any] = Field(description="The charger's CALLRESULT payload")


COMMAND_ERRORS = errors(404, 409, 422, 502, 504)


def _gateway(request: Request) -> OcppGateway:
    gw: OcppGateway | None = request.app.state.hub.services.gateway
    if gw is None:
        raise HTTPException(503, "the OCPP gateway is not running in this process")
    return gw


def _describe(cp: ChargePoint) -> ChargerOut:
    return ChargerOut(
        identity=cp.identity,
        ocpp_version=str(cp.ocpp_version),
        connected=cp.status == "online",
        status=cp.status,
        connected_node=cp.connected_node,
        last_seen=cp.last_seen,
        registration_status=str(cp.registration_status),
        security_profile=cp.security_profile,
        vendor=cp.vendor,
        model=cp.model,
        serial_number=cp.serial_number,
        firmware_version=cp.firmware_version,
    )


@router.get("", summary="Chargers with their connection state (by identity)", responses=paged())
async def list_chargers(request: Request, page: Paging = Depends(paging)) -> list[ChargerOut]:
    _gateway(request)
    who = principal(request)
    query = select(ChargePoint).order_by(ChargePoint.identity)
    if not who.is_hub:
        query = query.where(ChargePoint.cpo_id == who.cpo_id)
    async with request.app.state.hub.db.session() as db_session:
        rows = await page.rows(db_session, query)
    return [_describe(cp) for cp in rows]


async def _visible(request: Request, identity: str) -> ChargePoint:
    """The charger, if the caller's key may see it (404 otherwise, not revealing that it exists)."""
    _gateway(request)
    async with request.app.state.hub.db.session() as db_session:
        cp = await db_session.scalar(select(ChargePoint).where(ChargePoint.identity == identity))
    if cp is None or not principal(request).sees(cp.cpo_id):
        raise HTTPException(404, f"unknown charger {identity}")
    return cp


@router.get("/{identity}", summary="One charger", responses=errors(404))
async def get_charger(identity: str, request: Request) -> ChargerOut:
    return _describe(await _visible(request, identity))


# Actions that make a charger serve a driver: not for a charger the hub has not accepted (OCPP 1.6 section 4.2,
# 2.0.1 B02: while Pending the central system may only configure it and ask for information).
SERVICE_ACTIONS = frozenset({
    "RemoteStartTransaction", "RemoteStopTransaction", "RequestStartTransaction", "RequestStopTransaction",
    "ReserveNow", "UnlockConnector",
})  # fmt: skip


def _registration_refusal(cp: ChargePoint, action: str) -> str | None:
    status = str(cp.registration_status)
    if status == "Rejected":
        return "charger registration is Rejected: commands are not sent"
    if status == "Pending" and action in SERVICE_ACTIONS:
        return f"charger registration is Pending: {action} waits until it is Accepted"
    return None


async def _send(request: Request, identity: str, build_call: Any) -> CommandResult:
    gw = _gateway(request)
    cp = await _visible(request, identity)
    version = gw.version_of(identity) or str(cp.ocpp_version)
    try:
        action, payload = build_call(version)
        validate_call(version, action, payload)
    except InvalidCall as exc:  # nothing is sent
        raise HTTPException(422, str(exc)) from None
    except CommandError as exc:
        raise HTTPException(422, str(exc)) from None
    except (ValueError, TypeError) as exc:  # a parameter of the wrong kind (e.g. evse_id "abc")
        raise HTTPException(422, f"invalid parameter: {exc}") from None
    refusal = _registration_refusal(cp, action)
    if refusal:
        raise HTTPException(409, {"error": refusal, "charger": identity, "action": action})
    try:
        answer = await gw.send(identity, action, payload)
    except ChargerOffline:
        raise HTTPException(409, {"error": "charger offline", "charger": identity}) from None
    except TimeoutError:
        raise HTTPException(
            504, {"error": "charger did not answer in time", "charger": identity, "action": action}
        ) from None
    except CallErrorReply as exc:
        raise HTTPException(
            502,
            {"error": "charger answered with CALLERROR", "code": exc.code, "description": exc.description},
        ) from None
    except InvalidCall as exc:
        raise HTTPException(422, str(exc)) from None
    except OcppError as exc:  # e.g. refused by the gateway process holding the connection
        raise HTTPException(
            422, {"error": "invalid payload", "code": exc.code, "description": exc.description}
        ) from None
    except ConnectionError:
        raise HTTPException(409, {"error": "charger disconnected", "charger": identity}) from None
    return CommandResult(
        charger=identity, ocpp_version=version, action=action, request=payload, response=answer
    )


@router.post(
    "/{identity}/commands/{command}",
    summary="Send a remote command, translated to the charger's OCPP version",
    description="Parameters (snake_case, in the JSON body) by command: see `cpo_gateway.commands` and "
    "docs/gateway.md.",
    responses=COMMAND_ERRORS,
)
async def command(
    identity: str,
    request: Request,
    command: Command = Path(description="The remote command"),
    params: dict[str, Any] | None = Body(default=None, description="The command's parameters"),
) -> CommandResult:
    name = str(command)
    return await _send(request, identity, lambda version: build(name, version, params or {}))


@router.post(
    "/{identity}/call/{action}",
    summary="Send any OCPP action with a raw (camelCase) payload",
    responses=COMMAND_ERRORS,
)
async def raw_call(
    identity: str, action: str, request: Request, payload: dict[str, Any] | None = Body(default=None)
) -> CommandResult:
    return await _send(request, identity, lambda version: (action, payload or {}))
