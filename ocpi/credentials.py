"""Credentials: the registration handshake in both directions, rotation and unregistration.

Partner registers with the hub (the hub is the receiver of the handshake):
  1. ``invite()`` issues token A (only its hash is stored) -> given to the partner out of band;
  2. the partner GETs our versions with token A and POSTs its credentials (its token B, its versions URL);
  3. we GET its versions and details with token B, keep B for calling it, and answer with a new token C
     (stored hashed) — token A stops working.

The hub registers with a partner (``register(url, token_a)``): GET the partner's versions with its token A,
POST our credentials with a new token B (stored hashed; the partner may call our versions with it while it
handles the POST), keep the token C it answers with.

PUT rotates (both tokens renewed, versions re-read); DELETE unregisters. POST when already registered, and
PUT/DELETE when not, are answered 405 as the spec says.

Versions (``ocpi_partners.version``): the hub registering with a partner picks the highest version both offer
(2.2.1 > 2.1.1); a partner registering with the hub gets the version whose credentials endpoint it POSTs (or
PUTs) to, and the hub reads the partner's details of that same version (3002 when it offers none). A 2.1.1
exchange uses the 2.1.1 Credentials (one party, :mod:`ocpi.credentials_211`) and the raw token in
``Authorization``; the hub's versions request to a partner whose version it does not know yet goes base64
(2.2.1) first and, answered 401, raw (2.1.1).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.db.engine import Database
from kernel.models import Fleet, Party, PartyRole, Token
from kernel.models.roaming import OcpiPartner, OcpiPartnerRole, PartnerStatus
from kernel.security import hash_token, new_token
from kernel.timeutil import utcnow
from ocpi import client, status
from ocpi import credentials_211 as form_211
from ocpi.deps import read_json, read_model, request_transaction
from ocpi.emsp_tokens import hosted_emsps
from ocpi.envelope import MethodNotAllowed, OcpiError, ok
from ocpi.partner_auth import partner_for_header, token_candidates
from ocpi.platform import VERSION, VERSION_211, VERSIONS, OcpiPlatform, get_platform
from ocpi.routing import hosted_cpos
from ocpi.schemas.credentials import Credentials

router = APIRouter()


class HandshakeError(Exception):
    """The other platform could not be registered with; ``code`` is the OCPI status to report."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------------------------- helpers


async def own_credentials(db_session: AsyncSession, platform: OcpiPlatform, token: str) -> dict[str, Any]:
    """The hub's credentials object: one role per hosted CPO, then one per hosted eMSP (the eMSP side an
    external CPO talks to, :mod:`ocpi.modules.tokens_sender`)."""
    parties = [("CPO", cpo) for cpo in await hosted_cpos(db_session)]
    parties += [("EMSP", emsp) for emsp in await hosted_emsps(db_session)]
    roles = [
        {
            "role": role,
            "party_id": party.party_id,
            "country_code": party.country_code,
            "business_details": {"name": party.name, **({"website": party.website} if party.website else {})},
        }
        for role, party in parties
    ]
    return {"token": token, "url": platform.versions_url, "roles": roles}


async def _versions(
    versions_url: str,
    token: str,
    timeout: float,
    transport: httpx.AsyncBaseTransport | None,
    wanted: tuple[str, ...],
) -> Any:
    """The other side's versions list, read before its version is known. Only 2.1.1 wanted: with the raw
    token (2.1.1); else base64 (2.2.1) first and, answered 401, raw (a 2.1.1-only peer, whose list then tells)."""
    schemes = [VERSION_211] if wanted == (VERSION_211,) else [VERSION, VERSION_211]
    for scheme in schemes:
        try:
            return await client.get_ok(
                versions_url, token, timeout=timeout, transport=transport, version=scheme
            )
        except client.OcpiClientError as exc:
            refused = exc.reply is not None and exc.reply.http_status == 401
            if scheme == schemes[-1] or not refused:
                raise HandshakeError(status.UNABLE_TO_USE_CLIENT_API, str(exc)) from exc
    raise AssertionError("unreachable")


