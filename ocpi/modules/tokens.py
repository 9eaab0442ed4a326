"""Tokens, Receiver interface: eMSPs PUT/PATCH their tokens into the ``tokens`` table (the gateway's
authorization cache). A party only reaches its own tokens; another party's token is answered 404.
:func:`store_token` is the PUT's storage, shared with the tokens pull (:mod:`ocpi.tokens_pull`).

``uid`` is a CiString(36) (OCPI 2.2.1 types 16.1: "case-insensitive"), as are ``country_code`` and
``party_id``: a token is found by ``upper(uid)``, so a PUT/PATCH/GET under another casing addresses the same
row (never a second one, which would leave a token blocked under one casing valid under another). The uid is
kept as first stored.

A uid belongs to one issuer across the hub (:mod:`kernel.token_uids`): a PUT/PATCH (or a pulled token) whose
uid another issuer holds is refused, 2001 naming the uid but not the other issuer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.domain.tokens import OcpiToken
from kernel.models import Token
from kernel.models.tokens import TOKEN_TYPES
from kernel.token_uids import UidTaken, claim
from ocpi import status
from ocpi.deps import Caller, caller, read_json, read_model
from ocpi.envelope import NotFound, OcpiError, ok
from ocpi.render_objects import token_object
from ocpi.schemas.tokens import TokenPatch

router = APIRouter()


def _check_owner(c: Caller, country_code: str, party_id: str) -> None:
    if (country_code.upper(), party_id.upper()) != (c.role.country_code, c.role.party_id):
        raise NotFound("Token of another party")


def _type(request: Request) -> str:
    token_type = request.query_params.get("type") or "RFID"
    if token_type not in TOKEN_TYPES:
        raise OcpiError(status.INVALID_PARAMETERS, f"Unknown token type {token_type}")
    return token_type


async def find_token(db_session: AsyncSession, cc: str, pid: str, uid: str, token_type: str) -> Token | None:
    """The token (country_code, party_id, uid, type), every part compared case-insensitively (CiString)."""
    return await db_session.scalar(
        select(Token)
        .where(
            Token.country_code == cc.upper(),
            Token.party_id == pid.upper(),
            Token.uid_key == uid.upper(),
            Token.type == token_type,
        )
        .order_by(Token.id)
        .limit(1)
    )


async def _find(c: Caller, cc: str, pid: str, uid: str, token_type: str) -> Token | None:
    return await find_token(c.db_session, cc, pid, uid, token_type)


def _apply(t: Token, fields: dict[str, Any]) -> None:
    for name in ("contract_id", "visual_number", "issuer", "valid", "whitelist", "language", "last_updated"):
        if name in fields and fields[name] is not None:
            setattr(t, name, fields[name])
    data = dict(t.data or {})
    data.update({k: v for k, v in fields.items() if k != "last_updated"})
    t.data = data


async def store_token(
    db_session: AsyncSession,
    party_pk: int,
    body: OcpiToken,
    *,
    keep_newer: bool = False,
    source: str = "ocpi",
) -> Token | None:
    """Store the whole token as a PUT does (insert or replace), owned by eMSP ``party_pk``. None when the
    token belongs to another eMSP; with ``keep_newer`` a stored token updated later than ``body`` stays.
    :class:`~kernel.token_uids.UidTaken` when another issuer holds the uid (``source`` labels the metric)."""
    await claim(db_session, body.country_code, body.party_id, body.uid, source=source)
    token = await find_token(db_session, body.country_code, body.party_id, body.uid, body.type)
    if token is not None and token.emsp_id not in (None, party_pk):
        return None
    if token is not None and keep_newer and token.last_updated > body.last_updated:
        return token
    fields = body.model_dump(mode="json", exclude_none=True)
    fields["last_updated"] = body.last_updated
    if token is None:
        token = Token(
            country_code=body.country_code.upper(),
            party_id=body.party_id.upper(),
            uid=body.uid,
            type=body.type,
            contract_id=body.contract_id,
            issuer=body.issuer,
            emsp_id=party_pk,
            valid=body.valid,
            whitelist=body.whitelist,
            last_updated=body.last_updated,
            data={},
        )
        db_session.add(token)
    token.emsp_id = party_pk
    token.data = {}
    _apply(token, fields)
    await db_session.flush()
    return token


@router.get("/{country_code}/{party_id}/{token_uid}")
async def get_token(
    country_code: str, party_id: str, token_uid: str, request: Request, c: Caller = Depends(caller)
):
    _check_owner(c, country_code, party_id)
    token = await _find(c, country_code, party_id, token_uid, _type(request))
    if token is None:
        raise NotFound(f"Unknown token {token_uid}", code=status.UNKNOWN_TOKEN)
    return ok(token_object(token))


@router.put("/{country_code}/{party_id}/{token_uid}")
async def put_token(
    country_code: str, party_id: str, token_uid: str, request: Request, c: Caller = Depends(caller)
):
    _check_owner(c, country_code, party_id)
    body = await read_model(request, OcpiToken)
    token_type = request.query_params.get("type") or body.type
    await put_whole(c.db_session, c.role.party_pk, country_code, party_id, token_uid, token_type, body)
    return ok()


async def put_whole(
    db_session: AsyncSession,
    party_pk: int,
    country_code: str,
    party_id: str,
    token_uid: str,
    token_type: str,
    body: OcpiToken,
) -> None:
    """The PUT of ``body`` at ``/{country_code}/{party_id}/{token_uid}`` (type ``token_type``) by eMSP
    ``party_pk``; shared with the 2.1.1 route (:mod:`ocpi.modules.v211.tokens`)."""
    if (body.country_code.upper(), body.party_id.upper(), body.uid.upper(), body.type) != (
        country_code.upper(),
        party_id.upper(),
        token_uid.upper(),
        token_type,
    ):
        raise OcpiError(status.INVALID_PARAMETERS, "Token country_code/party_id/uid/type differ from the URL")
    # an older state (by last_updated) than the stored one is answered success and not applied (issue 13)
    try:
        stored = await store_token(db_session, party_pk, body, keep_newer=True)
    except UidTaken as exc:
        raise OcpiError(status.INVALID_PARAMETERS, str(exc)) from None
    if stored is None:
        raise NotFound("Token of another party")


@router.patch("/{country_code}/{party_id}/{token_uid}")
async def patch_token(
    country_code: str, party_id: str, token_uid: str, request: Request, c: Caller = Depends(caller)
):
    _check_owner(c, country_code, party_id)
    raw = await read_json(request)
    if not isinstance(raw, dict):
        raise OcpiError(status.INVALID_PARAMETERS, "Request body must be a JSON object")
    patch = await read_model(request, TokenPatch)
    await patch_fields(
        c.db_session, c.role.party_pk, country_code, party_id, token_uid, _type(request), raw, patch
    )
    return ok()


async def patch_fields(
    db_session: AsyncSession,
    party_pk: int,
    country_code: str,
    party_id: str,
    token_uid: str,
    token_type: str,
    raw: dict[str, Any],
    patch: TokenPatch,
) -> None:
    """The PATCH of the keys of ``raw`` (validated as ``patch``) at ``/{country_code}/{party_id}/{token_uid}``
    by eMSP ``party_pk``; shared with the 2.1.1 route (:mod:`ocpi.modules.v211.tokens`)."""
    for key, expected in (("country_code", country_code), ("party_id", party_id), ("uid", token_uid)):
        if key in raw and str(raw[key]).upper() != expected.upper():
            raise OcpiError(status.INVALID_PARAMETERS, f"{key} differs from the URL")
    if "type" in raw and raw["type"] != token_type:
        raise OcpiError(status.INVALID_PARAMETERS, "type differs from the URL")
    token = await find_token(db_session, country_code, party_id, token_uid, token_type)
    if token is None or token.emsp_id not in (None, party_pk):
        raise NotFound(f"Unknown token {token_uid}", code=status.UNKNOWN_TOKEN)
    try:  # a row stored before the ownership rule, of a uid another issuer held first
        await claim(db_session, token.country_code, token.party_id, token.uid, source="ocpi")
    except UidTaken as exc:
        raise OcpiError(status.INVALID_PARAMETERS, str(exc)) from None
    if token.last_updated > patch.last_updated:  # older than the stored state: success, not applied
        return
    fields = {k: v for k, v in patch.model_dump(mode="json").items() if k in raw}
    fields["last_updated"] = patch.last_updated
    _apply(token, fields)
    await db_session.flush()
