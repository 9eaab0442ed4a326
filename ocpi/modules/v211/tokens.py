"""Tokens 2.1.1, Receiver interface: ``/{country_code}/{party_id}/{token_uid}`` GET, PUT and PATCH by the
partner's one eMSP party (another party's path is answered 404, as in 2.2.1).

A 2.1.1 Token (``auth_id``, no ``country_code``/``party_id``) is translated by
:func:`ocpi.v211.objects.token_from_211` and stored by the same functions as a 2.2.1 PUT / PATCH
(:func:`ocpi.modules.tokens.put_whole`, :func:`ocpi.modules.tokens.patch_fields`): the same uid rules, the same
"an older state is not applied". 2.1.1 paths carry no ``type``: a PUT takes its body's, GET and PATCH address
the party's token of that uid (RFID first when it holds the uid under two types; a ``?type=`` is honoured).
A 2.1.1 PATCH need not carry ``last_updated`` (2.2.1 requires it): without one it is stamped with the time it
was received."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError
from sqlalchemy import case, select

from kernel.domain.tokens import OcpiToken
from kernel.models import Token
from kernel.timeutil import format_rfc3339, utcnow
from ocpi import status
from ocpi.deps import Caller211, caller_211, read_json
from ocpi.envelope import NotFound, OcpiError, ok
from ocpi.modules.tokens import patch_fields, put_whole, token_object
from ocpi.schemas.tokens import TokenPatch
from ocpi.v211 import objects

router = APIRouter()


def _check_owner(c: Caller211, country_code: str, party_id: str) -> tuple[str, str]:
    if (country_code.upper(), party_id.upper()) != (c.role.country_code, c.role.party_id):
        raise NotFound("Token of another party")
    return c.role.country_code, c.role.party_id


async def _stored_type(c: Caller211, cc: str, pid: str, uid: str, request: Request) -> str | None:
    """The type of the party's token ``uid`` (``?type=`` when given; RFID first), None when it has none."""
    asked = request.query_params.get("type")
    if asked:
        return asked
    return await c.db_session.scalar(
        select(Token.type)
        .where(Token.country_code == cc, Token.party_id == pid, Token.uid_key == uid.upper())
        .order_by(case((Token.type == "RFID", 0), else_=1), Token.id)
        .limit(1)
    )


def _invalid(exc: ValidationError) -> OcpiError:
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
    return OcpiError(status.INVALID_PARAMETERS, f"Invalid object: {problems}")


async def _object(request: Request) -> dict[str, Any]:
    raw = await read_json(request)
    if not isinstance(raw, dict):
        raise OcpiError(status.INVALID_PARAMETERS, "Request body must be a JSON object")
    return raw


@router.get("/{country_code}/{party_id}/{token_uid}")
async def get_token(
    country_code: str, party_id: str, token_uid: str, request: Request, c: Caller211 = Depends(caller_211)
):
    cc, pid = _check_owner(c, country_code, party_id)
    token_type = await _stored_type(c, cc, pid, token_uid, request)
    token = None
    if token_type is not None:
        token = await c.db_session.scalar(
            select(Token).where(
                Token.country_code == cc,
                Token.party_id == pid,
                Token.uid_key == token_uid.upper(),
                Token.type == token_type,
            )
        )
    if token is None or token.emsp_id not in (None, c.role.party_pk):
        raise NotFound(f"Unknown token {token_uid}", code=status.UNKNOWN_TOKEN)
    return ok(objects.token_to_211(token_object(token)))


@router.put("/{country_code}/{party_id}/{token_uid}")
async def put_token(
    country_code: str, party_id: str, token_uid: str, request: Request, c: Caller211 = Depends(caller_211)
):
    cc, pid = _check_owner(c, country_code, party_id)
    try:
        body = OcpiToken.model_validate(objects.token_from_211(await _object(request), cc, pid))
    except ValidationError as exc:
        raise _invalid(exc) from None
    await put_whole(c.db_session, c.role.party_pk, country_code, party_id, token_uid, body.type, body)
    return ok()


@router.patch("/{country_code}/{party_id}/{token_uid}")
async def patch_token(
    country_code: str, party_id: str, token_uid: str, request: Request, c: Caller211 = Depends(caller_211)
):
    cc, pid = _check_owner(c, country_code, party_id)
    raw = await _object(request)
    for key in ("country_code", "party_id"):  # not 2.1.1 Token fields: never taken from the body
        raw.pop(key, None)
    fields = objects.token_from_211(raw, cc, pid)
    fields.setdefault("last_updated", format_rfc3339(utcnow()))
    try:
        patch = TokenPatch.model_validate(fields)
    except ValidationError as exc:
        raise _invalid(exc) from None
    token_type = await _stored_type(c, cc, pid, token_uid, request)
    if token_type is None:
        raise NotFound(f"Unknown token {token_uid}", code=status.UNKNOWN_TOKEN)
    await patch_fields(
        c.db_session, c.role.party_pk, country_code, party_id, token_uid, token_type, fields, patch
    )
    return ok()