async def fetch_version_details(
    versions_url: str,
    token: str,
    timeout: float,
    transport: httpx.AsyncBaseTransport | None = None,
    versions: tuple[str, ...] = (VERSION,),
) -> tuple[str, list[dict]]:
    """(version, endpoints) of the highest of ``versions`` (highest first) the other side offers, read with
    ``token``; :class:`HandshakeError` (3002 when it offers none of them)."""
    offered_list = await _versions(versions_url, token, timeout, transport, versions)
    if isinstance(offered_list, dict):  # a details object served at the versions URL
        offered_list = [{"version": offered_list.get("version"), "url": versions_url}]
    offered = {str(v.get("version")): v for v in offered_list or [] if isinstance(v, dict) and v.get("url")}
    version = next((v for v in versions if v in offered), None)
    if version is None:
        wanted = " or ".join(versions)
        raise HandshakeError(
            status.UNSUPPORTED_VERSION, f"no OCPI {wanted} offered (offered: {', '.join(offered)})"
        )
    try:
        details = await client.get_ok(
            offered[version]["url"], token, timeout=timeout, transport=transport, version=version
        )
    except client.OcpiClientError as exc:
        raise HandshakeError(status.UNABLE_TO_USE_CLIENT_API, str(exc)) from exc
    endpoints = [e for e in (details or {}).get("endpoints", []) if isinstance(e, dict) and e.get("url")]
    if not endpoints:
        raise HandshakeError(status.NO_MATCHING_ENDPOINTS, "the version details list no endpoints")
    if not any(e.get("identifier") == "credentials" for e in endpoints):
        raise HandshakeError(status.NO_MATCHING_ENDPOINTS, "the version details list no credentials endpoint")
    return version, endpoints


async def face(
    db_session: AsyncSession, allowed_cpo_ids: list[int] | None, *, towards_cpo: bool = False
) -> tuple[str, str, str] | None:
    """The hosted party the hub's 2.1.1 Credentials name (country_code, party_id, role). Towards a CPO
    partner (the hub is its eMSP: :mod:`ocpi.modules.tokens_sender`) the first hosted eMSP, whose tokens it
    is sent under that party's ``/{country_code}/{party_id}``; else, and when the hub hosts no eMSP, the first
    of the partner's allowed CPOs (by id), else the first hosted CPO. None when the hub hosts neither."""
    if towards_cpo:
        emsps = await hosted_emsps(db_session)
        if emsps:
            return emsps[0].country_code, emsps[0].party_id, "EMSP"
    cpos = await hosted_cpos(db_session)
    mine = [c for c in cpos if allowed_cpo_ids is None or c.id in allowed_cpo_ids] or cpos
    return (mine[0].country_code, mine[0].party_id, "CPO") if mine else None


def is_cpo_partner(partner: OcpiPartner) -> bool:
    """Whether the partner holds (or was invited for) a CPO role: the hub is then its eMSP."""
    return any(r.role == "CPO" for r in partner.roles)


async def credentials_for(
    db_session: AsyncSession,
    platform: OcpiPlatform,
    token: str,
    version: str,
    allowed_cpo_ids: list[int] | None,
    *,
    towards_cpo: bool = False,
) -> dict[str, Any]:
    """The hub's credentials object in ``version``'s form (2.1.1: one party, :func:`face`; ``towards_cpo``:
    the partner is a CPO)."""
    own = await own_credentials(db_session, platform, token)
    if version != VERSION_211:
        return own
    if not own["roles"]:
        raise HandshakeError(status.SERVER_ERROR, "the hub hosts no CPO or eMSP to name in 2.1.1 credentials")
    return form_211.own_211(own, await face(db_session, allowed_cpo_ids, towards_cpo=towards_cpo))


def read_credentials(data: Any, version: str, invited: set[RoleKey] | None = None) -> Credentials:
    """The other side's credentials object of ``version`` as a 2.2.1 :class:`Credentials`; 2001
    (:class:`HandshakeError`) when it is not one."""
    try:
        if version == VERSION_211:
            data = form_211.as_221(data, invited or set())
        return Credentials.model_validate(data)
    except ValidationError as exc:  # the fields only: never the values (one is a token)
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        raise HandshakeError(
            status.INVALID_PARAMETERS, f"not an OCPI {version} credentials object: {problems}"
        ) from None


_ROLE_MAP = {"CPO": PartyRole.CPO, "EMSP": PartyRole.EMSP, "HUB": PartyRole.HUB}

RoleKey = tuple[str, str, str]
"""(country_code, party_id, role) of a credentials role, upper-cased."""


