"""REST under ``/api/chargers``: chargers with their connection state, and remote commands.

A command returns the charger's answer (200). Unknown charger 404, offline 409, bad parameters 422, the
charger answering with a CALLERROR 502 (code and description in the body), no answer in time 504.
A CPO's API key sees and commands only that CPO's chargers (another CPO's charger is 404, as if unknown).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, HTTPException, Request
from sqlalchemy import select

from cpo_gateway.commands import COMMANDS, CommandError, build
from cpo_gateway.connection import CallErrorReply, OcppError
from evhub.apiauth import principal
from evhub.models import ChargePoint
from evhub.timeutil import format_rfc3339

router = APIRouter(tags=["chargers"])


def _gateway(request: Request) -> Any:
    gw = request.app.state.hub.services.get("gateway")
    if gw is None:
        raise HTTPException(503, "the OCPP gateway is not running in this process")
    return gw


def _describe(cp: ChargePoint) -> dict[str, Any]:
    return {
        "identity": cp.identity,
        "ocpp_version": str(cp.ocpp_version),
        "connected": cp.status == "online",
        "status": cp.status,
        "connected_node": cp.connected_node,
        "last_seen": format_rfc3339(cp.last_seen) if cp.last_seen else None,
        "registration_status": str(cp.registration_status),
        "security_profile": cp.security_profile,
        "vendor": cp.vendor,
        "model": cp.model,
        "serial_number": cp.serial_number,
        "firmware_version": cp.firmware_version,
    }


@router.get("", summary="Chargers with their connection state")
async def list_chargers(request: Request) -> list[dict[str, Any]]:
    gw = _gateway(request)
    who = principal(request)
    query = select(ChargePoint).order_by(ChargePoint.identity)
    if not who.is_hub:
        query = query.where(ChargePoint.cpo_id == who.cpo_id)
    async with gw.db.session() as s:
        rows = (await s.scalars(query)).all()
    return [_describe(cp) for cp in rows]


async def _visible(request: Request, identity: str) -> ChargePoint:
    """The charger, if the caller's key may see it (404 otherwise, not revealing that it exists)."""
    gw = _gateway(request)
    async with gw.db.session() as s:
        cp = await s.scalar(select(ChargePoint).where(ChargePoint.identity == identity))
    if cp is None or not principal(request).sees(cp.cpo_id):
        raise HTTPException(404, f"unknown charger {identity}")
    return cp


@router.get("/{identity}", summary="One charger")
async def get_charger(identity: str, request: Request) -> dict[str, Any]:
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


async def _send(request: Request, identity: str, build_call: Any) -> dict[str, Any]:
    from cpo_gateway.server import ChargerOffline

    gw = _gateway(request)
    cp = await _visible(request, identity)
    version = gw.version_of(identity) or str(cp.ocpp_version)
    try:
        action, payload = build_call(version)
    except CommandError as exc:
        raise HTTPException(422, str(exc)) from None
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
    except OcppError as exc:
        raise HTTPException(
            422, {"error": "invalid payload", "code": exc.code, "description": exc.description}
        ) from None
    except ConnectionError:
        raise HTTPException(409, {"error": "charger disconnected", "charger": identity}) from None
    return {
        "charger": identity,
        "ocpp_version": version,
        "action": action,
        "request": payload,
        "response": answer,
    }


@router.post("/{identity}/commands/{command}", summary="Send a remote command (see cpo_gateway.commands)")
async def command(
    identity: str, command: str, request: Request, params: dict[str, Any] | None = Body(default=None)
) -> dict[str, Any]:
    if command not in COMMANDS:
        raise HTTPException(404, f"unknown command {command}; known: {', '.join(COMMANDS)}")
    return await _send(request, identity, lambda version: build(command, version, params or {}))


@router.post("/{identity}/call/{action}", summary="Send any OCPP action with a raw (camelCase) payload")
async def raw_call(
    identity: str, action: str, request: Request, payload: dict[str, Any] | None = Body(default=None)
) -> dict[str, Any]:
    return await _send(request, identity, lambda version: (action, payload or {}))
