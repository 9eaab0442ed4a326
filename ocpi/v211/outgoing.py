"""What the hub sends to an OCPI 2.1.1 partner: an ``ocpi`` outbox message (stored in 2.2.1 form) translated at
delivery time, by the partner's version then (:func:`for_partner`).

A stored payload's body is OCPI 2.2.1 unless the payload says otherwise (``"version"``: the version its body is
already in; a command result is stored in the version the command came in, its ``response_url`` belongs to it).
For a 2.1.1 partner the body becomes the 2.1.1 object of the same thing (:mod:`ocpi.v211.objects`), chosen by
module, method and path depth (a location path names a Location, an EVSE or a Connector), and the routing headers
are dropped (2.1.1 has none). Two objects need the database at send time:

* a Session PUT embeds the session's Location (2.1.1 has no ``location_id``): rendered now;
* a Location the partner may no longer see (2.2.1: ``publish: false`` without entries for it) has every EVSE
  ``REMOVED`` (2.1.1 has no ``publish``; it deletes an EVSE that way);
* a CDR's 2.1.1 Location needs what a CdrLocation lacks (location type, EVSE status, the connector's voltage and
  amperage): taken from the location as it is now, when it still exists;
* a Session PATCH with ``charging_periods`` carries every period up to its last one (2.1.1 PATCH replaces a
  field, 2.2.1 appends periods): the session's periods are rendered now and cut after that last period.

A 2.2.1 partner's messages go out as stored."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from kernel.models import ChargingSession, Location, Party, PartyRole
from kernel.models.roaming import OcpiPartner
from ocpi.render_objects import load_location, location_object, session_object
from ocpi.v211 import VERSION_211, objects

log = logging.getLogger(__name__)

VERSION_221 = "2.2.1"

Payload = dict[str, Any]


def sent_version(partner: OcpiPartner, payload: Payload) -> str:
    """The OCPI version the message goes out in: its own (a command result), else the partner's current one."""
    return str(payload.get("version") or partner.version or VERSION_221)


async def for_partner(db_session: AsyncSession, partner: OcpiPartner, payload: Payload) -> Payload:
    """The payload as it is sent to ``partner`` now: unchanged for 2.2.1; for 2.1.1 the body translated and no
    routing headers. The result always names its ``version`` (what ``ocpi.client.request`` is given)."""
    version = sent_version(partner, payload)
    stored = str(payload.get("version") or VERSION_221)
    out = {**payload, "version": version}
    if version != VERSION_211:
        return out
    out["headers"] = {}
    if stored == VERSION_211 or payload.get("body") is None:
        return out
    out["body"] = await translate(db_session, payload)
    return out


async def translate(db_session: AsyncSession, payload: Payload) -> Any:
    """The 2.2.1 body of ``payload`` as the 2.1.1 body of the same message."""
    module = payload.get("module", "")
    method = str(payload.get("method", "PUT")).upper()
    body: dict[str, Any] = payload.get("body") or {}
    segments = [s for s in str(payload.get("path") or "").split("/") if s]
    if module == "locations":
        return _location_part(body, len(segments))
    if module == "sessions":
        if method == "PUT":
            return objects.session_to_211(body, await _session_location(db_session, segments, body))
        return objects.session_to_211(await _whole_periods(db_session, segments, body))
    if module == "cdrs":
        return objects.cdr_to_211(body, location=await _cdr_location(db_session, body))
    if module == "tariffs":
        return objects.tariff_to_211(body)
    if module == "commands":
        return objects.command_result_to_211(body)
    if module == "tokens":  # the hosted eMSPs' tokens pushed to a 2.1.1 CPO (ocpi.push.token_push)
        return objects.token_to_211(body)
    log.warning("no OCPI 2.1.1 form of a %s %s message; sent as stored", method, module)
    return body


def _location_part(body: dict[str, Any], depth: int) -> dict[str, Any]:
    """``/{cc}/{pid}/{location}`` a Location, ``.../{evse}`` an EVSE, ``.../{evse}/{connector}`` a Connector."""
    if depth >= 5:
        return objects.connector_to_211(body)
    if depth == 4:
        return objects.evse_to_211(body)
    out = objects.location_to_211(body)
    if body.get("publish") is False and not body.get("publish_allowed_to") and out.get("evses"):
        # the partner may no longer see it (2.2.1: publish false); 2.1.1 has no publish, and "a Location
        # without valid EVSE objects can be considered as expired": every EVSE REMOVED
        out["evses"] = [{**evse, "status": "REMOVED"} for evse in out["evses"]]
    return out


async def _session_row(db_session: AsyncSession, segments: list[str]) -> tuple[ChargingSession, Party] | None:
    """The session a ``/{cc}/{pid}/{session_id}`` path names, with its CPO."""
    if len(segments) < 3:
        return None
    cpo = await _cpo(db_session, segments[0], segments[1])
    session_uid = segments[2]
    if cpo is None:
        return None
    cs = await db_session.scalar(
        select(ChargingSession).where(
            ChargingSession.session_uid == session_uid, ChargingSession.cpo_id == cpo.id
        )
    )
    return (cs, cpo) if cs is not None else None


async def _session_location(
    db_session: AsyncSession, segments: list[str], body: dict[str, Any]
) -> dict[str, Any] | None:
    """The 2.2.1 Location of the session, as it is now (None when the session or its location is gone)."""
    found = await _session_row(db_session, segments)
    if found is None or found[0].location_id is None:
        log.warning("session %s: no location to embed in its OCPI 2.1.1 form", body.get("id"))
        return None
    cs, cpo = found
    loc = await load_location(db_session, cs.location_id) if cs.location_id is not None else None
    return location_object(loc, cpo) if loc is not None else None


async def _cpo(db_session: AsyncSession, country_code: Any, party_id: Any) -> Party | None:
    return await db_session.scalar(
        select(Party).where(
            Party.country_code == str(country_code),
            Party.party_id == str(party_id),
            Party.role == PartyRole.CPO,
        )
    )


async def _cdr_location(db_session: AsyncSession, cdr: dict[str, Any]) -> dict[str, Any] | None:
    """The 2.2.1 Location the CDR's ``cdr_location`` names, as it is now (None when it is gone)."""
    where = cdr.get("cdr_location")
    if not isinstance(where, dict) or not where.get("id"):
        return None
    cpo = await _cpo(db_session, cdr.get("country_code"), cdr.get("party_id"))
    if cpo is None:
        return None
    pk = await db_session.scalar(
        select(Location.id).where(Location.cpo_id == cpo.id, Location.ocpi_id == str(where["id"]))
    )
    loc = await load_location(db_session, pk) if pk is not None else None
    return location_object(loc, cpo) if loc is not None else None


async def _whole_periods(
    db_session: AsyncSession, segments: list[str], patch: dict[str, Any]
) -> dict[str, Any]:
    """A 2.2.1 Session PATCH whose ``charging_periods`` (the new ones only) become every period of the session
    up to and including the last of them."""
    new = patch.get("charging_periods")
    if not new:
        return patch
    found = await _session_row(db_session, segments)
    if found is None:
        return patch
    periods = list((await session_object(db_session, found[0], found[1])).get("charging_periods") or [])
    if not periods:
        return patch
    last = new[-1].get("start_date_time") if isinstance(new[-1], dict) else None
    cut = next((i + 1 for i, p in enumerate(periods) if p.get("start_date_time") == last), None)
    if cut is None:  # the stored periods changed since: the session's periods as they are now
        cut = len(periods)
    return {**patch, "charging_periods": periods[:cut]}