async def own_emsps(db_session: AsyncSession) -> set[int]:
    """Ids of the eMSP parties the hub runs itself: the eMSP of a fleet, or the issuer of a fleet's tokens."""
    fleet_emsps = select(Fleet.emsp_id).where(Fleet.emsp_id.is_not(None))
    token_emsps = select(Token.emsp_id).where(Token.fleet_id.is_not(None), Token.emsp_id.is_not(None))
    rows = await db_session.scalars(
        select(Party.id).where(Party.role == PartyRole.EMSP, Party.id.in_(fleet_emsps.union(token_emsps)))
    )
    return set(rows.all())


async def _hosted_reason(db_session: AsyncSession, key: RoleKey, *, unlinked: bool) -> str | None:
    """Why ``key`` is a party the hub hosts itself (None when it is not): a hosted CPO, the hub's own eMSP and,
    with ``unlinked``, any existing CPO or eMSP party no partner role links (one the operator added)."""
    cc, pid, kind = key
    if kind not in ("CPO", "EMSP"):
        return None
    party = await db_session.scalar(
        select(Party).where(Party.country_code == cc, Party.party_id == pid, Party.role == _ROLE_MAP[kind])
    )
    if party is None:
        return None
    if kind == "EMSP" and party.id in await own_emsps(db_session):
        return f"{cc}*{pid} is an eMSP hosted on this platform"
    linked = await db_session.scalar(select(OcpiPartnerRole.id).where(OcpiPartnerRole.party_pk == party.id))
    if linked is None and (kind == "CPO" or unlinked):
        return f"{cc}*{pid} is {'a CPO' if kind == 'CPO' else 'an eMSP'} hosted on this platform"
    return None


async def _store_roles(
    db_session: AsyncSession,
    partner: OcpiPartner,
    roles: list[dict[str, Any]],
    *,
    invited: set[RoleKey] | None = None,
) -> None:
    """Link each credentials role to a Party (created when new); roles no longer listed are dropped.

    Never a party the hub hosts (2001). With ``invited`` (the roles the partner holds already: those of its
    invitation, or those it registered), a role outside it is refused (2001); without, a role of a party the
    operator added (not a partner's) is refused too: only a new party may be claimed."""
    keep: list[OcpiPartnerRole] = []
    for role in roles:
        cc, pid, kind = role["country_code"].upper(), role["party_id"].upper(), role["role"]
        mine = invited is not None and (cc, pid, kind) in invited
        if invited and not mine:
            raise HandshakeError(
                status.INVALID_PARAMETERS,
                f"role {kind} {cc}*{pid} is not a role this partner was invited for",
            )
        reason = await _hosted_reason(db_session, (cc, pid, kind), unlinked=not mine)
        if reason is not None:
            raise HandshakeError(status.INVALID_PARAMETERS, reason)
        party_role = _ROLE_MAP.get(kind, PartyRole.OTHER)
        party = await db_session.scalar(
            select(Party).where(Party.country_code == cc, Party.party_id == pid, Party.role == party_role)
        )
        name = (role.get("business_details") or {}).get("name") or f"{cc}*{pid}"
        if party is None:
            party = Party(country_code=cc, party_id=pid, role=party_role, name=name[:200])
            db_session.add(party)
            await db_session.flush()
        taken = await db_session.scalar(
            select(OcpiPartnerRole).where(
                OcpiPartnerRole.country_code == cc,
                OcpiPartnerRole.party_id == pid,
                OcpiPartnerRole.role == kind,
            )
        )
        if taken is not None and taken.partner_id != partner.id:
            other = await db_session.get(OcpiPartner, taken.partner_id)
            if other is not None and other.status == PartnerStatus.REGISTERED:
                raise HandshakeError(
                    status.INVALID_PARAMETERS, f"role {kind} {cc}*{pid} is registered by another partner"
                )
            if other is not None and other.status == PartnerStatus.INVITED:
                raise HandshakeError(
                    status.INVALID_PARAMETERS, f"role {kind} {cc}*{pid} is another partner's invitation"
                )
            await db_session.delete(taken)
            await db_session.flush()
            taken = None
        keep.append(taken or OcpiPartnerRole(party_pk=party.id, country_code=cc, party_id=pid, role=kind))
    partner.roles = keep
    partner.credentials_roles = roles


