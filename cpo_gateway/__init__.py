"""cpo_gateway — the OCPP-J 1.6 and 2.0.1 central system: chargers in, sessions and meter values out.

The public surface other stages may import (``make lint`` refuses any other import of this package from
``ocpi``, ``tariffs``, ``settlement`` or ``portal``): the result of authorizing an id token, and the builder
of the OCPP call for an operator or OCPI command, the error it raises for a call not valid for the
charger's OCPP version (never sent), and the error of a call to a charger that is not connected; the
decision on one known token (``decide_token``, the same rules the gateway applies at Authorize, which the hub's
own eMSP answers OCPI real-time authorization with) and the choice among a uid's casing variants
(``current_token_rows``).
"""

from cpo_gateway.authorization import AuthResult
from cpo_gateway.authorization import current_rows as current_token_rows
from cpo_gateway.authorization import decide as decide_token
from cpo_gateway.cluster import ChargerOffline
from cpo_gateway.commands import build as build_call
from cpo_gateway.validation import InvalidCall

__all__ = [
    "AuthResult",
    "ChargerOffline",
    "InvalidCall",
    "build_call",
    "current_token_rows",
    "decide_token",
]
