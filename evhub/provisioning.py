"""Provisioning: setting a hub up without SQL — parties, locations, chargers, tokens, tariffs.

Each function works inside the caller's transaction (``async with db.session() as db_session``) so that a
failure leaves nothing half-written; bad input raises :class:`ProvisioningError` with a message naming the field.
The CLI (``evhub parties|locations|chargers|tokens|tariffs ...``), the demo and the API all call these.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

import pycountry
from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from kernel.domain._fields import is_http_url
from kernel.domain.locations import LocationIn
from kernel.domain.tokens import OcpiToken
from kernel.models import (
    EVSE,
    ChargePoint,
    ChargePointEvse,
    Connector,
    Fleet,
    Location,
    OcppVersion,
    Party,
    PartyRole,
    RegistrationStatus,
    TariffVersion,
    Token,
)
from kernel.money import MoneyError, normalize_currency, parse_amount
from kernel.security import hash_password
from kernel.timeutil import format_rfc3339, parse_datetime, utcnow
from kernel.token_uids import UidTaken, claim
from kernel.validation import describe_validation_error

M = TypeVar("M", bound=BaseModel)
log = logging.getLogger(__name__)


class ProvisioningError(ValueError):
    """Input the hub cannot accept; the message says which field and why."""


def parse_model(model: type[M], data: Any, what: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ProvisioningError(f"invalid {what}: {describe_validation_error(exc)}") from None


def load_json(text: str, what: str) -> Any:
    try:
        return json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise ProvisioningError(f"{what} is not valid JSON: {exc}") from None


def check_url(value: str, what: str) -> str:
    """An absolute http(s) URL with a host (``what`` names the field in the message)."""
    url = value.strip()
    if not is_http_url(url):
        raise ProvisioningError(f"{what} {value!r}: expected an http:// or https:// URL with a host")
    return url


def check_country_code(value: str) -> str:
    """An ISO 3166-1 alpha-2 country code (as OCPI keys parties), upper-cased."""
    code = value.strip().upper()
    if len(code) != 2 or not code.isalpha():
        raise ProvisioningError(f"country_code {value!r}: expected 2 letters (ISO 3166-1 alpha-2)")
    if pycountry.countries.get(alpha_2=code) is None:
        raise ProvisioningError(f"country_code {value!r}: not an ISO 3166-1 alpha-2 country code")
    return code


# --- parties -------------------------------------------------------------------------------------------


def parse_party_key(key: str) -> tuple[str, str]:
    """``NL*ABC`` or ``NL-ABC`` or ``NLABC`` -> (``NL``, ``ABC``)."""
    raw = key.strip().upper().replace("*", "").replace("-", "")
    if len(raw) != 5 or not raw[:2].isalpha():
        raise ProvisioningError(f"party {key!r}: expected COUNTRY*PARTY such as NL*ABC")
    return raw[:2], raw[2:]


def parse_role(role: str) -> PartyRole:
    try:
        return PartyRole(role.strip().upper())
    except ValueError:
        raise ProvisioningError(f"role {role!r}: expected one of {[r.value for r in PartyRole]}") from None


async def add_party(
    db_session: AsyncSession,
    country_code: str,
    party_id: str,
    role: str,
    name: str,
    *,
    website: str | None = None,
) -> Party:
    cc, pid = check_country_code(country_code), party_id.strip().upper()
    if len(pid) != 3 or not pid.isalnum():
        raise ProvisioningError(f"party_id {party_id!r}: expected 3 letters or digits")
    party_role = parse_role(role)
    if not name.strip():
        raise ProvisioningError("name must not be empty")
    site = check_url(website, "website") if website is not None else None
    existing = await db_session.scalar(
        select(Party).where(Party.country_code == cc, Party.party_id == pid, Party.role == party_role)
    )
    if existing is not None:
        raise ProvisioningError(f"party {cc}*{pid} with role {party_role.value} exists already")
    party = Party(country_code=cc, party_id=pid, role=party_role, name=name.strip(), website=site)
    db_session.add(party)
    await db_session.flush()
    return party


async def find_party(db_session: AsyncSession, key: str, role: PartyRole) -> Party:
    cc, pid = parse_party_key(key)
    party = await db_session.scalar(
        select(Party).where(Party.country_code == cc, Party.party_id == pid, Party.role == role)
    )
    if party is None:
        others = (
            await db_session.scalars(
                select(Party.role).where(Party.country_code == cc, Party.party_id == pid).order_by(Party.role)
            )
        ).all()
        if others:
            roles = " and ".join(_with_article(str(r)) for r in others)
            raise ProvisioningError(f"{cc}*{pid} is {roles}, not {_with_article(role.value)}")
        raise ProvisioningError(f"unknown {role.value} {cc}*{pid}; add it with `evhub parties add`")
    return party


_ARTICLES = {"CPO": "a", "EMSP": "an", "HUB": "a", "SITE_HOST": "a", "OTHER": "an"}


def _with_article(role: str) -> str:
    """``an EMSP``, ``a CPO``: the article as the role is spoken."""
    return f"{_ARTICLES.get(role, 'a')} {role}"


async def list_parties(db_session: AsyncSession) -> Sequence[Party]:
    return (
        await db_session.scalars(select(Party).order_by(Party.country_code, Party.party_id, Party.role))
    ).all()


# --- locations -----------------------------------------------------------------------------------------


async def import_location(
    db_session: AsyncSession, data: Any, *, grid_zone: str | None = None
) -> tuple[Location, bool]:
    """Create or replace a Location (with its EVSEs and connectors) from an OCPI Location object.

    Returns (location, created). Re-importing the same location updates it in place (EVSE status is kept
    when the file says nothing newer)."""
    loc_in = parse_model(LocationIn, data, "OCPI Location")
    cpo = await find_party(db_session, f"{loc_in.country_code}{loc_in.party_id}", PartyRole.CPO)
    loc = await db_session.scalar(
        select(Location)
        .where(Location.cpo_id == cpo.id, Location.ocpi_id == loc_in.id)
        .options(selectinload(Location.evses).selectinload(EVSE.connectors))
    )
    created = loc is None
    raw = loc_in.model_dump(mode="json", exclude_none=True)
    if loc is None:
        loc = Location(cpo_id=cpo.id, ocpi_id=loc_in.id, evses=[])
        db_session.add(loc)
    loc.name = loc_in.name
    loc.address = loc_in.address
    loc.city = loc_in.city
    loc.postal_code = loc_in.postal_code
    loc.country = loc_in.country
    loc.latitude = loc_in.coordinates.latitude
    loc.longitude = loc_in.coordinates.longitude
    loc.time_zone = loc_in.time_zone
    loc.publish = loc_in.publish
    loc.grid_zone = grid_zone if grid_zone is not None else loc.grid_zone
    loc.data = {k: v for k, v in raw.items() if k != "evses"}
    loc.last_updated = (
        loc_in.last_updated if loc_in.last_updated.tzinfo else parse_datetime(str(loc_in.last_updated))
    )
    by_uid = {e.uid: e for e in loc.evses}
    for evse_in in loc_in.evses:
        evse = by_uid.get(evse_in.uid)
        if evse is None:
            evse = EVSE(uid=evse_in.uid, connectors=[])
            loc.evses.append(evse)
        evse.evse_id = evse_in.evse_id
        evse.status = evse_in.status
        evse.capabilities = list(evse_in.capabilities)
        evse.physical_reference = evse_in.physical_reference
        evse.floor_level = evse_in.floor_level
        evse.last_updated = evse_in.last_updated
        # the connectors' own fields travel in the EVSE's data (terms_and_conditions has no column)
        evse.data = evse_in.model_dump(mode="json", exclude_none=True)
        by_cid = {c.connector_id: c for c in evse.connectors}
        for con_in in evse_in.connectors:
            con = by_cid.get(con_in.id)
            if con is None:
                con = Connector(connector_id=con_in.id)
                evse.connectors.append(con)
            con.standard = con_in.standard
            con.format = con_in.format
            con.power_type = con_in.power_type
            con.max_voltage = con_in.max_voltage
            con.max_amperage = con_in.max_amperage
            con.max_electric_power = con_in.max_electric_power
            con.tariff_ids = list(con_in.tariff_ids)
            con.last_updated = con_in.last_updated
    await db_session.flush()
    await check_connector_tariffs(db_session, cpo.id, location_id=loc.id)
    return loc, created


async def find_location(db_session: AsyncSession, ocpi_id: str, cpo_id: int | None = None) -> Location:
    query = select(Location).where(Location.ocpi_id == ocpi_id).options(selectinload(Location.evses))
    if cpo_id is not None:
        query = query.where(Location.cpo_id == cpo_id)
    rows = (await db_session.scalars(query)).all()
    if not rows:
        raise ProvisioningError(f"unknown location {ocpi_id!r}; import it with `evhub locations import`")
    if len(rows) > 1:
        raise ProvisioningError(f"location id {ocpi_id!r} exists for several CPOs; name the CPO with --cpo")
    return rows[0]


async def list_locations(db_session: AsyncSession) -> Sequence[Location]:
    return (
        await db_session.scalars(select(Location).options(selectinload(Location.evses)).order_by(Location.id))
    ).all()


# --- chargers ------------------------------------------------------------------------------------------


async def add_charger(
    db_session: AsyncSession,
    identity: str,
    *,
    password: str,
    location: str,
    evse_uids: Sequence[str],
    ocpp_version: str = "1.6",
    security_profile: int = 1,
    registration: str = "Accepted",
) -> ChargePoint:
    """Register a charge point; its OCPP EVSE (1.6: connector) number *n* is the *n*-th ``evse_uids``."""
    ident = identity.strip()
    if not ident or len(ident) > 48 or any(c in ident for c in "/?#% ") or not ident.isprintable():
        raise ProvisioningError(f"identity {identity!r}: 1-48 printable characters without / ? # % or space")
    check_security_profile(security_profile)
    if security_profile in (1, 2):
        check_charger_password(password)
    version = parse_ocpp_version(ocpp_version)
    reg = parse_registration(registration)
    if await db_session.scalar(select(ChargePoint.id).where(ChargePoint.identity == ident)) is not None:
        raise ProvisioningError(f"charger {ident!r} exists already")
    loc = await find_location(db_session, location)
    mapping = await map_evses(db_session, loc, evse_uids)
    charger = ChargePoint(
        identity=ident,
        password_hash=hash_password(password) if password else None,
        security_profile=security_profile,
        ocpp_version=version,
        cpo_id=loc.cpo_id,
        location_id=loc.id,
        registration_status=reg,
        evse_map=mapping,
    )
    db_session.add(charger)
    await db_session.flush()
    return charger


def check_security_profile(profile: int) -> int:
    if profile not in (1, 2, 3):
        raise ProvisioningError(f"security_profile {profile}: expected 1, 2 or 3")
    return profile


def check_charger_password(password: str) -> str:
    if len(password) < 8:
        raise ProvisioningError("password: at least 8 characters (OCPP 2.0.1 asks for 16-40)")
    return password


def parse_ocpp_version(value: str) -> OcppVersion:
    try:
        return OcppVersion(value)
    except ValueError:
        raise ProvisioningError(f"ocpp_version {value!r}: expected 1.6 or 2.0.1") from None


def parse_registration(value: str) -> RegistrationStatus:
    try:
        return RegistrationStatus(value.capitalize())
    except ValueError:
        raise ProvisioningError(f"registration {value!r}: expected Accepted, Pending or Rejected") from None


async def map_evses(
    db_session: AsyncSession, loc: Location, evse_uids: Sequence[str], *, charger_id: int | None = None
) -> list[ChargePointEvse]:
    """OCPP EVSE *n* -> the *n*-th of ``evse_uids`` at ``loc``; each EVSE free or already ``charger_id``'s."""
    if not evse_uids:
        raise ProvisioningError("evse: name at least one EVSE uid of the location (--evse)")
    if len(set(evse_uids)) != len(evse_uids):
        raise ProvisioningError("evse: each EVSE uid may be named once")
    evses = {e.uid: e for e in loc.evses}
    mapping = []
    for n, uid in enumerate(evse_uids, start=1):
        if uid not in evses:
            raise ProvisioningError(
                f"evse {uid!r} is not an EVSE of location {loc.ocpi_id!r} (has {sorted(evses)})"
            )
        owner = await db_session.scalar(
            select(ChargePointEvse.charge_point_id).where(ChargePointEvse.evse_pk == evses[uid].id)
        )
        if owner is not None and owner != charger_id:
            raise ProvisioningError(f"evse {uid!r} already belongs to another charger")
        mapping.append(ChargePointEvse(ocpp_evse_id=n, evse_pk=evses[uid].id))
    return mapping