@dataclass(frozen=True)
class Invitation:
    partner_id: int
    token_a: str
    versions_url: str


async def invite(
    db: Database,
    platform: OcpiPlatform,
    name: str,
    *,
    allowed_cpo_ids: list[int] | None = None,
    roles: list[RoleKey] | None = None,
) -> Invitation:
    """``evhub partners invite NAME --role CC*PID[:ROLE]``: a new partner with a token A to register with (shown
    once).

    ``roles`` (country_code, party_id, role; at least one) are the only roles the partner may register with;
    they are kept as its (not yet registered) roles. :class:`HandshakeError` without roles, and for a party the
    hub hosts or another partner's."""
    if not roles:
        raise HandshakeError(
            status.INVALID_PARAMETERS,
            "an invitation names the roles the partner may register (COUNTRY*PARTY[:ROLE])",
        )
    token_a = new_token()
    async with db.session() as db_session:
        partner = OcpiPartner(
            name=name,
            status=PartnerStatus.INVITED,
            incoming_token_hash=hash_token(token_a),
            incoming_token_kind="A",
            endpoints=[],
            credentials_roles=[],
            allowed_cpo_ids=allowed_cpo_ids,
            roles=[],
        )
        db_session.add(partner)
        await db_session.flush()
        partner_id = partner.id
        wanted = [{"country_code": cc, "party_id": pid, "role": kind.upper()} for cc, pid, kind in roles]
        await _store_roles(db_session, partner, wanted, invited={_key(r) for r in wanted})
        partner.credentials_roles = []
    return Invitation(partner_id, token_a, platform.versions_url)


def _key(role: dict[str, Any]) -> RoleKey:
    return role["country_code"].upper(), role["party_id"].upper(), str(role["role"]).upper()


async def register(
    db: Database,
    platform: OcpiPlatform,
    versions_url: str,
    token_a: str,
    *,
    name: str | None = None,
    allowed_cpo_ids: list[int] | None = None,
) -> OcpiPartner:
    """``evhub partners register URL TOKEN_A``: the hub registers with a partner (it initiates the
    handshake) in the highest version both offer. Returns the registered partner; :class:`HandshakeError`
    when the partner cannot be used."""
    version, endpoints = await fetch_version_details(
        versions_url, token_a, platform.client_timeout, platform.transport, VERSIONS
    )
    cred_url = next((e["url"] for e in endpoints if e.get("identifier") == "credentials"), None)
    if cred_url is None:
        raise HandshakeError(status.NO_MATCHING_ENDPOINTS, "the partner has no credentials endpoint")
    token_b = new_token()
    async with db.session() as db_session:
        partner = OcpiPartner(
            name=name or versions_url,
            status=PartnerStatus.INVITED,
            version=version,
            versions_url=versions_url,
            incoming_token_hash=hash_token(token_b),
            incoming_token_kind="A",
            outgoing_token=token_a,
            endpoints=endpoints,
            credentials_roles=[],
            allowed_cpo_ids=allowed_cpo_ids,
        )
        db_session.add(partner)
        await db_session.flush()
        partner_id = partner.id
        body = await credentials_for(db_session, platform, token_b, version, allowed_cpo_ids)
    try:
        reply = await client.request(
            "POST",
            cred_url,
            token_a,
            json=body,
            timeout=platform.client_timeout,
            transport=platform.transport,
            version=version,
        )
    except Exception as exc:
        await _drop(db, partner_id)
        raise HandshakeError(status.UNABLE_TO_USE_CLIENT_API, f"POST credentials failed: {exc}") from exc
    if not reply.ok or not isinstance(reply.data, dict):
        await _drop(db, partner_id)
        raise HandshakeError(
            reply.status_code or status.UNABLE_TO_USE_CLIENT_API,
            f"POST credentials answered HTTP {reply.http_status} {reply.status_code} {reply.status_message}",
        )
    try:
        theirs = read_credentials(reply.data, version)
    except HandshakeError:
        await _drop(db, partner_id)
        raise
    async with db.session() as db_session:
        registered = await db_session.get(OcpiPartner, partner_id)
        assert registered is not None
        registered.outgoing_token = theirs.token
        registered.versions_url = theirs.url
        registered.incoming_token_kind = "C"
        registered.status = PartnerStatus.REGISTERED
        registered.tokens_pulled_at = None
        if name is None:
            registered.name = theirs.roles[0].business_details.name
        await _store_roles(db_session, registered, [r.model_dump(exclude_none=True) for r in theirs.roles])
    _kick_tokens_pull(platform, partner_id)
    return registered


