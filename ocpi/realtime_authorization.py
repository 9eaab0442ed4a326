"""Real-time authorization at the eMSP (``POST {tokens}/{uid}/authorize?type=...`` with LocationReferences).

:class:`OcpiAuthorizer` is the service in ``OcpiComponent.authorizer``:
``await authorize(token_uid, token_type, location_ocpi_id, evse_uids) -> AuthorizationDecision``.

Which tokens are asked in real time (Token.whitelist): ``ALWAYS`` and ``ALLOWED`` never (the cached token
decides), ``ALLOWED_OFFLINE`` and ``NEVER`` always. When the eMSP does not answer within ``timeout`` seconds
(or answers an error) the fallback is: ``ALLOWED_OFFLINE`` -> allowed from the cache; ``NEVER`` -> not allowed.
Unknown tokens are asked of every registered eMSP that may see the location (first ``ALLOWED`` wins);
an eMSP answering 2004 does not know the token.

:class:`GatewayRealTimeAuthorizer` adapts it to the gateway's ``hub.services.realtime_authorizer`` seam
(``AuthResult.authorization_reference`` carries the eMSP's reference). Every ``authorization_reference`` an eMSP
gives (here, or in START_SESSION) is kept in ``ocpi_authorizations`` until :func:`session_reference_hook`
hands it to the session it allowed.

**Token type**: the eMSP is asked with an OCPI TokenType. A token the hub knows (by uid, whatever the type the
charger reported) is asked with its stored uid and type; otherwise the charger's type is mapped
(:func:`ocpi_token_type`: OCPP 2.0.1 IdTokenEnumType -> OCPI TokenType, see docs/ocpi.md). An OCPP 1.6 idTag
of the mapped shape (:mod:`kernel.id_tags`) is its token's uid.

**OCPI 2.1.1** eMSPs (``partner.version``) are asked as 2.1.1 says: ``POST {tokens}/{uid}/authorize?type=`` with
a 2.1.1 TokenType (APP_USER and AD_HOC_USER are OTHER), a 2.1.1 LocationReferences body, no routing headers;
their AuthorizationInfo (no ``authorization_reference``) is read as the 2.2.1 one; 2.1.1 has no status 2004, so
an HTTP 404 from a 2.1.1 eMSP means it does not know the token.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from cpo_gateway import AuthResult
from kernel.db.engine import Database
from kernel.id_tags import is_mapped
from kernel.models import EVSE, ChargingSession, Location, Party, Token
from kernel.models.roaming import OcpiAuthorization, OcpiPartner, OcpiPartnerRole, PartnerStatus
from kernel.timeutil import utcnow
from kernel.token_uids import holder_rows
from ocpi import client, status
from ocpi.routing import routing_headers
from ocpi.v211 import VERSION_211
from ocpi.v211 import objects as v211

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuthorizationDecision:
    """``allowed`` is an OCPI AllowedType (ALLOWED, BLOCKED, EXPIRED, NO_CREDIT, NOT_ALLOWED);
    ``source`` says who decided: ``realtime``, ``cache`` (the tokens table) or ``fallback`` (eMSP
    unreachable); ``token_id`` is the tokens row, if any."""

    allowed: str
    source: str
    token_id: int | None = None
    authorization_reference: str | None = None
    info: str | None = None
    token: dict[str, Any] = field(default_factory=dict)

    @property
    def is_allowed(self) -> bool:
        return self.allowed == "ALLOWED"


def _cached(token: Token) -> str:
    return "ALLOWED" if token.valid else "BLOCKED"


OCPI_TOKEN_TYPES = ("AD_HOC_USER", "APP_USER", "OTHER", "RFID")
"""OCPI 2.2.1 TokenType (mod_tokens, TokenType enum)."""

OCPP_ID_TOKEN_TYPES: dict[str, str | None] = {
    "ISO14443": "RFID",
    "ISO15693": "RFID",
    "Central": "APP_USER",
    "eMAID": "OTHER",
    "KeyCode": "OTHER",
    "Local": "OTHER",
    "MacAddress": "OTHER",
    "NoAuthorization": None,
}
"""OCPP 2.0.1 IdTokenEnumType -> OCPI TokenType. Both RFID UID kinds are RFID; ``Central`` (an id the CSMS or
another server generated, e.g. for an app's remote start) is APP_USER; an ISO 15118 contract id, a PIN code, a
station's local id and an EV's MAC address have no OCPI type of their own: OTHER. ``NoAuthorization`` is no
token at all: nothing to ask an eMSP (None)."""


def ocpi_token_type(token_type: str | None) -> str | None:
    """The OCPI TokenType of a type a charger reported: an OCPI type as it is, an OCPP 2.0.1 IdTokenEnumType
    mapped (:data:`OCPP_ID_TOKEN_TYPES`), anything else OTHER; None for ``NoAuthorization``. No type: RFID
    (the OCPI default)."""
    if not token_type:
        return "RFID"
    if token_type in OCPI_TOKEN_TYPES:
        return token_type
    if token_type in OCPP_ID_TOKEN_TYPES:
        return OCPP_ID_TOKEN_TYPES[token_type]
    return "OTHER"


async def known_token(db_session: AsyncSession, uid: str, token_type: str) -> Token | None:
    """The stored token a charger's ``uid`` names (CiString; a mapped 1.6 idTag names its token): the uid's
    holder's (:func:`kernel.token_uids.holder_rows`: the first stored issuer, never a later intruder's row),
    of ``token_type`` if it has one, else its first stored."""
    key = uid.upper()
    match = Token.uid_key == key
    if is_mapped(uid):
        match = or_(match, Token.ocpp16_id_tag == key)
    rows = holder_rows((await db_session.scalars(select(Token).where(match).order_by(Token.id))).all(), uid)
    return next((t for t in rows if t.type == token_type), rows[0] if rows else None)


@dataclass(frozen=True)
class _Call:
    """One authorization request to one eMSP partner, in its OCPI version."""

    base: str
    token: str
    headers: dict[str, str]
    version: str


class OcpiAuthorizer:
    def __init__(
        self, db: Database, *, timeout: float = 5.0, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.db = db
        self.timeout = timeout
        self.transport = transport  # None: the network (see ocpi.client)

    async def authorize(
        self,
        token_uid: str,
        token_type: str = "RFID",
        location_ocpi_id: str | None = None,
        evse_uids: list[str] | None = None,
        *,
        cpo_id: int | None = None,
    ) -> AuthorizationDecision:
        mapped_type = ocpi_token_type(token_type)
        if mapped_type is None:  # OCPP NoAuthorization: no token an eMSP could know
            return AuthorizationDecision("NOT_ALLOWED", "fallback", None, info="no token to authorize")
        async with self.db.session() as db_session:
            token = await known_token(db_session, token_uid, mapped_type)
            if token is not None:  # the eMSP is asked about the token as it issued it
                token_uid, token_type = token.uid, token.type
            else:
                token_type = mapped_type
            location = None
            if location_ocpi_id is not None:
                query = select(Location).where(Location.ocpi_id == location_ocpi_id)
                if cpo_id is not None:
                    query = query.where(Location.cpo_id == cpo_id)
                location = await db_session.scalar(query)
            cpo = (
                await db_session.get(Party, location.cpo_id if location else cpo_id)
                if (location or cpo_id)
                else None
            )
            targets: list[tuple[OcpiPartner, OcpiPartnerRole]] = []
            if token is not None:
                if token.whitelist in ("ALWAYS", "ALLOWED"):
                    return AuthorizationDecision(_cached(token), "cache", token.id)
                role = await db_session.scalar(
                    select(OcpiPartnerRole).where(OcpiPartnerRole.party_pk == token.emsp_id)
                )
                partner = await db_session.get(OcpiPartner, role.partner_id) if role else None
                if partner is not None and role is not None and partner.status == PartnerStatus.REGISTERED:
                    targets.append((partner, role))
            else:
                partners = (
                    await db_session.scalars(
                        select(OcpiPartner).where(OcpiPartner.status == PartnerStatus.REGISTERED)
                    )
                ).all()
                for partner in partners:
                    if (
                        cpo is not None
                        and partner.allowed_cpo_ids is not None
                        and cpo.id not in partner.allowed_cpo_ids
                    ):
                        continue
                    for role in partner.roles:
                        if role.role == "EMSP":
                            targets.append((partner, role))
            calls = []
            for partner, role in targets:
                base = partner.endpoint("tokens", "SENDER")
                if base is None or not partner.outgoing_token or cpo is None:
                    continue
                if partner.version == VERSION_211:  # 2.1.1 has no routing headers
                    calls.append(_Call(base, partner.outgoing_token, {}, VERSION_211))
                    continue
                headers = routing_headers(cpo.country_code, cpo.party_id, role.country_code, role.party_id)
                calls.append(_Call(base, partner.outgoing_token, headers, "2.2.1"))
        body: dict[str, Any] | None = None
        if location_ocpi_id is not None:
            body = {"location_id": location_ocpi_id}
            if evse_uids:
                body["evse_uids"] = list(evse_uids)
        answers = await asyncio.gather(*(self._ask(c, token_uid, token_type, body) for c in calls))
        reached = False
        for answer in answers:
            if answer is None:
                continue
            reached = True
            if answer.get("allowed") == "ALLOWED" or token is not None:
                if answer.get("allowed") == "ALLOWED" and answer.get("authorization_reference"):
                    await self._remember(
                        token_uid,
                        token_type,
                        location.id if location is not None else None,
                        evse_uids,
                        str(answer["authorization_reference"]),
                    )
                return AuthorizationDecision(
                    str(answer.get("allowed", "NOT_ALLOWED")),
                    "realtime",
                    token.id if token else None,
                    answer.get("authorization_reference"),
                    (
                        (answer.get("info") or {}).get("text")
                        if isinstance(answer.get("info"), dict)
                        else None
                    ),
                    answer.get("token") or {},
                )
        if token is None:
            return AuthorizationDecision(
                "NOT_ALLOWED", "realtime" if reached else "fallback", None, info="unknown token"
            )
        if token.whitelist == "ALLOWED_OFFLINE":
            return AuthorizationDecision(_cached(token), "fallback", token.id, info="eMSP unreachable")
        return AuthorizationDecision("NOT_ALLOWED", "fallback", token.id, info="eMSP unreachable")

    async def _remember(
        self, uid: str, token_type: str, location_pk: int | None, evse_uids: list[str] | None, reference: str
    ) -> None:
        """Keep the eMSP's ``authorization_reference`` until the session it allows starts
        (:func:`session_reference_hook`)."""
        try:
            async with self.db.session() as db_session:
                db_session.add(
                    OcpiAuthorization(
                        token_uid=uid[:36],
                        token_type=token_type,
                        location_pk=location_pk,
                        evse_uid=evse_uids[0] if evse_uids else None,
                        authorization_reference=reference[:36],
                        source="realtime",
                    )
                )
        except Exception:  # never fail an authorization over bookkeeping
            log.exception("could not keep the authorization reference of %s", uid)

    async def _ask(
        self, call: _Call, uid: str, token_type: str, body: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        """The AuthorizationInfo (2.2.1 form), {"allowed": "NOT_ALLOWED"} for 2004, or None when unreachable."""
        url = call.base.rstrip("/") + f"/{uid}/authorize"
        if call.version == VERSION_211:
            token_type = v211.token_to_211({"type": token_type}).get("type", "OTHER")
            body = v211.location_references_to_211(body) if body is not None else None
        try:
            reply = await client.request(
                "POST",
                url,
                call.token,
                json=body,
                params={"type": token_type},
                headers=call.headers,
                timeout=self.timeout,
                transport=self.transport,
                version=call.version,
            )
        except (httpx.HTTPError, TimeoutError) as exc:
            log.info("real-time authorization at %s failed: %s", url, exc)
            return None
        if reply.status_code == status.UNKNOWN_TOKEN or (
            call.version == VERSION_211 and reply.http_status == 404
        ):
            # 2.1.1 has no 2004: its eMSPs say "unknown token" with HTTP 404
            return {
                "allowed": "NOT_ALLOWED",
                "info": {"language": "en", "text": "unknown token"},
                "unknown": True,
            }
        if reply.ok and isinstance(reply.data, dict) and "allowed" in reply.data:
            if call.version == VERSION_211:
                return v211.authorization_info_from_211(reply.data)
            return reply.data
        return None


REFERENCE_TTL = timedelta(minutes=15)


async def _session_uids(db_session: AsyncSession, cs: ChargingSession) -> list[str]:
    """The session's id tag and its token's uid (differing when a long uid was mapped for OCPP 1.6)."""
    uids = [(cs.id_tag or "").upper()]
    if cs.token_id is not None:
        uid = await db_session.scalar(select(Token.uid).where(Token.id == cs.token_id))
        if uid:
            uids.append(uid.upper())
    return uids


async def session_reference_hook(db_session: AsyncSession, cs: ChargingSession) -> None:
    """For ``hub.hooks.session`` (before the push hook): a new session of a token the eMSP
    authorized in real time (or started with START_SESSION) takes the latest unused ``authorization_reference``
    given for that token (and the session's location, when known) in the last 15 minutes, into
    ``sessions.data["authorization_reference"]`` — sent in the OCPI Session and copied into the CDR. A session
    started by START_SESSION (a ``command`` row, with or without a reference) gets ``auth_method: COMMAND``."""
    if not cs.id_tag or (cs.data or {}).get("authorization_reference") or cs.auth_method == "COMMAND":
        return
    try:
        async with db_session.begin_nested():
            query = (
                select(OcpiAuthorization)
                .where(
                    func.upper(OcpiAuthorization.token_uid).in_(await _session_uids(db_session, cs)),
                    OcpiAuthorization.session_pk.is_(None),
                    OcpiAuthorization.created_at >= utcnow() - REFERENCE_TTL,
                )
                .order_by(OcpiAuthorization.created_at.desc(), OcpiAuthorization.id.desc())
                .limit(1)
            )
            if cs.location_id is not None:
                query = query.where(
                    or_(
                        OcpiAuthorization.location_pk.is_(None),
                        OcpiAuthorization.location_pk == cs.location_id,
                    )
                )
            found = await db_session.scalar(query)
            if found is None:
                return
            found.session_pk = cs.id
            if found.source == "command":  # started by the eMSP's START_SESSION (AuthMethod COMMAND)
                cs.auth_method = "COMMAND"
            if found.authorization_reference:
                cs.data = {**(cs.data or {}), "authorization_reference": found.authorization_reference}
            await db_session.flush()
    except Exception:
        log.exception("could not attach the authorization reference to session %s", cs.session_uid)


_OCPP_STATUS = {"ALLOWED": "Accepted", "BLOCKED": "Blocked", "EXPIRED": "Expired", "NO_CREDIT": "Blocked"}


class GatewayRealTimeAuthorizer:
    """``hub.services.realtime_authorizer`` for the gateway: its pk-based call mapped onto
    :class:`OcpiAuthorizer`; answers an OCPP AuthResult, or None when no eMSP could decide."""

    def __init__(self, db: Database, authorizer: OcpiAuthorizer) -> None:
        self.db = db
        self.authorizer = authorizer

    async def authorize(
        self, uid: str, token_type: str, *, charge_point_id: int, location_id: int | None, evse_pk: int | None
    ) -> AuthResult | None:
        async with self.db.session() as db_session:
            location = await db_session.get(Location, location_id) if location_id else None
            evse = await db_session.get(EVSE, evse_pk) if evse_pk else None
            location_ocpi_id = location.ocpi_id if location else None
            evse_uids = [evse.uid] if evse else None
            cpo_id = location.cpo_id if location else None
        decision = await self.authorizer.authorize(
            uid, token_type, location_ocpi_id, evse_uids, cpo_id=cpo_id
        )
        if decision.source == "fallback" and decision.token_id is None:
            return None
        return AuthResult(
            _OCPP_STATUS.get(decision.allowed, "Invalid"),
            decision.token_id,
            decision.info or "",
            None,
            "AUTH_REQUEST" if decision.source == "realtime" else "WHITELIST",
            authorization_reference=decision.authorization_reference,
        )