async def list_chargers(db_session: AsyncSession) -> Sequence[ChargePoint]:
    return (
        await db_session.scalars(
            select(ChargePoint).options(selectinload(ChargePoint.evse_map)).order_by(ChargePoint.identity)
        )
    ).all()


# --- tokens --------------------------------------------------------------------------------------------


@dataclass
class TokenSpec:
    """What an operator says about a token on the CLI."""

    uid: str
    issuer_party: str
    contract_id: str | None = None
    type: str = "RFID"
    issuer_name: str | None = None
    fleet: str | None = None
    driver_name: str | None = None
    driver_email: str | None = None
    vehicle: str | None = None
    monthly_limit: str | None = None
    currency: str | None = None
    whitelist: str = "ALLOWED"
    valid: bool = True


async def add_token(db_session: AsyncSession, spec: TokenSpec) -> Token:
    """Add a token of eMSP ``spec.issuer_party``; refused when it exists (under any casing of its uid) or
    another issuer holds its uid (:mod:`kernel.token_uids`)."""
    emsp = await find_party(db_session, spec.issuer_party, PartyRole.EMSP)
    token_in = parse_model(
        OcpiToken,
        {
            "country_code": emsp.country_code,
            "party_id": emsp.party_id,
            "uid": spec.uid,
            "type": spec.type,
            "contract_id": spec.contract_id or f"{emsp.country_code}{emsp.party_id}C{spec.uid}"[:36],
            "issuer": spec.issuer_name or emsp.name[:64],
            "valid": spec.valid,
            "whitelist": spec.whitelist,
            "last_updated": utcnow(),
        },
        "token",
    )
    fleet_id = None
    if spec.fleet:
        fleet = await db_session.scalar(select(Fleet).where(Fleet.name == spec.fleet))
        if fleet is None:
            raise ProvisioningError(f"unknown fleet {spec.fleet!r}")
        fleet_id = fleet.id
    limit, currency = parse_limit(spec.monthly_limit, spec.currency)
    if spec.driver_email is not None:
        check_email(spec.driver_email, "driver_email")
    try:
        await claim(db_session, token_in.country_code, token_in.party_id, token_in.uid, source="cli")
    except UidTaken as exc:
        raise ProvisioningError(str(exc)) from None
    exists = await db_session.scalar(
        select(Token.id).where(
            Token.country_code == token_in.country_code,
            Token.party_id == token_in.party_id,
            Token.uid_key == token_in.uid.upper(),
            Token.type == token_in.type,
        )
    )
    if exists is not None:
        raise ProvisioningError(f"token {token_in.uid} ({token_in.type}) of {emsp.key} exists already")
    token = Token(
        country_code=token_in.country_code,
        party_id=token_in.party_id,
        uid=token_in.uid,
        type=token_in.type,
        contract_id=token_in.contract_id,
        issuer=token_in.issuer,
        emsp_id=emsp.id,
        fleet_id=fleet_id,
        driver_name=spec.driver_name,
        driver_email=spec.driver_email,
        vehicle=spec.vehicle,
        valid=token_in.valid,
        whitelist=token_in.whitelist,
        monthly_limit=limit,
        limit_currency=currency,
        data=token_in.model_dump(mode="json", exclude_none=True),
        last_updated=token_in.last_updated,
    )
    db_session.add(token)
    await db_session.flush()
    return token