async def _drop(db: Database, partner_id: int) -> None:
    async with db.session() as db_session:
        partner = await db_session.get(OcpiPartner, partner_id)
        if partner is not None:
            await db_session.delete(partner)


async def rotate(db: Database, platform: OcpiPlatform, partner_id: int) -> None:
    """The hub renews the credentials (PUT to the partner): new token B for the partner to use, new C back."""
    async with db.session() as db_session:
        partner = await db_session.get(OcpiPartner, partner_id)
        if partner is None or partner.status != PartnerStatus.REGISTERED:
            raise HandshakeError(status.CLIENT_ERROR, "partner is not registered")
        cred_url = partner.endpoint("credentials", "SENDER") or partner.endpoint("credentials", "RECEIVER")
        old_out = partner.outgoing_token
        old_hash = partner.incoming_token_hash
        version = partner.version or VERSION
        held = {(r.country_code, r.party_id, r.role) for r in partner.roles}
        token_b = new_token()
        partner.incoming_token_hash = hash_token(token_b)
        body = await credentials_for(
            db_session,
            platform,
            token_b,
            version,
            partner.allowed_cpo_ids,
            towards_cpo=is_cpo_partner(partner),
        )
    if cred_url is None:
        raise HandshakeError(status.NO_MATCHING_ENDPOINTS, "the partner has no credentials endpoint")
    reply: client.OcpiReply | None = None
    error = ""
    try:
        reply = await client.request(
            "PUT",
            cred_url,
            old_out,
            json=body,
            timeout=platform.client_timeout,
            transport=platform.transport,
            version=version,
        )
    except Exception as exc:
        error = str(exc)
    if reply is None or not reply.ok or not isinstance(reply.data, dict):
        async with db.session() as db_session:  # the partner kept the old credentials: so do we
            partner = await db_session.get(OcpiPartner, partner_id)
            if partner is not None:
                partner.incoming_token_hash = old_hash
        detail = f"HTTP {reply.http_status} {reply.status_message}" if reply is not None else error
        raise HandshakeError(status.UNABLE_TO_USE_CLIENT_API, f"PUT credentials failed: {detail}")
    theirs = read_credentials(reply.data, version, held)
    version, endpoints = await fetch_version_details(
        theirs.url, theirs.token, platform.client_timeout, platform.transport, (version,)
    )
    async with db.session() as db_session:
        partner = await db_session.get(OcpiPartner, partner_id)
        assert partner is not None
        partner.outgoing_token = theirs.token
        partner.versions_url = theirs.url
        partner.version = version
        partner.endpoints = endpoints
        await _store_roles(db_session, partner, [r.model_dump(exclude_none=True) for r in theirs.roles])


