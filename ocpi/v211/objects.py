"""Pure translations between the hub's OCPI 2.2.1 objects and OCPI 2.1.1 (no I/O, no database).

Outgoing (2.2.1 → 2.1.1), each accepting a complete object or a partial one (a PATCH body: only the keys
present are translated): :func:`location_to_211`, :func:`evse_to_211`, :func:`connector_to_211`,
:func:`session_to_211`, :func:`cdr_to_211`, :func:`tariff_to_211`, :func:`token_to_211`,
:func:`command_response_to_211`, :func:`command_result_to_211`, :func:`location_references_to_211`.
Incoming (2.1.1 → 2.2.1): :func:`token_from_211`, :func:`command_from_211`,
:func:`authorization_info_from_211`, :func:`credentials_from_211`.

CONTRACT STUB written by the integrator: signatures are fixed; the bodies are being implemented.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def location_to_211(location: Obj) -> Obj:
    """A 2.2.1 Location (or partial Location) as a 2.1.1 Location."""
    raise NotImplementedError


def evse_to_211(evse: Obj) -> Obj:
    """A 2.2.1 EVSE (or partial EVSE, e.g. a status PATCH) as a 2.1.1 EVSE."""
    raise NotImplementedError


def connector_to_211(connector: Obj) -> Obj:
    """A 2.2.1 Connector (or partial) as a 2.1.1 Connector (``tariff_ids`` → ``tariff_id``...)."""
    raise NotImplementedError


def session_to_211(session: Obj, location: Obj | None = None) -> Obj:
    """A 2.2.1 Session (or partial) as a 2.1.1 Session. ``location`` is the 2.2.1 Location of the session
    (needed for a complete Session: 2.1.1 embeds the Location with only the session's EVSE and connector)."""
    raise NotImplementedError


def cdr_to_211(cdr: Obj) -> Obj:
    """A 2.2.1 CDR as a 2.1.1 CDR (its Location built from ``cdr_location``); the same money."""
    raise NotImplementedError


def tariff_to_211(tariff: Obj) -> Obj:
    """A 2.2.1 Tariff as a 2.1.1 Tariff."""
    raise NotImplementedError


def token_to_211(token: Obj) -> Obj:
    """A 2.2.1 Token as a 2.1.1 Token."""
    raise NotImplementedError


def token_from_211(token: Obj, country_code: str, party_id: str) -> Obj:
    """A 2.1.1 Token (or partial, a PATCH) from the eMSP ``country_code``/``party_id`` as a 2.2.1 Token."""
    raise NotImplementedError


def command_from_211(command: str, body: Obj, country_code: str, party_id: str) -> Obj:
    """A 2.1.1 command request body (START_SESSION, STOP_SESSION, RESERVE_NOW, UNLOCK_CONNECTOR) from the
    eMSP ``country_code``/``party_id`` as the 2.2.1 body of the same command."""
    raise NotImplementedError


def command_response_to_211(response: Obj) -> Obj:
    """The 2.2.1 CommandResponse answered at once, as the 2.1.1 CommandResponse."""
    raise NotImplementedError


def command_result_to_211(result: Obj) -> Obj:
    """The 2.2.1 CommandResult POSTed to ``response_url``, as the 2.1.1 CommandResponse sent there."""
    raise NotImplementedError


def location_references_to_211(references: Obj) -> Obj:
    """The 2.2.1 LocationReferences of a real-time authorization request, in 2.1.1 form."""
    raise NotImplementedError


def authorization_info_from_211(info: Obj) -> Obj:
    """A 2.1.1 AuthorizationInfo answer as a 2.2.1 AuthorizationInfo (no ``authorization_reference``)."""
    raise NotImplementedError


def credentials_from_211(credentials: Obj, role: str) -> Obj:
    """A 2.1.1 Credentials object (one party) as a 2.2.1 Credentials object with one role ``role``."""
    raise NotImplementedError


def credentials_to_211(credentials: Obj) -> Obj:
    """The hub's 2.2.1 Credentials object (one role per hosted CPO) as a 2.1.1 Credentials object."""
    raise NotImplementedError