def parse_limit(amount: str | None, currency: str | None) -> tuple[Decimal | None, str | None]:
    """A monthly spending limit as the operator typed it: (amount, currency), both or neither."""
    if amount is None:
        if currency is not None:
            raise ProvisioningError("monthly_limit: --currency needs --limit AMOUNT")
        return None, None
    try:
        code = normalize_currency(currency or "")
        return parse_amount(amount, code), code
    except MoneyError as exc:
        raise ProvisioningError(f"monthly_limit: {exc} (give --limit AMOUNT --currency CODE)") from None


def check_email(value: str, what: str) -> str:
    """A plausible email address: one @, a local part, and a dotted domain without spaces."""
    local, at, domain = value.strip().rpartition("@")
    if not at or not local or "." not in domain.strip(".") or any(c.isspace() for c in value.strip()):
        raise ProvisioningError(f"{what} {value!r} is not an email address")
    return value.strip()


async def list_tokens(db_session: AsyncSession) -> Sequence[Token]:
    return (
        await db_session.scalars(select(Token).order_by(Token.country_code, Token.party_id, Token.uid))
    ).all()


# --- tariffs -------------------------------------------------------------------------------------------


def _check_tariff(data: Any) -> dict[str, Any]:
    """Validate an OCPI Tariff with the pricing engine's own model (so what is stored can be priced)."""
    from tariffs.core.tariff_document import Tariff
    from tariffs.core.tariff_json import to_jsonable

    tariff_id = data.get("id") if isinstance(data, dict) else None
    what = f"OCPI Tariff {tariff_id!r}" if isinstance(tariff_id, str) else "OCPI Tariff"
    tariff = parse_model(Tariff, data, what)
    return to_jsonable(tariff, decimals_as="keep")