async def unregister(
    db: Database,
    partner_id: int,
    *,
    notify: bool = True,
    timeout: float = 10.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> None:
    """The hub ends the connection: DELETE at the partner (best effort), then forget the tokens."""
    async with db.session() as db_session:
        partner = await db_session.get(OcpiPartner, partner_id)
        if partner is None:
            return
        cred_url = partner.endpoint("credentials", "SENDER") or partner.endpoint("credentials", "RECEIVER")
        token = partner.outgoing_token
        version = partner.version or VERSION
    if notify and cred_url and token:
        with contextlib.suppress(Exception):  # the partner may be gone already; we unregister anyway
            await client.request(
                "DELETE", cred_url, token, timeout=timeout, transport=transport, version=version
            )
    async with db.session() as db_session:
        partner = await db_session.get(OcpiPartner, partner_id)
        if partner is not None:
            _forget(partner)


def _forget(partner: OcpiPartner) -> None:
    partner.status = PartnerStatus.UNREGISTERED
    partner.incoming_token_hash = None
    partner.outgoing_token = None


# ---------------------------------------------------------------------------------------------- routes


def credentials_router(version: str) -> APIRouter:
    """GET/POST/PUT/DELETE ``/credentials`` of ``version`` (mounted under ``/ocpi/<version>``). Any partner's
    token opens either version's credentials: POST registers in that version, PUT switches to it."""
    routes = APIRouter()

    @routes.get("/credentials")
    async def get_credentials(
        request: Request,
        db_session: AsyncSession = Depends(request_transaction, scope="function"),
        platform: OcpiPlatform = Depends(get_platform),
    ):
        header = request.headers.get("Authorization")
        partner = await partner_for_header(db_session, header, allow_token_a=True)
        # Only the hash is stored; the caller proved it holds the token, so that is the one to show.
        presented = next(t for t in token_candidates(header) if hash_token(t) == partner.incoming_token_hash)
        try:
            own = await credentials_for(
                db_session,
                platform,
                presented,
                version,
                partner.allowed_cpo_ids,
                towards_cpo=is_cpo_partner(partner),
            )
        except HandshakeError as exc:
            raise OcpiError(exc.code, str(exc)) from exc
        return ok(own)

    @routes.post("/credentials")
    async def post_credentials(
        request: Request,
        db_session: AsyncSession = Depends(request_transaction, scope="function"),
        platform: OcpiPlatform = Depends(get_platform),
    ):
        partner = await _holder(request, db_session)
        if partner.status == PartnerStatus.REGISTERED and partner.incoming_token_kind == "C":
            raise MethodNotAllowed("Already registered: use PUT to update the credentials")
        return ok(await _accept(request, db_session, platform, partner, version))

    @routes.put("/credentials")
    async def put_credentials(
        request: Request,
        db_session: AsyncSession = Depends(request_transaction, scope="function"),
        platform: OcpiPlatform = Depends(get_platform),
    ):
        partner = await _holder(request, db_session)
        if partner.status != PartnerStatus.REGISTERED:
            raise MethodNotAllowed("Not registered: use POST to register")
        return ok(await _accept(request, db_session, platform, partner, version))

    @routes.delete("/credentials")
    async def delete_credentials(
        request: Request, db_session: AsyncSession = Depends(request_transaction, scope="function")
    ):
        partner = await _holder(request, db_session)
        if partner.status != PartnerStatus.REGISTERED:
            raise MethodNotAllowed("Not registered")
        _forget(partner)
        return ok()

    return routes


async def _holder(request: Request, db_session: AsyncSession) -> OcpiPartner:
    """The partner whose token (A, B or C) the request's ``Authorization`` presents."""
    return await partner_for_header(db_session, request.headers.get("Authorization"), allow_token_a=True)


async def _accept(
    request: Request, db_session: AsyncSession, platform: OcpiPlatform, partner: OcpiPartner, version: str
) -> dict[str, Any]:
    held = {(r.country_code, r.party_id, r.role) for r in partner.roles}
    if not held:  # an invitation from before roles were required names none: nothing may be claimed with it
        raise OcpiError(
            status.INVALID_PARAMETERS,
            "this invitation names no roles the partner may register; ask the hub's operator for a new one",
            http_status=400,
        )
    try:
        if version == VERSION_211:
            creds = read_credentials(await read_json(request), version, held)
        else:
            creds = await read_model(request, Credentials)
        version, endpoints = await fetch_version_details(
            creds.url, creds.token, platform.client_timeout, platform.transport, (version,)
        )
        token_c = new_token()
        partner.outgoing_token = creds.token
        partner.versions_url = creds.url
        partner.version = version
        partner.endpoints = endpoints
        partner.incoming_token_hash = hash_token(token_c)
        partner.incoming_token_kind = "C"
        partner.status = PartnerStatus.REGISTERED
        partner.last_success_at = utcnow()
        partner.tokens_pulled_at = None  # a complete tokens pull follows (re)registration
        await _store_roles(
            db_session, partner, [r.model_dump(exclude_none=True) for r in creds.roles], invited=held
        )
        own = await credentials_for(
            db_session,
            platform,
            token_c,
            version,
            partner.allowed_cpo_ids,
            towards_cpo=is_cpo_partner(partner),
        )
    except HandshakeError as exc:
        raise OcpiError(exc.code, str(exc), http_status=400) from exc
    await db_session.flush()
    _kick_tokens_pull(platform, partner.id)
    return own


def _kick_tokens_pull(platform: OcpiPlatform, partner_id: int) -> None:
    puller = platform.tokens_pull
    if puller is not None:
        puller.kick(partner_id)


router = credentials_router(VERSION)
router_211 = credentials_router(VERSION_211)
