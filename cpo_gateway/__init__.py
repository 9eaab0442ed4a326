"""cpo_gateway — the OCPP-J 1.6 and 2.0.1 central system: chargers in, sessions and meter values out.

The public surface other stages may import (``make lint`` refuses any other import of this package from
``ocpi``, ``tariffs``, ``settlement`` or ``portal``): the result of authorizing an id token, and the builder
of the OCPP call for an operator or OCPI command, the error it raises for a call not valid for the
charger's OCPP version (never sent), and the error of a call to a charger that is not connected.
"""

from cpo_gateway.authorization import AuthResult
from cpo_gateway.cluster import ChargerOffline
from cpo_gateway.commands import build as build_call
from cpo_gateway.validation import InvalidCall

__all__ = ["AuthResult", "ChargerOffline", "InvalidCall", "build_call"]
