"""``/api/tokens``: the tokens (RFID cards, app identities) the hub knows, with the OCPI Token fields.

Tokens belong to their eMSPs, not to a CPO, so a CPO key sees the tokens that charged at that CPO's chargers
(a token with at least one of its sessions), nothing else; the hub operator's key sees every token. A token
is named as OCPI names it: ``/api/tokens/{country_code}/{party_id}/{uid}?type=RFID``, the uid under any
casing (a CiString, matched on the indexed ``tokens.uid_key``). Drivers' names, e-mail addresses and fleet
limits are the fleet's business and are not served here.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from pydantic import BaseModel
from sqlalchemy import Select, exists, select

from kernel.apiauth import Principal, api_key, principal
from kernel.apierrors import errors, refuse_nul
from kernel.apipaging import Paging, paged, paging
from kernel.models import ChargingSession, Token
from kernel.models.tokens import TOKEN_TYPES

router = APIRouter(
    prefix="/tokens",
    tags=["tokens"],
    dependencies=[Depends(api_key), Depends(refuse_nul)],
    responses=errors(401, 422),
)

TokenType = StrEnum("TokenType", {t: t for t in TOKEN_TYPES})  # type: ignore[misc]


class TokenOut(BaseModel):
    """A token, keyed as OCPI keys it (issuer's country code and party id, uid, type)."""

    country_code: str
    party_id: str
    uid: str
    type: str
    contract_id: str
    visual_number: str | None
    issuer: str
    valid: bool
    whitelist: str
    language: str | None
    last_updated: datetime


def _describe(t: Token) -> TokenOut:
    return TokenOut(
        country_code=t.country_code,
        party_id=t.party_id,
        uid=t.uid,
        type=t.type,
        contract_id=t.contract_id,
        visual_number=t.visual_number,
        issuer=t.issuer,
        valid=t.valid,
        whitelist=t.whitelist,
        language=t.language,
        last_updated=t.last_updated,
    )


def _visible(query: Select[Any], who: Principal) -> Select[Any]:
    """A CPO key: only the tokens with a session at that CPO's chargers."""
    if who.is_hub:
        return query
    charged_here = exists().where(ChargingSession.token_id == Token.id, ChargingSession.cpo_id == who.cpo_id)
    return query.where(charged_here)


@router.get("", summary="Tokens (a CPO key: those that charged at its chargers)", responses=paged())
async def list_tokens(request: Request, page: Paging = Depends(paging)) -> list[TokenOut]:
    query = _visible(select(Token).order_by(Token.id), principal(request))
    async with request.app.state.hub.db.session() as db_session:
        return [_describe(t) for t in await page.rows(db_session, query)]


@router.get("/{country_code}/{party_id}/{uid}", summary="One token", responses=errors(404))
async def get_token(
    country_code: str,
    party_id: str,
    uid: str,
    request: Request,
    type: TokenType = Query("RFID", description="The token's type"),
) -> TokenOut:
    query = select(Token).where(
        Token.country_code == country_code.upper(),
        Token.party_id == party_id.upper(),
        Token.uid_key == uid.upper(),
        Token.type == str(type),
    )
    async with request.app.state.hub.db.session() as db_session:
        token = await db_session.scalar(_visible(query, principal(request)))
    if token is None:
        raise HTTPException(404, f"unknown token {country_code}*{party_id} {uid} ({type})")
    return _describe(token)
