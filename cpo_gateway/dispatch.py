"""Which handlers a charger's CALLs go to: one table per OCPP version, chosen once per connection.

The gateway looks the table up when a charger connects (by the subprotocol it negotiated) and hands it to the
:class:`~cpo_gateway.connection.ChargerConnection`; each CALL is then one lookup by action in that table. The
connection itself imports no protocol version, so a new version is a new module and a line here.
"""

from __future__ import annotations

from collections.abc import Mapping

from cpo_gateway import v16, v201
from cpo_gateway.connection import Handler

_TABLES: dict[str, Mapping[str, Handler]] = {
    v16.VERSION: v16.HANDLERS,
    v201.VERSION: v201.HANDLERS,
}


def handlers_for(version: str) -> Mapping[str, Handler]:
    """The CALL handlers of OCPP ``version`` ("1.6" or "2.0.1") by action."""
    try:
        return _TABLES[version]
    except KeyError:
        raise ValueError(f"no handlers for OCPP {version!r}: supported are {', '.join(_TABLES)}") from None
