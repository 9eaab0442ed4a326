"""Tokens, Sender interface of the hub's hosted eMSPs, for external CPO partners (OCPI 2.2.1 and 2.1.1):
``GET /ocpi/emsp/{version}/tokens`` (the token list, paginated) and ``POST .../tokens/{uid}/authorize[?type=]``
(real-time authorization, answering an AuthorizationInfo).

Who may call (:mod:`ocpi.emsp_caller`): a registered partner with a ``CPO`` role; any other partner (an eMSP)
is answered HTTP 403. In 2.2.1 ``OCPI-from-*`` must be one of its CPO roles and ``OCPI-to-*`` a hosted eMSP
(else 4001, HTTP 404): the partner sees that eMSP's tokens, and only them. 2.1.1 has no routing headers: the
list is the union of every hosted eMSP's tokens, a uid is looked up among them all. The list's
``date_from`` / ``date_to`` and its order are by the ``last_updated`` the CPO sees (the token's, or a later
placement or release of a billing hold on it: :func:`ocpi.emsp_tokens.seen_last_updated_sql`).

The decision of ``authorize`` is the gateway's own (:func:`cpo_gateway.decide_token`, as the tokens' issuer:
whitelist ``NEVER`` is decided here): billing's ``block`` hold or an invalid token → ``BLOCKED``, an expired
one → ``EXPIRED``, a used-up spending limit (the token's, or one billing lowered) → ``NO_CREDIT``, else
``ALLOWED``. A token of another type than asked, or of an eMSP the call is not addressed to, is unknown:
2004, HTTP 404. ``NOT_ALLOWED`` (a location restriction) is never answered: the hub's eMSPs restrict no
locations.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select

from cpo_gateway import current_token_rows, decide_token
from kernel.models import Token
from kernel.models.tokens import TOKEN_TYPES
from kernel.timeutil import utcnow
from ocpi import status
from ocpi.deps import read_json
from ocpi.emsp_caller import CpoCaller, cpo_caller, cpo_caller_211
from ocpi.emsp_tokens import cpo_token_object, held_states, seen_last_updated_sql
from ocpi.envelope import OcpiError, ok
from ocpi.pagination import paginate
from ocpi.v211 import objects

router = APIRouter()
router_211 = APIRouter()

ALLOWED_TYPES = {  # the gateway's OCPP AuthorizationStatus -> OCPI AllowedType
    "Accepted": "ALLOWED",
    "Blocked": "BLOCKED",
    "Expired": "EXPIRED",
    "NoCredit": "NO_CREDIT",
    "Invalid": "BLOCKED",
}
TYPES_211 = {"RFID": ("RFID",), "OTHER": ("OTHER", "APP_USER", "AD_HOC_USER")}
"""A 2.1.1 token type, as the 2.2.1 types it stands for (2.1.1 knows RFID and OTHER)."""


async def _page(request: Request, c: CpoCaller) -> tuple[list[dict[str, Any]], dict[str, str]]:
    query = select(Token).where(Token.emsp_id.in_(c.emsp_ids))
    rows, headers = await paginate(
        c.db_session, request, query, seen_last_updated_sql(), Token.id, c.platform.max_limit
    )
    held = await held_states(c.db_session, rows)
    return [cpo_token_object(t, held.get(t.id)) for t in rows], headers


async def _location_references(request: Request) -> dict[str, Any] | None:
    """The optional LocationReferences body; 2001 when it is there but not one."""
    body = await read_json(request)
    if body is None:
        return None
    if not isinstance(body, dict) or not isinstance(body.get("location_id"), str):
        raise OcpiError(status.INVALID_PARAMETERS, "The body must be LocationReferences (with location_id)")
    evse_uids = body.get("evse_uids")
    if evse_uids is not None and (
        not isinstance(evse_uids, list) or not all(isinstance(u, str) for u in evse_uids)
    ):
        raise OcpiError(status.INVALID_PARAMETERS, "evse_uids must be a list of strings")
    return body


async def _decision(c: CpoCaller, uid: str, types: tuple[str, ...]) -> tuple[str, str, dict[str, Any]]:
    """(AllowedType, reason, the Token as the CPO sees it) for the hosted eMSPs' token ``uid``; 2004 when none
    of them has it (in one of ``types``)."""
    rows = (
        await c.db_session.scalars(
            select(Token)
            .where(Token.emsp_id.in_(c.emsp_ids), Token.uid_key == uid.upper(), Token.type.in_(types))
            .order_by(Token.id)
        )
    ).all()
    current = current_token_rows(rows)
    if not current:
        raise OcpiError(status.UNKNOWN_TOKEN, f"Unknown token {uid}", http_status=404)
    token = current[0]
    decision = await decide_token(c.db_session, token, utcnow(), as_issuer=True)
    allowed = "ALLOWED" if decision is None else ALLOWED_TYPES.get(decision.status, "BLOCKED")
    reason = "" if decision is None else decision.reason
    held = await held_states(c.db_session, [token])
    return allowed, reason, cpo_token_object(token, held.get(token.id))


def _info(reason: str) -> dict[str, str]:
    return {"language": "en", "text": reason[:512]}


def _asked_type(request: Request) -> str:
    token_type = request.query_params.get("type") or "RFID"
    if token_type not in TOKEN_TYPES:
        raise OcpiError(status.INVALID_PARAMETERS, f"Unknown token type {token_type}")
    return token_type


@router.get("")
@router.get("/")
async def list_tokens(request: Request, c: CpoCaller = Depends(cpo_caller)):
    tokens, headers = await _page(request, c)
    return ok(tokens, headers=headers)


@router.post("/{token_uid}/authorize")
async def authorize(token_uid: str, request: Request, c: CpoCaller = Depends(cpo_caller)):
    token_type = _asked_type(request)
    location = await _location_references(request)
    allowed, reason, token = await _decision(c, token_uid, (token_type,))
    info: dict[str, Any] = {"allowed": allowed, "token": token}
    if location is not None:
        info["location"] = location
    if reason:
        info["info"] = _info(reason)
    return ok(info)


@router_211.get("")
@router_211.get("/")
async def list_tokens_211(request: Request, c: CpoCaller = Depends(cpo_caller_211)):
    tokens, headers = await _page(request, c)
    return ok([objects.token_to_211(t) for t in tokens], headers=headers)


@router_211.post("/{token_uid}/authorize")
async def authorize_211(token_uid: str, request: Request, c: CpoCaller = Depends(cpo_caller_211)):
    asked = request.query_params.get("type") or "RFID"
    if asked not in TYPES_211:
        raise OcpiError(status.INVALID_PARAMETERS, f"Unknown OCPI 2.1.1 token type {asked}")
    location = await _location_references(request)
    allowed, reason, _ = await _decision(c, token_uid, TYPES_211[asked])
    info: dict[str, Any] = {"allowed": allowed}
    if location is not None:
        info["location"] = location
    if reason:
        info["info"] = _info(reason)
    return ok(info)