def stored_version_problem(row: TariffVersion) -> str | None:
    """Why a stored version fails today's tariff checks (the model's, :func:`_check_tariff`), or None."""
    from tariffs.core.tariff_document import Tariff

    try:
        Tariff.model_validate(row.data)
    except ValidationError as exc:
        return describe_validation_error(exc)
    return None


def mark_invalid(rows: Sequence[TariffVersion]) -> list[TariffVersion]:
    """Set ``invalid_reason`` on the rows (not marked yet) that fail the tariff checks; returns those rows.

    An invalid version never applies (:func:`tariffs.tariff_versions.applicable_rows`)."""
    marked = []
    for row in rows:
        if row.invalid_reason is None and (problem := stored_version_problem(row)) is not None:
            row.invalid_reason = problem
            marked.append(row)
            log.warning("tariff %s version %d marked invalid: %s", row.tariff_id, row.version, problem)
    return marked


async def check_stored_tariffs(db_session: AsyncSession) -> tuple[list[TariffVersion], list[TariffVersion]]:
    """Validate every stored tariff version and mark the invalid ones (``evhub tariffs check``).

    Returns (every invalid version, oldest first; those of them marked now)."""
    rows = (
        await db_session.scalars(
            select(TariffVersion).order_by(
                TariffVersion.cpo_id, TariffVersion.tariff_id, TariffVersion.version
            )
        )
    ).all()
    marked = mark_invalid(rows)
    await db_session.flush()
    return [r for r in rows if r.invalid_reason is not None], marked


