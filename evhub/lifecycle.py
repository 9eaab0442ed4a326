"""Lifecycle of what the hub provisions: update, block/unblock and remove chargers, tokens, parties, fleets and
OCPI partners, within what the model allows.

Sessions, CDRs and settlement statements are kept for ever (CDRs are immutable, settlement refers to them),
so whatever they point at cannot be removed: the refusal says what keeps it, and blocking is the way to stop
a charger or a token. What each block does:

* a charger: its stored password hash gets :data:`cpo_gateway.charger_auth.BLOCKED_PREFIX`, so the gateway's Basic-auth
  check (:class:`cpo_gateway.charger_auth.PasswordCache`) refuses it at its next connection (HTTP 401); unblocking
  strips the prefix and the old password works again;
* a token: ``valid = false``, which the gateway's :class:`cpo_gateway.authorization.Authorizer` answers with
  Blocked;
* a partner: ``unregister`` (in :mod:`ocpi.credentials`) forgets its tokens, so it can no longer call the hub
  and the hub no longer pushes to it.

Like :mod:`evhub.provisioning`, every function works in the caller's transaction and raises
:class:`~evhub.provisioning.ProvisioningError` with one line for the user.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from cpo_gateway.charger_auth import BLOCKED_PREFIX, is_blocked
from evhub.provisioning import (
    ProvisioningError,
    check_charger_password,
    check_email,
    check_security_profile,
    check_url,
    find_location,
    map_evses,
    parse_limit,
    parse_ocpp_version,
    parse_party_key,
    parse_registration,
    parse_role,
)
from kernel.models import (
    ApiKey,
    Cdr,
    ChargePoint,
    ChargingSession,
    Fleet,
    FleetManager,
    Location,
    Party,
    SessionStatus,
    SettlementStatement,
    TariffVersion,
    Token,
)
from kernel.models.roaming import OcpiPartner, OcpiPartnerRole, PartnerStatus
from kernel.models.tokens import WHITELIST_TYPES
from kernel.money import MoneyError, normalize_currency
from kernel.security import hash_password
from kernel.timeutil import utcnow


async def _count(db_session: AsyncSession, column: Any, value: Any) -> int:
    """How many rows of ``column``'s table have ``column == value``."""
    return int(await db_session.scalar(select(func.count()).where(column == value)) or 0)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _and(parts: list[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


# --- chargers ------------------------------------------------------------------------------------------


def charger_blocked(cp: ChargePoint) -> bool:
    return is_blocked(cp.password_hash)


async def find_charger(db_session: AsyncSession, identity: str) -> ChargePoint:
    cp = await db_session.scalar(
        select(ChargePoint)
        .where(ChargePoint.identity == identity.strip())
        .options(selectinload(ChargePoint.evse_map))
    )
    if cp is None:
        raise ProvisioningError(f"unknown charger {identity!r}; see `evhub chargers list`")
    return cp


async def update_charger(
    db_session: AsyncSession,
    identity: str,
    *,
    password: str | None = None,
    location: str | None = None,
    evse_uids: list[str] | None = None,
    ocpp_version: str | None = None,
    security_profile: int | None = None,
    registration: str | None = None,
) -> ChargePoint:
    """Change what is given, keep the rest. A new location needs its EVSEs (``evse_uids``); a blocked charger
    stays blocked when its password changes."""
    cp = await find_charger(db_session, identity)
    if security_profile is not None:
        if security_profile >= 3 and charger_blocked(cp):
            raise ProvisioningError(
                f"charger {cp.identity} is blocked, which security profile 3 (client certificate) would undo: "
                "unblock it first"
            )
        cp.security_profile = check_security_profile(security_profile)
    if password is not None:
        new_hash = hash_password(check_charger_password(password))
        cp.password_hash = BLOCKED_PREFIX + new_hash if charger_blocked(cp) else new_hash
    if cp.security_profile in (1, 2) and not cp.password_hash:
        raise ProvisioningError(f"security profile {cp.security_profile} needs a password (--password)")
    if ocpp_version is not None:
        cp.ocpp_version = parse_ocpp_version(ocpp_version)
    if registration is not None:
        cp.registration_status = parse_registration(registration)
    if location is not None or evse_uids:
        loc = await find_location(db_session, location) if location is not None else None
        if loc is None:
            if cp.location_id is None:
                raise ProvisioningError(f"charger {cp.identity} has no location: name one with --location")
            loc = await db_session.scalar(
                select(Location).where(Location.id == cp.location_id).options(selectinload(Location.evses))
            )
            assert loc is not None
        if loc.cpo_id != cp.cpo_id:
            raise ProvisioningError(
                f"location {loc.ocpi_id!r} belongs to another CPO than charger {cp.identity}"
            )
        if not evse_uids:
            raise ProvisioningError("a new location needs the charger's EVSEs there (--evse, repeat)")
        mapping = await map_evses(db_session, loc, evse_uids, charger_id=cp.id)
        cp.evse_map.clear()
        await db_session.flush()  # the old rows go before the new ones take their (charger, number) keys
        cp.evse_map.extend(mapping)
        cp.location_id = loc.id
    await db_session.flush()
    return cp


async def set_charger_blocked(
    db_session: AsyncSession, identity: str, blocked: bool
) -> tuple[ChargePoint, bool]:
    """Block or unblock a charger; returns (charger, whether anything changed)."""
    cp = await find_charger(db_session, identity)
    if charger_blocked(cp) == blocked:
        return cp, False
    if blocked:
        if cp.security_profile >= 3 or not cp.password_hash:
            raise ProvisioningError(
                f"charger {cp.identity} signs in with a client certificate (security profile 3), which the hub "
                "cannot block: revoke the certificate, or refuse its boot with "
                f"`evhub chargers update {cp.identity} --registration Rejected`"
            )
        cp.password_hash = BLOCKED_PREFIX + cp.password_hash
    else:
        assert cp.password_hash is not None
        cp.password_hash = cp.password_hash.removeprefix(BLOCKED_PREFIX)
    await db_session.flush()
    return cp, True


async def remove_charger(db_session: AsyncSession, identity: str) -> None:
    """Remove a charger that never had a session (sessions are kept, and they point at their charger)."""
    cp = await find_charger(db_session, identity)
    open_uid = await db_session.scalar(
        select(ChargingSession.session_uid)
        .where(ChargingSession.charge_point_id == cp.id, ChargingSession.status == SessionStatus.ACTIVE)
        .limit(1)
    )
    if open_uid is not None:
        raise ProvisioningError(
            f"charger {cp.identity} has an open session ({open_uid}): stop it first, or block the charger"
        )
    sessions = await _count(db_session, ChargingSession.charge_point_id, cp.id)
    if sessions:
        raise ProvisioningError(
            f"charger {cp.identity} cannot be removed: it has {_plural(sessions, 'session')} (kept for pricing "
            f"and settlement); block it instead (`evhub chargers block {cp.identity}`)"
        )
    if cp.status == "online":
        raise ProvisioningError(
            f"charger {cp.identity} is connected: block it (`evhub chargers block {cp.identity}`) and remove it "
            "once it is offline"
        )
    await db_session.delete(cp)
    await db_session.flush()


# --- tokens --------------------------------------------------------------------------------------------


async def find_token(
    db_session: AsyncSession, uid: str, *, issuer: str | None = None, type_: str | None = None
) -> Token:
    """The token with this uid under any casing (a CiString; ``issuer`` COUNTRY*PARTY and ``type_`` narrow it
    down when several match)."""
    query = select(Token).where(Token.uid_key == uid.strip().upper())
    if issuer is not None:
        cc, pid = parse_party_key(issuer)
        query = query.where(Token.country_code == cc, Token.party_id == pid)
    if type_ is not None:
        query = query.where(Token.type == type_.strip().upper())
    rows = (await db_session.scalars(query.order_by(Token.id))).all()
    if not rows:
        raise ProvisioningError(f"unknown token {uid!r}; see `evhub tokens list`")
    if len(rows) > 1:
        which = ", ".join(f"{t.country_code}*{t.party_id} {t.type}" for t in rows)
        raise ProvisioningError(
            f"{len(rows)} tokens have uid {uid!r} ({which}): name one with --issuer / --type"
        )
    return rows[0]


@dataclass
class TokenChanges:
    """What ``evhub tokens update`` may change; None leaves a field as it is."""

    contract_id: str | None = None
    driver_name: str | None = None
    driver_email: str | None = None
    vehicle: str | None = None
    fleet: str | None = None
    no_fleet: bool = False
    monthly_limit: str | None = None
    currency: str | None = None
    no_limit: bool = False
    whitelist: str | None = None


def _touch_token(token: Token, **ocpi_fields: Any) -> None:
    """Keep the stored OCPI object in step with the columns, with a new ``last_updated``."""
    token.last_updated = utcnow()
    token.data = {
        **(token.data or {}),
        **ocpi_fields,
        "last_updated": token.last_updated.isoformat().replace("+00:00", "Z"),
    }


async def update_token(db_session: AsyncSession, token: Token, changes: TokenChanges) -> Token:
    ocpi: dict[str, Any] = {}
    if changes.contract_id is not None:
        if not changes.contract_id.strip() or len(changes.contract_id) > 36:
            raise ProvisioningError("contract_id: 1-36 characters")
        token.contract_id = ocpi["contract_id"] = changes.contract_id.strip()
    if changes.whitelist is not None:
        whitelist = changes.whitelist.strip().upper()
        if whitelist not in WHITELIST_TYPES:
            raise ProvisioningError(
                f"whitelist {changes.whitelist!r}: expected one of {list(WHITELIST_TYPES)}"
            )
        token.whitelist = ocpi["whitelist"] = whitelist
    if changes.driver_name is not None:
        token.driver_name = changes.driver_name.strip() or None
    if changes.driver_email is not None:
        token.driver_email = check_email(changes.driver_email, "driver_email")
    if changes.vehicle is not None:
        token.vehicle = changes.vehicle.strip() or None
    if changes.fleet is not None and changes.no_fleet:
        raise ProvisioningError("give --fleet NAME or --no-fleet, not both")
    if changes.fleet is not None:
        token.fleet_id = (await find_fleet(db_session, changes.fleet)).id
    elif changes.no_fleet:
        token.fleet_id = None
    if changes.no_limit:
        if changes.monthly_limit is not None or changes.currency is not None:
            raise ProvisioningError("give --limit AMOUNT --currency CODE or --no-limit, not both")
        token.monthly_limit = token.limit_currency = None
    elif changes.monthly_limit is not None or changes.currency is not None:
        amount = changes.monthly_limit
        currency = changes.currency or (token.limit_currency if amount is not None else None)
        if amount is None:  # a new currency alone would change what the amount means
            raise ProvisioningError("monthly_limit: --currency needs --limit AMOUNT")
        token.monthly_limit, token.limit_currency = parse_limit(amount, currency)
    _touch_token(token, **ocpi)
    await db_session.flush()
    return token


async def set_token_blocked(db_session: AsyncSession, token: Token, blocked: bool) -> bool:
    """Block (``valid = false``: the gateway answers Blocked) or unblock; whether anything changed.

    A roaming token belongs to its eMSP: its next update over OCPI may set it valid again."""
    if token.valid == (not blocked):
        return False
    token.valid = not blocked
    _touch_token(token, valid=token.valid)
    await db_session.flush()
    return True


async def remove_token(db_session: AsyncSession, token: Token) -> None:
    """Remove a token that was never used (sessions and CDRs keep pointing at theirs)."""
    kept = [
        _plural(n, word)
        for n, word in (
            (await _count(db_session, ChargingSession.token_id, token.id), "session"),
            (await _count(db_session, Cdr.token_id, token.id), "CDR"),
        )
        if n
    ]
    if kept:
        raise ProvisioningError(
            f"token {token.uid} cannot be removed: it has {_and(kept)} (kept for pricing and settlement); "
            f"block it instead (`evhub tokens block {token.uid}`)"
        )
    await db_session.delete(token)
    await db_session.flush()


# --- parties -------------------------------------------------------------------------------------------


async def find_party_any_role(db_session: AsyncSession, key: str, role: str | None = None) -> Party:
    """The party ``COUNTRY*PARTY`` (``role`` needed only when the key has several roles)."""
    cc, pid = parse_party_key(key)
    query = select(Party).where(Party.country_code == cc, Party.party_id == pid)
    if role is not None:
        query = query.where(Party.role == parse_role(role))
    rows = (await db_session.scalars(query.order_by(Party.role))).all()
    if not rows:
        suffix = f" with role {parse_role(role).value}" if role is not None else ""
        raise ProvisioningError(f"unknown party {cc}*{pid}{suffix}; see `evhub parties list`")
    if len(rows) > 1:
        roles = ", ".join(p.role.value for p in rows)
        raise ProvisioningError(f"{cc}*{pid} has roles {roles}: name one with --role")
    return rows[0]


async def update_party(
    db_session: AsyncSession, party: Party, *, name: str | None = None, website: str | None = None
) -> Party:
    if name is not None:
        if not name.strip():
            raise ProvisioningError("name must not be empty")
        party.name = name.strip()
    if website is not None:
        party.website = check_url(website, "website") if website.strip() else None
    await db_session.flush()
    return party


async def remove_party(db_session: AsyncSession, party: Party) -> None:
    """Remove a party nothing refers to; its API keys and grid-tariff rules go with it."""
    label = f"{party.key} ({party.role.value})"
    kept = [
        _plural(n, word)
        for n, word in (
            (await _count(db_session, ChargingSession.cpo_id, party.id), "session"),
            (
                await db_session.scalar(
                    select(func.count()).where((Cdr.cpo_id == party.id) | (Cdr.emsp_id == party.id))
                ),
                "CDR",
            ),
            (await _count(db_session, SettlementStatement.party_id, party.id), "settlement statement"),
            (await _count(db_session, TariffVersion.cpo_id, party.id), "tariff version"),
        )
        if n
    ]
    if kept:
        raise ProvisioningError(
            f"party {label} cannot be removed: it has {_and(kept)} (kept for pricing and settlement); "
            "block its chargers or tokens instead"
        )
    linked = [
        _plural(n, word)
        for n, word in (
            (await _count(db_session, Location.cpo_id, party.id), "location"),
            (await _count(db_session, ChargePoint.cpo_id, party.id), "charger"),
            (await _count(db_session, Token.emsp_id, party.id), "token"),
            (await _count(db_session, Fleet.emsp_id, party.id), "fleet"),
            (await _count(db_session, OcpiPartnerRole.party_pk, party.id), "OCPI partner role"),
        )
        if n
    ]
    if linked:
        raise ProvisioningError(f"party {label} still has {_and(linked)}: remove those first")
    await db_session.execute(delete(ApiKey).where(ApiKey.cpo_id == party.id))
    await db_session.delete(party)
    await db_session.flush()


# --- fleets --------------------------------------------------------------------------------------------


async def find_fleet(db_session: AsyncSession, name: str) -> Fleet:
    fleet = await db_session.scalar(select(Fleet).where(Fleet.name == name.strip()))
    if fleet is None:
        raise ProvisioningError(f"unknown fleet {name!r}; see `evhub fleets list`")
    return fleet


async def update_fleet(
    db_session: AsyncSession, fleet: Fleet, *, name: str | None = None, currency: str | None = None
) -> Fleet:
    if name is not None:
        new = name.strip()
        if not new:
            raise ProvisioningError("fleet name must not be empty")
        other = await db_session.scalar(select(Fleet.id).where(Fleet.name == new, Fleet.id != fleet.id))
        if other is not None:
            raise ProvisioningError(f"fleet {new!r} already exists")
        fleet.name = new
    if currency is not None:
        try:
            fleet.currency = normalize_currency(currency)
        except MoneyError as exc:
            raise ProvisioningError(f"currency: {exc}") from None
    await db_session.flush()
    return fleet


async def remove_fleet(db_session: AsyncSession, fleet: Fleet) -> int:
    """Remove a fleet without tokens and CDRs billed to it, with its manager logins and portal data; returns how
    many managers went."""
    tokens = await _count(db_session, Token.fleet_id, fleet.id)
    if tokens:
        raise ProvisioningError(
            f"fleet {fleet.name!r} has {_plural(tokens, 'token')}: move them to another fleet or out of it first "
            "(`evhub tokens update UID --fleet NAME` or `--no-fleet`)"
        )
    cdrs = await _count(db_session, Cdr.fleet_id, fleet.id)  # billed to it: kept for ever, like the CDRs
    if cdrs:
        raise ProvisioningError(
            f"fleet {fleet.name!r} has {_plural(cdrs, 'CDR')} billed to it, which are kept for ever: it stays"
        )
    managers = await _count(db_session, FleetManager.fleet_id, fleet.id)
    await db_session.execute(delete(FleetManager).where(FleetManager.fleet_id == fleet.id))
    await db_session.delete(fleet)
    await db_session.flush()
    return managers


async def remove_manager(db_session: AsyncSession, email: str) -> FleetManager:
    manager = await db_session.scalar(select(FleetManager).where(FleetManager.email == email.strip().lower()))
    if manager is None:
        raise ProvisioningError(f"no fleet manager with email {email!r}")
    await db_session.delete(manager)
    await db_session.flush()
    return manager


# --- OCPI partners -------------------------------------------------------------------------------------


async def get_partner(db_session: AsyncSession, partner_id: int) -> OcpiPartner:
    partner = await db_session.get(OcpiPartner, partner_id)
    if partner is None:
        raise ProvisioningError(f"unknown partner {partner_id}; see `evhub partners list`")
    return partner


async def update_partner(
    db_session: AsyncSession,
    partner: OcpiPartner,
    *,
    name: str | None = None,
    allowed_cpo_ids: list[int] | None = None,
    all_cpos: bool = False,
) -> OcpiPartner:
    """Rename a partner or change which CPOs it may see (``all_cpos``: every hosted CPO)."""
    if name is not None:
        if not name.strip():
            raise ProvisioningError("partner name must not be empty")
        partner.name = name.strip()
    if all_cpos and allowed_cpo_ids:
        raise ProvisioningError("give --cpo or --all-cpos, not both")
    if all_cpos:
        partner.allowed_cpo_ids = None
    elif allowed_cpo_ids:
        partner.allowed_cpo_ids = list(allowed_cpo_ids)
    await db_session.flush()
    return partner


async def remove_partner(db_session: AsyncSession, partner: OcpiPartner) -> None:
    """Remove a partner that is not registered (unregister it first); its roles and push state go with it."""
    if partner.status == PartnerStatus.REGISTERED:
        raise ProvisioningError(
            f"partner {partner.id} ({partner.name}) is registered: unregister it first "
            f"(`evhub partners unregister {partner.id}`)"
        )
    await db_session.delete(partner)
    await db_session.flush()