async def _versions_of(db_session: AsyncSession, cpo_id: int, tariff_id: str) -> list[TariffVersion]:
    return list(
        (
            await db_session.scalars(
                select(TariffVersion)
                .where(TariffVersion.cpo_id == cpo_id, TariffVersion.tariff_id == tariff_id)
                .order_by(TariffVersion.version)
            )
        ).all()
    )


def _wire_instant(value: datetime) -> datetime:
    """``value`` to whole milliseconds (what an OCPI DateTime carries), so the published start is exact."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def _at(value: datetime | None) -> str:
    return format_rfc3339(value) if value is not None else "always"


async def import_tariff(
    db_session: AsyncSession, data: Any, *, source: str = "import", supersedes: int | None = None
) -> tuple[TariffVersion, bool]:
    """Store an OCPI Tariff as a new version of its tariff id (same content again: no new version).

    ``supersedes`` V: an operator correction of stored version V (say one marked invalid): the new version
    takes over V's validity window instead of starting when it is stored, and V no longer applies
    (:func:`tariffs.tariff_versions.window_start`, the one exception to the publication rule; logged).
    The tariff id's stored versions are checked first and invalid ones marked (:func:`mark_invalid`); a
    version that would never apply (ends before it starts to apply) and one that would give a connector two
    tariffs of one type at the same time (:func:`check_connector_tariffs`) are refused.

    Returns (version row, created)."""
    from tariffs.tariff_versions import window_start

    if not isinstance(data, dict):
        raise ProvisioningError("invalid OCPI Tariff: expected a JSON object")
    clean = _check_tariff(data)
    try:
        clean["currency"] = normalize_currency(clean["currency"])
    except MoneyError as exc:
        raise ProvisioningError(f"invalid OCPI Tariff {clean['id']!r}: currency: {exc}") from None
    cpo = await find_party(db_session, f"{clean['country_code']}{clean['party_id']}", PartyRole.CPO)
    rows = await _versions_of(db_session, cpo.id, clean["id"])
    mark_invalid(rows)
    latest = rows[-1] if rows else None
    if latest is not None and latest.data == clean and supersedes in (None, latest.supersedes_version):
        return latest, False
    if supersedes is not None:
        _check_supersedes(clean["id"], rows, supersedes)
    start = parse_datetime(clean["start_date_time"]) if clean.get("start_date_time") else None
    end = parse_datetime(clean["end_date_time"]) if clean.get("end_date_time") else None
    last_updated = parse_datetime(clean["last_updated"]) if clean.get("last_updated") else utcnow()
    row = TariffVersion(
        cpo_id=cpo.id,
        tariff_id=clean["id"],
        version=(latest.version + 1) if latest else 1,
        currency=clean["currency"],
        type=clean.get("type"),
        source=source,
        start_date_time=start,
        end_date_time=end,
        data=clean,
        last_updated=last_updated,
        supersedes_version=supersedes,
        created_at=_wire_instant(utcnow()),
    )
    applies_from = window_start([*rows, row], row)
    if end is not None and applies_from is not None and end <= applies_from:
        raise ProvisioningError(
            f"OCPI Tariff {clean['id']!r}: end_date_time {format_rfc3339(end)} is not after {_at(applies_from)}, "
            "when this version would start to apply (a version applies from max(start_date_time, the moment "
            "it is stored), when partners can have it): it would never apply"
        )
    db_session.add(row)
    await db_session.flush()
    if supersedes is not None:
        log.warning(
            "tariff %s version %d supersedes version %d (operator correction): it applies from %s",
            row.tariff_id,
            row.version,
            supersedes,
            _at(applies_from),
        )
    await check_connector_tariffs(db_session, cpo.id, tariff_id=row.tariff_id)
    return row, True


def _check_supersedes(tariff_id: str, rows: Sequence[TariffVersion], supersedes: int) -> None:
    target = next((r for r in rows if r.version == supersedes), None)
    if target is None:
        have = ", ".join(str(r.version) for r in rows) or "none"
        raise ProvisioningError(
            f"--supersedes {supersedes}: tariff {tariff_id!r} has no version {supersedes} (stored: {have})"
        )
    later = next((r for r in rows if r.supersedes_version == supersedes), None)
    if later is not None:
        raise ProvisioningError(
            f"--supersedes {supersedes}: version {supersedes} of tariff {tariff_id!r} is already superseded by "
            f"version {later.version}; supersede version {later.version} instead"
        )


# --- connector tariffs: one tariff of each type at a time ----------------------------------------------


@dataclass(frozen=True)
class _Window:
    """Where one stored version of a tariff id may apply: ``[start, end)``, None = open."""

    tariff_id: str
    type: str
    start: datetime | None
    end: datetime | None


def _windows(rows: Sequence[TariffVersion]) -> list[_Window]:
    """The windows of a tariff id's versions that may apply; an untyped tariff counts as REGULAR (the
    selection rule prices a regular session with either, :func:`tariffs.tariff_versions.versions_for_connector`)."""
    from tariffs.tariff_versions import applicable_rows, window_start

    return [
        _Window(r.tariff_id, r.type or "REGULAR", window_start(rows, r), r.end_date_time)
        for r in applicable_rows(rows)
    ]


def _overlap(a: _Window, b: _Window) -> tuple[datetime | None, bool]:
    """(the first instant both apply, whether they do at all): ``max(starts) < min(ends)``."""
    starts = [s for s in (a.start, b.start) if s is not None]
    ends = [e for e in (a.end, b.end) if e is not None]
    first = max(starts) if starts else None
    return first, not ends or first is None or first < min(ends)


async def check_connector_tariffs(
    db_session: AsyncSession, cpo_id: int, *, tariff_id: str | None = None, location_id: int | None = None
) -> None:
    """Refuse (:class:`ProvisioningError`) a connector of the CPO (listing ``tariff_id``, or at
    ``location_id``) whose ``tariff_ids`` name two stored tariffs of one type that are active at the same
    time. OCPI 2.2.1 mod_locations, Connector ``tariff_ids``: "only one of each Tariff.type can be active at
    the same time. Tariffs with the same type are only allowed if they are not active at the same time:
    start_date_time and end_date_time period not overlapping." """
    query = (
        select(Connector, EVSE.uid, Location.ocpi_id)
        .join(EVSE, Connector.evse_pk == EVSE.id)
        .join(Location, EVSE.location_id == Location.id)
        .where(Location.cpo_id == cpo_id)
        .order_by(Location.id, EVSE.id, Connector.id)
    )
    if location_id is not None:
        query = query.where(Location.id == location_id)
    cache: dict[str, list[_Window]] = {}
    for connector, evse_uid, location in (await db_session.execute(query)).all():
        ids = list(dict.fromkeys(str(t) for t in connector.tariff_ids or []))
        if len(ids) < 2 or (tariff_id is not None and tariff_id not in ids):
            continue
        for tid in ids:
            if tid not in cache:
                cache[tid] = _windows(await _versions_of(db_session, cpo_id, tid))
        for i, a_id in enumerate(ids):
            for b_id in ids[i + 1 :]:
                for a in cache[a_id]:
                    for b in cache[b_id]:
                        first, overlapping = _overlap(a, b)
                        if a.type == b.type and overlapping:
                            raise ProvisioningError(
                                f"connector {connector.connector_id} of EVSE {evse_uid} at location {location} "
                                f"lists tariffs {a_id!r} and {b_id!r}, both {a.type}, active at the same time "
                                f"from {_at(first)}: OCPI 2.2.1 allows tariffs of one type on a connector only "
                                "when their start_date_time..end_date_time periods do not overlap"
                            )


async def list_tariffs(db_session: AsyncSession) -> Sequence[TariffVersion]:
    return (
        await db_session.scalars(
            select(TariffVersion).order_by(TariffVersion.tariff_id, TariffVersion.version)
        )
    ).all()
